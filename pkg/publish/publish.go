package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/segmentio/kafka-go"

	"github.com/spur-crm/spur/pkg/event"
)

// Default topic names and writer settings.
const (
	DefaultClickstreamTopic = "shop.clickstream"
	DefaultOrdersTopic      = "shop.orders"

	// DefaultBatchTimeout bounds how long a synchronous Publish waits for a
	// partition's batch to fill before sending it. kafka-go's own default
	// (1s) would make every small Publish take a second; batches still fill
	// up to DefaultBatchSize when many goroutines publish at once.
	DefaultBatchTimeout = 5 * time.Millisecond
	DefaultBatchSize    = 100
	// DefaultMaxAttempts is how often a batch is sent before Publish gives
	// up; kafka-go's own default.
	DefaultMaxAttempts = 10
	// DefaultWriteTimeout bounds one produce request.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultClientID names the publisher in the brokers' logs and quotas.
	DefaultClientID = "spur-publish"

	// metadataTTL is how stale the writer's view of the topics may get. It is
	// below kafka-go's 6s so that a topic created just before the first
	// Publish is seen quickly.
	metadataTTL = 2 * time.Second
	backoffMin  = 100 * time.Millisecond
	backoffMax  = time.Second
)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("publish: publisher is closed")

// Error reports one event that was not published. Publish returns one Error
// per failed event, joined with errors.Join; errors.As finds the first, and
// event.ReasonOf(err) gives the validation Reason when the event was invalid.
type Error struct {
	EventID string
	Type    event.Type
	// Topic is the topic the event was (or would have been) written to.
	Topic string
	// Invalid is true when the event failed validation and nothing was sent;
	// Err is then an *event.DecodeError. Otherwise Err comes from kafka-go
	// and the event may or may not have reached the broker: publish it again
	// with the same EventID, which spur treats as an idempotency key.
	Invalid bool
	Err     error
}

func (e *Error) Error() string {
	if e.Invalid {
		return fmt.Sprintf("publish: event %q (%s) for topic %q is invalid: %v", e.EventID, e.Type, e.Topic, e.Err)
	}
	return fmt.Sprintf("publish: event %q (%s) to topic %q: %v", e.EventID, e.Type, e.Topic, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

type options struct {
	clickstream  string
	orders       string
	clock        clockwork.Clock
	batchTimeout time.Duration
	batchSize    int
	maxAttempts  int
	writeTimeout time.Duration
	clientID     string
}

// Option configures a Publisher.
type Option func(*options)

// WithClickstreamTopic sets the topic of every event but orders
// (default DefaultClickstreamTopic).
func WithClickstreamTopic(topic string) Option { return func(o *options) { o.clickstream = topic } }

// WithOrdersTopic sets the topic of order events (default DefaultOrdersTopic).
func WithOrdersTopic(topic string) Option { return func(o *options) { o.orders = topic } }

// WithClock sets the clock that stamps events whose TS is zero, record
// timestamps, and the "now" the validator compares ts against (an event more
// than a few minutes ahead of it is refused). Default: the real clock.
func WithClock(c clockwork.Clock) Option { return func(o *options) { o.clock = c } }

// WithBatchTimeout sets how long a partition's batch may wait to fill before
// it is sent (default DefaultBatchTimeout). Larger values trade the latency
// of each Publish for fewer, larger produce requests under concurrency.
func WithBatchTimeout(d time.Duration) Option { return func(o *options) { o.batchTimeout = d } }

// WithBatchSize sets how many records fill a batch (default DefaultBatchSize).
func WithBatchSize(n int) Option { return func(o *options) { o.batchSize = n } }

// WithMaxAttempts sets how often a batch is sent, and how often a topic's
// metadata is looked up, before Publish fails (default DefaultMaxAttempts).
func WithMaxAttempts(n int) Option { return func(o *options) { o.maxAttempts = n } }

// WithWriteTimeout bounds one produce request (default DefaultWriteTimeout).
func WithWriteTimeout(d time.Duration) Option { return func(o *options) { o.writeTimeout = d } }

// WithClientID sets the Kafka client id (default DefaultClientID).
func WithClientID(id string) Option { return func(o *options) { o.clientID = id } }

// Publisher validates events and writes them to spur's input topics.
//
// A Publisher is safe for concurrent use; concurrent Publish calls share
// batches, connections and metadata. Create one per process and Close it on
// shutdown.
type Publisher struct {
	opts      options
	writer    *kafka.Writer
	transport *kafka.Transport
	decoder   *event.Decoder
	closed    atomic.Bool
}

// New returns a Publisher writing to the given brokers ("host:port"). It does
// not connect: the first Publish does, and reports an unreachable broker or a
// missing topic.
func New(brokers []string, opts ...Option) (*Publisher, error) {
	o := options{
		clickstream:  DefaultClickstreamTopic,
		orders:       DefaultOrdersTopic,
		clock:        clockwork.NewRealClock(),
		batchTimeout: DefaultBatchTimeout,
		batchSize:    DefaultBatchSize,
		maxAttempts:  DefaultMaxAttempts,
		writeTimeout: DefaultWriteTimeout,
		clientID:     DefaultClientID,
	}
	for _, opt := range opts {
		opt(&o)
	}
	var addrs []string
	for _, b := range brokers {
		if b = strings.TrimSpace(b); b != "" {
			addrs = append(addrs, b)
		}
	}
	switch {
	case len(addrs) == 0:
		return nil, errors.New("publish: no brokers")
	case o.clickstream == "" || o.orders == "":
		return nil, errors.New("publish: empty topic name")
	case o.clock == nil:
		return nil, errors.New("publish: nil clock")
	case o.batchTimeout <= 0 || o.batchSize <= 0 || o.maxAttempts <= 0 || o.writeTimeout <= 0:
		return nil, errors.New("publish: batch timeout, batch size, max attempts and write timeout must be positive")
	}
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("publish: broker %q: %w", a, err)
		}
	}
	// The validator runs on the publisher's clock, so that an event stamped
	// by a fake clock is judged against that same clock.
	dec, err := event.NewDecoder(event.WithClock(o.clock))
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}

	// A transport of our own, rather than kafka.DefaultTransport, so that
	// Close releases its connections and its metadata only covers our topics.
	transport := &kafka.Transport{
		ClientID:       o.clientID,
		MetadataTTL:    metadataTTL,
		MetadataTopics: uniq(o.clickstream, o.orders),
	}
	w := &kafka.Writer{
		Addr: kafka.TCP(addrs...),
		// Topic is left empty: each message names its own, so one writer
		// serves both input topics.
		//
		// spur co-partitions a customer's events by the partition that the
		// Java client and franz-go choose for the key: murmur2(key) mod
		// partitions. kafka-go's default balancer is round-robin and
		// librdkafka's default is CRC32; either would scatter a customer
		// over partitions, and spur would have to repartition every record.
		// Murmur2Balancer is that Java hash; with Consistent false a record
		// without a key would go to a random partition, but every event
		// here has a key (the schemas require an id).
		Balancer: kafka.Murmur2Balancer{},
		// Wait until every in-sync replica has the record: an acknowledged
		// event must survive the loss of the partition leader.
		RequiredAcks: kafka.RequireAll,
		// Retries may duplicate a batch (kafka-go has no idempotent
		// producer); spur deduplicates by event_id.
		MaxAttempts:     o.maxAttempts,
		WriteBackoffMin: backoffMin,
		WriteBackoffMax: backoffMax,
		BatchSize:       o.batchSize,
		BatchTimeout:    o.batchTimeout,
		WriteTimeout:    o.writeTimeout,
		// Synchronous: WriteMessages returns once the batch is acknowledged,
		// or with the error that failed it.
		Async: false,
		// A missing input topic is a deployment error to report, never a
		// reason to create a topic with the broker's default partition
		// count, which would break co-partitioning.
		AllowAutoTopicCreation: false,
		Transport:              transport,
	}
	return &Publisher{opts: o, writer: w, transport: transport, decoder: dec}, nil
}

// Topic returns the topic an event of type t is written to: orders for
// order events, clickstream for the others.
func (p *Publisher) Topic(t event.Type) string {
	if t == event.Order {
		return p.opts.orders
	}
	return p.opts.clickstream
}

// Publish validates every event and, only if all are valid, writes them:
// order events to the orders topic, the others to the clickstream topic, each
// keyed by ev.Subject() (the customer id, or the anonymous id before login).
// An event with a zero TS is stamped with the publisher's clock, and one with
// an empty EventID gets a random one; the caller's events are not modified,
// so set EventID beforehand (the constructors do) to know it.
//
// Publish returns when every record is acknowledged by all in-sync replicas,
// or with an error: the *Error of each event that failed, joined. Events of
// one call that share a partition are written in order. ctx bounds the whole
// call; when it ends early some events may have been written.
func (p *Publisher) Publish(ctx context.Context, evs ...event.Event) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if len(evs) == 0 {
		return nil
	}
	msgs, metas, err := p.messages(evs)
	if err != nil {
		return err
	}
	err = p.write(ctx, msgs)
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// kafka-go stops waiting but does not withdraw batches in flight.
		err = fmt.Errorf("%w (some events may have been written)", err)
	}
	// WriteErrors has one entry per message, nil where its batch succeeded;
	// any other error concerns every message of the call.
	var werrs kafka.WriteErrors
	perMessage := errors.As(err, &werrs) && len(werrs) == len(msgs)
	errs := make([]error, 0, len(msgs))
	for i, m := range metas {
		e := err
		if perMessage {
			if e = werrs[i]; e == nil {
				continue
			}
		}
		errs = append(errs, &Error{EventID: m.id, Type: m.typ, Topic: msgs[i].Topic, Err: e})
	}
	if len(errs) == 0 { // WriteErrors without a non-nil entry: not expected
		return fmt.Errorf("publish: %w", err)
	}
	return errors.Join(errs...)
}

type meta struct {
	id  string
	typ event.Type
}

// messages fills, validates and encodes evs. It fails, naming every invalid
// event, when any is invalid.
func (p *Publisher) messages(evs []event.Event) ([]kafka.Message, []meta, error) {
	now := p.opts.clock.Now()
	msgs := make([]kafka.Message, 0, len(evs))
	metas := make([]meta, 0, len(evs))
	var invalid []error
	for _, ev := range evs {
		if ev.TS.IsZero() {
			ev.TS = now.UTC().Truncate(time.Millisecond)
		}
		if ev.EventID == "" {
			ev.EventID = NewEventID()
		}
		topic := p.Topic(ev.Type)
		value, err := p.validate(&ev)
		if err != nil {
			invalid = append(invalid, &Error{EventID: ev.EventID, Type: ev.Type, Topic: topic, Invalid: true, Err: err})
			continue
		}
		msgs = append(msgs, kafka.Message{
			Topic: topic,
			Key:   []byte(ev.Subject()),
			Value: value,
			// Record timestamp = publish time. kafka-go would send 0 (1970)
			// for a zero Time; the event time is in the value, and using it
			// here could run into the broker's timestamp bounds and
			// retention for old or replayed events.
			Time: now,
		})
		metas = append(metas, meta{id: ev.EventID, typ: ev.Type})
	}
	if len(invalid) > 0 {
		return nil, nil, errors.Join(invalid...)
	}
	return msgs, metas, nil
}

// validate encodes ev and runs the bytes through spur's own decoder, so that
// a published event passes exactly the schemas (schemas/*.json) and checks
// the engine applies.
func (p *Publisher) validate(ev *event.Event) ([]byte, error) {
	value, err := Marshal(*ev)
	if err != nil {
		return nil, err
	}
	var got event.Event
	if err := p.decoder.Decode(value, &got); err != nil {
		return nil, err
	}
	return value, nil
}

// Marshal encodes ev as the JSON value of an input record.
//
// event.Event omits zero fields, but a few fields are required by their
// type's schema even when zero: a feedback's text (a rating without a
// comment), a cart_add's price and an order's total (free items, fully
// discounted orders). Those are always written for those types.
func Marshal(ev event.Event) ([]byte, error) {
	switch ev.Type {
	case event.Feedback:
		return json.Marshal(struct {
			event.Event
			Text string `json:"text"`
		}{ev, ev.Text})
	case event.CartAdd:
		return json.Marshal(struct {
			event.Event
			Price float64 `json:"price"`
		}{ev, ev.Price})
	case event.Order:
		return json.Marshal(struct {
			event.Event
			Total float64 `json:"total"`
		}{ev, ev.Total})
	}
	return json.Marshal(ev)
}

// write sends msgs. A failure before anything was sent (the topics' metadata
// lookup: a topic just created and not yet in the metadata, a leader
// election) is retried with backoff up to MaxAttempts times; failures of the
// produce requests themselves are retried inside kafka-go and not here,
// since part of the call may have been written.
func (p *Publisher) write(ctx context.Context, msgs []kafka.Message) error {
	backoff := backoffMin
	for attempt := 1; ; attempt++ {
		err := p.writer.WriteMessages(ctx, msgs...)
		if err == nil || attempt >= p.opts.maxAttempts || !retriableBeforeSend(err) {
			if errors.Is(err, kafka.UnknownTopicOrPartition) {
				err = fmt.Errorf("%w (does the topic exist? publish never creates topics)", err)
			}
			return err
		}
		// Network backoff runs on real time: the injected clock only
		// stamps events.
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (after %d attempts, last: %v)", ctx.Err(), attempt, err)
		case <-t.C:
		}
		backoff = min(2*backoff, backoffMax)
	}
}

// retriableBeforeSend reports whether err is a temporary Kafka error returned
// before any record was sent. WriteErrors and context errors come after
// sending started; MessageTooLargeError is permanent.
func retriableBeforeSend(err error) bool {
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		return false
	}
	var kerr kafka.Error
	return errors.As(err, &kerr) && kerr.Temporary()
}

// Close flushes pending batches, waits for them and releases connections.
// Publish fails with ErrClosed afterwards. Close is idempotent.
func (p *Publisher) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	err := p.writer.Close()
	p.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("publish: close: %w", err)
	}
	return nil
}

func uniq(ss ...string) []string {
	out := ss[:0:0]
	for _, s := range ss {
		dup := false
		for _, o := range out {
			dup = dup || o == s
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out
}
