package httpapi

import (
	"context"
	"fmt"
	"slices"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/lexer"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/cloudreseller/credit/internal/errs"
)

// Limits on a document, checked before gqlgen validates it. Validation's
// overlapping-fields rule compares every pair of fields that merge at one
// place, and every pair of fragments spread there (graphql-js had the same
// flaw, CVE-2023-26144): `{ viewer { role role … } }` with 6,000 roles took
// 2.3 s to refuse, a 4 MiB body of them held a core for hours after its
// client had gone (validation does not watch the request's context), and
// 3,500 fragments spread side by side took 4.3 s.
const (
	// MaxTokens bounds the tokens of a document: a recordUsage of 1,000
	// events written inline takes about 15,000, GraphiQL's schema query 500.
	MaxTokens = 50000
	// MaxMergedFields bounds the fields that merge at one place of a
	// document (one response name under one path, fragments expanded). Real
	// documents have a few: fragments that share an id.
	MaxMergedFields = 100
	// MaxMergePairs bounds the pairs validation compares over a whole
	// document: of fields that merge at a place, and of fragments spread at
	// a place. 100,000 takes it at most some 70 ms; real documents have a
	// few hundred.
	MaxMergePairs = 100000
	// MaxNameLength bounds a name in a document (a field, an alias, an
	// argument, a variable, an operation, a fragment, a type, a directive,
	// an enum value): a field of 4 million characters took 1.4 s to refuse,
	// as validation weighed it against every field for a suggestion.
	MaxNameLength = 256
	// maxDocumentSelections bounds the selections one document may expand
	// to, fragments included (they can multiply each other), over all its
	// operations and fragments; each operation has its own, smaller, limit
	// (maxSelections).
	maxDocumentSelections = 10 * maxSelections
)

// documentLimit refuses, before validation, a document that would be
// costly to validate. A document gqlgen has validated already (in its query
// cache) is not looked at again; the others are parsed twice, here and by
// gqlgen, which is linear and bounded by MaxTokens.
type documentLimit struct {
	validated graphql.Cache[*ast.QueryDocument]
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = documentLimit{}

func (documentLimit) ExtensionName() string                   { return "DocumentLimit" }
func (documentLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (d documentLimit) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if n := len(p.OperationName); n > MaxNameLength {
		// Logs and metrics name a request by it.
		return limitError(string(errs.BadUserInput), "operationName is %d characters long: names are at most %d", n, MaxNameLength)
	}
	if _, ok := d.validated.Get(ctx, p.Query); ok {
		return nil
	}
	src := &ast.Source{Input: p.Query}
	if err := longName(src); err != nil {
		return err
	}
	doc, err := parser.ParseQueryWithTokenLimit(src, MaxTokens)
	if err != nil {
		return nil // gqlgen parses it again and says why it does not parse
	}
	return mergeCost(doc)
}

// longName refuses a document with a name longer than MaxNameLength. It
// reads the document's tokens up to MaxTokens, or to one the lexer refuses
// (the parser then says why).
func longName(src *ast.Source) *gqlerror.Error {
	l := lexer.New(src)
	for range MaxTokens {
		tok, err := l.ReadToken()
		if err != nil || tok.Kind == lexer.EOF {
			return nil
		}
		if tok.Kind == lexer.Name && len(tok.Value) > MaxNameLength {
			return limitError(string(errs.BadUserInput), "a name in the document is %d characters long: names are at most %d", len(tok.Value), MaxNameLength)
		}
	}
	return nil
}

// mergeCost walks every operation and fragment of doc, place by place, with
// its fragments expanded, and refuses it when validating it would compare
// too much.
func mergeCost(doc *ast.QueryDocument) *gqlerror.Error {
	w := mergeWalk{fragments: map[string]*ast.FragmentDefinition{}, budget: maxDocumentSelections}
	for _, f := range doc.Fragments {
		if w.fragments[f.Name] == nil {
			w.fragments[f.Name] = f
		}
	}
	var roots []ast.SelectionSet
	for _, op := range doc.Operations {
		roots = append(roots, op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		roots = append(roots, f.SelectionSet)
	}
	for _, set := range roots {
		if err := w.place("", []ast.SelectionSet{set}); err != nil {
			return err
		}
	}
	return nil
}

// mergeWalk expands a document's fragments within a budget of selections,
// and counts the pairs validation compares.
type mergeWalk struct {
	fragments map[string]*ast.FragmentDefinition
	budget    int
	pairs     int
}

// merged is what meets at one place: its fields by response name, in order,
// and how many fragments are spread there.
type merged struct {
	byName  map[string][]*ast.Field
	names   []string
	spreads int
}

// place gathers the selection sets that merge at path, counts their pairs,
// and goes on to the place under each response name.
func (w *mergeWalk) place(path string, sets []ast.SelectionSet) *gqlerror.Error {
	m := merged{byName: map[string][]*ast.Field{}}
	for _, set := range sets {
		if !w.gather(set, nil, &m) {
			return limitError("COMPLEXITY_LIMIT_EXCEEDED", "the document selects more than %d fields once its fragments are expanded", maxDocumentSelections)
		}
	}
	if err := w.compare(m.spreads, path); err != nil {
		return err
	}
	for _, name := range m.names {
		fields := m.byName[name]
		at := name
		if path != "" {
			at = path + "." + name
		}
		if len(fields) > MaxMergedFields {
			return limitError("COMPLEXITY_LIMIT_EXCEEDED", "%s is selected %d times once fragments are expanded, which exceeds the limit of %d", at, len(fields), MaxMergedFields)
		}
		if err := w.compare(len(fields), at); err != nil {
			return err
		}
		var under []ast.SelectionSet
		for _, f := range fields {
			if len(f.SelectionSet) > 0 {
				under = append(under, f.SelectionSet)
			}
		}
		if len(under) > 0 {
			if err := w.place(at, under); err != nil {
				return err
			}
		}
	}
	return nil
}

// compare counts the pairs of n things that meet at a place, and refuses the
// document once they are too many.
func (w *mergeWalk) compare(n int, at string) *gqlerror.Error {
	if w.pairs += n * (n - 1) / 2; w.pairs <= MaxMergePairs {
		return nil
	}
	if at == "" {
		at = "the top"
	}
	return limitError("COMPLEXITY_LIMIT_EXCEEDED", "the document is too costly to validate: the fields and fragments that meet at the same places make more than %d pairs to compare (the limit was passed at %s)", MaxMergePairs, at)
}

// gather adds the fields of set to m, those of its inline fragments and of
// the fragments it spreads included (not a fragment within itself:
// validation refuses the cycle). It tells whether the budget held.
func (w *mergeWalk) gather(set ast.SelectionSet, within []string, m *merged) bool {
	for _, sel := range set {
		if w.budget--; w.budget < 0 {
			return false
		}
		switch sel := sel.(type) {
		case *ast.Field:
			name := sel.Alias
			if name == "" {
				name = sel.Name
			}
			if m.byName[name] == nil {
				m.names = append(m.names, name)
			}
			m.byName[name] = append(m.byName[name], sel)
		case *ast.InlineFragment:
			if !w.gather(sel.SelectionSet, within, m) {
				return false
			}
		case *ast.FragmentSpread:
			m.spreads++
			f := w.fragments[sel.Name]
			if f == nil || slices.Contains(within, sel.Name) {
				continue
			}
			if !w.gather(f.SelectionSet, append(within, sel.Name), m) {
				return false
			}
		}
	}
	return true
}

// MaxErrors bounds the errors one response lists; a last one says how many
// more there were. A 4 MiB body of one directive repeated drew 220,000
// validation errors, 47 MB of JSON.
const MaxErrors = 100

// fewerErrors keeps the first MaxErrors errors of a response.
func fewerErrors(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	r := next(ctx)
	if r == nil || len(r.Errors) <= MaxErrors {
		return r
	}
	left := r.Errors[MaxErrors]
	more := &gqlerror.Error{
		Message:    fmt.Sprintf("and %d more errors, left out: a response lists at most %d", len(r.Errors)-MaxErrors, MaxErrors),
		Extensions: left.Extensions,
	}
	r.Errors = append(r.Errors[:MaxErrors:MaxErrors], more)
	return r
}

// MaxMessageLength bounds an error's message, in characters: messages quote
// what the client sent (an unknown operationName, a value that is not an
// ID), which can be as long as the body. A path names at most MaxNameLength
// characters of each field (an unknown field of a variable's input object is
// named in the path as the client spelt it).
const MaxMessageLength = 1000

// boundedErrors cuts a message longer than MaxMessageLength, and a name in
// the path longer than MaxNameLength, marking each cut with an ellipsis.
func boundedErrors(present graphql.ErrorPresenterFunc) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := present(ctx, err)
		gqlErr.Message = cut(gqlErr.Message, MaxMessageLength)
		for i, p := range gqlErr.Path {
			if name, ok := p.(ast.PathName); ok {
				gqlErr.Path[i] = ast.PathName(cut(string(name), MaxNameLength))
			}
		}
		return gqlErr
	}
}

// cut shortens s to n characters and an ellipsis.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
