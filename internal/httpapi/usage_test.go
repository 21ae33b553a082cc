package httpapi_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/testenv"
)

const recordUsage = `mutation($in: RecordUsageInput!) { recordUsage(input: $in) {
	accepted duplicates
	alerts { id kind threshold usagePercent used credit available createdAt customer { id } } } }`

type alert struct {
	ID                      string
	Kind                    string
	Threshold               int
	UsagePercent            float64
	Used, Credit, Available string
	CreatedAt               string
	Customer                struct{ ID, Used string }
}

type usageResult struct {
	Accepted, Duplicates int
	Alerts               []alert
}

// event builds a usage event.
func event(id, customer string, amount any) map[string]any {
	return map[string]any{"eventId": id, "customerId": customer, "amount": amount}
}

func idNum(id string) int {
	var n int
	fmt.Sscan(id, &n)
	return n
}

func record(t testing.TB, s *testenv.Server, key string, events ...map[string]any) usageResult {
	t.Helper()
	var out struct{ RecordUsage usageResult }
	s.Must(t, key, recordUsage, map[string]any{"in": map[string]any{"events": events}}, &out)
	return out.RecordUsage
}

// thresholds lists the percent thresholds of the USAGE_THRESHOLD alerts
// (an alert whose kind was not selected counts as one).
// usageOnly keeps the USAGE_THRESHOLD alerts.
func usageOnly(as []alert) []alert {
	var out []alert
	for _, a := range as {
		if a.Kind == "USAGE_THRESHOLD" {
			out = append(out, a)
		}
	}
	return out
}

func thresholds(as []alert) string {
	var out []string
	for _, a := range as {
		if a.Kind != "" && a.Kind != "USAGE_THRESHOLD" {
			continue
		}
		out = append(out, fmt.Sprint(a.Threshold))
	}
	return strings.Join(out, " ")
}

// usageSetup makes a partner with one customer holding credit, and a BILLING key.
func usageSetup(t *testing.T, db *gorm.DB, credit string, billingPermission bool) (s *testenv.Server, partner, billing, cust string) {
	s = testenv.NewServer(t, db)
	_, partner = s.CreatePartner(t, "Reseller", "100000")
	billing = s.CreateKey(t, "feed", "BILLING", "")
	cust = s.CreateCustomer(t, partner, "Acme", billingPermission)
	s.SetCredit(t, partner, cust, credit)
	return s, partner, billing, cust
}

func TestUsageRaisesEachThresholdOnce(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "100", false)

		steps := []struct {
			amount, want string
			used, avail  string
			pct          float64
		}{
			{"74.99", "", "74.99", "25.01", 74.99},
			{"0.01", "75", "75.00", "25.00", 75},
			{"14.99", "", "89.99", "10.01", 89.99},
			{"0.01", "90", "90.00", "10.00", 90},
			{"10", "100", "100.00", "0.00", 100},
			{"5", "", "105.00", "0.00", 105},
		}
		for i, st := range steps {
			got := record(t, s, billing, event(fmt.Sprintf("e%d", i), cust, st.amount))
			if got.Accepted != 1 || thresholds(got.Alerts) != st.want {
				t.Fatalf("step %d (+%s): %+v, want alerts %q", i, st.amount, got, st.want)
			}
			for _, a := range got.Alerts {
				if a.Used != st.used || a.Credit != "100.00" || a.Available != st.avail || a.UsagePercent != st.pct || a.Customer.ID != cust {
					t.Fatalf("step %d: alert figures %+v", i, a)
				}
			}
			if c := s.Customer(t, partner, cust); c.Used != st.used || c.Available != st.avail || c.UsagePercent != st.pct {
				t.Fatalf("step %d: customer %+v", i, c)
			}
		}
		// Usage reaching the credit suspends a customer without privileges.
		if c := s.Customer(t, partner, cust); c.Status != "SUSPENDED" {
			t.Fatalf("status at 105 %%: %s", c.Status)
		}
	})
}

func TestUsageJumpRearmAndTakeBack(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "100", true)

		// One event over all three thresholds raises each, lowest first.
		got := record(t, s, billing, event("big", cust, "120"))
		got.Alerts = usageOnly(got.Alerts)
		if thresholds(got.Alerts) != "75 90 100" {
			t.Fatalf("jump raised %q", thresholds(got.Alerts))
		}
		for i := 1; i < 3; i++ {
			if idNum(got.Alerts[i].ID) != idNum(got.Alerts[i-1].ID)+1 {
				t.Fatalf("alert ids not consecutive in order: %+v", got.Alerts)
			}
		}
		if c := s.Customer(t, partner, cust); c.Status != "PURCHASES_BLOCKED" || c.Available != "0.00" {
			t.Fatalf("billing-permission customer at 120 %%: %+v", c)
		}

		// New credit brings usage back under every threshold: they re-arm.
		s.SetCredit(t, partner, cust, "100") // 120 of 200: 60 %
		if got := record(t, s, billing, event("after-topup", cust, "40")); thresholds(got.Alerts) != "75" {
			t.Fatalf("re-armed crossing raised %q", thresholds(got.Alerts))
		}
		// Taking credit back raises usage too: 160 of 180 is 88.9 %, of 170 is 94 %.
		var out struct {
			SetCredit struct{ Customer testenv.CustomerState }
		}
		s.Must(t, partner, `mutation($c: ID!) { setCredit(input: {customerId: $c, amount: "-20"}) { customer { `+testenv.CustomerFields+` } } }`, map[string]any{"c": cust}, &out)
		if out.SetCredit.Customer.UsagePercent != 88.88 {
			t.Fatalf("usage after take-back: %+v", out.SetCredit.Customer)
		}
		s.Must(t, partner, `mutation($c: ID!) { withdrawCredit(input: {customerId: $c, amount: "10"}) { customer { id } } }`, map[string]any{"c": cust}, nil)
		var list struct {
			Alerts struct {
				TotalCount int
				Nodes      []alert
			}
		}
		s.Must(t, partner, `{ alerts(filter: {kinds: [USAGE_THRESHOLD]}) { totalCount nodes { threshold used credit usagePercent } } }`, nil, &list)
		if thresholds(list.Alerts.Nodes) != "90 75 100 90 75" {
			t.Fatalf("alerts newest first: %q", thresholds(list.Alerts.Nodes))
		}
		if a := list.Alerts.Nodes[0]; a.Used != "160.00" || a.Credit != "170.00" || a.UsagePercent != 94.11 {
			t.Fatalf("alert raised by withdrawal: %+v", a)
		}
	})
}

func TestUsageDuplicatesAndAllOrNothing(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "1000", false)

		got := record(t, s, billing, event("a", cust, "10"), event("b", cust, "5"), event("a", cust, "10"))
		if got.Accepted != 2 || got.Duplicates != 1 {
			t.Fatalf("first batch: %+v", got)
		}
		got = record(t, s, billing, event("b", cust, "5"), event("c", cust, "1.50"))
		if got.Accepted != 1 || got.Duplicates != 1 {
			t.Fatalf("second batch: %+v", got)
		}
		if c := s.Customer(t, partner, cust); c.Used != "16.50" {
			t.Fatalf("used %s, want 16.50", c.Used)
		}

		// One bad event refuses the whole batch.
		long := strings.Repeat("x", 65)
		bad := []map[string]any{
			event("d", "999999", "1"),
			event("d", cust, "0"),
			event("d", cust, "-1"),
			event("d", cust, "1.001"),
			event("", cust, "1"),
			event(long, cust, "1"),
			// Far ahead of the server's clock: a feed that sends milliseconds as
			// seconds, or a year of 9999.
			{"eventId": "d", "customerId": cust, "amount": "1", "occurredAt": time.Now().Add(25 * time.Hour).UTC().Format(time.RFC3339)},
		}
		for _, b := range bad {
			r := s.Post(t, billing, recordUsage, map[string]any{"in": map[string]any{"events": []map[string]any{event("fresh", cust, "1"), b}}})
			if fmt.Sprint(r.Codes()) != "[BAD_USER_INPUT]" {
				t.Fatalf("batch with %v: %+v", b, r.Errors)
			}
		}
		s.Fails(t, "BAD_USER_INPUT", billing, recordUsage, map[string]any{"in": map[string]any{"events": []map[string]any{}}})
		var many []map[string]any
		for i := range 1001 {
			many = append(many, event(fmt.Sprint("m", i), cust, "0.01"))
		}
		s.Fails(t, "BAD_USER_INPUT", billing, recordUsage, map[string]any{"in": map[string]any{"events": many}})
		if c := s.Customer(t, partner, cust); c.Used != "16.50" {
			t.Fatalf("a refused batch was applied: used %s", c.Used)
		}
		// A clock a few hours ahead of the server's is no reason to refuse.
		ahead := map[string]any{"eventId": "skewed", "customerId": cust, "amount": "1", "occurredAt": time.Now().Add(3 * time.Hour).UTC().Format(time.RFC3339)}
		if got := record(t, s, billing, ahead); got.Accepted != 1 {
			t.Fatalf("an event 3 hours ahead: %+v", got)
		}
		// The refused events were not recorded: sent again correctly, they count.
		if got := record(t, s, billing, event("fresh", cust, "1"), event("d", cust, "1")); got.Accepted != 2 {
			t.Fatalf("resent batch: %+v", got)
		}
		if got := record(t, s, billing, many[:1000]...); got.Accepted != 1000 {
			t.Fatalf("1000 events: %+v", got)
		}
		if c := s.Customer(t, partner, cust); c.Used != "29.50" {
			t.Fatalf("used %s, want 29.50", c.Used)
		}

		// Only the billing feed and ADMIN record usage.
		s.Fails(t, "FORBIDDEN", partner, recordUsage, map[string]any{"in": map[string]any{"events": []map[string]any{event("p", cust, "1")}}})
		s.Fails(t, "UNAUTHENTICATED", "", recordUsage, map[string]any{"in": map[string]any{"events": []map[string]any{event("p", cust, "1")}}})
		record(t, s, testenv.AdminToken, event("by-admin", cust, "1"))
	})
}

func TestConcurrentUsageBatchesRaiseEachAlertOnce(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "1000", false)
		// 40 batches of 25 take usage to exactly 100 %; each also repeats one
		// shared event id, which must be applied once.
		codes := parallel(40, func(i int) testenv.Response {
			return s.Post(t, billing, recordUsage, map[string]any{"in": map[string]any{"events": []map[string]any{
				event(fmt.Sprint("batch-", i), cust, "25"),
				event("shared", cust, "0.01"),
			}}})
		})
		if count(codes, "") != 40 {
			t.Fatalf("batches failed: %v", codes)
		}
		var out struct {
			Alerts struct {
				Nodes []alert
			}
		}
		s.Must(t, partner, `{ alerts(filter: {kinds: [USAGE_THRESHOLD]}) { nodes { threshold used } } }`, nil, &out)
		if got := thresholds(out.Alerts.Nodes); got != "100 90 75" {
			t.Fatalf("40 concurrent batches raised %q, want exactly 75, 90 and 100 once", got)
		}
		if c := s.Customer(t, partner, cust); c.Used != "1000.01" {
			t.Fatalf("used %s, want 1000.01", c.Used)
		}
	})
}

func TestAlertListing(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "100", false)
		other := s.CreateCustomer(t, partner, "Other", false)
		s.SetCredit(t, partner, other, "10")
		record(t, s, billing, event("1", cust, "80"), event("2", other, "10"))
		_, rival := s.CreatePartner(t, "Rival", "1000")
		rc := s.CreateCustomer(t, rival, "R", false)
		s.SetCredit(t, rival, rc, "1")
		record(t, s, billing, event("3", rc, "1"))

		type page struct {
			Alerts struct {
				TotalCount int
				Nodes      []alert
			}
		}
		query := `query($f: AlertFilter) { alerts(filter: $f) { totalCount nodes { kind threshold customer { id } } } }`
		cases := []struct {
			key    string
			filter map[string]any
			want   string
		}{
			{partner, nil, "100 90 75 75"},
			{partner, map[string]any{"customerId": cust}, "75"},
			{partner, map[string]any{"threshold": 75}, "75 75"},
			{partner, map[string]any{"customerId": rc}, ""},
			{rival, nil, "100 90 75"},
			{testenv.AdminToken, map[string]any{"threshold": 100}, "100 100"},
		}
		for _, c := range cases {
			var out page
			f := map[string]any{"kinds": []string{"USAGE_THRESHOLD"}}
			for k, v := range c.filter {
				f[k] = v
			}
			s.Must(t, c.key, query, map[string]any{"f": f}, &out)
			if got := thresholds(out.Alerts.Nodes); got != c.want || out.Alerts.TotalCount != len(out.Alerts.Nodes) {
				t.Errorf("filter %v: %q (total %d), want %q", c.filter, got, out.Alerts.TotalCount, c.want)
			}
		}
		var per struct {
			Customer struct{ Alerts struct{ Nodes []alert } }
		}
		s.Must(t, partner, `query($c: ID!) { customer(id: $c) { alerts { nodes { kind threshold } } } }`, map[string]any{"c": other}, &per)
		if thresholds(per.Customer.Alerts.Nodes) != "100 90 75" {
			t.Fatalf("customer.alerts: %+v", per)
		}
		s.Fails(t, "FORBIDDEN", billing, `{ alerts { totalCount } }`, nil)
	})
}
