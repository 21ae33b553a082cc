package alerts_test

import (
	"context"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/alerts"
	"github.com/cloudreseller/credit/internal/alerts/outbox"
	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/streams"
	"github.com/cloudreseller/credit/internal/testenv"
	"github.com/cloudreseller/credit/models"
)

func start(t *testing.T, db *gorm.DB, opts alerts.Options) (*alerts.Service, context.Context) {
	t.Helper()
	svc := alerts.New(db, opts, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done, err := svc.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-done })
	return svc, auth.WithPrincipal(ctx, auth.Principal{Role: auth.RoleAdmin, KeyName: "test"})
}

// customer stores the partner and customer (id 1 each) that the alerts of
// these tests belong to.
func customer(t *testing.T, db *gorm.DB) {
	t.Helper()
	p := &models.Partner{ID: 1, Name: "P", Currency: "USD", CreditLine: 100}
	c := &models.Customer{ID: 1, PartnerID: 1, Name: "C"}
	c.Refresh()
	if err := db.Create(p).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Create(c).Error; err != nil {
		t.Fatal(err)
	}
}

func alert(threshold int) *models.Alert {
	return &models.Alert{PartnerID: 1, CustomerID: 1, Threshold: threshold, UsageBasisPoints: int64(threshold) * 100}
}

func receive(t *testing.T, c <-chan *models.Alert) *models.Alert {
	t.Helper()
	select {
	case a, ok := <-c:
		if !ok {
			t.Fatal("subscription closed")
		}
		return a
	case <-time.After(5 * time.Second):
		t.Fatal("no alert within 5s")
	}
	return nil
}

func quiet(t *testing.T, c <-chan *models.Alert, d time.Duration) {
	t.Helper()
	select {
	case a := <-c:
		t.Fatalf("unexpected alert %+v", a)
	case <-time.After(d):
	}
}

// commit writes an alert to the outbox in a transaction of its own.
func commit(t *testing.T, db *gorm.DB, a *models.Alert) {
	t.Helper()
	if err := db.Transaction(func(tx *gorm.DB) error { return outbox.Insert(tx, []*models.Alert{a}) }); err != nil {
		t.Fatal(err)
	}
}

// raise commits an alert and returns it numbered.
func raise(t *testing.T, ctx context.Context, db *gorm.DB, svc *alerts.Service, a *models.Alert) *models.Alert {
	t.Helper()
	commit(t, db, a)
	numbered, err := svc.Numbered(ctx, []*models.Alert{a})
	if err != nil {
		t.Fatal(err)
	}
	return numbered[0]
}

// Two changes that raise alerts overlap; the one that started first commits
// last. The second does not wait for the first (before the outbox, both took
// the alert sequence row to commit), and listeners get both, numbered in the
// order they committed, without gaps, also after a rollback.
func TestChangesRaisingAlertsDoNotWaitForEachOther(t *testing.T) {
	db := testenv.MySQL(t) // SQLite has one writer at a time
	customer(t, db)
	svc, ctx := start(t, db, alerts.Options{PollInterval: 20 * time.Millisecond})
	live, err := svc.Subscribe(ctx, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}

	first := db.Begin()
	if err := outbox.Insert(first, []*models.Alert{alert(75)}); err != nil {
		t.Fatal(err)
	}
	secondDone := make(chan *models.Alert, 1)
	go func() {
		defer close(secondDone)
		a := alert(90)
		if err := db.Transaction(func(tx *gorm.DB) error { return outbox.Insert(tx, []*models.Alert{a}) }); err != nil {
			t.Error(err)
			return
		}
		svc.Raised()
		secondDone <- a
	}()
	select {
	case <-secondDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the second change waited for the first")
	}
	second := receive(t, live)
	if second.Threshold != 90 {
		t.Fatalf("delivered %+v first, want the committed 90 %% alert", second)
	}
	quiet(t, live, 100*time.Millisecond) // the first is not committed yet
	if err := first.Commit().Error; err != nil {
		t.Fatal(err)
	}
	svc.Raised()
	if got := receive(t, live); got.Threshold != 75 || got.ID != second.ID+1 {
		t.Fatalf("then delivered %+v, want the 75 %% alert with id %d", got, second.ID+1)
	}

	// A rolled-back change pushes nothing and leaves no gap.
	rolled := db.Begin()
	if err := outbox.Insert(rolled, []*models.Alert{alert(100)}); err != nil {
		t.Fatal(err)
	}
	rolled.Rollback()
	third := raise(t, ctx, db, svc, alert(100))
	if got := receive(t, live); got.ID != second.ID+2 || got.ID != third.ID {
		t.Fatalf("after a rollback delivered %+v, want id %d", got, second.ID+2)
	}

	// Resuming after the first delivered replays exactly the rest.
	resumed, err := svc.Subscribe(ctx, nil, &second.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []uint{second.ID + 1, third.ID} {
		if got := receive(t, resumed); got.ID != want {
			t.Fatalf("resumed with %d, want %d", got.ID, want)
		}
	}
	quiet(t, resumed, 100*time.Millisecond)
}

// A listener that stops reading is disconnected once it is a buffer behind,
// without holding anyone up, and resumes from the last alert it got.
func TestSlowListenerIsDroppedAndResumes(t *testing.T) {
	db := testenv.SQLite(t)
	customer(t, db)
	svc, ctx := start(t, db, alerts.Options{PollInterval: 20 * time.Millisecond, Buffer: 2})
	slowCtx, ending := streams.With(ctx)
	slow, err := svc.Subscribe(slowCtx, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := svc.Subscribe(ctx, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	var ids []uint
	for i := range n {
		a := raise(t, ctx, db, svc, alert(75+i))
		ids = append(ids, a.ID)
		if got := receive(t, fast); got.ID != a.ID {
			t.Fatalf("fast listener got %d, want %d", got.ID, a.ID)
		}
	}
	var got []uint
	for a := range slow {
		got = append(got, a.ID)
	}
	if len(got) == 0 || len(got) >= n {
		t.Fatalf("slow listener got %d of %d before being dropped", len(got), n)
	}
	// It is told why, so that it does not take the end for a normal one.
	if code := errs.CodeOf(ending.Err()); code != errs.SlowConsumer {
		t.Fatalf("the slow listener's subscription ended with %v, want SLOW_CONSUMER", ending.Err())
	}
	rest, err := svc.Subscribe(ctx, nil, &got[len(got)-1], nil)
	if err != nil {
		t.Fatal(err)
	}
	for len(got) < n {
		got = append(got, receive(t, rest).ID)
	}
	for i := range ids {
		if got[i] != ids[i] {
			t.Fatalf("after resuming: %v, want %v", got, ids)
		}
	}
}

// Alerts this process numbers are published from memory; alerts another
// process numbered are read from the store, so listeners still get every
// alert once, in id order, and a change learns its alerts' ids whichever
// process numbered them.
func TestAlertsNumberedByAnotherProcess(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		customer(t, db)
		// Poll intervals far beyond the test: only Raised and Numbered make
		// the tails move.
		svc, ctx := start(t, db, alerts.Options{PollInterval: time.Hour})
		other, _ := start(t, db, alerts.Options{PollInterval: time.Hour})
		live, err := svc.Subscribe(ctx, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		mine := raise(t, ctx, db, svc, alert(75))
		if got := receive(t, live); got.ID != mine.ID {
			t.Fatalf("got %d, want %d", got.ID, mine.ID)
		}
		theirs := raise(t, ctx, db, other, alert(90)) // nobody tells this tail
		next := alert(100)
		commit(t, db, next)
		other.Raised() // the other process numbers this process's alert
		numbered, err := svc.Numbered(ctx, []*models.Alert{next})
		if err != nil {
			t.Fatal(err)
		}
		if numbered[0].ID != theirs.ID+1 || numbered[0].Threshold != 100 {
			t.Fatalf("numbered %+v, want id %d", numbered[0], theirs.ID+1)
		}
		for _, want := range []uint{theirs.ID, numbered[0].ID} {
			if got := receive(t, live); got.ID != want {
				t.Fatalf("got %d, want %d", got.ID, want)
			}
		}
		svc.Raised() // told again: published once
		quiet(t, live, 100*time.Millisecond)
	})
}
