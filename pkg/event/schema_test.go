package event

import (
	"encoding/json"
	"io/fs"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/spur-crm/spur/schemas"
)

// readSchemaDoc returns one embedded schema file as generic JSON.
func readSchemaDoc(t *testing.T, name string) map[string]any {
	t.Helper()
	raw, err := fs.ReadFile(schemas.FS, name)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return doc
}

func schemaFiles(t *testing.T) []string {
	t.Helper()
	names, err := fs.Glob(schemas.FS, "*.json")
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestSchemasCompile compiles every embedded schema on its own, so that a
// file nobody references yet still gets checked.
func TestSchemasCompile(t *testing.T) {
	if _, err := compileSchemas(schemas.FS); err != nil {
		t.Fatalf("compileSchemas: %v", err)
	}
	for _, name := range schemaFiles(t) {
		t.Run(name, func(t *testing.T) {
			c := jsonschema.NewCompiler()
			c.AssertFormat()
			for _, other := range schemaFiles(t) {
				doc := readSchemaDoc(t, other)
				if err := c.AddResource(schemaBaseURL+other, doc); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := c.Compile(schemaBaseURL + name); err != nil {
				t.Fatalf("compile: %v", err)
			}
		})
	}
}

// TestSchemaFiles checks the set of files and their headers: one file per
// type and nothing unexpected, each declaring draft 2020-12 and an $id that
// matches where spur registers it.
func TestSchemaFiles(t *testing.T) {
	want := []string{eventSchemaFile, triggerSchemaFile}
	for _, typ := range Types {
		want = append(want, string(typ)+".json")
	}
	slices.Sort(want)
	if got := schemaFiles(t); !slices.Equal(got, want) {
		t.Errorf("schema files %v, want %v", got, want)
	}
	for _, name := range schemaFiles(t) {
		doc := readSchemaDoc(t, name)
		if got := doc["$schema"]; got != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema %v", name, got)
		}
		if got := doc["$id"]; got != schemaBaseURL+name {
			t.Errorf("%s: $id %v, want %s", name, got, schemaBaseURL+name)
		}
		if doc["description"] == nil {
			t.Errorf("%s: no description", name)
		}
	}
}

// TestTypeEnumMatchesTypes checks the envelope's list of types against
// Types.
func TestTypeEnumMatchesTypes(t *testing.T) {
	defs := readSchemaDoc(t, eventSchemaFile)["$defs"].(map[string]any)
	var enum []string
	for _, v := range defs["type"].(map[string]any)["enum"].([]any) {
		enum = append(enum, v.(string))
	}
	var types []string
	for _, typ := range Types {
		types = append(types, string(typ))
	}
	if !slices.Equal(enum, types) {
		t.Errorf("event.json type enum %v, want Types %v", enum, types)
	}
	for _, typ := range Types {
		doc := readSchemaDoc(t, string(typ)+".json")
		props, _ := doc["properties"].(map[string]any)
		typeProp, _ := props["type"].(map[string]any)
		if typeProp["const"] != string(typ) {
			t.Errorf("%s.json: properties.type.const is %v", typ, typeProp["const"])
		}
		if doc["additionalProperties"] != true {
			t.Errorf("%s.json: additionalProperties must be true (see event.json)", typ)
		}
	}
}

// TestFieldTableMatchesSchemas checks that fill reads exactly the fields each
// type's schema defines, and that every Event field is filled by some type.
func TestFieldTableMatchesSchemas(t *testing.T) {
	envelope := readSchemaDoc(t, eventSchemaFile)["$defs"].(map[string]any)["envelope"].(map[string]any)
	common := slices.Sorted(maps.Keys(envelope["properties"].(map[string]any)))
	if want := slices.Sorted(slices.Values(commonFields)); !slices.Equal(common, want) {
		t.Errorf("envelope properties %v, commonFields %v", common, want)
	}

	used := map[string]bool{}
	for _, f := range commonFields {
		used[f] = true
	}
	for _, typ := range Types {
		doc := readSchemaDoc(t, string(typ)+".json")
		var inSchema []string
		for name := range doc["properties"].(map[string]any) {
			if name != "type" {
				inSchema = append(inSchema, name)
			}
		}
		slices.Sort(inSchema)
		var inTable []string
		for f, name := range fieldNames {
			if typeFields[typ]&f != 0 {
				inTable = append(inTable, name)
				used[name] = true
			}
		}
		slices.Sort(inTable)
		if !slices.Equal(inSchema, inTable) {
			t.Errorf("%s: schema properties %v, fill reads %v", typ, inSchema, inTable)
		}
	}

	// Every Event field must be filled by some type, or it is dead.
	et := reflect.TypeFor[Event]()
	for i := range et.NumField() {
		name, _, _ := strings.Cut(et.Field(i).Tag.Get("json"), ",")
		if name == "-" {
			continue // derived, such as ts's offset
		}
		if !used[name] {
			t.Errorf("Event.%s (%q) is defined by no schema", et.Field(i).Name, name)
		}
	}
	// And every Item field must be in the item schema.
	item := readSchemaDoc(t, eventSchemaFile)["$defs"].(map[string]any)["item"].(map[string]any)
	it := reflect.TypeFor[Item]()
	for i := range it.NumField() {
		name, _, _ := strings.Cut(it.Field(i).Tag.Get("json"), ",")
		if _, ok := item["properties"].(map[string]any)[name]; !ok {
			t.Errorf("Item.%s (%q) is not in $defs/item", it.Field(i).Name, name)
		}
	}
}

// TestFormatHints checks that every pattern or format in event.json's $defs
// has a human explanation for error details.
func TestFormatHints(t *testing.T) {
	defs := readSchemaDoc(t, eventSchemaFile)["$defs"].(map[string]any)
	for name, def := range defs {
		d := def.(map[string]any)
		if d["pattern"] == nil && d["format"] == nil {
			continue
		}
		if _, ok := formatHints[name]; !ok {
			t.Errorf("$defs/%s has a pattern or format but no formatHints entry", name)
		}
	}
}

// TestTriggerSamples validates the shared trigger samples against
// trigger.json through ValidateTrigger.
func TestTriggerSamples(t *testing.T) {
	for _, s := range readSamples(t, "triggers/valid") {
		if err := ValidateTrigger(s.value); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
	}
	for _, s := range readSamples(t, "triggers/invalid") {
		if err := ValidateTrigger(s.value); err == nil {
			t.Errorf("%s: accepted", s.name)
		}
	}
	for _, v := range []string{"", "{", "[]", "{\"trigger_id\":\"\xff\"}"} {
		if err := ValidateTrigger([]byte(v)); err == nil {
			t.Errorf("%q: accepted", v)
		}
	}
}

// TestTriggerKindsAreCovered makes sure there is a valid sample per kind.
func TestTriggerKindsAreCovered(t *testing.T) {
	doc := readSchemaDoc(t, triggerSchemaFile)
	kinds := doc["properties"].(map[string]any)["kind"].(map[string]any)["enum"].([]any)
	seen := map[string]bool{}
	for _, s := range readSamples(t, "triggers/valid") {
		var tr struct{ Kind string }
		if err := json.Unmarshal(s.value, &tr); err != nil {
			t.Fatal(err)
		}
		seen[tr.Kind] = true
	}
	for _, k := range kinds {
		if !seen[k.(string)] {
			t.Errorf("no valid trigger sample of kind %v", k)
		}
	}
}
