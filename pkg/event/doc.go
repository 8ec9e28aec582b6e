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
//  4. number literals must be at most 64 characters with an exponent within
//     ±400, because the schema validator evaluates numbers with arbitrary
//     precision and a crafted literal could cost it seconds;
//  5. the object must satisfy schemas/<type>.json;
//  6. ts must not lie beyond the injected clock's now plus the allowed skew.
//
// Two paths do this. The direct path (direct.go) parses the value into a
// flat, pooled representation, checks it with the fast path below and fills
// the Event from it, allocating only the copy its strings share: it decides
// nearly every valid event. Whatever it is not sure of (every invalid
// value, duplicate keys, an integer written 2.0 …) takes the generic path:
// parse into the generic form a JSON Schema validator works on (parse.go),
// validate, fill (fill.go). Only the generic path rejects, so every reason
// and detail come from it; a rejected value is parsed twice. A differential
// fuzz test and a table of systematic mutations hold the two paths to the
// same results.
//
// # Two validators, one schema
//
// Step 5 has a fast path (fastpath.go): a reading of the compiled schemas
// restricted to the keywords spur's schemas use, which decides without
// allocating whether a value is certainly valid. Everything it cannot vouch
// for, including every invalid value, goes to the general-purpose validator
// (github.com/santhosh-tekuri/jsonschema), which has the final word and
// explains rejections. Both read the same schema files, so the files remain
// the single source of truth; tests and fuzzing hold the fast path to never
// accepting what the general validator rejects.
//
// # Errors
//
// Every rejection carries a Reason from a small fixed set (Reasons), meant
// for metric labels and the dead-letter topic's spur-error header, and a
// short one-line Detail naming the JSON pointer of the offending field. All
// reasons are poison: the same bytes will never decode, so callers should
// dead-letter the record rather than retry it. ReasonOf extracts the Reason
// from any error. When a value has several faults, a missing id wins over an
// invalid field, and the invalid field reported is the one whose JSON pointer
// sorts first, so that the same bytes always give the same error.
//
// # Contract
//
// Unknown fields are allowed on every event, so that storefronts can add
// attributes without breaking, but they are neither validated nor kept; a
// field another type defines counts as unknown. The per-type field table in
// fill.go mirrors the schemas, and a test checks that they agree.
// ValidateTrigger and ValidateEvent expose the schemas to other packages'
// tests.
//
// The samples under testdata/ (valid and invalid events, valid and invalid
// trigger records) are meant to be shared with other packages; see
// testdata/README.md.
package event
