package emit

import (
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// The trigger's JSON, written by hand. Every choice below is encoding/json's
// (json.Marshal with its default HTML escaping): field order and omitempty
// as the struct tags say, strings escaped as its appendString does, floats
// formatted as its floatEncoder does, times as time.Time.MarshalJSON. plain
// reports the values for which that holds without exception;
// TestMarshalMatchesEncodingJSON and FuzzMarshalStrings compare the bytes.

// plain reports whether t holds only values appendJSON writes exactly as
// encoding/json does: finite floats, and times whose MarshalJSON cannot
// fail.
func (t *Trigger) plain() bool {
	if !plainTime(t.QualifiedAt) || !plainTime(t.EmittedAt) {
		return false
	}
	p := &t.Payload
	if p.Coupon != nil && !plainTime(p.Coupon.ExpiresAt) {
		return false
	}
	if p.TagExpiresAt != nil && !plainTime(*p.TagExpiresAt) {
		return false
	}
	if p.Cart != nil {
		if !finite(p.Cart.Value) {
			return false
		}
		for i := range p.Cart.Items {
			if !finite(p.Cart.Items[i].Price) {
				return false
			}
		}
	}
	return p.Order == nil || finite(p.Order.Total)
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// plainTime reports whether MarshalJSON writes t as RFC 3339 with
// nanoseconds: a four-digit year and an offset within a day.
func plainTime(t time.Time) bool {
	if y := t.Year(); y < 0 || y > 9999 {
		return false
	}
	_, off := t.Zone()
	return off > -24*3600 && off < 24*3600
}

func (t *Trigger) appendJSON(b []byte) []byte {
	b = append(b, `{"schema_version":`...)
	b = strconv.AppendInt(b, int64(t.SchemaVersion), 10)
	b = append(b, `,"trigger_id":`...)
	b = appendJSONString(b, t.TriggerID)
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, t.Kind)
	b = append(b, `,"rule":`...)
	b = appendJSONString(b, t.Rule)
	b = append(b, `,"customer_id":`...)
	b = appendJSONString(b, t.CustomerID)
	b = append(b, `,"variant":`...)
	b = appendJSONString(b, t.Variant)
	b = append(b, `,"qualified_at":`...)
	b = appendJSONTime(b, t.QualifiedAt)
	b = append(b, `,"emitted_at":`...)
	b = appendJSONTime(b, t.EmittedAt)
	b = append(b, `,"cause_event_ids":[`...)
	for i, id := range t.CauseEventIDs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, id)
	}
	b = append(b, `],"payload":`...)
	b = t.Payload.appendJSON(b)
	return append(b, '}')
}

func (p *Payload) appendJSON(b []byte) []byte {
	b = append(b, '{')
	n := len(b)
	sep := func(b []byte) []byte {
		if len(b) > n {
			b = append(b, ',')
		}
		return b
	}
	if c := p.Coupon; c != nil {
		b = append(sep(b), `"coupon":{"code":`...)
		b = appendJSONString(b, c.Code)
		if c.PercentOff != 0 {
			b = append(b, `,"percent_off":`...)
			b = strconv.AppendInt(b, int64(c.PercentOff), 10)
		}
		b = append(b, `,"expires_at":`...)
		b = appendJSONTime(b, c.ExpiresAt)
		if c.FreeShipping {
			b = append(b, `,"free_shipping":true`...)
		}
		b = append(b, '}')
	}
	if c := p.Cart; c != nil {
		b = append(sep(b), `"cart":{"items":[`...)
		for i := range c.Items {
			it := &c.Items[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"sku":`...)
			b = appendJSONString(b, it.SKU)
			if it.Category != "" {
				b = append(b, `,"category":`...)
				b = appendJSONString(b, it.Category)
			}
			b = append(b, `,"price":`...)
			b = appendJSONFloat(b, it.Price)
			b = append(b, `,"quantity":`...)
			b = strconv.AppendInt(b, int64(it.Quantity), 10)
			b = append(b, '}')
		}
		b = append(b, `],"value":`...)
		b = appendJSONFloat(b, c.Value)
		b = append(b, '}')
	}
	if p.Tag != "" {
		b = append(sep(b), `"tag":`...)
		b = appendJSONString(b, p.Tag)
	}
	if p.TagExpiresAt != nil {
		b = append(sep(b), `"tag_expires_at":`...)
		b = appendJSONTime(b, *p.TagExpiresAt)
	}
	if p.AttributedTriggerID != "" {
		b = append(sep(b), `"attributed_trigger_id":`...)
		b = appendJSONString(b, p.AttributedTriggerID)
	}
	if o := p.Order; o != nil {
		b = append(sep(b), `"order":{"order_id":`...)
		b = appendJSONString(b, o.OrderID)
		b = append(b, `,"total":`...)
		b = appendJSONFloat(b, o.Total)
		b = append(b, '}')
	}
	if nt := p.Notify; nt != nil {
		b = append(sep(b), `"notify":{"message":`...)
		b = appendJSONString(b, nt.Message)
		if len(nt.Data) > 0 {
			b = append(b, `,"data":{`...)
			keys := make([]string, 0, len(nt.Data))
			for k := range nt.Data {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for i, k := range keys {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, k)
				b = append(b, ':')
				b = appendJSONString(b, nt.Data[k])
			}
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendJSONTime is time.Time.MarshalJSON for a plainTime.
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendJSONFloat is encoding/json's floatEncoder for a finite float64.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString is encoding/json's appendString with HTML escaping: <, >
// and & as \u003c …, control characters as \n, \u0001 …, invalid UTF-8 as
// \ufffd, U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
