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

// SchemaBaseURL is the base of every schema's $id. The embedded files are
// registered under it, so their relative $refs ("event.json#/$defs/id")
// resolve without any network or file access.
const SchemaBaseURL = "https://github.com/spur-crm/spur/schemas/v1/"

// Names of the schemas that are not per-type.
const (
	eventSchemaFile   = "event.json"
	triggerSchemaFile = "trigger.json"
)

// schemaSet is every embedded schema, compiled. Compiled schemas are
// immutable and jsonschema's Validate allocates its state per call, so a
// schemaSet is safe for concurrent use.
type schemaSet struct {
	byType map[Type]*jsonschema.Schema
	// fast holds the fast path of each type's schema; it is nil for a type
	// whose schema uses keywords the fast path does not read, and fastErr
	// says which (see fastpath.go).
	fast    map[Type]*fastSchema
	fastErr map[Type]error
	event   *jsonschema.Schema // event.json: any v1 event, dispatching on type
	trigger *jsonschema.Schema
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
		if err := c.AddResource(SchemaBaseURL+name, doc); err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
	}
	compile := func(name string) (*jsonschema.Schema, error) {
		s, err := c.Compile(SchemaBaseURL + name)
		if err != nil {
			// The compiler's messages span several lines; keep them, they
			// are for the developer who broke a schema.
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		return s, nil
	}
	set := &schemaSet{
		byType:  make(map[Type]*jsonschema.Schema, len(Types)),
		fast:    make(map[Type]*fastSchema, len(Types)),
		fastErr: make(map[Type]error),
	}
	for _, t := range Types {
		if set.byType[t], err = compile(string(t) + ".json"); err != nil {
			return nil, err
		}
		// A fresh memo per type: a node that failed to compile for one
		// type must not be reused half-read by another.
		f, ferr := compileFast(set.byType[t], map[*jsonschema.Schema]*fastSchema{})
		if ferr != nil {
			set.fastErr[t] = ferr
		} else {
			set.fast[t] = f
		}
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
