package keys

import (
	"context"
	"sync"

	"github.com/cloudreseller/credit/internal/errs"
)

// Limits on what one key keeps open on one process.
const (
	MaxSubscriptionsPerSession = 20
	MaxSubscriptionsPerKey     = 200
)

// Session is something a key keeps open: a WebSocket connection or a stream of
// server-sent events. It ends when its key is revoked or the server shuts down.
type Session struct {
	keyID uint
	onEnd func(error)
	done  chan struct{}
	once  sync.Once
	err   error
	subs  int // guarded by Sessions.mu
}

// Done is closed when the session has been ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err says why the session was ended (nil while it is open).
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

func (s *Session) end(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.done)
		if s.onEnd != nil {
			s.onEnd(err)
		}
	})
}

// Sessions are the sessions open on this process, by key.
type Sessions struct {
	mu    sync.Mutex
	byKey map[uint]map[*Session]bool
	subs  map[uint]int // subscriptions per key
}

func newSessions() *Sessions {
	return &Sessions{byKey: map[uint]map[*Session]bool{}, subs: map[uint]int{}}
}

// Open registers a session of the key; onEnd (may be nil) is called once when
// it is ended with the reason. Call Close when the session finishes by itself.
func (r *Sessions) Open(keyID uint, onEnd func(error)) *Session {
	s := &Session{keyID: keyID, onEnd: onEnd, done: make(chan struct{})}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byKey[keyID] == nil {
		r.byKey[keyID] = map[*Session]bool{}
	}
	r.byKey[keyID][s] = true
	return s
}

// Close forgets a session that finished.
func (r *Sessions) Close(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byKey[s.keyID], s)
	if len(r.byKey[s.keyID]) == 0 {
		delete(r.byKey, s.keyID)
	}
}

// End ends every session of a key with the reason.
func (r *Sessions) End(keyID uint, reason error) {
	for _, s := range r.take(func(id uint) bool { return id == keyID }) {
		s.end(reason)
	}
}

// EndAll ends every session, for a shutdown.
func (r *Sessions) EndAll(reason error) {
	for _, s := range r.take(func(uint) bool { return true }) {
		s.end(reason)
	}
}

func (r *Sessions) take(match func(uint) bool) []*Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Session
	for id, set := range r.byKey {
		if !match(id) {
			continue
		}
		for s := range set {
			out = append(out, s)
		}
		delete(r.byKey, id)
	}
	return out
}

// Count is the number of open sessions.
func (r *Sessions) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, set := range r.byKey {
		n += len(set)
	}
	return n
}

// keyIDs lists the stored keys with open sessions.
func (r *Sessions) keyIDs() []uint {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]uint, 0, len(r.byKey))
	for id := range r.byKey {
		if id != 0 {
			out = append(out, id)
		}
	}
	return out
}

// Subscribe counts a subscription on the session against the limits per
// session and per key; call release when it ends.
func (r *Sessions) Subscribe(s *Session) (release func(), err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case s.subs >= MaxSubscriptionsPerSession:
		return nil, errs.E(errs.TooManySubscriptions, "at most %d subscriptions per connection", MaxSubscriptionsPerSession)
	case r.subs[s.keyID] >= MaxSubscriptionsPerKey:
		return nil, errs.E(errs.TooManySubscriptions, "at most %d subscriptions per API key", MaxSubscriptionsPerKey)
	}
	s.subs++
	r.subs[s.keyID]++
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			s.subs--
			if r.subs[s.keyID]--; r.subs[s.keyID] == 0 {
				delete(r.subs, s.keyID)
			}
		})
	}, nil
}

type sessionKey struct{}

// WithSession returns ctx carrying the session its operations belong to.
func WithSession(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// SessionFrom returns the session of ctx, or nil.
func SessionFrom(ctx context.Context) *Session {
	s, _ := ctx.Value(sessionKey{}).(*Session)
	return s
}
