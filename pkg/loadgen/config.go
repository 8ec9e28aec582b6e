package loadgen

import (
	"errors"
	"fmt"
	"time"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultCustomers        = 100_000
	DefaultAbandonRate      = 0.3
	DefaultAnonymousShare   = 0.2
	DefaultFeedbackShare    = 0.05
	DefaultForgetShare      = 0.002
	DefaultWait             = 10 * time.Second
	DefaultMaxSessions      = 1000
	DefaultClickstreamTopic = "shop.clickstream"
	DefaultOrdersTopic      = "shop.orders"
)

// Config describes the traffic a Generator produces. The zero value of every
// field means its Default* value, so Config{Seed: 7} is a complete
// configuration. Because zero means "default", a share is switched off by
// setting it to a negative value (for example AnonymousShare: -1).
type Config struct {
	// Customers is the number of distinct customer ids, "c-1" … "c-<n>".
	// Nothing is allocated per customer up front: memory grows with active
	// sessions and, in the oracle, with customers that hold a cart.
	Customers int
	// Seed makes the stream reproducible: the same Config and the same
	// sequence of Next(now) calls yield the same records, byte for byte.
	Seed int64
	// AbandonRate is the share of carting sessions that end without an order
	// and without emptying the cart.
	AbandonRate float64
	// AnonymousShare is the share of sessions that start anonymous and log in
	// (identify) midway.
	AnonymousShare float64
	// FeedbackShare is the share of sessions that leave a review or a service
	// ticket (English and Chinese texts).
	FeedbackShare float64
	// ForgetShare is the share of sessions that end with a forget request.
	ForgetShare float64
	// MalformedShare is the share of records that are garbage: not JSON, an
	// unknown type, missing ids, wrong field types. They are marked
	// Record.Malformed and counted by Oracle.DeadLetters. Default 0.
	MalformedShare float64
	// Wait is the cart_abandonment pipeline's wait after the last cart_add.
	Wait time.Duration
	// MaxSessions bounds the number of concurrent sessions (and so the
	// generator's memory). It is further capped at Customers, because a
	// customer has at most one active session.
	MaxSessions int
	// DeadlineGuard keeps a customer's events out of the window
	// [deadline-DeadlineGuard, deadline+DeadlineGuard] around their pending
	// abandonment deadline, so that a test against a real broker does not
	// depend on whether the engine saw an order a millisecond before the
	// deadline or a millisecond after. With 0 only exact ties (an event in
	// the deadline's millisecond) are avoided. The guard needs the oracle and
	// is inactive with NoOracle.
	DeadlineGuard time.Duration
	// NoOracle switches the oracle off (Generator.Oracle returns nil), for
	// benchmarks that emit millions of events and must not grow memory.
	NoOracle bool
	// ClickstreamTopic and OrdersTopic name the topics; order events go to
	// OrdersTopic, all others to ClickstreamTopic.
	ClickstreamTopic, OrdersTopic string
}

// withDefaults returns c with every zero field set to its default and every
// negative share set to 0.
func (c Config) withDefaults() Config {
	if c.Customers == 0 {
		c.Customers = DefaultCustomers
	}
	share := func(p *float64, def float64) {
		switch {
		case *p == 0:
			*p = def
		case *p < 0:
			*p = 0
		}
	}
	share(&c.AbandonRate, DefaultAbandonRate)
	share(&c.AnonymousShare, DefaultAnonymousShare)
	share(&c.FeedbackShare, DefaultFeedbackShare)
	share(&c.ForgetShare, DefaultForgetShare)
	share(&c.MalformedShare, 0)
	if c.Wait == 0 {
		c.Wait = DefaultWait
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.ClickstreamTopic == "" {
		c.ClickstreamTopic = DefaultClickstreamTopic
	}
	if c.OrdersTopic == "" {
		c.OrdersTopic = DefaultOrdersTopic
	}
	return c
}

// Validate reports whether c, after defaults, describes a usable generator.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Customers < 0 {
		errs = append(errs, fmt.Errorf("customers %d: must be positive", c.Customers))
	}
	for _, s := range []struct {
		name string
		v    float64
	}{
		{"abandon rate", c.AbandonRate},
		{"anonymous share", c.AnonymousShare},
		{"feedback share", c.FeedbackShare},
		{"forget share", c.ForgetShare},
		{"malformed share", c.MalformedShare},
	} {
		if s.v > 1 || s.v != s.v { // s.v != s.v catches NaN
			errs = append(errs, fmt.Errorf("%s %v: must be at most 1", s.name, s.v))
		}
	}
	if c.Wait < 0 {
		errs = append(errs, fmt.Errorf("wait %v: must be positive", c.Wait))
	}
	if c.MaxSessions < 0 {
		errs = append(errs, fmt.Errorf("max sessions %d: must be positive", c.MaxSessions))
	}
	if c.DeadlineGuard < 0 {
		errs = append(errs, fmt.Errorf("deadline guard %v: must not be negative", c.DeadlineGuard))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("loadgen: invalid config: %w", err)
	}
	return nil
}
