package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/alerts"
	"github.com/cloudreseller/credit/internal/httpapi"
	"github.com/cloudreseller/credit/internal/reconcile"
	"github.com/cloudreseller/credit/internal/testenv"
)

const (
	setPartnerRules = `mutation($p: ID, $in: AlertRulesInput!) { setPartnerAlertRules(partnerId: $p, input: $in) {
		percentThresholds percentThresholdsSource availableBelow availableBelowSource } }`
	setCustomerRules = `mutation($c: ID!, $in: AlertRulesInput!) { setCustomerAlertRules(customerId: $c, input: $in) {
		percentThresholds percentThresholdsSource availableBelow availableBelowSource } }`
	setPlatformRules = `mutation($in: AlertRulesInput!) { setPlatformAlertRules(input: $in) {
		percentThresholds percentThresholdsSource availableBelow availableBelowSource } }`
	customerRules = `query($c: ID!) { customer(id: $c) { alertRules {
		percentThresholds percentThresholdsSource availableBelow availableBelowSource } } }`
	// every kind, with the fields each needs
	subscribeEveryKind = `subscription($c: ID, $after: ID, $kinds: [AlertKind!]) { alerts(customerId: $c, after: $after, kinds: $kinds) {
		id kind cause threshold level recoveredKind status previousStatus usagePercent available customer { id } } }`
)

type rulesInForce struct {
	PercentThresholds       []int
	PercentThresholdsSource string
	AvailableBelow          []string
	AvailableBelowSource    string
}

func (r rulesInForce) String() string {
	return fmt.Sprint(r.PercentThresholds, " ", r.PercentThresholdsSource, " ", r.AvailableBelow, " ", r.AvailableBelowSource)
}

type kindAlert struct {
	ID, Kind, Cause string
	Threshold       int
	Level           *string
	RecoveredKind   *string
	Status          *string
	PreviousStatus  *string
	UsagePercent    float64
	Available       string
	Customer        struct{ ID string }
}

// String is how a test names an alert: "USAGE_THRESHOLD 50 (USAGE)".
func (a kindAlert) String() string {
	what := a.Kind
	switch a.Kind {
	case "USAGE_THRESHOLD":
		what += fmt.Sprint(" ", a.Threshold)
	case "AVAILABLE_BELOW":
		what += " " + deref(a.Level)
	case "RECOVERED":
		if deref(a.RecoveredKind) == "USAGE_THRESHOLD" {
			what += fmt.Sprint(" ", a.Threshold)
		} else {
			what += " " + deref(a.Level)
		}
	case "STATUS_CHANGED":
		what += " " + deref(a.PreviousStatus) + "->" + deref(a.Status)
	}
	return what + " (" + a.Cause + ")"
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// nextKinds reads n alerts from a listener of subscribeEveryKind.
func nextKinds(t *testing.T, c *testenv.WSClient, n int) string {
	t.Helper()
	var got []string
	for range n {
		var out struct{ Alerts kindAlert }
		c.NextData(t, 5*time.Second, &out)
		got = append(got, out.Alerts.String())
	}
	return strings.Join(got, ", ")
}

// listenKinds subscribes to every kind of alert (or those vars name) raised
// from now on: it resumes after the newest alert, so that alerts of the
// test's setup (its customers' first credit makes them ACTIVE) stay out.
func listenKinds(t *testing.T, s *testenv.Server, key string, vars map[string]any) *testenv.WSClient {
	t.Helper()
	var newest struct {
		Alerts struct{ Nodes []struct{ ID string } }
	}
	s.Must(t, key, `{ alerts(first: 1) { nodes { id } } }`, nil, &newest)
	vars["after"] = "0"
	if n := newest.Alerts.Nodes; len(n) > 0 {
		vars["after"] = n[0].ID
	}
	c := s.Dial(t, testenv.TransportWS, map[string]any{"Authorization": "Bearer " + key}, nil)
	c.Acked(t)
	c.Subscribe(t, "1", subscribeEveryKind, vars)
	return c
}

// A partner sets its own thresholds and available-credit levels, per partner
// and per customer; ADMIN sets the platform's; each customer's rules in force
// say where they come from, and every change is recorded with its operator.
func TestAlertRulesAreSetPerScope(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		partnerID, partner := s.CreatePartner(t, "Reseller", "100000")
		a := s.CreateCustomer(t, partner, "A", false)
		b := s.CreateCustomer(t, partner, "B", false)
		rivalID, rival := s.CreatePartner(t, "Rival", "1000")
		rc := s.CreateCustomer(t, rival, "R", false)

		rulesOf := func(key, cust string) string {
			var out struct {
				Customer struct{ AlertRules rulesInForce }
			}
			s.Must(t, key, customerRules, map[string]any{"c": cust}, &out)
			return out.Customer.AlertRules.String()
		}
		if got := rulesOf(partner, a); got != "[75 90 100] DEFAULT [] DEFAULT" {
			t.Fatalf("built-in rules: %s", got)
		}
		var out struct{ SetPlatformAlertRules rulesInForce }
		s.Must(t, testenv.AdminToken, setPlatformRules, map[string]any{"in": map[string]any{"percentThresholds": []int{80, 95}}}, &out)
		if got := rulesOf(partner, a); got != "[80 95] PLATFORM [] DEFAULT" {
			t.Fatalf("after the platform's: %s", got)
		}
		s.Must(t, partner, setPartnerRules, map[string]any{"in": map[string]any{"percentThresholds": []int{90, 50, 90}, "availableBelow": []string{"100", "500.50"}}}, nil)
		s.Must(t, partner, setCustomerRules, map[string]any{"c": b, "in": map[string]any{"availableBelow": []string{}}}, nil)
		if got := rulesOf(partner, a); got != "[50 90] PARTNER [500.50 100.00] PARTNER" {
			t.Fatalf("partner default: %s", got)
		}
		if got := rulesOf(partner, b); got != "[50 90] PARTNER [] CUSTOMER" {
			t.Fatalf("customer's own: %s", got)
		}
		if got := rulesOf(rival, rc); got != "[80 95] PLATFORM [] DEFAULT" {
			t.Fatalf("another partner is untouched: %s", got)
		}
		// null inherits again; a field left out stays.
		s.Must(t, partner, setPartnerRules, map[string]any{"in": map[string]any{"percentThresholds": nil}}, nil)
		if got := rulesOf(partner, a); got != "[80 95] PLATFORM [500.50 100.00] PARTNER" {
			t.Fatalf("after inheriting again: %s", got)
		}

		// Validation names the field, and nothing is half-applied.
		for _, in := range []map[string]any{
			{"percentThresholds": []int{}, "availableBelow": []string{"1"}},
			{"percentThresholds": []int{0}},
			{"percentThresholds": []int{101}},
			{"percentThresholds": []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
			{"availableBelow": []string{"-1"}},
			{"availableBelow": []string{"1", "2", "3", "4", "5", "6"}},
		} {
			r := s.Fails(t, "BAD_USER_INPUT", partner, setCustomerRules, map[string]any{"c": a, "in": in})
			field := "percentThresholds"
			if _, ok := in["percentThresholds"]; !ok {
				field = "availableBelow"
			}
			if !strings.Contains(r.Errors[0].Message, field) {
				t.Errorf("%v: %q does not name %s", in, r.Errors[0].Message, field)
			}
		}
		if got := rulesOf(partner, a); got != "[80 95] PLATFORM [500.50 100.00] PARTNER" {
			t.Fatalf("a refused change applied something: %s", got)
		}

		// Each partner manages only its own rules.
		s.Fails(t, "NOT_FOUND", rival, setCustomerRules, map[string]any{"c": a, "in": map[string]any{"percentThresholds": []int{10}}})
		s.Fails(t, "NOT_FOUND", rival, setPartnerRules, map[string]any{"p": partnerID, "in": map[string]any{"percentThresholds": []int{10}}})
		s.Fails(t, "FORBIDDEN", partner, setPlatformRules, map[string]any{"in": map[string]any{"percentThresholds": []int{10}}})
		s.Fails(t, "BAD_USER_INPUT", testenv.AdminToken, setPartnerRules, map[string]any{"in": map[string]any{"percentThresholds": []int{10}}})
		s.Must(t, testenv.AdminToken, setPartnerRules, map[string]any{"p": rivalID, "in": map[string]any{"percentThresholds": []int{60}}}, nil)
		if got := rulesOf(rival, rc); got != "[60] PARTNER [] DEFAULT" {
			t.Fatalf("ADMIN set the rival's default: %s", got)
		}

		// Every change is recorded: who and when; a partner sees its own.
		var changes struct {
			AlertRuleChanges struct {
				TotalCount int
				Nodes      []struct {
					Scope, Operator   string
					PartnerID         *string
					CustomerID        *string
					PercentThresholds []int
					AvailableBelow    []string
				}
			}
		}
		q := `{ alertRuleChanges { totalCount nodes { scope operator partnerId customerId percentThresholds availableBelow createdAt } } }`
		s.Must(t, partner, q, nil, &changes)
		c := changes.AlertRuleChanges
		if c.TotalCount != 3 || c.Nodes[0].Scope != "PARTNER" || c.Nodes[0].PercentThresholds != nil || c.Nodes[1].Scope != "CUSTOMER" ||
			deref(c.Nodes[1].CustomerID) != b || c.Nodes[2].Operator == "" || len(c.Nodes[2].AvailableBelow) != 2 {
			t.Fatalf("the partner's rule changes: %+v", c)
		}
		s.Must(t, testenv.AdminToken, q, nil, &changes)
		if changes.AlertRuleChanges.TotalCount != 5 || changes.AlertRuleChanges.Nodes[4].Scope != "PLATFORM" {
			t.Fatalf("every rule change: %+v", changes.AlertRuleChanges)
		}
	})
}

// Each kind reaches a listener over a real WebSocket, in the order raised,
// with the fields it needs; listeners may ask for some kinds only.
func TestEveryAlertKindIsDelivered(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "100", false)
		s.Must(t, partner, setCustomerRules, map[string]any{"c": cust, "in": map[string]any{"percentThresholds": []int{50, 80}, "availableBelow": []string{"30"}}}, nil)
		all := listenKinds(t, s, partner, map[string]any{"c": cust})
		recoveries := listenKinds(t, s, partner, map[string]any{"kinds": []string{"RECOVERED"}})
		listening(t, s, 2)

		record(t, s, billing, event("e1", cust, "60")) // 60 %: 50 crossed
		record(t, s, billing, event("e2", cust, "15")) // 75 %: available 25 ≤ 30
		record(t, s, billing, event("e3", cust, "30")) // 105 %: 80 crossed, suspended
		if got := nextKinds(t, all, 4); got != "USAGE_THRESHOLD 50 (USAGE), AVAILABLE_BELOW 30.00 (USAGE), USAGE_THRESHOLD 80 (USAGE), STATUS_CHANGED ACTIVE->SUSPENDED (USAGE)" {
			t.Fatalf("usage raised: %s", got)
		}
		// The platform keeps a suspended customer's services running: blocked purchases.
		s.Must(t, testenv.AdminToken, `mutation($c: ID!) { setNonStopPrivilege(customerId: $c, enabled: true) { status } }`, map[string]any{"c": cust}, nil)
		if got := nextKinds(t, all, 1); got != "STATUS_CHANGED SUSPENDED->PURCHASES_BLOCKED (PRIVILEGE_CHANGE)" {
			t.Fatalf("privilege raised: %s", got)
		}
		// New credit: 105 of 300 is 35 %, available 195.
		s.SetCredit(t, partner, cust, "200")
		want := "RECOVERED 80 (CREDIT_CHANGE), RECOVERED 50 (CREDIT_CHANGE), RECOVERED 30.00 (CREDIT_CHANGE), STATUS_CHANGED PURCHASES_BLOCKED->ACTIVE (CREDIT_CHANGE)"
		if got := nextKinds(t, all, 4); got != want {
			t.Fatalf("credit raised: %s", got)
		}
		if got := nextKinds(t, recoveries, 3); got != "RECOVERED 80 (CREDIT_CHANGE), RECOVERED 50 (CREDIT_CHANGE), RECOVERED 30.00 (CREDIT_CHANGE)" {
			t.Fatalf("a listener of recoveries only: %s", got)
		}
		recoveries.Quiet(t, 200*time.Millisecond)

		// The listing filters by kind too, and a 75/90/100-era client still
		// reads threshold and usagePercent.
		var list struct {
			Alerts struct {
				TotalCount int
				Nodes      []kindAlert
			}
		}
		s.Must(t, partner, `{ alerts(filter: {kinds: [STATUS_CHANGED, AVAILABLE_BELOW]}) { totalCount nodes { kind cause threshold level status previousStatus customer { id } } } }`, nil, &list)
		if list.Alerts.TotalCount != 5 || list.Alerts.Nodes[0].Kind != "STATUS_CHANGED" || list.Alerts.Nodes[4].Kind != "STATUS_CHANGED" {
			t.Fatalf("listing by kind: %+v", list.Alerts)
		}
		if l := list.Alerts.Nodes[3]; l.Kind != "AVAILABLE_BELOW" || deref(l.Level) != "30.00" || l.Threshold != 0 || deref(l.Status) != "ACTIVE" {
			t.Fatalf("AVAILABLE_BELOW as listed: %+v", l)
		}
	})
}

// A rule changed while the customer is past its levels is armed from where
// the customer is: no alert for the levels already past, and no recovery of
// levels that never fired.
func TestRuleChangesAreArmedFromTheCurrentState(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "100", false)
		c := listenKinds(t, s, partner, map[string]any{"c": cust, "kinds": []string{"USAGE_THRESHOLD", "RECOVERED", "AVAILABLE_BELOW"}})
		listening(t, s, 1)
		record(t, s, billing, event("e1", cust, "80")) // 75 fires
		if got := nextKinds(t, c, 1); got != "USAGE_THRESHOLD 75 (USAGE)" {
			t.Fatalf("default rules: %s", got)
		}
		// 50 % and available ≤ 50 are already past: nothing now, nothing at the next usage.
		s.Must(t, partner, setPartnerRules, map[string]any{"in": map[string]any{"percentThresholds": []int{50, 75, 90}, "availableBelow": []string{"50"}}}, nil)
		record(t, s, billing, event("e2", cust, "5")) // 85 %
		c.Quiet(t, 300*time.Millisecond)
		// New credit: 85 of 200. 75 recovers (it fired); 50 and the available level never fired.
		s.SetCredit(t, partner, cust, "100")
		if got := nextKinds(t, c, 1); got != "RECOVERED 75 (CREDIT_CHANGE)" {
			t.Fatalf("recovery: %s", got)
		}
		c.Quiet(t, 300*time.Millisecond)
		// Armed now: the next crossing of 50 fires.
		record(t, s, billing, event("e3", cust, "20")) // 105 of 200
		if got := nextKinds(t, c, 1); got != "USAGE_THRESHOLD 50 (USAGE)" {
			t.Fatalf("armed level: %s", got)
		}
	})
}

// Rules changed while usage arrives from many batches at once: every alert
// is raised once, and the books still replay to exactly the alerts stored.
func TestRulesChangedWhileUsageArrives(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "10000", false)
		var wg sync.WaitGroup
		errs := make(chan string, 100)
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 5 {
					r := s.Post(t, billing, recordUsage, map[string]any{"in": map[string]any{"events": []map[string]any{
						event(fmt.Sprintf("b%d-%d", i, j), cust, "90"),
					}}})
					if len(r.Errors) > 0 {
						errs <- fmt.Sprint(r.Errors)
					}
				}
			}()
		}
		// The customer's own percent levels and its partner's available
		// levels change meanwhile.
		for i := range 10 {
			levels := []int{10 + i, 40 + i, 70 + i, 95}
			r := s.Post(t, partner, setCustomerRules, map[string]any{"c": cust, "in": map[string]any{"percentThresholds": levels}})
			if len(r.Errors) > 0 {
				errs <- fmt.Sprint(r.Errors)
			}
			r = s.Post(t, partner, setPartnerRules, map[string]any{"in": map[string]any{"availableBelow": []string{fmt.Sprint(1000 * (9 - i)), "500"}}})
			if len(r.Errors) > 0 {
				errs <- fmt.Sprint(r.Errors)
			}
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Fatal(e)
		}
		var list struct {
			Alerts struct{ Nodes []kindAlert }
		}
		s.Must(t, partner, `{ alerts(first: 100) { nodes { id kind cause threshold level recoveredKind status previousStatus } } }`, nil, &list)
		seen := map[string]int{}
		for _, a := range list.Alerts.Nodes {
			if a.Kind != "USAGE_THRESHOLD" && a.Kind != "AVAILABLE_BELOW" {
				continue
			}
			seen[a.String()]++ // usage only rises: each level is crossed at most once
		}
		for k, n := range seen {
			if n > 1 {
				t.Errorf("%s raised %d times", k, n)
			}
		}
		if c := s.Customer(t, partner, cust); c.Used != "9000.00" {
			t.Fatalf("used %s", c.Used)
		}
		r, err := reconcile.Run(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Clean() {
			t.Fatalf("reconcile: %v", r.Drifts)
		}
	})
}

// The forecast reads the customer's usage over the trailing window, exactly.
func TestDepletionForecast(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "1000", false)
		sparse := s.CreateCustomer(t, partner, "New", false)
		s.SetCredit(t, partner, sparse, "10")
		now := time.Now().UTC()
		at := func(d time.Duration) string { return now.Add(-d).Format(time.RFC3339Nano) }
		ev := func(id, c, amount, when string) map[string]any {
			e := event(id, c, amount)
			e["occurredAt"] = when
			return e
		}
		record(t, s, billing, ev("f1", cust, "100", at(48*time.Hour)), ev("f2", cust, "100", at(24*time.Hour)),
			ev("f3", cust, "100", at(time.Hour)), ev("f4", sparse, "1", at(2*time.Hour)))

		type forecast struct {
			BurnRatePerDay *string
			DepletesAt     *string
			DaysLeft       *float64
			BasedOnHours   int
		}
		read := func(c string) forecast {
			var out struct{ Customer struct{ Forecast forecast } }
			s.Must(t, partner, `query($c: ID!) { customer(id: $c) { forecast { burnRatePerDay depletesAt daysLeft basedOnHours } } }`, map[string]any{"c": c}, &out)
			return out.Customer.Forecast
		}
		f := read(cust)
		// 300.00 over 48 h: 150.00 a day; 700.00 left: 4.66 days, 4 d 16 h from now.
		if f.BasedOnHours != 48 || deref(f.BurnRatePerDay) != "150.00" || f.DaysLeft == nil || *f.DaysLeft != 4.66 || f.DepletesAt == nil {
			t.Fatalf("forecast: %+v", f)
		}
		depletes, err := time.Parse(time.RFC3339Nano, *f.DepletesAt)
		if want := now.Add(4*24*time.Hour + 16*time.Hour); err != nil || depletes.Sub(want).Abs() > 5*time.Second {
			t.Fatalf("depletes at %v, want about %v", depletes, want)
		}
		if f := read(sparse); f.BasedOnHours != 2 || f.BurnRatePerDay != nil || f.DaysLeft != nil || f.DepletesAt != nil {
			t.Fatalf("two hours of history tell nothing: %+v", f)
		}
		// ADMIN may read it; BILLING may not.
		s.Must(t, testenv.AdminToken, `query($c: ID!) { customer(id: $c) { forecast { basedOnHours } } }`, map[string]any{"c": cust}, nil)
		s.Fails(t, "FORBIDDEN", billing, `query($c: ID!) { customer(id: $c) { forecast { basedOnHours } } }`, map[string]any{"c": cust})
	})
}

// The forecast's window is summed by hour, and exactly at its ends: usage a
// minute inside either end counts, a minute outside does not, nor does usage
// dated after now (in the current hour or later); sent again in a later batch,
// an event in the window's first hour is added to the hours kept.
func TestForecastWindowEnds(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "100000", false)
		now := time.Now().UTC()
		week := 7 * 24 * time.Hour
		ev := func(id, amount string, ago time.Duration) map[string]any {
			e := event(id, cust, amount)
			e["occurredAt"] = now.Add(-ago).Format(time.RFC3339Nano)
			return e
		}
		record(t, s, billing,
			ev("out-1", "1000.00", week+time.Minute), ev("out-2", "2000.00", week+90*time.Minute),
			ev("in-1", "7.00", week-time.Minute), ev("in-2", "14.00", week-40*time.Minute),
			ev("in-3", "21.00", 3*24*time.Hour), ev("in-4", "21.00", time.Minute),
			ev("late-1", "100.00", -time.Minute), ev("late-2", "300.00", -3*time.Hour))
		record(t, s, billing, ev("in-5", "7.00", week-2*time.Minute))
		var out struct {
			Customer struct {
				Forecast struct {
					BurnRatePerDay *string
					BasedOnHours   int
				}
			}
		}
		s.Must(t, partner, `query($c: ID!) { customer(id: $c) { forecast { burnRatePerDay basedOnHours } } }`, map[string]any{"c": cust}, &out)
		// 70.00 within the week: 10.00 a day.
		if f := out.Customer.Forecast; f.BasedOnHours != 168 || deref(f.BurnRatePerDay) != "10.00" {
			t.Fatalf("forecast %+v, burn rate %s; want 10.00 a day over 168 hours", f, deref(f.BurnRatePerDay))
		}
		r, err := reconcile.Run(context.Background(), db)
		if err != nil || !r.Clean() {
			t.Fatalf("reconcile: %v %v", err, r.Drifts)
		}
	})
}

// DEPLETION_FORECAST is raised once when the days left fall within the
// horizon, re-armed by new credit, and not raised by a change of horizon.
func TestDepletionForecastAlert(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "1000", false)
		state := func() string {
			var st string
			db.Raw("SELECT forecast_state FROM customers WHERE id = ?", cust).Scan(&st)
			return st
		}
		settled := func(want string) {
			t.Helper()
			if !testenv.Eventually(5*time.Second, func() bool { return state() == want }) {
				t.Fatalf("forecast state %q, want %q", state(), want)
			}
		}
		ago := time.Now().UTC().Add(-48 * time.Hour).Format(time.RFC3339Nano)
		history := event("h", cust, "100")
		history["occurredAt"] = ago
		record(t, s, billing, history) // 50.00 a day, 900.00 left: 18 days
		settled("o72")                 // known to be outside the horizon
		c := listenKinds(t, s, partner, map[string]any{"c": cust, "kinds": []string{"DEPLETION_FORECAST"}})
		listening(t, s, 1)

		record(t, s, billing, event("big", cust, "700")) // 400.00 a day, 200.00 left: half a day
		var out struct {
			Alerts struct {
				Kind, Cause string
				Forecast    struct {
					BurnRatePerDay string
					DaysLeft       float64
					BasedOnHours   int
					DepletesAt     string
				}
			}
		}
		if got := nextKinds(t, c, 1); got != "DEPLETION_FORECAST (USAGE)" {
			t.Fatalf("usage within the horizon: %s", got)
		}
		var list struct {
			Alerts struct{ Nodes []json.RawMessage }
		}
		s.Must(t, partner, `{ alerts(filter: {kinds: [DEPLETION_FORECAST]}) { nodes { kind cause forecast { burnRatePerDay daysLeft basedOnHours depletesAt } } } }`, nil, &list)
		if len(list.Alerts.Nodes) != 1 {
			t.Fatalf("forecast alerts: %s", list.Alerts.Nodes)
		}
		json.Unmarshal(list.Alerts.Nodes[0], &out.Alerts)
		// 800.00 over 48 h and the moment the forecaster took: 400.00 a day, a cent less by then.
		if a := out.Alerts; a.Kind != "DEPLETION_FORECAST" || a.Cause != "USAGE" || (a.Forecast.BurnRatePerDay != "400.00" && a.Forecast.BurnRatePerDay != "399.99") ||
			a.Forecast.DaysLeft != 0.5 || a.Forecast.BasedOnHours != 48 || a.Forecast.DepletesAt == "" {
			t.Fatalf("forecast alert: %+v", a)
		}
		settled("w72")
		// Still within: nothing more.
		record(t, s, billing, event("more", cust, "10"))
		c.Quiet(t, 500*time.Millisecond)
		// New credit re-arms it: still within, so raised again.
		s.SetCredit(t, partner, cust, "10")
		if got := nextKinds(t, c, 1); got != "DEPLETION_FORECAST (CREDIT_CHANGE)" {
			t.Fatalf("after new credit: %s", got)
		}
		// More credit: about 13 days left, outside the horizon, armed.
		s.SetCredit(t, partner, cust, "5000")
		settled("o72")
		// A wider horizon that the customer is already within raises nothing.
		s.Must(t, partner, setCustomerRules, map[string]any{"c": cust, "in": map[string]any{"forecastHorizonHours": 2160}}, nil)
		record(t, s, billing, event("after-rule", cust, "1"))
		settled("w2160")
		c.Quiet(t, 500*time.Millisecond)
		var rules struct {
			Customer struct {
				AlertRules struct {
					ForecastHorizonHours       int
					ForecastHorizonHoursSource string
				}
			}
		}
		s.Must(t, partner, `query($c: ID!) { customer(id: $c) { alertRules { forecastHorizonHours forecastHorizonHoursSource } } }`, map[string]any{"c": cust}, &rules)
		if r := rules.Customer.AlertRules; r.ForecastHorizonHours != 2160 || r.ForecastHorizonHoursSource != "CUSTOMER" {
			t.Fatalf("horizon in force: %+v", r)
		}
		s.Fails(t, "BAD_USER_INPUT", partner, setCustomerRules, map[string]any{"c": cust, "in": map[string]any{"forecastHorizonHours": 0}})
	})
}

// The hourly evaluation finds what no change announced: a customer whose
// forecast was never evaluated (its state lost) is alerted at the next tick,
// with cause FORECAST_TICK.
func TestForecastTick(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServerWith(t, db, httpapi.Services{}, testenv.Options{Alerts: alerts.Options{ForecastTick: 200 * time.Millisecond}})
		_, partner := s.CreatePartner(t, "Reseller", "100000")
		billing := s.CreateKey(t, "feed", "BILLING", "")
		cust := s.CreateCustomer(t, partner, "Acme", false)
		s.SetCredit(t, partner, cust, "100")
		history := event("h", cust, "90")
		history["occurredAt"] = time.Now().UTC().Add(-30 * time.Hour).Format(time.RFC3339Nano)
		c := listenKinds(t, s, partner, map[string]any{"c": cust, "kinds": []string{"DEPLETION_FORECAST"}})
		listening(t, s, 1)
		record(t, s, billing, history)
		if got := nextKinds(t, c, 1); got != "DEPLETION_FORECAST (USAGE)" {
			t.Fatalf("after usage: %s", got)
		}
		// As if the evaluation after a change had been lost.
		if err := db.Exec("UPDATE customers SET forecast_state = '' WHERE id = ?", cust).Error; err != nil {
			t.Fatal(err)
		}
		if got := nextKinds(t, c, 1); got != "DEPLETION_FORECAST (FORECAST_TICK)" {
			t.Fatalf("at the tick: %s", got)
		}
		c.Quiet(t, 600*time.Millisecond) // once, however many ticks
	})
}
