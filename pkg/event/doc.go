// Package event defines spur's canonical input Event and turns raw record
// values into Events, checked against the JSON Schemas in schemas/.
//
// # Decoding
//
// A Decoder is built once with NewDecoder and shared by all partition
// workers; it is safe for concurrent use. Decode takes one record value and
// either fills an Event or returns a *DecodeError. The checks run in order of
// cost, each protecting the next from hostile input:
//
//  1. empty values (tombstones) and values over the byte limit are rejected
//     before anything reads them;
//  2. the value must be valid UTF-8 and exactly one JSON object;
//  3. its "type" must be a v1 event type, because it selects the schema;
//  4. number literals must be short (see checkNumbers), because the schema
//     validator evaluates them with arbitrary precision;
//  5. the object must satisfy schemas/<type>.json;
//  6. ts must not lie beyond the injected clock's now plus the allowed skew.
//
// The value is parsed once, into the generic form the validator needs, and
// the Event is filled from that form, so the bytes are never parsed twice.
//
// # Errors
//
// Every rejection carries a Reason from a small fixed set (Reasons), meant
// for metric labels and the dead-letter topic's spur-error header, and a
// short one-line Detail naming the JSON pointer of the offending field. All
// reasons are poison: the same bytes will never decode, so callers should
// dead-letter the record rather than retry it. ReasonOf extracts the Reason
// from any error.
//
// # Contract
//
// The schemas are the source of truth; this package mirrors them in Event
// and in the per-type field table of fill.go, and its tests check that the
// two agree. Fields an event carries beyond its schema are allowed, so that
// storefronts can add attributes without breaking, but they are neither
// validated nor kept. ValidateTrigger and ValidateEvent expose the schemas to
// other packages' tests.
//
// The samples under testdata/valid and testdata/invalid are shared with
// other packages; see testdata/README.md.
package event
