package state

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/spur-crm/spur/pkg/event"
)

// fullCustomer returns a record with every field set, including extreme and
// negative values, so that a field the codec forgets shows up as a diff.
func fullCustomer() Customer {
	return Customer{
		FirstSeen:    -86_400_000, // before 1970
		LastActivity: math.MaxInt64,
		Events:       math.MaxUint64,
		Cart: []CartItem{
			{SKU: "sku-1", Category: "shoes", Price: 59.9, Qty: 2},
			{SKU: "sku-ü-∑", Category: "", Price: 0, Qty: math.MaxInt32},
			{SKU: "sku-3", Category: "hats", Price: math.MaxFloat64, Qty: math.MinInt32},
		},
		CartUpdatedAt: 1_795_000_000_000,
		Recent: []Recent{
			{EventID: "e-1", Type: "cart_add", TS: 1_795_000_000_000, SKU: "sku-1"},
			{EventID: "e-2", Type: "page_view", TS: math.MinInt64, SKU: ""},
		},
		CategoryViews:  []Count{{Name: "shoes", Count: 3}, {Name: "hats", Count: math.MaxUint32}},
		Orders:         math.MaxUint32,
		Spend:          1234.56,
		LastOrderAt:    1_795_000_000_001,
		LastRating:     -5,
		LastFeedbackAt: 1_795_000_000_002,
		LastSentiment:  -0.62,
		Aliases:        []string{"a-1", "a-2"},
		Pending: []Pending{
			{Rule: "cart_abandonment", Deadline: 1_795_000_010_000, Cause: "e-1"},
			{Rule: "browse", Deadline: -1, Cause: ""},
		},
		Outcomes: []Outcome{
			{Rule: "cart_abandonment", TriggerID: "0123abcd", At: 1_795_000_010_000, Result: "emitted"},
		},
		BrandViews: []Count{{Name: "acme", Count: 7}},
		Viewed:     []Viewed{{SKU: "sku-1", Bought: true}, {SKU: "sku-9"}},
		Tags:       []Tag{{Name: "interested:shoes", Rule: "dynamic_tags.interested", AddedAt: 1_795_000_000_000, ExpiresAt: 1_795_259_200_000}},
		Counters: []Counter{
			{Name: "dynamic_tags.views", Key: "shoes", Entries: []CounterEntry{{TS: 1_795_000_000_000, Value: 1}, {TS: -5, Value: 99.5}}},
			{Name: "dynamic_tags.spend", Key: ""},
		},
		TZOffset: -330,
		TZKnown:  true,
	}
}

// flattenRecent decodes the encoded recent events into Recent, so that a
// decoded customer compares with the one it was encoded from.
func (c *Customer) flattenRecent() {
	if c.recentN == 0 {
		return
	}
	c.Recent = c.RecentEvents()
	c.recentEnc, c.recentN, c.recentDrop = "", 0, 0
	c.recentLastTS, c.recentLastLen, c.recentLast, c.recentIDs = 0, 0, [recentLastMax]byte{}, idFilter{}
}

func roundTrip(t testing.TB, c *Customer) Customer {
	t.Helper()
	enc := c.AppendBinary(nil)
	var got Customer
	if err := got.UnmarshalBinary(enc); err != nil {
		t.Fatalf("UnmarshalBinary(AppendBinary(c)): %v", err)
	}
	// Version 5 keeps the recent events encoded: decode them to compare.
	got.flattenRecent()
	return got
}

func TestFullCustomerSetsEveryField(t *testing.T) {
	// Guards the round-trip test below: a field added to Customer must be
	// set here, or the codec could drop it unnoticed.
	v := reflect.ValueOf(fullCustomer())
	for i := range v.NumField() {
		if !v.Type().Field(i).IsExported() {
			continue // the encoded recent events: only decoding sets them
		}
		if v.Field(i).IsZero() {
			t.Errorf("fullCustomer leaves %s zero", v.Type().Field(i).Name)
		}
	}
}

func TestCustomerRoundTrip(t *testing.T) {
	full := fullCustomer()
	tests := []struct {
		name string
		c    Customer
	}{
		{"zero", Customer{}},
		{"full", full},
		{"empty strings and NaN-free extremes", Customer{
			Cart:   []CartItem{{SKU: "", Price: -0.5, Qty: -1}},
			Spend:  math.SmallestNonzeroFloat64,
			Recent: []Recent{{}},
		}},
		{"only outcomes", Customer{Outcomes: []Outcome{{Rule: "r"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := roundTrip(t, &tc.c)
			if !reflect.DeepEqual(got, tc.c) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tc.c)
			}
		})
	}
}

func TestCustomerAppendBinaryAppends(t *testing.T) {
	c := fullCustomer()
	prefix := []byte("prefix")
	enc := c.AppendBinary(append([]byte(nil), prefix...))
	if !bytes.HasPrefix(enc, prefix) {
		t.Fatalf("AppendBinary overwrote the buffer's prefix: %q", enc[:len(prefix)])
	}
	if !bytes.Equal(enc[len(prefix):], c.AppendBinary(nil)) {
		t.Fatal("AppendBinary output depends on the buffer it appends to")
	}
	if enc[len(prefix)] != encodingV5 {
		t.Fatalf("first byte = %d, want version %d", enc[len(prefix)], encodingV5)
	}
}

// TestUnmarshalDoesNotRetainInput: the decoded strings share one copy of
// the record, never the caller's buffer, which Pebble reuses after Get's
// closer is closed.
func TestUnmarshalDoesNotRetainInput(t *testing.T) {
	c := fullCustomer()
	enc := c.AppendBinary(nil)
	var got Customer
	if err := got.UnmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	for i := range enc {
		enc[i] = 0xff
	}
	got.flattenRecent()
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("decoded record changed with its input:\n got %+v\nwant %+v", got, c)
	}
}

func TestUnmarshalResetsReceiver(t *testing.T) {
	c := fullCustomer()
	var zero Customer
	if err := c.UnmarshalBinary(zero.AppendBinary(nil)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Customer{}) {
		t.Fatalf("decoding a zero record into a used Customer left %+v", c)
	}
}

func TestCustomerBounds(t *testing.T) {
	t.Run("cart", func(t *testing.T) {
		var c Customer
		for i := range MaxCartItems + 50 {
			c.AddToCart(CartItem{SKU: fmt.Sprintf("sku-%d", i), Price: 1, Qty: 1})
		}
		if len(c.Cart) != MaxCartItems {
			t.Fatalf("cart has %d lines, want %d", len(c.Cart), MaxCartItems)
		}
		if c.Cart[0].SKU != "sku-50" || c.Cart[MaxCartItems-1].SKU != fmt.Sprintf("sku-%d", MaxCartItems+49) {
			t.Fatalf("cart kept %s..%s, want the newest lines", c.Cart[0].SKU, c.Cart[MaxCartItems-1].SKU)
		}
		if got := roundTrip(t, &c); !reflect.DeepEqual(got, c) {
			t.Fatal("full cart does not round trip")
		}
	})
	t.Run("recent", func(t *testing.T) {
		var c Customer
		for i := range MaxRecent + 9 {
			c.AddRecent(Recent{EventID: fmt.Sprintf("e-%d", i), TS: int64(i)})
		}
		if len(c.Recent) != MaxRecent {
			t.Fatalf("recent has %d entries, want %d", len(c.Recent), MaxRecent)
		}
		if c.Recent[0].EventID != "e-9" || c.Recent[MaxRecent-1].EventID != fmt.Sprintf("e-%d", MaxRecent+8) {
			t.Fatalf("recent kept %s..%s, want the newest", c.Recent[0].EventID, c.Recent[MaxRecent-1].EventID)
		}
		if c.SeenEvent("e-8") {
			t.Fatal("evicted event still reported as seen")
		}
		if got := roundTrip(t, &c); !reflect.DeepEqual(got, c) {
			t.Fatal("full trajectory does not round trip")
		}
	})
	t.Run("category eviction keeps most viewed", func(t *testing.T) {
		var c Customer
		// Category i is viewed i+2 times, except "rare" which is viewed once.
		for i := range MaxCategoryViews - 1 {
			for range i + 2 {
				c.ViewCategory(fmt.Sprintf("cat-%d", i))
			}
		}
		c.ViewCategory("rare")
		if len(c.CategoryViews) != MaxCategoryViews {
			t.Fatalf("%d categories, want %d", len(c.CategoryViews), MaxCategoryViews)
		}
		c.ViewCategory("new")
		if len(c.CategoryViews) != MaxCategoryViews {
			t.Fatalf("%d categories after eviction, want %d", len(c.CategoryViews), MaxCategoryViews)
		}
		counts := map[string]uint32{}
		for _, v := range c.CategoryViews {
			counts[v.Name] = v.Count
		}
		if _, ok := counts["rare"]; ok {
			t.Fatal("least viewed category was not evicted")
		}
		if counts["new"] != 1 {
			t.Fatalf("new category count = %d, want 1", counts["new"])
		}
		for i := range MaxCategoryViews - 1 {
			if n := counts[fmt.Sprintf("cat-%d", i)]; n != uint32(i+2) {
				t.Fatalf("cat-%d count = %d, want %d", i, n, i+2)
			}
		}
		c.ViewCategory("")
		if len(c.CategoryViews) != MaxCategoryViews || counts["new"] != 1 {
			t.Fatal("an empty category name was counted")
		}
		if got := roundTrip(t, &c); !reflect.DeepEqual(got, c) {
			t.Fatal("full category table does not round trip")
		}
	})
	t.Run("aliases", func(t *testing.T) {
		var c Customer
		for i := range MaxAliases + 3 {
			c.AddAlias(fmt.Sprintf("a-%d", i))
			c.AddAlias(fmt.Sprintf("a-%d", i)) // duplicates are ignored
		}
		c.AddAlias("")
		if len(c.Aliases) != MaxAliases {
			t.Fatalf("%d aliases, want %d", len(c.Aliases), MaxAliases)
		}
		if c.Aliases[0] != "a-3" || c.Aliases[MaxAliases-1] != fmt.Sprintf("a-%d", MaxAliases+2) {
			t.Fatalf("aliases = %v, want the newest", c.Aliases)
		}
		if got := roundTrip(t, &c); !reflect.DeepEqual(got, c) {
			t.Fatal("full alias list does not round trip")
		}
	})
	t.Run("outcomes", func(t *testing.T) {
		var c Customer
		for i := range MaxOutcomes + 5 {
			c.AddOutcome(Outcome{Rule: "r", TriggerID: fmt.Sprint(i), At: int64(i)})
		}
		if len(c.Outcomes) != MaxOutcomes {
			t.Fatalf("%d outcomes, want %d", len(c.Outcomes), MaxOutcomes)
		}
		if c.Outcomes[0].TriggerID != "5" || c.Outcomes[MaxOutcomes-1].TriggerID != fmt.Sprint(MaxOutcomes+4) {
			t.Fatalf("outcomes kept %s..%s, want the newest", c.Outcomes[0].TriggerID, c.Outcomes[MaxOutcomes-1].TriggerID)
		}
		if got := roundTrip(t, &c); !reflect.DeepEqual(got, c) {
			t.Fatal("full outcome history does not round trip")
		}
	})
}

// TestEncodeOverfullListsStaysDecodable checks that lists set directly
// beyond their bound are written as their newest entries: the decoder
// rejects longer lists, and an undecodable record would stop the worker.
func TestEncodeOverfullListsStaysDecodable(t *testing.T) {
	var c Customer
	for i := range MaxCartItems + 1 {
		c.Cart = append(c.Cart, CartItem{SKU: fmt.Sprint(i), Qty: 1})
	}
	for i := range MaxRecent + 1 {
		c.Recent = append(c.Recent, Recent{EventID: fmt.Sprint(i)})
	}
	for i := range MaxCategoryViews + 1 {
		c.CategoryViews = append(c.CategoryViews, Count{Name: fmt.Sprint(i), Count: 1})
	}
	for i := range MaxAliases + 1 {
		c.Aliases = append(c.Aliases, fmt.Sprint(i))
	}
	for i := range maxPending + 1 {
		c.Pending = append(c.Pending, Pending{Rule: fmt.Sprint(i)})
	}
	for i := range MaxOutcomes + 1 {
		c.Outcomes = append(c.Outcomes, Outcome{Rule: fmt.Sprint(i)})
	}
	got := roundTrip(t, &c)
	want := Customer{
		Cart:          c.Cart[1:],
		Recent:        c.Recent[1:],
		CategoryViews: c.CategoryViews[1:],
		Aliases:       c.Aliases[1:],
		Pending:       c.Pending[1:],
		Outcomes:      c.Outcomes[1:],
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("overfull record decoded as\n%+v\nwant the newest entries of each list", got)
	}
}

func TestUnmarshalCorrupt(t *testing.T) {
	full := fullCustomer()
	enc := full.AppendBinary(nil)
	tests := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"unknown version", append([]byte{encodingV5 + 1}, enc[1:]...)},
		{"version zero", []byte{0}},
		{"version only", []byte{encodingV1}},
		{"unterminated varint", []byte{encodingV1, 0x80}},
		{"overlong varint", append([]byte{encodingV1}, bytes.Repeat([]byte{0xff}, 11)...)},
		// FirstSeen, LastActivity, Events = 0, then a cart count beyond the bound.
		{"cart count over bound", []byte{encodingV1, 0, 0, 0, MaxCartItems + 1}},
		{"cart count huge", []byte{encodingV1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		// One cart line whose SKU claims 100 bytes.
		{"string longer than input", []byte{encodingV1, 0, 0, 0, 1, 100, 'a'}},
		{"string length huge", []byte{encodingV1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		// One cart line: SKU "", Category "", then a 3-byte float.
		{"short float", []byte{encodingV1, 0, 0, 0, 1, 0, 0, 1, 2, 3}},
		// Version 4, no cart, CartUpdatedAt 0, one recent event: its id
		// shares 1 byte with the previous one, which there is not.
		{"event id prefix without a previous id", []byte{encodingV4, 0, 0, 0, 0, 0, 1, 1, 1, 'e'}},
		// The second event's id claims 3 bytes of the first's 2.
		{"event id prefix longer than the previous id", []byte{encodingV4, 0, 0, 0, 0, 0, 2, 0, 2, 'e', '1', 1, 0, 0, 3, 1, '2', 1, 0, 0}},
		{"unknown type code", []byte{encodingV4, 0, 0, 0, 0, 0, 1, 0, 1, 'e', byte(len(recentTypes) + 1), 0, 0}},
		{"type missing", []byte{encodingV4, 0, 0, 0, 0, 0, 1, 0, 1, 'e'}},
	}
	// A counter value that is neither whole (an even varint) nor marked as
	// a float (1).
	bad := Customer{Counters: []Counter{{Name: "n", Entries: []CounterEntry{{TS: 1, Value: 1}}}}}
	badEnc := bad.AppendBinary(nil)
	value := len(badEnc) - 3 // the entry's value, then TZOffset and TZKnown
	if badEnc[value] != 4 {  // the varint 2, zigzagged
		t.Fatalf("counter value encoded as %d at %d, want 4: %x", badEnc[value], value, badEnc)
	}
	badEnc[value] = 6 // the varint 3
	tests = append(tests, struct {
		name string
		data []byte
	}{"counter value marker", badEnc})
	// Every proper prefix of a full record is truncated.
	for n := 1; n < len(enc); n++ {
		tests = append(tests, struct {
			name string
			data []byte
		}{fmt.Sprintf("prefix %d of %d", n, len(enc)), enc[:n]})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := fullCustomer()
			err := c.UnmarshalBinary(tc.data)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("UnmarshalBinary(%x) = %v, want ErrCorrupt", tc.data, err)
			}
		})
	}
}

func FuzzCustomerUnmarshal(f *testing.F) {
	full := fullCustomer()
	zero := Customer{}
	f.Add(zero.AppendBinary(nil))
	f.Add(full.AppendBinary(nil))
	f.Add([]byte{})
	f.Add([]byte{encodingV1})
	f.Add([]byte{encodingV1, 0, 0, 0, 1, 100, 'a'})
	f.Add([]byte{encodingV1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add(append(full.AppendBinary(nil), "trailing"...))
	busy := benchCustomer()
	f.Add(busy.AppendBinary(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Customer
		err := c.UnmarshalBinary(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// Compare encodings rather than structs: NaN prices are legal bytes
		// but never DeepEqual to themselves.
		enc1 := c.AppendBinary(nil)
		var c2 Customer
		if err := c2.UnmarshalBinary(enc1); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if enc2 := c2.AppendBinary(nil); !bytes.Equal(enc1, enc2) {
			t.Fatalf("encoding not stable:\n%x\n%x", enc1, enc2)
		}
		// An event added to the decoded record (whose recent events a
		// version-5 record keeps encoded) is in the record written again.
		c2.AddRecent(Recent{EventID: "fuzz-e", Type: "page_view", TS: 1})
		var c3 Customer
		if err := c3.UnmarshalBinary(c2.AppendBinary(nil)); err != nil {
			t.Fatalf("record with an added event does not decode: %v", err)
		}
		if got := c3.RecentEvents(); len(got) == 0 || got[len(got)-1].EventID != "fuzz-e" || !c3.SeenEvent("fuzz-e") {
			t.Fatalf("added event not the newest of %+v", got)
		}
	})
}

func TestCartValue(t *testing.T) {
	tests := []struct {
		name string
		cart []CartItem
		want float64
	}{
		{"empty", nil, 0},
		{"one line", []CartItem{{Price: 59.9, Qty: 2}}, 119.8},
		{"float noise rounded", []CartItem{{Price: 0.1, Qty: 3}}, 0.3},
		{"sum of lines", []CartItem{{Price: 0.1, Qty: 1}, {Price: 0.2, Qty: 1}}, 0.3},
		{"rounds half cent up", []CartItem{{Price: 0.125, Qty: 1}}, 0.13},
		{"rounds down", []CartItem{{Price: 10.004, Qty: 1}}, 10},
		{"third of a cent times three", []CartItem{{Price: 19.99, Qty: 3}}, 59.97},
		{"free item", []CartItem{{Price: 0, Qty: 5}, {Price: 1.5, Qty: 2}}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Customer{Cart: tc.cart}
			if got := c.CartValue(); got != tc.want {
				t.Fatalf("CartValue() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAddToCartMerges(t *testing.T) {
	var c Customer
	c.AddToCart(CartItem{SKU: "a", Category: "shoes", Price: 10, Qty: 1})
	c.AddToCart(CartItem{SKU: "b", Category: "hats", Price: 5, Qty: 1})
	c.AddToCart(CartItem{SKU: "a", Category: "", Price: 12, Qty: 2})
	want := []CartItem{
		// Quantities add up, the latest price wins, an empty category keeps
		// the known one.
		{SKU: "a", Category: "shoes", Price: 12, Qty: 3},
		{SKU: "b", Category: "hats", Price: 5, Qty: 1},
	}
	if !reflect.DeepEqual(c.Cart, want) {
		t.Fatalf("cart = %+v, want %+v", c.Cart, want)
	}
	c.AddToCart(CartItem{SKU: "b", Category: "caps", Price: 5, Qty: 1})
	if c.Cart[1].Category != "caps" || c.Cart[1].Qty != 2 {
		t.Fatalf("line b = %+v, want category caps, qty 2", c.Cart[1])
	}
	// A merge into a full cart evicts nothing.
	var full Customer
	for i := range MaxCartItems {
		full.AddToCart(CartItem{SKU: fmt.Sprint(i), Qty: 1})
	}
	full.AddToCart(CartItem{SKU: "0", Qty: 1})
	if len(full.Cart) != MaxCartItems || full.Cart[0].SKU != "0" || full.Cart[0].Qty != 2 {
		t.Fatalf("merge into a full cart: len %d, first %+v", len(full.Cart), full.Cart[0])
	}
}

func TestRemoveFromCart(t *testing.T) {
	base := func() Customer {
		return Customer{Cart: []CartItem{{SKU: "a", Qty: 3}, {SKU: "b", Qty: 1}, {SKU: "c", Qty: 2}}}
	}
	tests := []struct {
		name string
		sku  string
		qty  int32
		want []CartItem
	}{
		{"partial", "a", 2, []CartItem{{SKU: "a", Qty: 1}, {SKU: "b", Qty: 1}, {SKU: "c", Qty: 2}}},
		{"exact quantity removes line", "a", 3, []CartItem{{SKU: "b", Qty: 1}, {SKU: "c", Qty: 2}}},
		{"more than held removes line", "c", 5, []CartItem{{SKU: "a", Qty: 3}, {SKU: "b", Qty: 1}}},
		{"zero removes line", "b", 0, []CartItem{{SKU: "a", Qty: 3}, {SKU: "c", Qty: 2}}},
		{"negative removes line", "c", -1, []CartItem{{SKU: "a", Qty: 3}, {SKU: "b", Qty: 1}}},
		{"unknown sku", "zzz", 1, []CartItem{{SKU: "a", Qty: 3}, {SKU: "b", Qty: 1}, {SKU: "c", Qty: 2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			c.RemoveFromCart(tc.sku, tc.qty)
			if !reflect.DeepEqual(c.Cart, tc.want) {
				t.Fatalf("cart = %+v, want %+v", c.Cart, tc.want)
			}
		})
	}
	var empty Customer
	empty.RemoveFromCart("a", 1)
	if len(empty.Cart) != 0 {
		t.Fatal("removing from an empty cart added a line")
	}
}

func TestSeenEvent(t *testing.T) {
	var c Customer
	if c.SeenEvent("e-1") {
		t.Fatal("unseen customer reports e-1 as seen")
	}
	c.AddRecent(Recent{EventID: "e-1"})
	c.AddRecent(Recent{EventID: "e-2"})
	for _, tc := range []struct {
		id   string
		want bool
	}{{"e-1", true}, {"e-2", true}, {"e-3", false}, {"", false}, {"E-1", false}} {
		if got := c.SeenEvent(tc.id); got != tc.want {
			t.Errorf("SeenEvent(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

// TestAddRecentCopies: a recent event's strings must not share the input
// record they came from, which a cached customer would keep alive.
func TestAddRecentCopies(t *testing.T) {
	record := []byte(`{"event_id":"evt-1","sku":"sku-9"}`)
	in := string(record) // the event's strings are slices of this
	within := func(s string) bool {
		if s == "" {
			return false
		}
		p, lo := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(in)))
		return p >= lo && p < lo+uintptr(len(in))
	}
	id, sku := in[13:18], in[27:32]
	for _, r := range []Recent{{EventID: id, SKU: sku}, {EventID: id}, {SKU: sku}} {
		var c Customer
		c.AddRecent(r)
		got := c.Recent[0]
		if got.EventID != r.EventID || got.SKU != r.SKU {
			t.Fatalf("stored %+v, want %+v", got, r)
		}
		if within(got.EventID) || within(got.SKU) {
			t.Errorf("AddRecent(%+v) kept a string of the input record", r)
		}
	}
}

// TestRecentCorrupt: version 5's recent list is checked when the record is
// decoded, although its entries stay encoded: a record whose list does not
// hold what it says is corrupt.
func TestRecentCorrupt(t *testing.T) {
	var c Customer
	c.AddRecent(Recent{EventID: "e", Type: string(recentTypes[0])})
	enc := c.AppendBinary(nil)
	// Version, FirstSeen, LastActivity, Events, no cart, CartUpdatedAt,
	// then the list: one entry of 6 bytes (no prefix shared, id "e", type
	// code 1, time 0, no SKU).
	const count, length, entry = 6, 7, 11
	if want := []byte{encodingV5, 0, 0, 0, 0, 0, 1, 6, 0, 0, 0, 0, 1, 'e', 1, 0, 0}; !bytes.HasPrefix(enc, want) {
		t.Fatalf("encoding %x, want it to start %x", enc, want)
	}
	var ok Customer
	if err := ok.UnmarshalBinary(enc); err != nil || !ok.SeenEvent("e") {
		t.Fatalf("the record as written: %v, seen e %v", err, ok.SeenEvent("e"))
	}
	for _, tc := range []struct {
		name string
		at   int
		b    byte
	}{
		{"length past the record", length, 200},
		{"length short of its entries", length, 5},
		{"fewer entries than counted", count, 2},
		{"more entries than counted", count, 0},
		{"first id shares a prefix", entry, 1},
		{"unknown type code", entry + 3, byte(len(recentTypes) + 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := bytes.Clone(enc)
			bad[tc.at] = tc.b
			var got Customer
			if err := got.UnmarshalBinary(bad); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("UnmarshalBinary(%x) = %v, want ErrCorrupt", bad, err)
			}
		})
	}
}

// TestRecentKeptEncoded: a decoded version-5 record keeps its recent events
// encoded; adding events counts the oldest out, a retry of any event still
// recent is seen and one counted out is not, and the record written again
// holds exactly the newest MaxRecent, in order, however many were added
// since the decode. Ids longer than a decoded customer keeps of the last
// one (recentLastMax) take the walk to it instead.
func TestRecentKeptEncoded(t *testing.T) {
	long := strings.Repeat("x", recentLastMax)
	for _, tc := range []struct {
		before, added int
		prefix        string
	}{{3, 1, "evt-"}, {MaxRecent, 1, "evt-"}, {MaxRecent, 5, "evt-"}, {MaxRecent - 2, 5, "evt-"}, {5, MaxRecent + 3, "evt-"}, {0, 2, "evt-"}, {1, 1, "evt-"},
		{MaxRecent, 1, long}, {MaxRecent - 2, 5, long}, {1, 1, long}} {
		ev := func(i int) Recent {
			return Recent{EventID: fmt.Sprintf("%s%06d", tc.prefix, i), Type: string(recentTypes[i%len(recentTypes)]), TS: 1_795_000_000_000 + int64(i)*700, SKU: fmt.Sprintf("sku-%d", i%3)}
		}
		t.Run(fmt.Sprintf("%d+%d,%d", tc.before, tc.added, len(ev(0).EventID)), func(t *testing.T) {
			var c Customer
			for i := range tc.before {
				c.AddRecent(ev(i))
			}
			var d Customer
			if err := d.UnmarshalBinary(c.AppendBinary(nil)); err != nil {
				t.Fatal(err)
			}
			if len(d.Recent) != 0 || d.recentN != tc.before {
				t.Fatalf("decoded %d events, %d encoded; want none decoded, %d encoded", len(d.Recent), d.recentN, tc.before)
			}
			all := tc.before + tc.added
			for i := tc.before; i < all; i++ {
				d.AddRecent(ev(i))
			}
			first := max(all-MaxRecent, 0)
			for i := range all {
				if got := d.SeenEvent(ev(i).EventID); got != (i >= first) {
					t.Errorf("SeenEvent(%s) = %v, want %v", ev(i).EventID, got, i >= first)
				}
			}
			var want []Recent
			for i := first; i < all; i++ {
				want = append(want, ev(i))
			}
			if got := d.RecentEvents(); !reflect.DeepEqual(got, want) {
				t.Fatalf("recent events %+v, want %+v", got, want)
			}
			var again Customer
			if err := again.UnmarshalBinary(d.AppendBinary(nil)); err != nil {
				t.Fatal(err)
			}
			if got := again.RecentEvents(); !reflect.DeepEqual(got, want) {
				t.Fatalf("written again: %+v, want %+v", got, want)
			}
		})
	}
}

// TestSeenEventFilter: the filter of a decoded record's recent ids passes
// every one of them, and few of the ids that are not there: those are
// told without a walk.
func TestSeenEventFilter(t *testing.T) {
	var c Customer
	for i := range MaxRecent {
		c.AddRecent(Recent{EventID: fmt.Sprintf("evt-%06d", i), Type: "page_view", TS: int64(i)})
	}
	var d Customer
	if err := d.UnmarshalBinary(c.AppendBinary(nil)); err != nil {
		t.Fatal(err)
	}
	for i := range MaxRecent {
		if id := fmt.Sprintf("evt-%06d", i); !d.recentIDs.mayHave(id) || !d.SeenEvent(id) {
			t.Fatalf("%s: filter %v, seen %v; want both true", id, d.recentIDs.mayHave(id), d.SeenEvent(id))
		}
	}
	const absent = 10000
	passed := 0
	for i := range absent {
		id := fmt.Sprintf("evt-%06d", MaxRecent+i)
		if d.SeenEvent(id) {
			t.Fatalf("%s seen, never added", id)
		}
		if d.recentIDs.mayHave(id) {
			passed++
		}
	}
	// Two bits of 256 per id, 32 ids: about 5 %.
	if passed > absent/10 {
		t.Errorf("the filter passed %d of %d absent ids, want under 10 %%", passed, absent)
	}
}

// TestAddRecentAfterDecodeGrowsNothing: a record decoded as a step decodes
// it, with a pooled array for the recent events it adds, takes the next
// one without growing anything: adding it allocates only the copy of its
// strings, whether the oldest event goes or not.
func TestAddRecentAfterDecodeGrowsNothing(t *testing.T) {
	for _, n := range []int{1, 5, MaxRecent - 1, MaxRecent} {
		var c Customer
		for i := range n {
			c.AddRecent(Recent{EventID: fmt.Sprintf("e-%d", i), Type: "page_view", TS: int64(i)})
		}
		var d Customer
		if err := d.unmarshal(c.AppendBinary(nil), make([]Recent, 0, MaxRecent)); err != nil {
			t.Fatal(err)
		}
		r := Recent{EventID: "e-next", Type: "page_view", TS: int64(n), SKU: "sku-1"}
		allocs := testing.AllocsPerRun(10, func() {
			e := d // shares d's array: the append writes past its length
			e.AddRecent(r)
		})
		if allocs != 1 {
			t.Errorf("%d recent events: AddRecent after decoding allocated %v times, want 1 (the strings)", n, allocs)
		}
	}
}

func TestPending(t *testing.T) {
	var c Customer
	if _, ok := c.PendingFor("r"); ok {
		t.Fatal("unseen customer has a pending timer")
	}
	c.SetPending(Pending{Rule: "r", Deadline: 1, Cause: "e-1"})
	c.SetPending(Pending{Rule: "s", Deadline: 2, Cause: "e-2"})
	c.SetPending(Pending{Rule: "r", Deadline: 3, Cause: "e-3"}) // re-arm
	if len(c.Pending) != 2 {
		t.Fatalf("%d pending, want 2", len(c.Pending))
	}
	if p, ok := c.PendingFor("r"); !ok || p.Deadline != 3 || p.Cause != "e-3" {
		t.Fatalf("PendingFor(r) = %+v, %v; want the re-armed timer", p, ok)
	}
	c.ClearPending("r")
	if _, ok := c.PendingFor("r"); ok {
		t.Fatal("ClearPending(r) left r armed")
	}
	if p, ok := c.PendingFor("s"); !ok || p.Deadline != 2 {
		t.Fatalf("ClearPending(r) disturbed s: %+v, %v", p, ok)
	}
}

// benchCustomer is a realistic busy record: a few cart lines, a full
// trajectory, a dozen categories, an alias, an armed timer, some history.
func benchCustomer() Customer {
	var c Customer
	c.FirstSeen, c.LastActivity, c.Events = 1_795_000_000_000, 1_795_000_900_000, 412
	for i := range 4 {
		c.AddToCart(CartItem{SKU: fmt.Sprintf("sku-%06d", i), Category: "shoes", Price: 59.9, Qty: 1})
	}
	for i := range MaxRecent {
		c.AddRecent(Recent{EventID: fmt.Sprintf("evt-%012d", i), Type: "product_view", TS: 1_795_000_000_000 + int64(i), SKU: fmt.Sprintf("sku-%06d", i)})
	}
	for i := range 12 {
		c.CategoryViews = append(c.CategoryViews, Count{Name: fmt.Sprintf("category-%d", i), Count: uint32(i)})
	}
	c.Orders, c.Spend, c.LastOrderAt = 3, 312.4, 1_794_000_000_000
	c.AddAlias("anon-7f3a9c")
	c.SetPending(Pending{Rule: "cart_abandonment", Deadline: 1_795_000_910_000, Cause: "evt-000000000031"})
	for i := range 4 {
		c.AddOutcome(Outcome{Rule: "cart_abandonment", TriggerID: "0123456789abcdef0123456789abcdef", At: int64(i), Result: "emitted"})
	}
	return c
}

func BenchmarkCustomerRoundTrip(b *testing.B) {
	c := benchCustomer()
	buf := c.AppendBinary(nil)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	var got Customer
	for b.Loop() {
		buf = c.AppendBinary(buf[:0])
		if err := got.UnmarshalBinary(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCustomerEvent is what every event does to its customer's
// record: decode it (into a pooled array, as a step does), check the
// event id against the recent events, add the event, encode the record.
func BenchmarkCustomerEvent(b *testing.B) {
	c := benchCustomer()
	enc := c.AppendBinary(nil)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	pool := make([]Recent, 0, MaxRecent)
	var got Customer
	i := 0
	for b.Loop() {
		if err := got.unmarshal(enc, pool); err != nil {
			b.Fatal(err)
		}
		id := "evt-next-" + strconv.Itoa(i%8)
		if got.SeenEvent(id) {
			b.Fatal("a new event seen")
		}
		got.AddRecent(Recent{EventID: id, Type: "product_view", TS: got.LastActivity + 1, SKU: "sku-000001"})
		buf := got.AppendBinary(enc[len(enc):])
		if len(buf) == 0 {
			b.Fatal("empty encoding")
		}
		clear(pool[:MaxRecent])
		i++
	}
}

func TestAddToCartCapsQuantity(t *testing.T) {
	var c Customer
	c.AddToCart(CartItem{SKU: "s", Price: 1, Qty: MaxQuantity - 1})
	c.AddToCart(CartItem{SKU: "s", Price: 1, Qty: MaxQuantity})
	if c.Cart[0].Qty != MaxQuantity {
		t.Fatalf("qty %d, want the cap %d", c.Cart[0].Qty, MaxQuantity)
	}
}

// v2Customer is fullCustomer without the fields version 3 added.
func v2Customer() Customer {
	c := fullCustomer()
	c.BrandViews, c.Viewed, c.Tags, c.Counters, c.TZOffset, c.TZKnown = nil, nil, nil, nil, 0, false
	return c
}

// v3TailEmpty is what version 3 appends for a customer without its fields:
// four empty lists, a zero offset and false.
const v3TailEmpty = 6

// v3Record returns a record that version 3 wrote (testdata, from the build
// before version 4): of fullCustomer ("full") or of v2Customer ("v2").
func v3Record(t *testing.T, of string) []byte {
	t.Helper()
	return testdataRecord(t, "customer-v3-"+of+".hex", encodingV3)
}

// testdataRecord reads a record of the given version from a hex file in
// testdata.
func testdataRecord(t *testing.T, name string, version byte) []byte {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(text)))
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != version {
		t.Fatalf("testdata record %s is version %d, want %d", name, b[0], version)
	}
	return b
}

// TestDecodesVersion1: a record written before LastSentiment existed (an
// upgrade over an existing data dir) still decodes, with no sentiment.
func TestDecodesVersion1(t *testing.T) {
	v3 := v3Record(t, "v2")
	v1 := append([]byte{encodingV1}, v3[1:len(v3)-v3TailEmpty-8]...) // version 1 had no trailing sentiment
	var got Customer
	if err := got.UnmarshalBinary(v1); err != nil {
		t.Fatal(err)
	}
	want := v2Customer()
	want.LastSentiment = 0
	if !reflect.DeepEqual(got, want) {
		t.Errorf("version-1 record decoded differently:\n got %+v\nwant %+v", got, want)
	}
}

// TestDecodesVersion2: a record written before tags, counters, brands and
// the time zone existed still decodes, without them.
func TestDecodesVersion2(t *testing.T) {
	v3 := v3Record(t, "v2")
	v2 := append([]byte{encodingV2}, v3[1:len(v3)-v3TailEmpty]...)
	var got Customer
	if err := got.UnmarshalBinary(v2); err != nil {
		t.Fatal(err)
	}
	if want := v2Customer(); !reflect.DeepEqual(got, want) {
		t.Errorf("version-2 record decoded differently:\n got %+v\nwant %+v", got, want)
	}
}

// TestDecodesVersion3: a record written before the compact encoding of
// version 4 decodes to the same customer, and is written again as the
// current version.
func TestDecodesVersion3(t *testing.T) {
	var got Customer
	if err := got.UnmarshalBinary(v3Record(t, "full")); err != nil {
		t.Fatal(err)
	}
	if want := fullCustomer(); !reflect.DeepEqual(got, want) {
		t.Errorf("version-3 record decoded differently:\n got %+v\nwant %+v", got, want)
	}
	if v := got.AppendBinary(nil)[0]; v != encodingV5 {
		t.Errorf("rewritten as version %d, want %d", v, encodingV5)
	}
}

// TestDecodesVersion4: a record written before version 5 kept the recent
// events encoded (testdata, from the build before it) decodes to the same
// customer, takes new events, and is written again as version 5.
func TestDecodesVersion4(t *testing.T) {
	v4 := testdataRecord(t, "customer-v4-full.hex", encodingV4)
	var got Customer
	if err := got.UnmarshalBinary(v4); err != nil {
		t.Fatal(err)
	}
	want := fullCustomer()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("version-4 record decoded differently:\n got %+v\nwant %+v", got, want)
	}
	got.AddRecent(Recent{EventID: "e-new", Type: "page_view", TS: 1})
	enc := got.AppendBinary(nil)
	if enc[0] != encodingV5 {
		t.Errorf("rewritten as version %d, want %d", enc[0], encodingV5)
	}
	var again Customer
	if err := again.UnmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	wantRecent := append(want.RecentEvents(), Recent{EventID: "e-new", Type: "page_view", TS: 1})
	if r := again.RecentEvents(); !reflect.DeepEqual(r, wantRecent) {
		t.Errorf("recent events after the rewrite %+v, want %+v", r, wantRecent)
	}
}

// TestRecentIsCompact: a recent event costs its id's new suffix, one byte of
// type and a small time difference; the storefront's ids here are a prefix
// and a counter, as most generators make them.
func TestRecentIsCompact(t *testing.T) {
	c := Customer{LastActivity: 1_795_000_000_000 + 31*1500}
	base := len(c.AppendBinary(nil))
	for i := range MaxRecent {
		c.AddRecent(Recent{EventID: fmt.Sprint("e-7-10004", 100+i*37), Type: string(event.Types[i%len(event.Types)]), TS: 1_795_000_000_000 + int64(i)*1500, SKU: "sku-12345"})
	}
	// Per event: id prefix 1, suffix 1+3 (or fewer), type 1, time 2, SKU 1+9.
	const perEvent = 18
	if got := len(c.AppendBinary(nil)) - base; got > MaxRecent*perEvent {
		t.Errorf("%d recent events take %d bytes, %.1f each; want at most %d each", MaxRecent, got, float64(got)/MaxRecent, perEvent)
	}
	if got := roundTrip(t, &c); !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
	}
}

// TestCounterValuesRoundTrip: whole values take the varint form, the rest
// keep every bit of their float64.
func TestCounterValuesRoundTrip(t *testing.T) {
	values := []float64{0, math.Copysign(0, -1), 1, -3, 1<<53 - 1, -(1<<53 - 1), 1 << 53, 1e300, 0.1, -2.5,
		math.Inf(1), math.Inf(-1), math.NaN(), math.SmallestNonzeroFloat64}
	c := Customer{Counters: []Counter{{Name: "n"}}}
	for i, v := range values {
		c.Counters[0].Entries = append(c.Counters[0].Entries, CounterEntry{TS: int64(i) * 1000, Value: v})
	}
	got := roundTrip(t, &c)
	if len(got.Counters) != 1 || len(got.Counters[0].Entries) != len(values) {
		t.Fatalf("decoded %+v", got.Counters)
	}
	for i, e := range got.Counters[0].Entries {
		if e.TS != int64(i)*1000 || math.Float64bits(e.Value) != math.Float64bits(values[i]) {
			t.Errorf("entry %d = {%d %v}, want {%d %v}", i, e.TS, e.Value, i*1000, values[i])
		}
	}
}

func TestCounterWindowAndBounds(t *testing.T) {
	var c Customer
	const hour = int64(3_600_000)
	c.AddToCounter("views", "shoes", 1*hour, 1, 24*hour)
	c.AddToCounter("views", "shoes", 2*hour, 1, 24*hour)
	c.AddToCounter("views", "hats", 3*hour, 1, 24*hour)
	if got := c.CounterSum("views", "shoes", false, 24*hour, 3*hour); got != 2 {
		t.Fatalf("shoes = %v, want 2", got)
	}
	if got := c.CounterSum("views", "", true, 24*hour, 3*hour); got != 3 {
		t.Fatalf("all keys = %v, want 3", got)
	}
	// The first view leaves the window exactly 24h later.
	if got := c.CounterSum("views", "shoes", false, 24*hour, 25*hour); got != 1 {
		t.Fatalf("shoes at 25h = %v, want 1", got)
	}
	// Writing prunes what left the window.
	c.AddToCounter("views", "shoes", 26*hour, 1, 24*hour)
	if n := len(c.Counters[0].Entries); n != 1 { // 1h and 2h are out of (2h, 26h]
		t.Fatalf("entries after prune = %d, want 1", n)
	}
	// A late (older) entry is kept in time order.
	c.AddToCounter("views", "shoes", 25*hour+1, 1, 24*hour)
	for i := 1; i < len(c.Counters[0].Entries); i++ {
		if c.Counters[0].Entries[i-1].TS > c.Counters[0].Entries[i].TS {
			t.Fatalf("entries out of order: %+v", c.Counters[0].Entries)
		}
	}
	// Bounds: entries merge, keys make room, and the sum is kept.
	var d Customer
	for i := range MaxCounterEntries + 10 {
		d.AddToCounter("spend", "", int64(i), 2, 1<<40)
	}
	if n := len(d.Counters[0].Entries); n != MaxCounterEntries {
		t.Fatalf("entries = %d, want the bound %d", n, MaxCounterEntries)
	}
	if got := d.CounterSum("spend", "", false, 1<<40, 1<<20); got != 2*(MaxCounterEntries+10) {
		t.Fatalf("merged sum = %v, want %d", got, 2*(MaxCounterEntries+10))
	}
	for i := range MaxCounterKeys + 5 {
		d.AddToCounter("views", fmt.Sprint("k", i), int64(i), 1, 1<<40)
	}
	keys := 0
	for _, ct := range d.Counters {
		if ct.Name == "views" {
			keys++
		}
	}
	if keys != MaxCounterKeys {
		t.Fatalf("keys = %d, want the bound %d", keys, MaxCounterKeys)
	}
	if d.CounterSum("views", "k0", false, 1<<40, 1<<20) != 0 || d.CounterSum("views", fmt.Sprint("k", MaxCounterKeys+4), false, 1<<40, 1<<20) != 1 {
		t.Fatal("the least recent key should have made room for the newest")
	}
}

func TestPriceSensitivity(t *testing.T) {
	var c Customer
	for _, s := range []string{"a", "b", "c", "d"} {
		c.ViewProduct(s)
	}
	c.Bought("a")
	if got := c.PriceSensitivity(); got != 0.75 {
		t.Fatalf("price sensitivity = %v, want 0.75", got)
	}
	c.ViewProduct("a") // seen again: still bought, moved to newest
	if c.Viewed[len(c.Viewed)-1] != (Viewed{SKU: "a", Bought: true}) {
		t.Fatalf("viewed = %+v", c.Viewed)
	}
}
