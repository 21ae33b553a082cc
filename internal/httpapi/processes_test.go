package httpapi_test

import (
	"testing"
	"time"

	"github.com/cloudreseller/credit/internal/testenv"
)

// Two server processes on one MySQL are one service: an alert raised through
// either reaches listeners on both.
func TestTwoProcessesOnOneMySQL(t *testing.T) {
	dsn := testenv.MySQLDSN(t)
	a := testenv.NewServer(t, testenv.OpenMySQL(t, dsn))
	b := testenv.NewServer(t, testenv.OpenMySQL(t, dsn))

	_, partner := a.CreatePartner(t, "Reseller", "1000")
	billing := a.CreateKey(t, "feed", "BILLING", "")
	cust := a.CreateCustomer(t, partner, "Acme", false)
	a.SetCredit(t, partner, cust, "100")

	onA := listen(t, a, testenv.TransportWS, partner, nil)
	onB := listen(t, b, testenv.LegacyWS, partner, nil)
	listening(t, a, 1)
	listening(t, b, 1)

	for i, via := range []*testenv.Server{a, b} {
		if i == 1 {
			via.SetCredit(t, partner, cust, "100") // re-arm: 80 of 200
		}
		raised := record(t, via, billing, event(string(rune('x'+i)), cust, "80")).Alerts
		if len(raised) == 0 {
			t.Fatalf("round %d raised nothing", i)
		}
		sent := time.Now()
		for _, listener := range []*testenv.WSClient{onA, onB} {
			for _, want := range raised {
				if got := nextAlert(t, listener); got.ID != want.ID {
					t.Fatalf("round %d: got alert %s, want %s", i, got.ID, want.ID)
				}
			}
		}
		if d := time.Since(sent); d > time.Second {
			t.Fatalf("round %d: alerts took %v to reach both processes", i, d)
		}
	}
}
