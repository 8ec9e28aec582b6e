package event

// Key ids. The direct path gives each object member the id of its name when
// the name is one the v1 schemas define (0 otherwise), so that duplicate
// keys, required fields and property schemas are found with bit masks and
// array indexes rather than string comparisons.
const (
	kUnknown uint8 = iota
	kEventID
	kType
	kTS
	kCustomerID
	kAnonymousID
	kChannel
	// The type-specific fields, in the order of the field bits (fSKU …
	// fKind), so that a key's field bit is 1 << (id - kSKU).
	kSKU
	kCategory
	kBrand
	kPrice
	kQuantity
	kDwellMS
	kQuery
	kOrderID
	kItems
	kTotal
	kCurrency
	kRating
	kText
	kKind
	numKeys
)

// keyNames names each key id; TestKeyIDs checks it against commonFields and
// fieldNames.
var keyNames = [numKeys]string{
	"", "event_id", "type", "ts", "customer_id", "anonymous_id", "channel",
	"sku", "category", "brand", "price", "quantity", "dwell_ms", "query", "order_id", "items", "total", "currency",
	"rating", "text", "kind",
}

// keyID returns the key id of name. A switch, which the compiler turns
// into a search by length and content, is about twice as fast as a map
// here; TestKeyIDs checks it against keyNames.
func keyID(name string) uint8 {
	switch name {
	case "event_id":
		return kEventID
	case "type":
		return kType
	case "ts":
		return kTS
	case "customer_id":
		return kCustomerID
	case "anonymous_id":
		return kAnonymousID
	case "channel":
		return kChannel
	case "sku":
		return kSKU
	case "category":
		return kCategory
	case "brand":
		return kBrand
	case "price":
		return kPrice
	case "quantity":
		return kQuantity
	case "dwell_ms":
		return kDwellMS
	case "query":
		return kQuery
	case "order_id":
		return kOrderID
	case "items":
		return kItems
	case "total":
		return kTotal
	case "currency":
		return kCurrency
	case "rating":
		return kRating
	case "text":
		return kText
	case "kind":
		return kKind
	}
	return kUnknown
}

// keyMask is the set of key ids in a bit mask.
type keyMask uint32

func keyBit(id uint8) keyMask { return 1 << id }

// fieldOf is the type-specific field bit of a key id, or 0.
func fieldOf(id uint8) field {
	if id < kSKU {
		return 0
	}
	return 1 << (id - kSKU)
}
