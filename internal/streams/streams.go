// Package streams carries why the server ended a subscription, from the
// service that ended it to the transport that tells the client: a listener
// dropped for falling behind, a revoked key, a shutdown. A subscription that
// ends without a reason was ended by its client.
package streams

import (
	"context"
	"sync"
)

// Ending holds the reason a subscription was ended, once one is given.
type Ending struct {
	mu  sync.Mutex
	err error
}

// Err is the first reason given, or nil.
func (e *Ending) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

type key struct{}

// With returns a context whose subscription can be given a reason to end.
func With(ctx context.Context) (context.Context, *Ending) {
	e := &Ending{}
	return context.WithValue(ctx, key{}, e), e
}

// End records why the subscription of ctx ends (the first reason stays). It
// does nothing for a context made without With.
func End(ctx context.Context, reason error) {
	e, ok := ctx.Value(key{}).(*Ending)
	if !ok || reason == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err == nil {
		e.err = reason
	}
}
