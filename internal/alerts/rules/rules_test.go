package rules

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cloudreseller/credit/internal/credit"
	"github.com/cloudreseller/credit/internal/money"
)

// state is a customer with credit and used in whole units, its status from
// its balance (no privileges).
func state(creditUnits, usedUnits int64) State {
	b := credit.Balance{Credit: money.Amount(creditUnits * 100), Used: money.Amount(usedUnits * 100)}
	return State{Balance: b, Status: credit.StatusOf(b.Available(), false, false)}
}

func units(n int64) money.Amount { return money.Amount(n * 100) }

// describe writes events as "USAGE_THRESHOLD 75, RECOVERED USAGE_THRESHOLD 90, …".
func describe(events []Event) string {
	var out []string
	for _, e := range events {
		switch e.Kind {
		case UsageThreshold:
			out = append(out, fmt.Sprintf("%s %d", e.Kind, e.Threshold))
		case AvailableBelow:
			out = append(out, fmt.Sprintf("%s %s", e.Kind, e.Level))
		case Recovered:
			if e.RecoveredKind == UsageThreshold {
				out = append(out, fmt.Sprintf("RECOVERED %d", e.Threshold))
			} else {
				out = append(out, fmt.Sprintf("RECOVERED %s", e.Level))
			}
		case StatusChanged:
			out = append(out, fmt.Sprintf("%s %s->%s", e.Kind, e.PreviousStatus, e.Status))
		}
	}
	return strings.Join(out, ", ")
}

func TestEvaluate(t *testing.T) {
	def := Rules{Percent: DefaultPercent, Available: []money.Amount{}}
	levels := Rules{Percent: []int{50, 80}, Available: []money.Amount{units(30), units(10)}}
	for _, c := range []struct {
		name          string
		rules         Rules
		fired         string
		before, after State
		want          string
		firedAfter    string
	}{
		{"below every level", def, "", state(100, 0), state(100, 74), "", ""},
		{"crosses 75 exactly", def, "", state(100, 74), state(100, 75), "USAGE_THRESHOLD 75", "p75"},
		{"stays past 75: nothing again", def, "p75", state(100, 75), state(100, 89), "", "p75"},
		{"jumps over all three, lowest first, then the status", def, "", state(100, 10), state(100, 120),
			"USAGE_THRESHOLD 75, USAGE_THRESHOLD 90, USAGE_THRESHOLD 100, STATUS_CHANGED ACTIVE->SUSPENDED", "p75,p90,p100"},
		{"new credit: recoveries highest first, then the status", def, "p75,p90,p100", state(100, 100), state(200, 100),
			"RECOVERED 100, RECOVERED 90, RECOVERED 75, STATUS_CHANGED SUSPENDED->ACTIVE", ""},
		{"partial recovery keeps the lower level fired", def, "p75,p90", state(100, 92), state(110, 92), "RECOVERED 90", "p75"},
		{"re-armed level fires again", def, "", state(110, 80), state(110, 85), "USAGE_THRESHOLD 75", "p75"},
		{"level added while past: no alert, no recovery", def, "", state(100, 80), state(200, 80), "", ""},
		{"fired level no longer in the rules is dropped", Rules{Percent: []int{90}}, "p75", state(100, 80), state(100, 81), "", ""},
		{"available levels fire highest first", levels, "", state(100, 60), state(100, 95),
			"USAGE_THRESHOLD 80, AVAILABLE_BELOW 30.00, AVAILABLE_BELOW 10.00", "p80,a3000,a1000"},
		{"available at exactly the level fires", levels, "p50", state(100, 69), state(100, 70), "AVAILABLE_BELOW 30.00", "p50,a3000"},
		{"available recovers lowest first", levels, "p50,p80,a3000,a1000", state(100, 95), state(150, 95),
			"RECOVERED 80, RECOVERED 10.00, RECOVERED 30.00", "p50"},
		{"status change alone", def, "", State{Balance: credit.Balance{}, Status: credit.StatusSuspended},
			State{Balance: credit.Balance{}, Status: credit.StatusPurchasesBlocked}, "STATUS_CHANGED SUSPENDED->PURCHASES_BLOCKED", ""},
		{"credit taken back crosses levels too", def, "", state(100, 70), state(80, 70), "USAGE_THRESHOLD 75", "p75"},
	} {
		t.Run(c.name, func(t *testing.T) {
			events, fired := Evaluate(c.rules, DecodeFired(c.fired), c.before, c.after)
			if got := describe(events); got != c.want {
				t.Errorf("events %q, want %q", got, c.want)
			}
			if got := fired.Encode(); got != c.firedAfter {
				t.Errorf("fired %q, want %q", got, c.firedAfter)
			}
		})
	}
}

// Through a sequence of changes each crossing raises one alert and each
// recovery of a fired level one RECOVERED, and fired state always says which
// levels the customer is past and was alerted of.
func TestEvaluateSequence(t *testing.T) {
	r := Rules{Percent: DefaultPercent, Available: []money.Amount{units(5)}}
	var fired Fired
	cur := state(100, 0)
	var all []string
	for _, next := range []State{state(100, 76), state(100, 96), state(100, 101), state(150, 101), state(150, 140), state(300, 140)} {
		var events []Event
		events, fired = Evaluate(r, fired, cur, next)
		all = append(all, describe(events))
		cur = next
	}
	want := []string{
		"USAGE_THRESHOLD 75",
		"USAGE_THRESHOLD 90, AVAILABLE_BELOW 5.00",
		"USAGE_THRESHOLD 100, STATUS_CHANGED ACTIVE->SUSPENDED",
		"RECOVERED 100, RECOVERED 90, RECOVERED 75, RECOVERED 5.00, STATUS_CHANGED SUSPENDED->ACTIVE",
		"USAGE_THRESHOLD 75, USAGE_THRESHOLD 90",
		"RECOVERED 90, RECOVERED 75",
	}
	if !slices.Equal(all, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(all, "\n"), strings.Join(want, "\n"))
	}
}

func TestFiredRoundTrip(t *testing.T) {
	f := Fired{Percent: []int{75, 90}, Available: []money.Amount{50000, 0}}
	if got := DecodeFired(f.Encode()); !slices.Equal(got.Percent, f.Percent) || !slices.Equal(got.Available, f.Available) {
		t.Fatalf("%q decoded to %+v", f.Encode(), got)
	}
	if got := DecodeFired("p75,x9,,a12,p"); !slices.Equal(got.Percent, []int{75}) || !slices.Equal(got.Available, []money.Amount{12}) {
		t.Fatalf("unknown parts not skipped: %+v", got)
	}
}

func TestEffective(t *testing.T) {
	platform := &Set{Percent: []int{80}}
	partner := &Set{Available: []money.Amount{units(100)}}
	customer := &Set{Percent: []int{50, 60}}
	for _, c := range []struct {
		name                  string
		platform, partner, cu *Set
		want                  string
	}{
		{"nothing set", nil, nil, nil, "[75 90 100] DEFAULT [] DEFAULT"},
		{"platform", platform, nil, nil, "[80] PLATFORM [] DEFAULT"},
		{"partner over platform, field by field", platform, partner, nil, "[80] PLATFORM [100.00] PARTNER"},
		{"customer over all", platform, partner, customer, "[50 60] CUSTOMER [100.00] PARTNER"},
		{"an empty available list is a rule: none", nil, &Set{Available: []money.Amount{}}, nil, "[75 90 100] DEFAULT [] PARTNER"},
	} {
		r, src := Effective(c.platform, c.partner, c.cu)
		if got := fmt.Sprint(r.Percent, " ", src.Percent, " ", r.Available, " ", src.Available); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestCheckLevels(t *testing.T) {
	if got, err := CheckPercent("percentThresholds", []int{90, 75, 90, 100}); err != nil || !slices.Equal(got, []int{75, 90, 100}) {
		t.Fatalf("sorted and deduplicated: %v %v", got, err)
	}
	for _, bad := range [][]int{nil, {}, {0}, {101}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}} {
		if _, err := CheckPercent("percentThresholds", bad); err == nil || !strings.Contains(err.Error(), "percentThresholds") {
			t.Errorf("%v: %v", bad, err)
		}
	}
	if got, err := CheckAvailable("availableBelow", []money.Amount{100, 5000, 100}); err != nil || !slices.Equal(got, []money.Amount{5000, 100}) {
		t.Fatalf("sorted descending and deduplicated: %v %v", got, err)
	}
	if got, err := CheckAvailable("availableBelow", []money.Amount{}); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("no levels is a rule: %v %v", got, err)
	}
	for _, bad := range [][]money.Amount{{-1}, {1, 2, 3, 4, 5, 6}} {
		if _, err := CheckAvailable("availableBelow", bad); err == nil || !strings.Contains(err.Error(), "availableBelow") {
			t.Errorf("%v: %v", bad, err)
		}
	}
	s := DecodeSet(EncodePercent([]int{75, 90}), EncodeAvailable([]money.Amount{}))
	if !slices.Equal(s.Percent, []int{75, 90}) || s.Available == nil || len(s.Available) != 0 {
		t.Fatalf("round trip: %+v", s)
	}
	if s := DecodeSet(nil, nil); s.Percent != nil || s.Available != nil {
		t.Fatalf("unset fields stay unset: %+v", s)
	}
}
