package email

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cloudreseller/credit/internal/alerts/delivery"
	"github.com/cloudreseller/credit/internal/alerts/rules"
	"github.com/cloudreseller/credit/internal/credit"
	"github.com/cloudreseller/credit/internal/money"
	"github.com/cloudreseller/credit/models"
)

func ptr[T any](v T) *T { return &v }

// Each kind of alert reads as what happened and what to do about it.
func TestAlertLetter(t *testing.T) {
	at := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	base := models.Alert{ID: 7, CustomerID: 12, Credit: units(100), Cause: rules.CauseUsage, CreatedAt: at,
		Status: ptr(credit.StatusActive)}
	with := func(f func(a *models.Alert)) *models.Alert {
		a := base
		f(&a)
		return &a
	}
	cases := []struct {
		name     string
		alert    *models.Alert
		opts     Options
		subject  string
		contains []string
	}{
		{"75 %", with(func(a *models.Alert) {
			a.Kind, a.Threshold, a.Used, a.Available, a.UsageBasisPoints = rules.UsageThreshold, 75, units(80), units(20), 8000
		}), Options{}, "Acme (customer 12) has used 75 % of its credit",
			[]string{"Credit:     100.00", "Used:       80.00 (80.00 %)", "Available:  20.00", "Watch its usage", `customer(id: "12")`, "Alert 7 (USAGE_THRESHOLD, caused by USAGE)"}},
		{"100 %", with(func(a *models.Alert) {
			a.Kind, a.Threshold, a.Used, a.UsageBasisPoints = rules.UsageThreshold, 100, units(100), 10000
			a.Status = ptr(credit.StatusSuspended)
		}), Options{Link: "https://dash.example.com/customers/{id}", Playground: "https://credit.example.com"}, "Acme (customer 12) has used 100 % of its credit",
			[]string{"no credit left", "suspended", "Status:     SUSPENDED", "See the customer: https://dash.example.com/customers/12"}},
		{"available below", with(func(a *models.Alert) {
			a.Kind, a.Level = rules.AvailableBelow, ptr(units(50))
		}), Options{Playground: "https://credit.example.com"}, "Acme (customer 12): available credit fell below 50.00",
			[]string{"Allocate credit", "See the customer in the playground (your PARTNER key goes in its Headers tab): https://credit.example.com/?query=query+Customer"}},
		{"status changed", with(func(a *models.Alert) {
			a.Kind, a.Status, a.PreviousStatus = rules.StatusChanged, ptr(credit.StatusSuspended), ptr(credit.StatusActive)
		}), Options{}, "Acme (customer 12) is now SUSPENDED (was ACTIVE)", []string{"suspended until it has available credit"}},
		{"recovered", with(func(a *models.Alert) {
			a.Kind, a.Threshold, a.RecoveredKind = rules.Recovered, 90, ptr(rules.UsageThreshold)
		}), Options{}, "Acme (customer 12) recovered: no longer 90 % of credit used", []string{"No action is needed"}},
		{"forecast", with(func(a *models.Alert) {
			a.Kind, a.DaysLeft, a.BurnRatePerDay, a.BasedOnHours = rules.DepletionForecast, ptr(int64(250)), ptr(units(8)), ptr(48)
			a.DepletesAt = ptr(at.Add(60 * time.Hour))
		}), Options{}, "Acme (customer 12) will run out of credit in 2.5 days at its current usage",
			[]string{"Burn rate:  8.00 a day (over the last 48 hours)", "Runs out:   2026-12-05 21:00 UTC (in 2.50 days)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := AlertLetter(c.alert, "Acme", c.opts.see(c.alert.CustomerID))
			if l.Subject != c.subject {
				t.Errorf("subject %q, want %q", l.Subject, c.subject)
			}
			for _, want := range c.contains {
				if !strings.Contains(l.Body, want) {
					t.Errorf("body does not say %q:\n%s", want, l.Body)
				}
			}
		})
	}
}

// The playground link opens the playground on the query that shows the
// customer, as it reads ?query=.
func TestPlaygroundLink(t *testing.T) {
	link, err := url.Parse(PlaygroundLink("https://credit.example.com", 12))
	if err != nil {
		t.Fatal(err)
	}
	want := "query Customer {\n  customer(id: \"12\") {\n    name credit used available usagePercent status\n  }\n}"
	if link.Host != "credit.example.com" || link.Path != "/" || link.Query().Get("query") != want {
		t.Errorf("link %s: host %q, path %q, query %q", link, link.Host, link.Path, link.Query().Get("query"))
	}
}

func TestNoticeLetter(t *testing.T) {
	l := NoticeLetter(&delivery.Notice{ID: 3, Kind: delivery.NoticeEndpointDisabled, Message: "Webhook endpoint 4 was disabled.", CreatedAt: time.Now()})
	if l.Subject != "A webhook endpoint was disabled" || !strings.HasPrefix(l.Body, "Webhook endpoint 4 was disabled.") {
		t.Fatalf("%+v", l)
	}
}

func TestCheckAddresses(t *testing.T) {
	got, err := checkAddresses([]string{" ops@a.test", "ops@a.test", "Ops@a.test"})
	if err != nil || strings.Join(got, ",") != "ops@a.test,Ops@a.test" {
		t.Fatalf("%v %v: repeats go, addresses are kept byte for byte", got, err)
	}
	for _, bad := range [][]string{{"nope"}, {"Ops <ops@a.test>"}, {""}, make([]string, MaxAddresses+1)} {
		if _, err := checkAddresses(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseServer(t *testing.T) {
	for _, ok := range []string{"smtp://mail.example.com", "smtp://u:p@mail.example.com:587", "smtps://u:p@mail.example.com:465"} {
		if _, err := ParseServer(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"mail.example.com", "http://mail.example.com", "smtp://", "smtp://h:99999"} {
		if _, err := ParseServer(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// units is n currency units (n × 100 minor units).
func units(n int64) money.Amount { return money.Amount(n * 100) }
