// Package loadgen produces realistic, seeded storefront traffic — the v1
// input events of shop.clickstream and shop.orders — together with an Oracle
// that knows which triggers the default cart_abandonment pipeline must emit
// for exactly that traffic.
//
// It serves three callers: `spur dev --demo` (Generator.Run paces a live
// trickle on a clock), end-to-end tests (a known stream and its expected
// coupons, Oracle.Expected, plus the number of records that must be
// dead-lettered, Oracle.DeadLetters), and `spur bench` (Generator.Next at
// full speed, one allocation per record; Config.NoOracle keeps memory flat).
//
// # Timing model
//
// The caller owns time: Next(now) returns one record whose event time is now,
// truncated to the millisecond (the engine's precision, and a browser's).
// Traffic is a set of concurrent sessions (at most Config.MaxSessions), each a
// small state machine with a plan decided when it starts — browse only, or
// cart then order, abandon, or empty the cart; anonymous visitors identify
// midway — and a time before which its next action is not due (a think time
// of 0.3 s to 12 s, so a session spans seconds to about a minute of simulated
// time). Next takes the session due earliest; if none is due it starts a
// session; if none can start, it brings the earliest session forward, past
// any session whose next action would fall in its customer's deadline guard
// (those wait, parked, until the window has passed); only when every
// session is parked does it emit a one-page visit by a new anonymous
// visitor. So Next always returns a record, and at a slow pace sessions
// unfold in realistic time while at full speed they are compressed.
//
// A customer has at most one session at a time and all their events carry
// the same key (customer_id, or anonymous_id before login), with
// nondecreasing ts, so publish order is event order per customer.
//
// # Determinism
//
// The same Config and the same sequence of now values give the same records,
// byte for byte. Ids are "c-<n>" (customers), "a-<n>" (anonymous visitors),
// "e-<seed>-<n>" (events) and "o-<seed>-<n>" (orders).
//
// # The oracle
//
// The Oracle is fed every emitted record as it is emitted and models the
// pipeline per customer in event time (see Oracle). To keep expectations free
// of races between an event and a timer, the generator never emits a
// customer's event in the millisecond of their pending deadline, and with
// Config.DeadlineGuard not within that distance of it either.
//
// A customer's order goes to the orders topic and the rest of their events to
// the clickstream topic, so the broker alone does not keep them in order: the
// oracle's expectations hold when the engine applies each customer's events
// in ts order across both topics. When both topics are the same (set
// OrdersTopic to ClickstreamTopic), per-partition order is enough.
package loadgen
