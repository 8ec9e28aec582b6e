package event

import (
	"slices"
	"sync"
	"unicode/utf8"
)

// The direct path.
//
// The generic path (parseObject, the fast path or the full validator, fill)
// builds map[string]any, boxes every string and number in an interface and
// then looks each field up by name twice: about fifteen allocations and
// several microseconds for a small event, the largest single cost of an
// engine step. The direct path does the same three things on a flat,
// reusable representation of the value (a jdoc: one slice of values and one
// of object members, pooled), with the same parser primitives, the same
// fastSchema (validJ mirrors valid) and the same conversions as fill.
//
// It is one-sided like the fast path: it either returns a decoded Event
// that the generic path would have returned too, or "not sure", and Decode
// then runs the generic path from scratch. It is not sure of anything
// malformed, of objects with a duplicate key (the generic form keeps the
// last), of number literals beyond the limits, of every value the fast path
// does not vouch for, and of anything fill would report; so every rejection
// and its detail still come from the generic path. A differential fuzz test
// (FuzzDecodeDirect) holds the two paths to the same results.

// jkind is the JSON type of a jval.
type jkind uint8

const (
	jNull jkind = iota
	jBool
	jNumber
	jString
	jArray
	jObject
)

// jval is one parsed JSON value. s holds a string's value or a number's
// literal; an array is the run elems[lo:lo+n] of its jdoc, an object the run
// fields[lo:lo+n].
type jval struct {
	s     string
	lo, n int32
	// mask is, for an object, the set of its members' key ids.
	mask keyMask
	kind jkind
	b    bool
}

// jfield is one member of an object.
type jfield struct {
	key string
	id  uint8 // key id of key (see keys.go)
	val jval
}

// jdoc is one value parsed by the direct path. Not safe for concurrent use;
// Decode takes one from jdocPool per call.
type jdoc struct {
	p      parser
	fields []jfield
	elems  []jval
	// Members and elements of the objects and arrays being parsed; each is
	// moved to fields or elems in one run when its container closes, so
	// that a container's children are contiguous.
	fstack []jfield
	estack []jval
	// undecided records something the direct path leaves to the generic
	// one: a duplicate key, or an object too large to check for one.
	undecided bool
}

// maxDirectMembers bounds the unknown names of an object whose keys the
// direct path checks for duplicates (quadratically); objects with more take
// the generic path.
const maxDirectMembers = 64

// maxPooledValues bounds the arenas a pooled jdoc keeps, so that one huge
// order does not pin its memory for the life of the process.
const maxPooledValues = 4096

var jdocPool = sync.Pool{New: func() any { return new(jdoc) }}

func getJdoc() *jdoc { return jdocPool.Get().(*jdoc) }

// release returns d to the pool without the strings it references, which
// would otherwise keep the last value's copy alive.
func (d *jdoc) release() {
	if cap(d.fields)+cap(d.fstack) > maxPooledValues || cap(d.elems)+cap(d.estack) > maxPooledValues {
		return
	}
	clear(d.fields)
	clear(d.elems)
	clear(d.fstack[:cap(d.fstack)])
	clear(d.estack[:cap(d.estack)])
	*d = jdoc{fields: d.fields[:0], elems: d.elems[:0], fstack: d.fstack[:0], estack: d.estack[:0]}
	jdocPool.Put(d)
}

// parse parses data, which must be valid UTF-8, as one JSON value. It
// accepts exactly what parseJSON accepts (it shares its scanning code); its
// errors are not meant for users, as the generic path re-parses and reports.
func (d *jdoc) parse(data []byte) (jval, error) {
	d.p = parser{data: data, quiet: true}
	if len(data) <= shareLimit {
		d.p.shared = string(data)
	}
	p := &d.p
	p.skipSpace()
	if p.pos == len(data) {
		return jval{}, errQuiet
	}
	v, err := d.value()
	if err != nil {
		return jval{}, err
	}
	p.skipSpace()
	if p.pos != len(data) {
		return jval{}, errQuiet
	}
	return v, nil
}

func (d *jdoc) value() (jval, error) {
	p := &d.p
	if p.pos >= len(p.data) {
		return jval{}, p.unexpected("looking for beginning of value")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		s, err := p.stringLit()
		return jval{kind: jString, s: s}, err
	case c == '-' || c >= '0' && c <= '9':
		s, err := p.numberLit()
		return jval{kind: jNumber, s: s}, err
	case c == 't':
		return jval{kind: jBool, b: true}, p.literal("true")
	case c == 'f':
		return jval{kind: jBool}, p.literal("false")
	case c == 'n':
		return jval{kind: jNull}, p.literal("null")
	default:
		return jval{}, p.unexpected("looking for beginning of value")
	}
}

func (d *jdoc) object() (jval, error) {
	p := &d.p
	if err := p.enter(); err != nil {
		return jval{}, err
	}
	mark := len(d.fstack)
	var mask keyMask
	unknown := 0
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		p.depth--
		return jval{kind: jObject, lo: int32(len(d.fields))}, nil
	}
	for {
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return jval{}, p.unexpected("looking for beginning of object key string")
		}
		key, err := d.key()
		if err != nil {
			return jval{}, err
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return jval{}, p.unexpected("after object key")
		}
		p.pos++
		p.skipSpace()
		v, err := d.value()
		if err != nil {
			return jval{}, err
		}
		id := keyID(key)
		if id != kUnknown {
			if mask&keyBit(id) != 0 {
				d.undecided = true // a duplicate key
			}
			mask |= keyBit(id)
		} else {
			unknown++
		}
		d.fstack = append(d.fstack, jfield{key: key, id: id, val: v})
		p.skipSpace()
		if p.pos >= len(p.data) {
			return jval{}, p.unexpected("after object key:value pair")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case '}':
			p.pos++
			p.depth--
			members := d.fstack[mark:]
			if unknown > 1 && hasDuplicateUnknownKey(members, unknown) {
				d.undecided = true
			}
			lo := len(d.fields)
			d.fields = append(d.fields, members...)
			d.fstack = d.fstack[:mark]
			return jval{kind: jObject, lo: int32(lo), n: int32(len(members)), mask: mask}, nil
		default:
			return jval{}, p.unexpected("after object key:value pair")
		}
	}
}

// hasDuplicateKey reports whether two of the members with unknown names
// (there are unknown of them) share a name, or whether there are too many
// to tell cheaply. Known names are told apart by their key ids.
func hasDuplicateUnknownKey(members []jfield, unknown int) bool {
	if unknown > maxDirectMembers {
		return true
	}
	for i := 1; i < len(members); i++ {
		if members[i].id != kUnknown {
			continue
		}
		for j := range i {
			if members[j].id == kUnknown && members[i].key == members[j].key {
				return true
			}
		}
	}
	return false
}

func (d *jdoc) array() (jval, error) {
	p := &d.p
	if err := p.enter(); err != nil {
		return jval{}, err
	}
	mark := len(d.estack)
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		p.depth--
		return jval{kind: jArray, lo: int32(len(d.elems))}, nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return jval{}, err
		}
		d.estack = append(d.estack, v)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return jval{}, p.unexpected("after array element")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case ']':
			p.pos++
			p.depth--
			lo := len(d.elems)
			d.elems = append(d.elems, d.estack[mark:]...)
			n := len(d.estack) - mark
			d.estack = d.estack[:mark]
			return jval{kind: jArray, lo: int32(lo), n: int32(n)}, nil
		default:
			return jval{}, p.unexpected("after array element")
		}
	}
}

// key parses an object key. Plain keys of a small value are cut from its
// shared copy, which is cheaper than interning them.
func (d *jdoc) key() (string, error) {
	p := &d.p
	if p.shared == "" {
		return p.key()
	}
	start := p.pos + 1
	end, plain, err := p.scanString()
	if err != nil {
		return "", err
	}
	if plain {
		return p.shared[start:end], nil
	}
	return p.unescape(start, end), nil
}

func (d *jdoc) members(v jval) []jfield { return d.fields[v.lo : v.lo+v.n] }
func (d *jdoc) items(v jval) []jval     { return d.elems[v.lo : v.lo+v.n] }

// lookup returns the member name of object v.
func (d *jdoc) lookup(v jval, name string) (jval, bool) {
	for _, m := range d.members(v) {
		if m.key == name {
			return m.val, true
		}
	}
	return jval{}, false
}

// decodeDirect decodes value into ev (which is zero) by the direct path and
// reports whether it could decide. When it returns false, ev may hold part
// of the event and the caller must reset it.
func (d *Decoder) decodeDirect(value []byte, ev *Event) bool {
	// Only an object can be an event; anything else is the generic path's
	// to reject, and is spared the copy parse makes.
	i := 0
	for i < len(value) && (value[i] == ' ' || value[i] == '\t' || value[i] == '\n' || value[i] == '\r') {
		i++
	}
	if i == len(value) || value[i] != '{' || !utf8.Valid(value) {
		return false
	}
	doc := getJdoc()
	defer doc.release()
	root, err := doc.parse(value)
	if err != nil || root.kind != jObject || doc.undecided || doc.p.badNumber {
		return false
	}
	tv, ok := doc.lookup(root, "type")
	if !ok || tv.kind != jString {
		return false
	}
	typ, ok := knownType(tv.s)
	if !ok {
		return false
	}
	ts := d.schemas.types[typ]
	if ts.fast == nil || !ts.fast.validJ(doc, root) {
		return false
	}
	return doc.fill(root, typ, ev)
}

// validJ is valid for a jval: the same checks in the same order. A format
// is checked on strings only, which is all spur's schemas give one; on
// other values validJ is not sure.
func (f *fastSchema) validJ(d *jdoc, v jval) bool {
	if f.never {
		return false
	}
	if f.types != 0 && !f.typeOKJ(v) {
		return false
	}
	if f.hasEnum && (v.kind != jString || !slices.Contains(f.enum, v.s)) {
		return false
	}
	switch {
	case f.timestamp:
		if v.kind != jString || !timestampOK(v.s) {
			return false
		}
	case f.format != nil:
		if v.kind != jString || f.format(v.s) != nil {
			return false
		}
	}
	if f.ref != nil && !f.ref.validJ(d, v) {
		return false
	}
	for _, a := range f.allOf {
		if !a.validJ(d, v) {
			return false
		}
	}
	if len(f.anyOf) > 0 {
		ok := false
		for _, a := range f.anyOf {
			if a.validJ(d, v) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	switch v.kind {
	case jObject:
		return f.objectOKJ(d, v)
	case jArray:
		return f.arrayOKJ(d, v)
	case jString:
		if f.timestamp {
			// timestampOK has matched the pattern.
			return f.lengthOK(v.s)
		}
		return f.stringOK(v.s)
	case jNumber:
		return f.numberLitOK(v.s)
	}
	return true
}

func (f *fastSchema) typeOKJ(v jval) bool {
	switch v.kind {
	case jNull:
		return f.types&tNull != 0
	case jBool:
		return f.types&tBoolean != 0
	case jString:
		return f.types&tString != 0
	case jArray:
		return f.types&tArray != 0
	case jObject:
		return f.types&tObject != 0
	case jNumber:
		if f.types&tNumber != 0 {
			return true
		}
		return f.types&tInteger != 0 && plainInteger(v.s)
	}
	return false
}

// objectOKJ is objectOK. The object has no duplicate keys (decodeDirect
// gives up on those), so it has the members the generic form's map has.
func (f *fastSchema) objectOKJ(d *jdoc, v jval) bool {
	if v.mask&f.requiredMask != f.requiredMask {
		return false
	}
	for _, name := range f.requiredOther {
		if _, ok := d.lookup(v, name); !ok {
			return false
		}
	}
	members := d.members(v)
	known := 0
	for _, m := range members {
		i := -1
		if m.id != kUnknown {
			i = int(f.propByID[m.id])
		}
		if i < 0 && f.otherProps {
			if j, ok := f.propIndex[m.key]; ok {
				i = j
			}
		}
		if i >= 0 {
			known++
			if !f.props[i].schema.validJ(d, m.val) {
				return false
			}
		}
	}
	return !f.closed || known == len(members)
}

func (f *fastSchema) arrayOKJ(d *jdoc, v jval) bool {
	n := int(v.n)
	if f.minItems >= 0 && n < f.minItems || f.maxItems >= 0 && n > f.maxItems {
		return false
	}
	if f.items != nil {
		for _, e := range d.items(v) {
			if !f.items.validJ(d, e) {
				return false
			}
		}
	}
	return true
}

// fill is fill for a validated object: it reads the same fields with the
// same conversions, and is not sure (false) wherever fill would fail.
func (d *jdoc) fill(root jval, typ Type, ev *Event) bool {
	fields := typeFields[typ]
	ev.Type = typ
	hasTS := false
	for _, m := range d.members(root) {
		v := m.val
		var ok bool
		switch m.id {
		case kUnknown, kType:
			ok = true
		case kEventID:
			ev.EventID, ok = v.str()
		case kCustomerID:
			ev.CustomerID, ok = v.str()
		case kAnonymousID:
			ev.AnonymousID, ok = v.str()
		case kChannel:
			ev.Channel, ok = v.str()
		case kTS:
			var s string
			if s, ok = v.str(); ok {
				var err error
				ev.TS, ev.UTCOffsetMinutes, err = parseTS(s)
				ok, hasTS = err == nil, true
			}
		default:
			ok = fields&fieldOf(m.id) == 0 || d.fillTyped(m.id, v, ev)
		}
		if !ok {
			return false
		}
	}
	return hasTS
}

// fillTyped fills one type-specific field the event's type defines.
func (d *jdoc) fillTyped(id uint8, v jval, ev *Event) bool {
	ok := true
	switch id {
	case kSKU:
		ev.SKU, ok = v.str()
	case kCategory:
		ev.Category, ok = v.str()
	case kBrand:
		ev.Brand, ok = v.str()
	case kPrice:
		ev.Price, ok = v.float()
	case kQuantity:
		var n int64
		n, ok = v.int()
		ev.Quantity = int(n)
	case kDwellMS:
		ev.DwellMS, ok = v.int()
	case kQuery:
		ev.Query, ok = v.str()
	case kOrderID:
		ev.OrderID, ok = v.str()
	case kItems:
		ev.Items, ok = d.fillItems(v)
	case kTotal:
		ev.Total, ok = v.float()
	case kCurrency:
		ev.Currency, ok = v.str()
	case kRating:
		var n int64
		n, ok = v.int()
		ev.Rating = int(n)
	case kText:
		ev.Text, ok = v.str()
	case kKind:
		ev.Kind, ok = v.str()
	}
	return ok
}

func (d *jdoc) fillItems(v jval) ([]Item, bool) {
	if v.kind != jArray {
		return nil, false
	}
	elems := d.items(v)
	items := make([]Item, len(elems))
	for i, e := range elems {
		if e.kind != jObject {
			return nil, false
		}
		it := &items[i]
		for _, m := range d.members(e) {
			ok := true
			switch m.id {
			case kSKU:
				it.SKU, ok = m.val.str()
			case kCategory:
				it.Category, ok = m.val.str()
			case kBrand:
				it.Brand, ok = m.val.str()
			case kPrice:
				it.Price, ok = m.val.float()
			case kQuantity:
				var n int64
				n, ok = m.val.int()
				it.Quantity = int(n)
			}
			if !ok {
				return nil, false
			}
		}
	}
	return items, true
}

func (v jval) str() (string, bool) { return v.s, v.kind == jString }

func (v jval) float() (float64, bool) {
	if v.kind != jNumber {
		return 0, false
	}
	return floatLit(v.s)
}

func (v jval) int() (int64, bool) {
	if v.kind != jNumber {
		return 0, false
	}
	return intLit(v.s)
}
