package emit

import (
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter headers. The record's key and value are the source record's,
// byte for byte.
const (
	HeaderError     = "spur-error"
	HeaderDetail    = "spur-error-detail"
	HeaderTopic     = "spur-source-topic"
	HeaderPartition = "spur-source-partition"
	HeaderOffset    = "spur-source-offset"
)

// maxDetail bounds the detail header so a hostile value cannot make the
// dead letter larger than its source.
const maxDetail = 512

// DeadLetter builds the dead letter of a source record.
func DeadLetter(dlqTopic string, src *kgo.Record, reason, detail string) *Out {
	if len(detail) > maxDetail {
		detail = strings.ToValidUTF8(detail[:maxDetail], "")
	}
	hs := make([]kgo.RecordHeader, 0, len(src.Headers)+5)
	hs = append(hs, src.Headers...)
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderError, Value: []byte(reason)},
		kgo.RecordHeader{Key: HeaderDetail, Value: []byte(detail)},
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(src.Topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(src.Partition), 10)},
		kgo.RecordHeader{Key: HeaderOffset, Value: strconv.AppendInt(nil, src.Offset, 10)},
	)
	return &Out{Kind: OutDeadLetter, Topic: dlqTopic, Key: src.Key, Value: src.Value, Headers: hs, Rule: reason}
}

// Header returns the value of a record's header key ("" when absent): the
// dead-letter headers are how a consumer reads why a record was rejected.
func Header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
