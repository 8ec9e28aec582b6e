package loadgen

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// The catalog is fixed (independent of the seed) so that every run sells the
// same products at the same prices. Each product's JSON fields are rendered
// once; emitting a product event is then a single append.

const productsPerCategory = 200

type category struct {
	name                 string
	minCents, spanCents  int64
	queries              []string
	brands               []string
	quotedName           []byte
	quotedQueries        [][]byte
	quotedBrands         [][]byte
	firstProduct, nProds int
}

type product struct {
	sku   string
	cat   int
	cents int64
	// fields is `"sku":"…","category":"…","brand":"…","price":12.34`.
	fields []byte
}

type text struct {
	rating int
	quoted []byte
}

type catalog struct {
	categories []category
	products   []product
	// good holds texts for ratings 4–5, bad for ratings 1–2, meh for 3.
	good, meh, bad []text
}

var shop = newCatalog()

func newCatalog() *catalog {
	c := &catalog{categories: []category{
		{name: "shoes", minCents: 2900, spanCents: 15000,
			queries: []string{"running shoes", "trail runners", "white sneakers", "运动鞋", "leather boots"},
			brands:  []string{"acme", "stride", "northpeak"}},
		{name: "apparel", minCents: 900, spanCents: 12000,
			queries: []string{"linen shirt", "rain jacket", "连衣裙", "wool sweater", "black jeans"},
			brands:  []string{"acme", "loomwell", "kestrel"}},
		{name: "bags", minCents: 1900, spanCents: 30000,
			queries: []string{"backpack", "tote bag", "双肩包", "carry-on"},
			brands:  []string{"northpeak", "carryall", "loomwell"}},
		{name: "beauty", minCents: 500, spanCents: 6000,
			queries: []string{"sunscreen", "vitamin c serum", "口红", "face mask"},
			brands:  []string{"lumen", "petal&co", "glow lab"}},
		{name: "electronics", minCents: 1500, spanCents: 90000,
			queries: []string{"wireless earbuds", "usb-c charger", "蓝牙耳机", "smart watch", "4k monitor"},
			brands:  []string{"voltix", "orbit", "kestrel"}},
		{name: "home", minCents: 700, spanCents: 20000,
			queries: []string{"scented candle", "throw blanket", "咖啡杯", "desk lamp"},
			brands:  []string{"hearth", "lumen", "casa verde"}},
		{name: "toys", minCents: 500, spanCents: 8000,
			queries: []string{"building blocks", "plush bear", "拼图", "board game"},
			brands:  []string{"tinker", "orbit", "hearth"}},
		{name: "sports", minCents: 900, spanCents: 25000,
			queries: []string{"yoga mat", "dumbbells", "瑜伽垫", "tennis racket"},
			brands:  []string{"stride", "northpeak", "acme"}},
		{name: "books", minCents: 600, spanCents: 4000,
			queries: []string{"cookbook", "sci-fi paperback", "小说", "travel guide"},
			brands:  []string{"paper lantern", "inkwell"}},
		{name: "jewelry", minCents: 1900, spanCents: 40000,
			queries: []string{"silver ring", "pearl earrings", "项链", "gold chain"},
			brands:  []string{"aurum", "petal&co"}},
	}}
	h := uint64(0x5eed_c0ffee) // fixed: the catalog does not depend on the seed
	for ci := range c.categories {
		cat := &c.categories[ci]
		cat.quotedName = quoteJSON(cat.name)
		for _, q := range cat.queries {
			cat.quotedQueries = append(cat.quotedQueries, quoteJSON(q))
		}
		for _, b := range cat.brands {
			cat.quotedBrands = append(cat.quotedBrands, quoteJSON(b))
		}
		cat.firstProduct, cat.nProds = len(c.products), productsPerCategory
		for i := 0; i < productsPerCategory; i++ {
			h = splitmix(h)
			n := len(c.products) + 1
			bi := int(h>>8) % len(cat.brands)
			// Prices end in .99, .49 or .00 most of the time, like a shop's.
			cents := cat.minCents + int64(h>>20)%cat.spanCents
			switch h & 3 {
			case 0, 1:
				cents = cents/100*100 + 99
			case 2:
				cents = cents/100*100 + 49
			}
			p := product{sku: "sku-" + strconv.Itoa(n), cat: ci, cents: cents}
			b := append([]byte(nil), `"sku":"`...)
			b = append(b, p.sku...)
			b = append(b, `","category":`...)
			b = append(b, cat.quotedName...)
			b = append(b, `,"brand":`...)
			b = append(b, cat.quotedBrands[bi]...)
			b = append(b, `,"price":`...)
			b = appendCents(b, cents)
			p.fields = b
			c.products = append(c.products, p)
		}
	}
	for _, t := range []struct {
		rating int
		s      string
	}{
		{5, "Arrived fast and fits perfectly. Will order again!"},
		{5, "Great quality for the price, exactly as pictured."},
		{4, "Good product, the box was a little dented."},
		{4, "Nice colour, runs slightly small."},
		{5, "质量很好，物流也快，非常满意！"},
		{4, "包装精美，性价比高。"},
		{3, "It's okay. Does the job but nothing special."},
		{3, "Delivery took a week longer than promised."},
		{3, "一般般，和图片有点色差。"},
		{2, "Item arrived damaged, I'd like a replacement."},
		{1, "Wrong size sent and nobody answers my emails. Where is my refund?"},
		{1, "Order #missing never arrived, please help."},
		{2, "尺码不对，申请退货。"},
		{1, "客服一直不回复，很失望。"},
	} {
		x := text{rating: t.rating, quoted: quoteJSON(t.s)}
		switch {
		case t.rating >= 4:
			c.good = append(c.good, x)
		case t.rating == 3:
			c.meh = append(c.meh, x)
		default:
			c.bad = append(c.bad, x)
		}
	}
	return c
}

// quoteJSON returns s as a JSON string literal. It runs only while building
// the catalog; hot paths append these pre-rendered bytes.
func quoteJSON(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // "petal&co", not "petal\u0026co"
	if err := enc.Encode(s); err != nil {
		panic(err) // a string always encodes
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// appendCents appends cents as a JSON number with two decimals, "59.90".
// Integer cents keep order totals exact.
func appendCents(b []byte, cents int64) []byte {
	if cents < 0 {
		b = append(b, '-')
		cents = -cents
	}
	b = strconv.AppendInt(b, cents/100, 10)
	frac := cents % 100
	return append(b, '.', byte('0'+frac/10), byte('0'+frac%10))
}

// splitmix is the SplitMix64 step, used only to derive the fixed catalog.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	z := x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
