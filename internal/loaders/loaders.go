// Package loaders batches the look-ups that GraphQL field resolvers make per
// object, so that a page of allocation records costs one customer query, not one
// per record.
package loaders

import (
	"context"
	"time"

	"github.com/vikstrous/dataloadgen"

	"github.com/cloudreseller/credit/internal/accounts"
	"github.com/cloudreseller/credit/models"
)

// Loaders are the batching loaders of one request.
type Loaders struct {
	Customer *dataloadgen.Loader[uint, *models.Customer]
}

type ctxKey struct{}

// New returns fresh loaders. They cache what they load, so they must not outlive
// one response.
func New(acc *accounts.Service) *Loaders {
	fetch := func(ctx context.Context, ids []uint) ([]*models.Customer, []error) {
		rows, err := acc.CustomersByID(ctx, ids)
		if err != nil {
			return nil, []error{err}
		}
		return rows, nil
	}
	return &Loaders{Customer: dataloadgen.NewLoader(fetch, dataloadgen.WithWait(time.Millisecond))}
}

// With returns ctx with fresh loaders. Give every GraphQL response its own (a
// subscription sends many responses on one connection, and each must see
// current data, not what an earlier event cached).
func With(ctx context.Context, acc *accounts.Service) context.Context {
	return context.WithValue(ctx, ctxKey{}, New(acc))
}

// Customer loads a customer by id through the request's loader (or directly when
// the context has none).
func Customer(ctx context.Context, acc *accounts.Service, id uint) (*models.Customer, error) {
	if l, ok := ctx.Value(ctxKey{}).(*Loaders); ok {
		return l.Customer.Load(ctx, id)
	}
	rows, err := acc.CustomersByID(ctx, []uint{id})
	if err != nil {
		return nil, err
	}
	return rows[0], nil
}
