package rules

import (
	"slices"
	"strconv"
	"strings"

	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/money"
)

// Source is where a rule in force comes from.
type Source string

// The sources of rules, from the most general.
const (
	FromDefault  Source = "DEFAULT"
	FromPlatform Source = "PLATFORM"
	FromPartner  Source = "PARTNER"
	FromCustomer Source = "CUSTOMER"
)

// Set is the rule set at one scope (the platform, a partner, a customer): a
// nil field is not set there, and inherits from the scope above.
type Set struct {
	Percent   []int
	Available []money.Amount // empty but not nil: no levels
	// HorizonHours is the forecast horizon: a DEPLETION_FORECAST alert when
	// credit runs out within it.
	HorizonHours *int
}

// Sources say where each rule in force comes from.
type Sources struct {
	Percent, Available, Horizon Source
}

// Effective merges the scopes, the most specific first: a customer's rule over
// its partner's over the platform's over the defaults. A nil scope has none.
func Effective(platform, partner, customer *Set) (Rules, Sources) {
	r := Rules{Percent: DefaultPercent, Available: []money.Amount{}, HorizonHours: DefaultHorizonHours}
	src := Sources{Percent: FromDefault, Available: FromDefault, Horizon: FromDefault}
	for _, s := range []struct {
		set *Set
		src Source
	}{{platform, FromPlatform}, {partner, FromPartner}, {customer, FromCustomer}} {
		if s.set == nil {
			continue
		}
		if s.set.Percent != nil {
			r.Percent, src.Percent = s.set.Percent, s.src
		}
		if s.set.Available != nil {
			r.Available, src.Available = s.set.Available, s.src
		}
		if s.set.HorizonHours != nil {
			r.HorizonHours, src.Horizon = *s.set.HorizonHours, s.src
		}
	}
	return r, src
}

// Forecast horizons, in hours.
const (
	DefaultHorizonHours = 72
	MaxHorizonHours     = 90 * 24
)

// CheckHorizon validates a forecast horizon given as field: 1 hour to 90
// days.
func CheckHorizon(field string, hours int) error {
	if hours < 1 || hours > MaxHorizonHours {
		return errs.E(errs.BadUserInput, "%s must be from 1 to %d hours, not %d", field, MaxHorizonHours, hours)
	}
	return nil
}

// CheckPercent validates percent levels given as field: 1 to
// MaxPercentLevels levels of 1..100. It returns them ascending, without
// repeats.
func CheckPercent(field string, levels []int) ([]int, error) {
	if len(levels) == 0 || len(levels) > MaxPercentLevels {
		return nil, errs.E(errs.BadUserInput, "%s must hold 1 to %d levels", field, MaxPercentLevels)
	}
	for i, l := range levels {
		if l < 1 || l > 100 {
			return nil, errs.E(errs.BadUserInput, "%s[%d] must be a percentage from 1 to 100, not %d", field, i, l)
		}
	}
	out := slices.Clone(levels)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// CheckAvailable validates available levels given as field: at most
// MaxAvailableLevels amounts of zero or more. It returns them descending,
// without repeats.
func CheckAvailable(field string, levels []money.Amount) ([]money.Amount, error) {
	if len(levels) > MaxAvailableLevels {
		return nil, errs.E(errs.BadUserInput, "%s must hold at most %d levels", field, MaxAvailableLevels)
	}
	for i, x := range levels {
		if x < 0 {
			return nil, errs.E(errs.BadUserInput, "%s[%d] must not be negative", field, i)
		}
	}
	out := slices.Clone(levels)
	slices.Sort(out)
	slices.Reverse(out)
	return slices.Compact(out), nil
}

// EncodePercent and EncodeAvailable write levels as the store keeps them
// ("75,90,100"; available levels in minor units); nil stays nil (not set).
func EncodePercent(levels []int) *string {
	if levels == nil {
		return nil
	}
	parts := make([]string, len(levels))
	for i, l := range levels {
		parts[i] = strconv.Itoa(l)
	}
	s := strings.Join(parts, ",")
	return &s
}

// EncodeAvailable: see EncodePercent.
func EncodeAvailable(levels []money.Amount) *string {
	if levels == nil {
		return nil
	}
	parts := make([]string, len(levels))
	for i, x := range levels {
		parts[i] = strconv.FormatInt(int64(x), 10)
	}
	s := strings.Join(parts, ",")
	return &s
}

// DecodeSet reads a scope's rule set as the store keeps it.
func DecodeSet(percent, available *string) Set {
	var s Set
	if percent != nil {
		s.Percent = []int{}
		for _, n := range numbers(*percent) {
			s.Percent = append(s.Percent, int(n))
		}
	}
	if available != nil {
		s.Available = []money.Amount{}
		for _, n := range numbers(*available) {
			s.Available = append(s.Available, money.Amount(n))
		}
	}
	return s
}

func numbers(s string) []int64 {
	var out []int64
	for part := range strings.SplitSeq(s, ",") {
		if n, err := strconv.ParseInt(part, 10, 64); err == nil {
			out = append(out, n)
		}
	}
	return out
}
