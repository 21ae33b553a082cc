package reconcile_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/reconcile"
	"github.com/cloudreseller/credit/internal/testenv"
)

// activity makes credit changes, usage and alerts through the API.
func activity(t *testing.T, db *gorm.DB) {
	t.Helper()
	s := testenv.NewServer(t, db)
	_, partner := s.CreatePartner(t, "Reseller", "10000")
	billing := s.CreateKey(t, "feed", "BILLING", "")
	for i := range 3 {
		cust := s.CreateCustomer(t, partner, fmt.Sprint("C", i), i == 1)
		s.SetCredit(t, partner, cust, "100")
		for j, amount := range []string{"80", "15", "10"} {
			s.Must(t, billing, `mutation($in: RecordUsageInput!) { recordUsage(input: $in) { accepted } }`,
				map[string]any{"in": map[string]any{"events": []any{map[string]any{
					"eventId": fmt.Sprintf("c%d-e%d", i, j), "customerId": cust, "amount": amount}}}}, nil)
		}
		s.SetCredit(t, partner, cust, "100") // re-arms 75 and 90 and 100
		s.Must(t, billing, `mutation($in: RecordUsageInput!) { recordUsage(input: $in) { accepted } }`,
			map[string]any{"in": map[string]any{"events": []any{map[string]any{
				"eventId": fmt.Sprintf("c%d-last", i), "customerId": cust, "amount": "60"}}}}, nil)
	}
}

func run(t *testing.T, db *gorm.DB) *reconcile.Report {
	t.Helper()
	r, err := reconcile.Run(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReconcile(t *testing.T) {
	// Records are read in chunks of customers: several, in a store this small.
	defer reconcile.SetHistoryRows(7)()
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		activity(t, db)
		r := run(t, db)
		var out strings.Builder
		r.Print(&out)
		t.Log(out.String())
		if !r.Clean() || r.Customers != 3 || r.Allocations != 6 || r.UsageEvents != 12 || r.Alerts != 21 {
			t.Fatalf("a store written only through the API: %s", out.String())
		}

		// Each tampering is found and named. (The database's own constraints
		// refuse negative balances; these are drifts that satisfy them.)
		for _, c := range []struct {
			name, tamper, undo, want string
		}{
			{"used without an event", "UPDATE customers SET used = used + 1 WHERE id = 1",
				"UPDATE customers SET used = used - 1 WHERE id = 1", "customer 1: used"},
			{"credit without a record", "UPDATE customers SET credit = credit + 100, available = available + 100 WHERE id = 2",
				"UPDATE customers SET credit = credit - 100, available = available - 100 WHERE id = 2", "customer 2: credit"},
			{"stale status", "UPDATE customers SET status = 'SUSPENDED' WHERE id = 3",
				"UPDATE customers SET status = 'ACTIVE' WHERE id = 3", "customer 3: stored available"},
			{"partner sum", "UPDATE partners SET allocated = allocated - 1",
				"UPDATE partners SET allocated = allocated + 1", "partner 1: allocated"},
			{"lost alert", "UPDATE alerts SET kind = 'STATUS_CHANGED' WHERE customer_id = 1 AND kind = 'USAGE_THRESHOLD' AND threshold = 100",
				"UPDATE alerts SET kind = 'USAGE_THRESHOLD' WHERE customer_id = 1 AND kind = 'STATUS_CHANGED' AND threshold = 100", "USAGE_THRESHOLD 100 % (used 105.00 of 100.00) implied by the records, without an alert"},
			{"lost recovery", "UPDATE alerts SET recovered_kind = 'AVAILABLE_BELOW' WHERE customer_id = 2 AND kind = 'RECOVERED' AND threshold = 90",
				"UPDATE alerts SET recovered_kind = 'USAGE_THRESHOLD' WHERE customer_id = 2 AND kind = 'RECOVERED' AND threshold = 90", "RECOVERED of USAGE_THRESHOLD 90 %"},
			{"doubled alert", "INSERT INTO alerts (id, partner_id, customer_id, threshold, usage_basis_points, used, credit, available, created_at) SELECT 1000, partner_id, customer_id, threshold, usage_basis_points, used, credit, available, created_at FROM alerts WHERE id = 1",
				"DELETE FROM alerts WHERE id = 1000", "raised twice"},
			{"wrong day count", "INSERT INTO allocation_day_counts (partner_id, day, records, withdrawals) VALUES (1, '2020-01-01 00:00:00', 3, 0)",
				"DELETE FROM allocation_day_counts", "is kept as 3 records"},
			{"record counter", "UPDATE partners SET withdraw_records = withdraw_records + 1",
				"UPDATE partners SET withdraw_records = withdraw_records - 1", "allocation records"},
			{"gap in alert ids", "UPDATE alert_sequences SET last_id = last_id + 1",
				"UPDATE alert_sequences SET last_id = last_id - 1", "alert ids"},
		} {
			t.Run(c.name, func(t *testing.T) {
				exec(t, db, c.tamper)
				defer exec(t, db, c.undo)
				r := run(t, db)
				if r.Clean() || !strings.Contains(strings.Join(r.Drifts, "\n"), c.want) {
					t.Errorf("drift %q not reported: %v", c.want, r.Drifts)
				}
			})
		}
		if r := run(t, db); !r.Clean() {
			t.Fatalf("after undoing: %v", r.Drifts)
		}
	})
}

func exec(t *testing.T, db *gorm.DB, sql string) {
	t.Helper()
	if err := db.Exec(sql).Error; err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Reconcile runs beside the server (README: with the server's own settings),
// so it must read one moment of the store: read table by table while usage
// came in, it reported drifts that were not there ("30 alerts, highest id
// 30, sequence at 32"), and exited 1.
func TestReconcileWhileTheServerWrites(t *testing.T) {
	defer reconcile.SetHistoryRows(50)()
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		_, partner := s.CreatePartner(t, "Reseller", "1000000")
		billing := s.CreateKey(t, "feed", "BILLING", "")
		var custs []string
		for i := range 4 {
			c := s.CreateCustomer(t, partner, fmt.Sprint("C", i), false)
			s.SetCredit(t, partner, c, "100000")
			custs = append(custs, c)
		}
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					var events []any
					for k := range 10 {
						// 0.25 % of the credit an event: thresholds keep being crossed.
						events = append(events, map[string]any{"eventId": fmt.Sprintf("w%d-%d-%d", w, i, k), "customerId": custs[(i+k)%len(custs)], "amount": "25"})
					}
					s.Post(t, billing, `mutation($in: RecordUsageInput!) { recordUsage(input: $in) { accepted } }`, map[string]any{"in": map[string]any{"events": events}})
					if i%20 == 19 {
						for _, c := range custs {
							s.Post(t, partner, `mutation($c: ID!) { setCredit(input: {customerId: $c, amount: "1000"}) { customer { id } } }`, map[string]any{"c": c})
						}
					}
				}
			}()
		}
		defer func() { stop(); wg.Wait() }()
		for range 15 {
			if r := run(t, db); !r.Clean() {
				t.Fatalf("a store written only through the API, read while it was written: %v", r.Drifts)
			}
		}
	})
}
