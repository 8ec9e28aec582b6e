package event

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// Reason classifies why a record could not be decoded. Reasons are few and
// stable so that they can label metrics and the spur-error header of
// dead-lettered records; the free-form explanation goes in DecodeError.Detail.
type Reason string

// The reasons a record is rejected. Every one of them is poison: retrying the
// same bytes can never succeed, so the record belongs in the dead-letter topic.
const (
	// ReasonEmpty is a nil or zero-length value, such as a tombstone.
	ReasonEmpty Reason = "empty"
	// ReasonTooLarge is a value above the decoder's byte limit; it is
	// rejected before any parsing.
	ReasonTooLarge Reason = "too_large"
	// ReasonMalformedJSON is a value that is not valid UTF-8, not JSON, or
	// not a JSON object.
	ReasonMalformedJSON Reason = "malformed_json"
	// ReasonUnknownType is an object whose "type" is missing, not a string,
	// or not a v1 event type.
	ReasonUnknownType Reason = "unknown_type"
	// ReasonMissingID is an event without event_id, without both
	// customer_id and anonymous_id, or without an id its type needs
	// (identify needs both, forget needs customer_id).
	ReasonMissingID Reason = "missing_id"
	// ReasonInvalidField is any other schema violation: a field of the
	// wrong type, out of range, too long, or a required field missing.
	ReasonInvalidField Reason = "invalid_field"
	// ReasonClockSkew is an event whose ts lies further in the future than
	// the decoder's allowed skew. Such a timestamp would schedule timers
	// against a clock no one has reached yet.
	ReasonClockSkew Reason = "clock_skew"
)

// Reasons lists every Reason, so that metrics can pre-register one series per
// label value and dashboards show zeros rather than gaps.
var Reasons = []Reason{
	ReasonEmpty,
	ReasonTooLarge,
	ReasonMalformedJSON,
	ReasonUnknownType,
	ReasonMissingID,
	ReasonInvalidField,
	ReasonClockSkew,
}

// DecodeError is the error Decoder.Decode returns for every record it
// rejects.
type DecodeError struct {
	Reason Reason
	// Detail is a short, single-line explanation for humans, such as
	// "/price: must be >= 0, got -1". Its wording is not stable.
	Detail string
}

// Error returns "reason: detail".
func (e *DecodeError) Error() string {
	if e.Detail == "" {
		return string(e.Reason)
	}
	return string(e.Reason) + ": " + e.Detail
}

// ReasonOf returns the Reason of the first *DecodeError in err's chain, or ""
// when there is none.
func ReasonOf(err error) Reason {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return ""
}

// maxDetail bounds DecodeError.Detail. Details end up in log lines and Kafka
// headers, and a hostile record must not be able to make them large.
const maxDetail = 200

func newError(r Reason, detail string) *DecodeError {
	return &DecodeError{Reason: r, Detail: oneLine(detail, maxDetail)}
}

// oneLine replaces control characters (newlines in particular) by spaces and
// truncates s to at most n bytes on a rune boundary, so that a detail is
// always one short line whatever the input contained.
func oneLine(s string, n int) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			clean = false
			break
		}
	}
	if clean && len(s) <= n {
		return s
	}
	var b strings.Builder
	b.Grow(min(len(s), n+3))
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			r = ' '
		}
		if b.Len()+utf8.RuneLen(r) > n {
			b.WriteString("...")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
