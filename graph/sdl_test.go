package graph

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// Every type, field, argument, input field and enum value says what it is
// for: the playground's docs and clients' generated code show it.
func TestEverySchemaItemIsDescribed(t *testing.T) {
	schema := NewExecutableSchema(Config{}).Schema()
	var missing []string
	undocumented := func(item, description string) {
		if strings.TrimSpace(description) == "" {
			missing = append(missing, item)
		}
	}
	items := 0
	for name, def := range schema.Types {
		if def.BuiltIn {
			continue
		}
		items++
		undocumented(name, def.Description)
		for _, f := range def.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue // introspection, described by the GraphQL spec
			}
			items++
			undocumented(name+"."+f.Name, f.Description)
			for _, a := range f.Arguments {
				items++
				undocumented(name+"."+f.Name+"("+a.Name+")", a.Description)
			}
		}
		for _, v := range def.EnumValues {
			items++
			undocumented(name+"."+v.Name, v.Description)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d schema items have no description:\n%s", len(missing), items, strings.Join(missing, "\n"))
	}
	if items < 250 {
		t.Fatalf("only %d schema items were checked", items)
	}
}

// schema.graphql is the schema as this build serves it.
func TestSchemaFileIsCurrent(t *testing.T) {
	checked, err := os.ReadFile("../schema.graphql")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(checked, SDL()) {
		t.Fatal("schema.graphql is not the schema this build serves: run `go run . schema > schema.graphql` and commit it")
	}
}
