package keys

import (
	"errors"
	"testing"

	"github.com/cloudreseller/credit/internal/errs"
)

func TestSubscriptionLimits(t *testing.T) {
	r := newSessions()
	var sessions []*Session
	var releases []func()
	// Ten sessions of one key: 20 each fit until the key's 200 are used.
	for range MaxSubscriptionsPerKey / MaxSubscriptionsPerSession {
		s := r.Open(7, nil)
		sessions = append(sessions, s)
		for range MaxSubscriptionsPerSession {
			release, err := r.Subscribe(s)
			if err != nil {
				t.Fatal(err)
			}
			releases = append(releases, release)
		}
		if _, err := r.Subscribe(s); errs.CodeOf(err) != errs.TooManySubscriptions {
			t.Fatalf("subscription %d on one session: %v", MaxSubscriptionsPerSession+1, err)
		}
	}
	other := r.Open(7, nil)
	if _, err := r.Subscribe(other); errs.CodeOf(err) != errs.TooManySubscriptions {
		t.Fatalf("subscription %d of one key: %v", MaxSubscriptionsPerKey+1, err)
	}
	if _, err := r.Subscribe(r.Open(8, nil)); err != nil {
		t.Fatalf("another key is not limited by this one's: %v", err)
	}
	releases[0]()
	releases[0]() // releasing twice frees one place only
	if _, err := r.Subscribe(other); err != nil {
		t.Fatalf("after one ended: %v", err)
	}
	if _, err := r.Subscribe(other); errs.CodeOf(err) != errs.TooManySubscriptions {
		t.Fatalf("a double release freed two places: %v", err)
	}
}

func TestEndingSessions(t *testing.T) {
	r := newSessions()
	var ended []error
	a := r.Open(1, func(err error) { ended = append(ended, err) })
	b := r.Open(2, nil)
	revoked := errors.New("revoked")
	r.End(1, revoked)
	r.End(1, errors.New("again")) // a session ends once
	select {
	case <-a.Done():
	default:
		t.Fatal("the revoked key's session is open")
	}
	if a.Err() != revoked || len(ended) != 1 || ended[0] != revoked {
		t.Fatalf("ended with %v, callbacks %v", a.Err(), ended)
	}
	if b.Err() != nil || r.Count() != 1 {
		t.Fatalf("another key's session: %v; %d open", b.Err(), r.Count())
	}
	if ids := r.keyIDs(); len(ids) != 1 || ids[0] != 2 {
		t.Fatalf("keys with sessions: %v", ids)
	}
	r.EndAll(errors.New("shutdown"))
	if b.Err() == nil || r.Count() != 0 {
		t.Fatal("EndAll left a session open")
	}
}
