package event

import (
	"bytes"
	"fmt"
	"io/fs"
	"sync"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/spur-crm/spur/schemas"
)

// schemaBaseURL is the base of every schema's $id. The embedded files are
// registered under it, so their relative $refs ("event.json#/$defs/id")
// resolve without any network or file access.
const schemaBaseURL = "https://github.com/spur-crm/spur/schemas/v1/"

// Names of the schemas that are not per-type.
const (
	eventSchemaFile   = "event.json"
	triggerSchemaFile = "trigger.json"
)

// schemaSet is every embedded schema, compiled. Compiled schemas are
// immutable and jsonschema's Validate allocates its state per call, so a
// schemaSet is safe for concurrent use.
type schemaSet struct {
	types   map[Type]*typeSchema
	event   *jsonschema.Schema // event.json: any v1 event, dispatching on type
	trigger *jsonschema.Schema
}

// typeSchema is everything compiled from one schemas/<type>.json.
type typeSchema struct {
	full *jsonschema.Schema
	// fast is the fast path (see fastpath.go), or nil when the schema uses
	// keywords it does not read; fastErr then says which.
	fast    *fastSchema
	fastErr error
	// trimLimit is the length to which arrays are cut before the full
	// validator sees them (see trimArrays); 0 when the schema does not
	// allow it.
	trimLimit int
}

// compileSchemas compiles the schemas embedded in fsys (schemas.FS outside
// tests). Formats are asserted, because JSON Schema 2020-12 treats "format"
// as an annotation by default and ts must really be a date-time.
func compileSchemas(fsys fs.FS) (*schemaSet, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		raw, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		if err := c.AddResource(schemaBaseURL+name, doc); err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
	}
	compile := func(name string) (*jsonschema.Schema, error) {
		s, err := c.Compile(schemaBaseURL + name)
		if err != nil {
			// The compiler's messages span several lines; keep them, they
			// are for the developer who broke a schema.
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		return s, nil
	}
	set := &schemaSet{types: make(map[Type]*typeSchema, len(Types))}
	for _, t := range Types {
		ts := &typeSchema{}
		if ts.full, err = compile(string(t) + ".json"); err != nil {
			return nil, err
		}
		// A fresh memo per type: a node that failed to compile for one
		// type must not be reused half-read by another.
		if ts.fast, ts.fastErr = compileFast(ts.full, map[*jsonschema.Schema]*fastSchema{}); ts.fastErr == nil {
			if limit, ok := ts.fast.arrayCap(); ok {
				ts.trimLimit = limit + 1
			}
		}
		set.types[t] = ts
	}
	if set.event, err = compile(eventSchemaFile); err != nil {
		return nil, err
	}
	if set.trigger, err = compile(triggerSchemaFile); err != nil {
		return nil, err
	}
	return set, nil
}

// embedded compiles schemas.FS once per process: the schemas cannot change
// at run time, and compiling takes milliseconds.
var embedded = sync.OnceValues(func() (*schemaSet, error) {
	return compileSchemas(schemas.FS)
})

// ValidateTrigger checks one trigger record (the JSON value written to the
// trigger topic) against schemas/trigger.json. It exists for tests of the
// packages that build triggers; the error text lists every violation and may
// span several lines.
func ValidateTrigger(v []byte) error {
	set, err := embedded()
	if err != nil {
		return err
	}
	return validateWith(set.trigger, "trigger", v)
}

// ValidateEvent checks one input record against schemas/event.json, the
// schema for any v1 event, without the decoder's extra checks (byte limit,
// clock skew). Tests and tools use it to check generated traffic against the
// published contract; the engine uses Decoder.
func ValidateEvent(v []byte) error {
	set, err := embedded()
	if err != nil {
		return err
	}
	return validateWith(set.event, "event", v)
}

func validateWith(s *jsonschema.Schema, what string, v []byte) error {
	// JSON text is UTF-8 (RFC 8259), but encoding/json would quietly
	// repair invalid bytes.
	if !utf8.Valid(v) {
		return fmt.Errorf("%s record is not JSON: invalid UTF-8", what)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(v))
	if err != nil {
		return fmt.Errorf("%s record is not JSON: %w", what, err)
	}
	if err := s.Validate(doc); err != nil {
		return fmt.Errorf("%s record does not match its schema: %w", what, err)
	}
	return nil
}
