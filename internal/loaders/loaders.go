// Package loaders batches the look-ups that GraphQL field resolvers make per
// object, so that a page of allocation records costs one customer query, not one
// per record, and a page of customers each listing its own allocation records
// or alerts costs two queries, not two per customer.
package loaders

import (
	"context"
	"sync"
	"time"

	"github.com/vikstrous/dataloadgen"

	"github.com/cloudreseller/credit/internal/accounts"
	"github.com/cloudreseller/credit/internal/alerts"
	"github.com/cloudreseller/credit/internal/ledger"
	"github.com/cloudreseller/credit/internal/page"
	"github.com/cloudreseller/credit/models"
)

// Services are what the loaders read from.
type Services struct {
	Accounts *accounts.Service
	Ledger   *ledger.Ledger
	Alerts   *alerts.Service
}

// Loaders are the batching loaders of one request.
type Loaders struct {
	Customer    *dataloadgen.Loader[uint, *models.Customer]
	Allocations *dataloadgen.Loader[PageOf, page.Result[*models.CreditAllocation]]
	Alerts      *dataloadgen.Loader[PageOf, page.Result[*models.Alert]]
	// Inherited are the alert rules of partners, for their customers.
	Inherited *dataloadgen.Loader[uint, alerts.Inherited]
}

// PageOf asks for one page of a customer's own listing.
type PageOf struct {
	CustomerID uint
	First      int // 0: the default
	After      string
	HasAfter   bool
	Count      bool
}

func pageOf(customerID uint, args page.Args) PageOf {
	k := PageOf{CustomerID: customerID, Count: args.Count}
	if args.First != nil {
		k.First = *args.First
	}
	if args.After != nil {
		k.After, k.HasAfter = *args.After, true
	}
	return k
}

func (k PageOf) args() page.Args {
	a := page.Args{Count: k.Count}
	if k.First != 0 {
		a.First = &k.First
	}
	if k.HasAfter {
		a.After = &k.After
	}
	return a
}

type ctxKey struct{}

// New returns fresh loaders. They cache what they load, so they must not outlive
// one response.
func New(s Services) *Loaders {
	wait := dataloadgen.WithWait(time.Millisecond)
	fetchCustomers := func(ctx context.Context, ids []uint) ([]*models.Customer, []error) {
		rows, err := s.Accounts.CustomersByID(ctx, ids)
		if err != nil {
			return nil, []error{err}
		}
		return rows, nil
	}
	return &Loaders{
		Customer:    dataloadgen.NewLoader(fetchCustomers, wait),
		Allocations: dataloadgen.NewLoader(pages(s.Ledger.AllocationsOfCustomers), wait),
		Alerts:      dataloadgen.NewLoader(pages(s.Alerts.ListOfCustomers), wait),
		Inherited: dataloadgen.NewLoader(func(ctx context.Context, ids []uint) ([]alerts.Inherited, []error) {
			rows, err := s.Alerts.InheritedRules(ctx, ids)
			if err != nil {
				return nil, []error{err}
			}
			return rows, nil
		}, wait),
	}
}

// pages batches requests for customers' pages: one call of list per distinct
// paging among them (in practice one: a list's items share their arguments).
func pages[T any](list func(context.Context, []uint, page.Args) (map[uint]page.Result[T], error)) func(context.Context, []PageOf) ([]page.Result[T], []error) {
	return func(ctx context.Context, keys []PageOf) ([]page.Result[T], []error) {
		ids := map[PageOf][]uint{} // by paging: the key without its customer
		for _, k := range keys {
			p := k
			p.CustomerID = 0
			ids[p] = append(ids[p], k.CustomerID)
		}
		found := map[PageOf]page.Result[T]{}
		for key, group := range ids {
			res, err := list(ctx, group, key.args())
			if err != nil {
				return nil, []error{err}
			}
			for id, r := range res {
				key.CustomerID = id
				found[key] = r
			}
		}
		out := make([]page.Result[T], len(keys))
		for i, k := range keys {
			out[i] = found[k]
		}
		return out, nil
	}
}

// With returns ctx with fresh loaders. Give every GraphQL response its own (a
// subscription sends many responses on one connection, and each must see
// current data, not what an earlier event cached). They are made on first
// use: most responses need none.
func With(ctx context.Context, s Services) context.Context {
	return context.WithValue(ctx, ctxKey{}, &lazy{make: func() *Loaders { return New(s) }})
}

// lazy makes a response's loaders when a field first asks for them.
type lazy struct {
	once    sync.Once
	make    func() *Loaders
	loaders *Loaders
}

func from(ctx context.Context) *Loaders {
	l, ok := ctx.Value(ctxKey{}).(*lazy)
	if !ok {
		return nil
	}
	l.once.Do(func() { l.loaders = l.make() })
	return l.loaders
}

// Customer loads a customer by id through the request's loader (or directly when
// the context has none).
func Customer(ctx context.Context, acc *accounts.Service, id uint) (*models.Customer, error) {
	if l := from(ctx); l != nil {
		return l.Customer.Load(ctx, id)
	}
	rows, err := acc.CustomersByID(ctx, []uint{id})
	if err != nil {
		return nil, err
	}
	return rows[0], nil
}

// Allocations loads a page of a customer's allocation records.
func Allocations(ctx context.Context, customerID uint, args page.Args) (page.Result[*models.CreditAllocation], error) {
	return from(ctx).Allocations.Load(ctx, pageOf(customerID, args))
}

// Alerts loads a page of a customer's alerts.
func Alerts(ctx context.Context, customerID uint, args page.Args) (page.Result[*models.Alert], error) {
	return from(ctx).Alerts.Load(ctx, pageOf(customerID, args))
}

// InheritedRules loads the alert rules a partner's customers inherit (or
// reads them directly when the context has no loaders).
func InheritedRules(ctx context.Context, svc *alerts.Service, partnerID uint) (alerts.Inherited, error) {
	if l := from(ctx); l != nil {
		return l.Inherited.Load(ctx, partnerID)
	}
	rows, err := svc.InheritedRules(ctx, []uint{partnerID})
	if err != nil {
		return alerts.Inherited{}, err
	}
	return rows[0], nil
}
