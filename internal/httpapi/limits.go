package httpapi

import (
	"context"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/cloudreseller/credit/graph"
	"github.com/cloudreseller/credit/graph/model"
	"github.com/cloudreseller/credit/internal/page"
)

// Limits on one operation, checked before it runs; each refusal says the
// operation's figure and the limit.
const (
	// ComplexityLimit bounds the work an operation may ask for: every field
	// costs 1, and a connection costs what one of its items costs times the
	// items it may return (first, 20 by default).
	ComplexityLimit = 5000
	// MaxDepth bounds how deep fields nest (introspection is not counted).
	MaxDepth = 10
	// MaxAliases bounds aliased fields, which can repeat costly fields.
	MaxAliases = 30
	// ForecastCost is what a customer's forecast costs: a page of 100
	// customers with theirs costs 1,000 and more.
	ForecastCost = 10
)

// connectionCost is the complexity of a connection field: its items' cost
// times how many it may return, plus one for the field itself.
func connectionCost(child int, first *int) int {
	n := page.Default
	if first != nil && *first > 0 {
		n = min(*first, page.Max)
	}
	return 1 + n*child
}

// complexity prices the connection fields; the rest cost 1 plus their
// children, gqlgen's default.
func complexity() graph.ComplexityRoot {
	var c graph.ComplexityRoot
	c.Customer.Allocations = func(child int, first *int, _ *string) int { return connectionCost(child, first) }
	c.Customer.Alerts = func(child int, first *int, _ *string) int { return connectionCost(child, first) }
	// Two index reads of the customer's usage each, not batched.
	c.Customer.Forecast = func(child int) int { return ForecastCost + child }
	c.Query.Customers = func(child int, _ *uint, _ *model.CustomerFilter, _ *model.CustomerOrder, first *int, _ *string) int {
		return connectionCost(child, first)
	}
	c.Query.CreditAllocations = func(child int, _ *model.AllocationFilter, first *int, _ *string) int {
		return connectionCost(child, first)
	}
	c.Query.Alerts = func(child int, _ *model.AlertFilter, first *int, _ *string) int { return connectionCost(child, first) }
	c.Query.Partners = func(child int, first *int, _ *string) int { return connectionCost(child, first) }
	c.Query.APIKeys = func(child int, _ *uint, _ *bool, first *int, _ *string) int { return connectionCost(child, first) }
	return c
}

// shapeLimit refuses operations nested deeper than MaxDepth or with more than
// MaxAliases aliases.
type shapeLimit struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = shapeLimit{}

func (shapeLimit) ExtensionName() string                   { return "ShapeLimit" }
func (shapeLimit) Validate(graphql.ExecutableSchema) error { return nil }
func (shapeLimit) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	op := oc.Doc.Operations.ForName(oc.OperationName)
	if op == nil {
		return nil
	}
	w := shapeWalk{budget: maxSelections}
	depth := w.walk(op.SelectionSet, 0)
	switch {
	case w.budget < 0:
		return limitError("COMPLEXITY_LIMIT_EXCEEDED", "operation selects more than %d fields once its fragments are expanded", maxSelections)
	case depth > MaxDepth:
		return limitError("DEPTH_LIMIT_EXCEEDED", "operation nests fields %d deep, which exceeds the limit of %d", depth, MaxDepth)
	case w.aliases > MaxAliases:
		return limitError("ALIAS_LIMIT_EXCEEDED", "operation has %d aliases, which exceeds the limit of %d", w.aliases, MaxAliases)
	}
	return nil
}

// maxSelections bounds the fields an operation may select with its fragments
// expanded (fragments can multiply each other).
const maxSelections = 5000

func limitError(code, format string, args ...any) *gqlerror.Error {
	e := gqlerror.Errorf(format, args...)
	e.Extensions = map[string]any{"code": code}
	return e
}

// shapeWalk measures an operation: how deep fields nest (fragments expanded)
// and how many aliases it has, within a budget of selections. Introspection
// fields are left out: GraphiQL's own schema query nests deeply and costs
// nothing.
type shapeWalk struct {
	budget  int
	aliases int
}

func (w *shapeWalk) walk(set ast.SelectionSet, depth int) int {
	deepest := depth
	for _, sel := range set {
		if w.budget--; w.budget < 0 {
			return deepest
		}
		d := depth
		switch sel := sel.(type) {
		case *ast.Field:
			if strings.HasPrefix(sel.Name, "__") {
				continue
			}
			if sel.Alias != "" && sel.Alias != sel.Name {
				w.aliases++
			}
			d = w.walk(sel.SelectionSet, depth+1)
		case *ast.InlineFragment:
			d = w.walk(sel.SelectionSet, depth)
		case *ast.FragmentSpread:
			if sel.Definition != nil {
				d = w.walk(sel.Definition.SelectionSet, depth)
			}
		}
		deepest = max(deepest, d)
	}
	return deepest
}
