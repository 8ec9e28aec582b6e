// Package pipetest runs pipeline test files, as `promtool test rules` does
// for alerting rules: each pipelines/<name>_test.yaml beside a pipeline
// gives storefront events at moments of a simulated clock and the triggers
// expected (or expected absent) by the end. `spur test pipelines/` runs them
// all.
//
// A test runs the real engine — decoder, state in an in-memory Pebble,
// durable timers, the pipelines — on one partition with a fake clock, so a
// ten-minute wait takes no time. Only the broker is left out: input records
// are handed to the partition's worker directly, and output records are
// collected as the broker would acknowledge them.
//
// The file format:
//
//	start: 2026-11-23T05:00:00Z    # optional: the clock's start (default shown)
//	tests:
//	  - name: an abandoned cart gets a coupon
//	    events:                       # published in order at start+at
//	      - at: 0s
//	        event: {type: cart_add, customer_id: c-1, sku: s-1, price: 59.9, quantity: 1}
//	    run_until: 1m                 # the clock advances to start+run_until
//	    expect:                       # exactly these triggers, in any order
//	      - {rule: cart_abandonment, kind: coupon, customer_id: c-1, qualified_at: 10s,
//	         cause_event_ids: [e-1], percent_off: 10, cart_value: 59.9}
//
// Events get event_id "e-<n>" (n counts from 1 within a test) and ts =
// start+at unless given. An empty or missing expect means no trigger at all.
package pipetest
