package alerts_test

import (
	"context"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/alerts"
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

// Two transactions that raise alerts overlap; the one that started first
// commits last. With auto-increment ids the later one's id could become visible
// first and a tail asking for "id > last" would skip the other. Here the second
// waits for the first's ids to be visible, so listeners get both, in order.
func TestOverlappingTransactionsAreDeliveredInOrder(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		customer(t, db)
		svc, ctx := start(t, db, alerts.Options{PollInterval: 20 * time.Millisecond})
		live, err := svc.Subscribe(ctx, nil, nil)
		if err != nil {
			t.Fatal(err)
		}

		first := db.Begin()
		a1 := alert(75)
		if err := alerts.Insert(first, []*models.Alert{a1}); err != nil {
			t.Fatal(err)
		}
		a2 := alert(90)
		secondDone := make(chan error, 1)
		go func() {
			secondDone <- db.Transaction(func(tx *gorm.DB) error { return alerts.Insert(tx, []*models.Alert{a2}) })
			svc.Wake()
		}()
		quiet(t, live, 300*time.Millisecond) // nothing is visible yet
		select {
		case err := <-secondDone:
			t.Fatalf("the second transaction committed before the first: %v", err)
		default:
		}
		if err := first.Commit().Error; err != nil {
			t.Fatal(err)
		}
		svc.Wake()
		if err := <-secondDone; err != nil {
			t.Fatal(err)
		}
		if got := receive(t, live); got.ID != a1.ID {
			t.Fatalf("first delivered %d, want %d", got.ID, a1.ID)
		}
		if got := receive(t, live); got.ID != a2.ID || a2.ID != a1.ID+1 {
			t.Fatalf("second delivered %d, want %d = %d+1", got.ID, a2.ID, a1.ID)
		}

		// A rolled-back transaction pushes nothing and leaves no gap.
		rolled := db.Begin()
		if err := alerts.Insert(rolled, []*models.Alert{alert(100)}); err != nil {
			t.Fatal(err)
		}
		rolled.Rollback()
		a3 := alert(100)
		if err := db.Transaction(func(tx *gorm.DB) error { return alerts.Insert(tx, []*models.Alert{a3}) }); err != nil {
			t.Fatal(err)
		}
		svc.Wake()
		if got := receive(t, live); got.ID != a2.ID+1 || got.Threshold != 100 {
			t.Fatalf("after a rollback delivered %+v, want id %d", got, a2.ID+1)
		}

		// Resuming after the first replays exactly the rest.
		resumed, err := svc.Subscribe(ctx, nil, &a1.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []uint{a2.ID, a3.ID} {
			if got := receive(t, resumed); got.ID != want {
				t.Fatalf("resumed with %d, want %d", got.ID, want)
			}
		}
		quiet(t, resumed, 100*time.Millisecond)
	})
}

// A listener that stops reading is disconnected once it is a buffer behind,
// without holding anyone up, and resumes from the last alert it got.
func TestSlowListenerIsDroppedAndResumes(t *testing.T) {
	db := testenv.SQLite(t)
	customer(t, db)
	svc, ctx := start(t, db, alerts.Options{PollInterval: 20 * time.Millisecond, Buffer: 2})
	slowCtx, ending := streams.With(ctx)
	slow, err := svc.Subscribe(slowCtx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := svc.Subscribe(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	var ids []uint
	for i := range n {
		a := alert(75 + i)
		if err := db.Transaction(func(tx *gorm.DB) error { return alerts.Insert(tx, []*models.Alert{a}) }); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
		svc.Wake()
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
	rest, err := svc.Subscribe(ctx, nil, &got[len(got)-1])
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

// Alerts this process commits are published from memory when they are the
// next ids; when another process's alert comes first, the store is read, so
// listeners still get every alert once, in id order.
func TestCommittedAlertsKeepIDOrder(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		customer(t, db)
		// A poll interval far beyond the test: only Committed makes the tail move.
		svc, ctx := start(t, db, alerts.Options{PollInterval: time.Hour})
		live, err := svc.Subscribe(ctx, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		commit := func(a *models.Alert) {
			if err := db.Transaction(func(tx *gorm.DB) error { return alerts.Insert(tx, []*models.Alert{a}) }); err != nil {
				t.Fatal(err)
			}
		}
		mine := alert(75)
		commit(mine)
		svc.Committed([]*models.Alert{mine})
		if got := receive(t, live); got.ID != mine.ID {
			t.Fatalf("got %d, want %d", got.ID, mine.ID)
		}
		theirs, next := alert(90), alert(100)
		commit(theirs) // another process's: nobody tells this tail
		commit(next)
		svc.Committed([]*models.Alert{next})
		for _, want := range []uint{theirs.ID, next.ID} {
			if got := receive(t, live); got.ID != want {
				t.Fatalf("got %d, want %d", got.ID, want)
			}
		}
		svc.Committed([]*models.Alert{next}) // told twice: published once
		quiet(t, live, 100*time.Millisecond)
	})
}
