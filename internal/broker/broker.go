// Package broker fans values out to in-process subscribers.
//
// Publishing never waits for a subscriber: each has a bounded buffer, and one
// whose buffer is full has fallen too far behind; it is dropped (its channel is
// closed and Dropped reports true) so that it can resume from the store, while
// everyone else carries on.
package broker

import "sync"

// Broker delivers published values to the subscribers whose filter matches.
type Broker[T any] struct {
	mu   sync.Mutex
	subs map[*Subscription[T]]struct{}
}

// New returns an empty broker.
func New[T any]() *Broker[T] {
	return &Broker[T]{subs: map[*Subscription[T]]struct{}{}}
}

// Subscription receives matching values on C until it is closed or dropped.
type Subscription[T any] struct {
	// C delivers the values. It is closed by Close, or when the subscriber falls
	// behind by more than its buffer.
	C <-chan T

	c       chan T
	match   func(T) bool
	broker  *Broker[T]
	mu      sync.Mutex // guards sends against close
	closed  bool
	dropped bool
}

// Subscribe returns a subscription with room for buffer undelivered values.
// match, when not nil, selects the values it wants.
func (b *Broker[T]) Subscribe(buffer int, match func(T) bool) *Subscription[T] {
	c := make(chan T, buffer)
	s := &Subscription[T]{C: c, c: c, match: match, broker: b}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Publish offers v to every matching subscriber without waiting for any.
func (b *Broker[T]) Publish(v T) {
	b.mu.Lock()
	subs := make([]*Subscription[T], 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		if s.match == nil || s.match(v) {
			s.offer(v)
		}
	}
}

// Len is the number of subscribers.
func (b *Broker[T]) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

func (s *Subscription[T]) offer(v T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	select {
	case s.c <- v:
	default:
		s.dropped = true
		s.closeLocked()
	}
}

// Close ends the subscription. It is safe to call more than once.
func (s *Subscription[T]) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
}

func (s *Subscription[T]) closeLocked() {
	if s.closed {
		return
	}
	s.closed = true
	close(s.c)
	s.broker.mu.Lock()
	delete(s.broker.subs, s)
	s.broker.mu.Unlock()
}

// Dropped tells whether the subscription was closed for falling behind.
func (s *Subscription[T]) Dropped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}
