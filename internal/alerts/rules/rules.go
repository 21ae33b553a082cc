// Package rules decides which alerts a change of a customer raises, under the
// alert rules in force for it. It is pure: no store, no clock; the callers
// (the ledger's transactions, account changes) give it the customer's state
// before and after a change and persist what it returns.
//
// The rules, written down:
//
//   - A percent level L (1..100) fires USAGE_THRESHOLD when a change takes
//     usage from below L % of credit to at or above it. Several levels crossed
//     at once fire lowest first. A level is crossed again (fires again) after
//     usage has fallen back below it.
//   - An available level X fires AVAILABLE_BELOW when a change takes
//     available credit from above X to at or below it; several fire highest
//     first (the order available credit passes them).
//   - A level that fired and is then left the other way (usage falls below
//     L, available rises above X) raises one RECOVERED naming that level. A
//     level that did not fire (it was added while already past) does not
//     recover: partners hear of recovery only from what they were alerted of.
//   - A change of status (ACTIVE, PURCHASES_BLOCKED, SUSPENDED) raises
//     STATUS_CHANGED, whatever caused it.
//   - Within one change: recoveries first, then crossings, then the status
//     change, so that a listener reads them in the order they happened.
//   - Rules changed while a customer is past a level do not fire it: crossing
//     needs a change from one side to the other, so a new rule is armed from
//     the customer's current state.
package rules

import (
	"slices"
	"strconv"
	"strings"

	"github.com/cloudreseller/credit/internal/credit"
	"github.com/cloudreseller/credit/internal/money"
)

// Kind is what an alert says.
type Kind string

// The kinds of alerts.
const (
	UsageThreshold    Kind = "USAGE_THRESHOLD"
	AvailableBelow    Kind = "AVAILABLE_BELOW"
	StatusChanged     Kind = "STATUS_CHANGED"
	Recovered         Kind = "RECOVERED"
	DepletionForecast Kind = "DEPLETION_FORECAST"
)

// Cause is what made the change that raised an alert.
type Cause string

// The causes of alerts.
const (
	CauseUsage           Cause = "USAGE"
	CauseCreditChange    Cause = "CREDIT_CHANGE"
	CausePrivilegeChange Cause = "PRIVILEGE_CHANGE"
	CauseRuleChange      Cause = "RULE_CHANGE"
	CauseForecastTick    Cause = "FORECAST_TICK"
)

// DefaultPercent are the percent levels in force where no rule says
// otherwise.
var DefaultPercent = []int{75, 90, 100}

// Limits on a rule.
const (
	MaxPercentLevels   = 10
	MaxAvailableLevels = 5
)

// Rules are the levels in force for one customer.
type Rules struct {
	// Percent levels, ascending, 1..100.
	Percent []int
	// Available levels, descending, zero or more.
	Available []money.Amount
	// HorizonHours: DEPLETION_FORECAST when credit runs out within it.
	HorizonHours int
}

// Fired are the levels that raised an alert and have not recovered since.
type Fired struct {
	Percent   []int
	Available []money.Amount
}

// State is what the rules look at of a customer.
type State struct {
	Balance credit.Balance
	Status  credit.Status
}

// Event is one alert to raise.
type Event struct {
	Kind Kind
	// Threshold is the percent level of USAGE_THRESHOLD, and of RECOVERED
	// when a percent level recovered; 0 otherwise.
	Threshold int
	// Level is the available level of AVAILABLE_BELOW, and of RECOVERED when
	// an available level recovered.
	Level *money.Amount
	// RecoveredKind is the kind of the level that recovered (RECOVERED).
	RecoveredKind Kind
	// Status and PreviousStatus are the status after and before the change
	// (STATUS_CHANGED).
	Status, PreviousStatus credit.Status
}

// Evaluate returns the alerts a change from before to after raises under the
// rules, in the order they are to be raised, and the fired levels after it.
// Fired levels no longer in the rules are dropped.
func Evaluate(r Rules, fired Fired, before, after State) ([]Event, Fired) {
	var events []Event
	b, a := before.Balance.UsageBasisPoints(), after.Balance.UsageBasisPoints()
	ba, aa := before.Balance.Available(), after.Balance.Available()
	next := Fired{}
	// Recoveries: usage falls below a fired percent level (highest first, as
	// usage falls), available rises above a fired level (lowest first).
	for _, l := range slices.Backward(r.Percent) {
		if slices.Contains(fired.Percent, l) && b >= bp(l) && a < bp(l) {
			events = append(events, Event{Kind: Recovered, RecoveredKind: UsageThreshold, Threshold: l})
		}
	}
	for _, x := range slices.Backward(r.Available) {
		if slices.Contains(fired.Available, x) && ba <= x && aa > x {
			events = append(events, Event{Kind: Recovered, RecoveredKind: AvailableBelow, Level: ptr(x)})
		}
	}
	for _, l := range r.Percent {
		switch {
		case b < bp(l) && a >= bp(l):
			events = append(events, Event{Kind: UsageThreshold, Threshold: l})
			next.Percent = append(next.Percent, l)
		case a >= bp(l) && slices.Contains(fired.Percent, l):
			next.Percent = append(next.Percent, l) // still past, still fired
		}
	}
	for _, x := range r.Available {
		switch {
		case ba > x && aa <= x:
			events = append(events, Event{Kind: AvailableBelow, Level: ptr(x)})
			next.Available = append(next.Available, x)
		case aa <= x && slices.Contains(fired.Available, x):
			next.Available = append(next.Available, x)
		}
	}
	if before.Status != after.Status && before.Status != "" {
		events = append(events, Event{Kind: StatusChanged, Status: after.Status, PreviousStatus: before.Status})
	}
	return events, next
}

func bp(percent int) int64 { return int64(percent) * 100 }

func ptr[T any](v T) *T { return &v }

// Encode writes fired levels as stored with the customer: "p75,p90,a50000"
// (percent levels, and available levels in minor units); "" when none.
func (f Fired) Encode() string {
	var parts []string
	for _, l := range f.Percent {
		parts = append(parts, "p"+strconv.Itoa(l))
	}
	for _, x := range f.Available {
		parts = append(parts, "a"+strconv.FormatInt(int64(x), 10))
	}
	return strings.Join(parts, ",")
}

// DecodeFired reads what Encode wrote; it skips what it does not know, so a
// store written by a newer build does not stop an older one.
func DecodeFired(s string) Fired {
	var f Fired
	for part := range strings.SplitSeq(s, ",") {
		if len(part) < 2 {
			continue
		}
		n, err := strconv.ParseInt(part[1:], 10, 64)
		if err != nil {
			continue
		}
		switch part[0] {
		case 'p':
			f.Percent = append(f.Percent, int(n))
		case 'a':
			f.Available = append(f.Available, money.Amount(n))
		}
	}
	return f
}
