package event

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The parser.
//
// parseJSON produces exactly what encoding/json's Decoder with UseNumber
// produces (map[string]any, []any, string, json.Number, bool, nil), accepts
// exactly the inputs it accepts (for valid UTF-8, which Decode checks first),
// and stops at the same nesting depth; a fuzz test holds it to that. It
// exists because it is several times faster on small events: one pass
// instead of a scan and a decode, no reader buffer, no allocation for the
// field names spur knows, and strings of small values share one copy of the
// input.

// maxDepth matches encoding/json's nesting limit, so that the decoder and
// the published schema agree on which values are JSON at all.
const maxDepth = 10000

// shareLimit is the largest value whose strings are cut from one shared copy
// of the input. Sharing saves an allocation per string, but every string cut
// from the copy keeps all of it alive, so large values copy each string
// separately: a retained 20-byte customer id must not pin a megabyte.
const shareLimit = 4 << 10

// knownKeys interns the field names of the v1 schemas, so that parsing them
// allocates nothing. Other names are copied as usual.
var knownKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range commonFields {
		m[k] = k
	}
	for _, k := range fieldNames {
		m[k] = k
	}
	return m
}()

type parser struct {
	data   []byte
	shared string // string(data) when len(data) <= shareLimit, else ""
	pos    int
	depth  int
	// badNumber records that some number literal is beyond maxNumberLen or
	// maxExponent; checkNumbers then finds where.
	badNumber bool
	// quiet makes every syntax error errQuiet, for the direct path, which
	// discards its errors: formatting them would only cost time.
	quiet bool
}

var errQuiet = &syntaxError{msg: "invalid JSON"}

// syntaxError is a parse failure at a byte offset.
type syntaxError struct {
	msg string
	off int
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.msg, e.off) }

// parseJSON parses one JSON value that must fill data, surrounding white
// space aside. data must be valid UTF-8.
func parseJSON(data []byte) (v any, badNumber bool, err error) {
	p := parser{data: data}
	if len(data) <= shareLimit {
		p.shared = string(data)
	}
	p.skipSpace()
	if p.pos == len(data) {
		return nil, false, &syntaxError{"no JSON value", p.pos}
	}
	v, err = p.value()
	if err != nil {
		return nil, false, err
	}
	p.skipSpace()
	if p.pos != len(data) {
		return nil, false, &syntaxError{"data after the JSON value", p.pos}
	}
	return v, p.badNumber, nil
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) errorf(format string, args ...any) error {
	if p.quiet {
		return errQuiet
	}
	return &syntaxError{fmt.Sprintf(format, args...), p.pos}
}

// unexpected reports the byte at pos, or the end of input.
func (p *parser) unexpected(context string) error {
	if p.quiet {
		return errQuiet
	}
	if p.pos >= len(p.data) {
		return &syntaxError{"unexpected end of JSON " + context, p.pos}
	}
	r, _ := utf8.DecodeRune(p.data[p.pos:])
	return p.errorf("invalid character %s %s", strconv.QuoteRune(r), context)
}

func (p *parser) value() (any, error) {
	if p.pos >= len(p.data) {
		return nil, p.unexpected("looking for beginning of value")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.string()
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	default:
		return nil, p.unexpected("looking for beginning of value")
	}
}

func (p *parser) literal(lit string) error {
	for i := 0; i < len(lit); i++ {
		if p.pos >= len(p.data) || p.data[p.pos] != lit[i] {
			return p.unexpected("in literal " + lit)
		}
		p.pos++
	}
	return nil
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errorf("exceeded max depth %d", maxDepth)
	}
	p.pos++ // the opening bracket
	return nil
}

func (p *parser) object() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	// Top-level events have ten to fifteen fields; sizing for them avoids
	// growing the map twice.
	hint := 0
	if p.depth == 1 {
		hint = 16
	}
	m := make(map[string]any, hint)
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		p.depth--
		return m, nil
	}
	for {
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.unexpected("looking for beginning of object key string")
		}
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.unexpected("after object key")
		}
		p.pos++
		p.skipSpace()
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		m[key] = v // the last of duplicate keys wins, as in encoding/json
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.unexpected("after object key:value pair")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case '}':
			p.pos++
			p.depth--
			return m, nil
		default:
			return nil, p.unexpected("after object key:value pair")
		}
	}
}

func (p *parser) array() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	// encoding/json returns an empty, non-nil slice for [].
	a := []any{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		p.depth--
		return a, nil
	}
	for {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.unexpected("after array element")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case ']':
			p.pos++
			p.depth--
			return a, nil
		default:
			return nil, p.unexpected("after array element")
		}
	}
}

// key parses an object key, interning the names spur knows.
func (p *parser) key() (string, error) {
	start := p.pos + 1
	end, plain, err := p.scanString()
	if err != nil {
		return "", err
	}
	if plain {
		if k, ok := knownKeys[string(p.data[start:end])]; ok {
			return k, nil
		}
		return p.substr(start, end), nil
	}
	return p.unescape(start, end), nil
}

func (p *parser) string() (any, error) {
	s, err := p.stringLit()
	if err != nil {
		return nil, err
	}
	return s, nil
}

// stringLit parses a string literal starting at pos (on its opening quote).
func (p *parser) stringLit() (string, error) {
	start := p.pos + 1
	end, plain, err := p.scanString()
	if err != nil {
		return "", err
	}
	if plain {
		return p.substr(start, end), nil
	}
	return p.unescape(start, end), nil
}

// substr returns data[start:end] as a string, cut from the shared copy when
// there is one.
func (p *parser) substr(start, end int) string {
	if p.shared != "" {
		return p.shared[start:end]
	}
	return string(p.data[start:end])
}

// scanString checks the string literal starting at pos (on its opening
// quote) and moves past it. end is the offset of the closing quote; plain
// reports that the literal has no escapes.
func (p *parser) scanString() (end int, plain bool, err error) {
	p.pos++
	plain = true
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			end = p.pos
			p.pos++
			return end, plain, nil
		case c == '\\':
			plain = false
			p.pos++
			if p.pos >= len(p.data) {
				return 0, false, p.unexpected("in string escape code")
			}
			switch p.data[p.pos] {
			case 'b', 'f', 'n', 'r', 't', '\\', '/', '"':
				p.pos++
			case 'u':
				p.pos++
				for i := 0; i < 4; i++ {
					if p.pos >= len(p.data) || !isHex(p.data[p.pos]) {
						return 0, false, p.unexpected("in \\u hexadecimal character escape")
					}
					p.pos++
				}
			default:
				return 0, false, p.unexpected("in string escape code")
			}
		case c < 0x20:
			return 0, false, p.unexpected("in string literal")
		default:
			p.pos++
		}
	}
	return 0, false, p.unexpected("in string literal")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// unescape decodes the escapes of a literal scanString has checked. Like
// encoding/json it turns a lone or mismatched UTF-16 surrogate into U+FFFD.
func (p *parser) unescape(start, end int) string {
	s := p.data[start:end]
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		switch s[i+1] {
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r := hex4(s[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if dec := utf16.DecodeRune(r, hex4(s[i+2:i+6])); dec != utf8.RuneError {
						b = utf8.AppendRune(b, dec)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			b = utf8.AppendRune(b, r)
			continue
		default: // '"', '\\', '/'
			b = append(b, s[i+1])
		}
		i += 2
	}
	return string(b)
}

func hex4(s []byte) rune {
	var r rune
	for _, c := range s {
		switch {
		case c >= 'a':
			c = c - 'a' + 10
		case c >= 'A':
			c = c - 'A' + 10
		default:
			c -= '0'
		}
		r = r*16 + rune(c)
	}
	return r
}

// number parses a number literal with JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *parser) number() (any, error) {
	s, err := p.numberLit()
	if err != nil {
		return nil, err
	}
	return json.Number(s), nil
}

// numberLit scans a number literal and returns its text, noting in
// badNumber whether it is beyond the limits.
func (p *parser) numberLit() (string, error) {
	start := p.pos
	if p.data[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(p.data) && p.data[p.pos] == '0':
		p.pos++
	case p.pos < len(p.data) && p.data[p.pos] >= '1' && p.data[p.pos] <= '9':
		p.digits()
	default:
		return "", p.unexpected("in numeric literal")
	}
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		p.pos++
		if p.pos >= len(p.data) || !isDigit(p.data[p.pos]) {
			return "", p.unexpected("after decimal point in numeric literal")
		}
		p.digits()
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if p.pos >= len(p.data) || !isDigit(p.data[p.pos]) {
			return "", p.unexpected("in exponent of numeric literal")
		}
		p.digits()
	}
	n := p.substr(start, p.pos)
	if !numberOK(n) {
		p.badNumber = true
	}
	return n, nil
}

func (p *parser) digits() {
	for p.pos < len(p.data) && isDigit(p.data[p.pos]) {
		p.pos++
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
