package resolvers

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/cloudreseller/credit/graph/model"
	"github.com/cloudreseller/credit/internal/alerts"
	"github.com/cloudreseller/credit/internal/ledger"
	"github.com/cloudreseller/credit/internal/page"
	"github.com/cloudreseller/credit/models"
)

// edges pairs each item of a page with its cursor.
func edges[T, E any](r page.Result[T], edge func(cursor string, node T) E) []E {
	out := make([]E, len(r.Items))
	for i, item := range r.Items {
		out[i] = edge(r.Cursors[i], item)
	}
	return out
}

func pageInfo[T any](r page.Result[T]) *model.PageInfo {
	return &model.PageInfo{HasNextPage: r.HasNextPage, HasPreviousPage: r.HasPreviousPage, StartCursor: r.StartCursor(), EndCursor: r.EndCursor()}
}

func allocationConnection(res page.Result[*models.CreditAllocation]) *model.CreditAllocationConnection {
	return &model.CreditAllocationConnection{
		Edges: edges(res, func(c string, n *models.CreditAllocation) *model.CreditAllocationEdge {
			return &model.CreditAllocationEdge{Cursor: c, Node: n}
		}),
		Nodes:      res.Items,
		PageInfo:   pageInfo(res),
		TotalCount: int(res.TotalCount),
	}
}

func alertConnection(res page.Result[*models.Alert]) *model.AlertConnection {
	return &model.AlertConnection{
		Edges: edges(res, func(c string, n *models.Alert) *model.AlertEdge {
			return &model.AlertEdge{Cursor: c, Node: n}
		}),
		Nodes:      res.Items,
		PageInfo:   pageInfo(res),
		TotalCount: int(res.TotalCount),
	}
}

func changePayload(res *ledger.Result, err error) (*model.CreditChangePayload, error) {
	if err != nil {
		return nil, err
	}
	return &model.CreditChangePayload{Allocation: res.Allocation, Customer: res.Customer}, nil
}

// selects tells whether the client selected the field on what the current
// field returns (a connection's totalCount costs a count: only when asked).
func selects(ctx context.Context, field string) bool {
	for _, f := range graphql.CollectFieldsCtx(ctx, nil) {
		if f.Name == field {
			return true
		}
	}
	return false
}

// deref returns *p, or the zero value for nil.
func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func rulesChange(in model.AlertRulesInput) alerts.RulesChange {
	return alerts.RulesChange{Percent: in.PercentThresholds, Available: in.AvailableBelow, Horizon: in.ForecastHorizonHours}
}

// statusText is a delivery state filter as the services take it.
func statusText(status *model.WebhookDeliveryStatus) *string {
	if status == nil {
		return nil
	}
	v := string(*status)
	return &v
}
