package loadgen

import (
	"strconv"
	"time"

	"github.com/spur-crm/spur/pkg/event"
)

// Values are built by hand into g.buf: appending pre-rendered fragments is
// several times faster than encoding/json and allocates nothing. Every string
// appended unquoted is an ASCII id or a contract constant; free text is
// pre-quoted with encoding/json (see catalog.go).

// begin starts a value in g.buf with a fresh event_id and the fields every
// event carries: `{"event_id":…,"type":…,"ts":…,"customer_id":…,
// "anonymous_id":…,"channel":…` (ids as the session has them). The caller
// appends the type's own fields and the closing brace.
func (g *Generator) begin(s *session, typ event.Type, ts time.Time) {
	g.events++
	b := append(g.buf[:0], `{"event_id":"`...)
	g.idStart = len(b)
	b = append(b, g.eventPrefix...)
	b = strconv.AppendUint(b, g.events, 10)
	g.idE = len(b)
	b = append(b, `","type":"`...)
	b = append(b, typ...)
	b = append(b, `","ts":"`...)
	b = g.appendTS(b, ts)
	b = append(b, '"')
	if s.loggedIn {
		b = append(b, `,"customer_id":"`...)
		b = append(b, s.custID...)
		b = append(b, '"')
	}
	if s.anon != 0 {
		b = append(b, `,"anonymous_id":"`...)
		b = appendAnon(b, s.anon)
		b = append(b, '"')
	}
	b = append(b, `,"channel":"`...)
	b = append(b, channelNames[s.channel]...)
	g.buf = append(b, '"')
}

// appendTS appends ts (UTC) as time.RFC3339Nano does. The text up to the
// seconds is cached per second, as consecutive records share it.
func (g *Generator) appendTS(b []byte, ts time.Time) []byte {
	sec, ns := ts.Unix(), ts.Nanosecond()
	if sec != g.tsSec || len(g.tsPrefix) == 0 {
		g.tsSec = sec
		g.tsPrefix = ts.AppendFormat(g.tsPrefix[:0], "2006-01-02T15:04:05")
	}
	b = append(b, g.tsPrefix...)
	if ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i >= 1; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, 'Z')
}

// lastEventID returns the event_id of the value being built.
func (g *Generator) lastEventID() string { return string(g.buf[g.idStart:g.idE]) }

// productFields appends product p's fields and a quantity, without a
// leading comma.
func (g *Generator) productFields(p, q int) {
	g.buf = append(g.buf, shop.products[p].fields...)
	g.buf = append(g.buf, `,"quantity":`...)
	g.buf = strconv.AppendInt(g.buf, int64(q), 10)
}

// appendAnon appends the anonymous id "a-<n>".
func appendAnon(b []byte, n uint64) []byte {
	return strconv.AppendUint(append(b, "a-"...), n, 10)
}

// notJSON are values that are not JSON at all.
var notJSON = [][]byte{
	[]byte("GET /cart HTTP/1.1"),
	[]byte("\x00\x01\xfe\xffbinary"),
	[]byte("<html><body>502 Bad Gateway</body></html>"),
	[]byte("event_id=e-1&type=cart_add"),
	[]byte{},
}

// notAnEvent are JSON values that are not an event object.
var notAnEvent = []string{`null`, `[]`, `42`, `"cart_add"`, `{}`, `[{"type":"cart_add"}]`}

// malformed returns a garbage record, one of several kinds a real topic
// collects. It consumes no session action, so it never disturbs the oracle's
// model; the oracle only counts it.
func (g *Generator) malformed(ts time.Time) Record {
	if g.oracle != nil {
		g.oracle.ObserveMalformed()
	}
	r := g.rng
	n := 1 + r.IntN(g.cfg.Customers)
	s := session{loggedIn: true, custID: "c-" + strconv.Itoa(n), channel: chWeb}
	g.key = append(g.key[:0], s.custID...)
	topic := g.cfg.ClickstreamTopic
	if r.IntN(10) == 0 {
		topic = g.cfg.OrdersTopic
	}
	p := r.IntN(len(shop.products))
	cartAdd := func() {
		g.begin(&s, event.CartAdd, ts)
		g.buf = append(g.buf, ',')
		g.productFields(p, 1)
	}
	switch r.IntN(10) {
	case 0: // truncated in flight
		cartAdd()
		g.buf = g.buf[:1+r.IntN(len(g.buf)-1)]
	case 1: // not JSON
		g.buf = append(g.buf[:0], notJSON[r.IntN(len(notJSON))]...)
	case 2: // JSON, but not an event
		g.buf = append(g.buf[:0], notAnEvent[r.IntN(len(notAnEvent))]...)
	case 3: // unknown type
		g.begin(&s, "cart_explode", ts)
		g.buf = append(g.buf, '}')
	case 4: // no subject id
		s.loggedIn = false
		g.begin(&s, event.PageView, ts)
		g.buf = append(g.buf, '}')
	case 5: // no event_id
		g.begin(&s, event.PageView, ts)
		g.buf = append(g.buf[:1], g.buf[g.idE+2:]...) // drop `"event_id":"…",`
		g.buf = append(g.buf, '}')
	case 6: // price as a string
		g.begin(&s, event.CartAdd, ts)
		g.buf = append(g.buf, `,"sku":"`...)
		g.buf = append(g.buf, shop.products[p].sku...)
		g.buf = append(g.buf, `","price":"`...)
		g.buf = appendCents(g.buf, shop.products[p].cents)
		g.buf = append(g.buf, `","quantity":1}`...)
	case 7: // quantity as a word
		g.begin(&s, event.CartAdd, ts)
		g.buf = append(g.buf, `,"sku":"`...)
		g.buf = append(g.buf, shop.products[p].sku...)
		g.buf = append(g.buf, `","quantity":"two"}`...)
	case 8: // ts as epoch seconds
		g.events++
		g.buf = append(g.buf[:0], `{"event_id":"`...)
		g.buf = append(g.buf, g.eventPrefix...)
		g.buf = strconv.AppendUint(g.buf, g.events, 10)
		g.buf = append(g.buf, `","type":"page_view","ts":`...)
		g.buf = strconv.AppendInt(g.buf, ts.Unix(), 10)
		g.buf = append(g.buf, `,"customer_id":"`...)
		g.buf = append(g.buf, s.custID...)
		g.buf = append(g.buf, `"}`...)
	default: // empty type
		g.begin(&s, "", ts)
		g.buf = append(g.buf, '}')
	}
	return g.record(topic, ts, true)
}
