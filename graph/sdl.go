package graph

import (
	"bytes"

	"github.com/vektah/gqlparser/v2/formatter"
)

// SDL returns the schema in the GraphQL schema language, with every
// description: what `credit schema` prints and schema.graphql holds, for
// clients' code generators and reviewers of schema changes.
func SDL() []byte {
	var b bytes.Buffer
	formatter.NewFormatter(&b, formatter.WithIndent("  ")).FormatSchema(NewExecutableSchema(Config{}).Schema())
	return b.Bytes()
}
