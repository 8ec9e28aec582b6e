package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fromTags builds the Config the command line builds when no flag is given:
// every field set from its `default:` tag, the others zero.
func fromTags(t *testing.T) Config {
	t.Helper()
	var c Config
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		f := v.Type().Field(i)
		def, ok := f.Tag.Lookup("default")
		if !ok {
			continue
		}
		fv := v.Field(i)
		var err error
		switch {
		case f.Type == reflect.TypeFor[time.Duration]():
			var d time.Duration
			d, err = time.ParseDuration(def)
			fv.SetInt(int64(d))
		case fv.Kind() == reflect.String:
			fv.SetString(def)
		case fv.Kind() == reflect.Bool:
			var b bool
			b, err = strconv.ParseBool(def)
			fv.SetBool(b)
		case fv.CanInt():
			var n int64
			n, err = strconv.ParseInt(def, 10, f.Type.Bits())
			fv.SetInt(n)
		default:
			t.Fatalf("field %s: no test support for %s", f.Name, f.Type)
		}
		if err != nil {
			t.Fatalf("field %s: default %q: %v", f.Name, def, err)
		}
		if enum, ok := f.Tag.Lookup("enum"); ok && !strings.Contains(","+enum+",", ","+def+",") {
			t.Fatalf("field %s: default %q not in enum %q", f.Name, def, enum)
		}
	}
	return c
}

// set assigns a field by its flag name, so cases read like command lines.
func set(t *testing.T, c *Config, flag string, value any) {
	t.Helper()
	v := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		if v.Type().Field(i).Tag.Get("name") == flag {
			v.Field(i).Set(reflect.ValueOf(value).Convert(v.Field(i).Type()))
			return
		}
	}
	t.Fatalf("no field with flag --%s", flag)
}

func TestEveryFieldIsAFlag(t *testing.T) {
	seen := map[string]bool{}
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := f.Tag.Get("name")
		if name == "" || f.Tag.Get("help") == "" {
			t.Errorf("field %s lacks a name or help tag", f.Name)
		}
		if seen[name] {
			t.Errorf("flag --%s declared twice", name)
		}
		seen[name] = true
	}
}

func TestDefaultsValidate(t *testing.T) {
	c := fromTags(t)
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	// The Default* constants and the tags describe the same defaults.
	checks := []struct {
		name      string
		got, want any
	}{
		{"clickstream-topic", c.ClickstreamTopic, DefaultClickstreamTopic},
		{"orders-topic", c.OrdersTopic, DefaultOrdersTopic},
		{"triggers-topic", c.TriggersTopic, DefaultTriggersTopic},
		{"dlq-topic", c.DLQTopic, DefaultDLQTopic},
		{"group", c.Group, DefaultGroup},
		{"http", c.HTTP, DefaultHTTP},
		{"staleness", c.Staleness, DefaultStaleness},
		{"max-clock-skew", c.MaxClockSkew, DefaultMaxClockSkew},
		{"max-event-bytes", c.MaxEventBytes, DefaultMaxEventBytes},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("--%s tag default %v, constant %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		flag  string
		value any
		msg   string
	}{
		{"data-dir", "", "data-dir is required"},
		{"group", "", "group is required"},
		{"clickstream-topic", "", "clickstream-topic is required"},
		{"orders-topic", "", "orders-topic is required"},
		{"triggers-topic", "", "triggers-topic is required"},
		{"dlq-topic", "", "dlq-topic is required"},
		{"http", "9644", `http "9644"`},
		{"http", "localhost", `http "localhost"`},
		{"partitions", 0, "partitions must be at least 1, got 0"},
		{"partitions", -3, "partitions must be at least 1, got -3"},
		{"staleness", time.Duration(0), "staleness must be positive, got 0s"},
		{"staleness", -time.Second, "staleness must be positive, got -1s"},
		{"max-clock-skew", -time.Minute, "max-clock-skew must not be negative, got -1m0s"},
		{"max-event-bytes", 1023, "max-event-bytes must be at least 1024, got 1023"},
		{"max-event-bytes", 0, "max-event-bytes must be at least 1024, got 0"},
		{"session-timeout", 999 * time.Millisecond, "session-timeout must be at least 1s, got 999ms"},
		{"cache-mb", 0, "cache-mb must be at least 1, got 0"},
		{"memory-limit-mb", -1, "memory-limit-mb must not be negative, got -1"},
		{"pebble-memtable-mb", 0, "pebble-memtable-mb must be within 1..1024, got 0"},
		{"pebble-l0-stop-writes", 4, "pebble-l0-stop-writes must be at least 5, got 4"},
		{"pebble-compactions", 0, "pebble-compactions must be at least 1, got 0"},
		{"produce-linger", -time.Millisecond, "produce-linger must be within 0..1s, got -1ms"},
		{"produce-linger", 2 * time.Second, "produce-linger must be within 0..1s, got 2s"},
		{"pebble-l0-compaction", 0, "pebble-l0-compaction must be at least 1, got 0"},
		{"step-linger", -time.Millisecond, "step-linger must be within 0..1s, got -1ms"},
		{"step-linger", 2 * time.Second, "step-linger must be within 0..1s, got 2s"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s=%v", tc.flag, tc.value), func(t *testing.T) {
			c := fromTags(t)
			set(t, &c, tc.flag, tc.value)
			err := c.Validate()
			if err == nil {
				t.Fatalf("--%s=%v accepted", tc.flag, tc.value)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("--%s=%v: error %q, want it to contain %q", tc.flag, tc.value, err, tc.msg)
			}
			if lines := strings.Count(err.Error(), "\n") + 1; lines != 1 {
				t.Fatalf("one bad flag gave %d errors: %v", lines, err)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		flag  string
		value any
	}{
		{"http", ""}, // no HTTP endpoint
		{"http", ":0"},
		{"http", "[::1]:9644"},
		{"max-clock-skew", time.Duration(0)},
		{"max-event-bytes", 1024},
		{"partitions", 1},
		{"cache-mb", 1},
		{"session-timeout", time.Second},
	}
	for _, tc := range tests {
		c := fromTags(t)
		set(t, &c, tc.flag, tc.value)
		if err := c.Validate(); err != nil {
			t.Errorf("--%s=%v rejected: %v", tc.flag, tc.value, err)
		}
	}
}

func TestValidateSameTopicTwice(t *testing.T) {
	c := fromTags(t)
	c.DLQTopic = c.TriggersTopic
	err := c.Validate()
	if err == nil {
		t.Fatal("triggers and dead letters on one topic accepted")
	}
	// Which flag is named first depends on map order; both must be named.
	msg := err.Error()
	if !strings.Contains(msg, "triggers-topic") || !strings.Contains(msg, "dlq-topic") || !strings.Contains(msg, `name the same topic "spur.triggers"`) {
		t.Fatalf("error %q does not name both flags and the topic", msg)
	}
}

func TestValidateReportsEveryError(t *testing.T) {
	c := Config{HTTP: "nope"}
	err := c.Validate()
	if err == nil {
		t.Fatal("zero Config accepted")
	}
	for _, flag := range []string{"data-dir", "group", "clickstream-topic", "orders-topic", "triggers-topic", "dlq-topic", "http", "partitions", "staleness", "max-event-bytes", "session-timeout", "cache-mb"} {
		if !strings.Contains(err.Error(), flag) {
			t.Errorf("error does not name --%s:\n%v", flag, err)
		}
	}
}

func TestSplitBrokers(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" ", nil},
		{",,", nil},
		{"localhost:9092", []string{"localhost:9092"}},
		{"a:9092,b:9092", []string{"a:9092", "b:9092"}},
		{" a:9092 , b:9092 ,", []string{"a:9092", "b:9092"}},
		{"a,,b", []string{"a", "b"}},
		{"\ta\n,b", []string{"a", "b"}},
		{"[::1]:9092,c", []string{"[::1]:9092", "c"}},
	}
	for _, tc := range tests {
		if got := SplitBrokers(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitBrokers(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
