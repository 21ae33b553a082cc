package rules

import (
	"fmt"
	"testing"
	"time"

	"github.com/cloudreseller/credit/internal/money"
)

func TestPredict(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	show := func(f Forecast) string {
		s := fmt.Sprintf("based on %dh", f.BasedOnHours)
		if f.BurnRatePerDay != nil {
			s += ", " + f.BurnRatePerDay.String() + "/day"
		}
		if f.DaysLeftHundredths != nil {
			s += fmt.Sprintf(", %.2f days", *f.DaysLeft())
		}
		if f.DepletesAt != nil {
			s += ", at " + f.DepletesAt.Format(time.RFC3339)
		}
		return s
	}
	for _, c := range []struct {
		name      string
		usage     Usage
		available money.Amount
		want      string
	}{
		{"no usage ever", Usage{}, 10000, "based on 0h"},
		{"under a day of history: too sparse", Usage{InWindow: 5000, First: ago(23 * time.Hour)}, 10000, "based on 23h"},
		{"exactly a day", Usage{InWindow: 5000, First: ago(24 * time.Hour)}, 10000,
			"based on 24h, 50.00/day, 2.00 days, at 2026-11-27T12:00:00Z"},
		{"the window caps the history", Usage{InWindow: 70000, First: ago(30 * 24 * time.Hour)}, 25000,
			"based on 168h, 100.00/day, 2.50 days, at 2026-11-28T00:00:00Z"},
		{"no usage in the window: no depletion", Usage{InWindow: 0, First: ago(30 * 24 * time.Hour)}, 25000, "based on 168h, 0.00/day"},
		{"nothing left", Usage{InWindow: 7000, First: ago(48 * time.Hour)}, 0,
			"based on 48h, 35.00/day, 0.00 days, at 2026-11-25T12:00:00Z"},
		{"rounding: down to the minor unit and the hundredth of a day", Usage{InWindow: 100, First: ago(72 * time.Hour)}, 100,
			"based on 72h, 0.33/day, 3.00 days, at 2026-11-28T12:00:00Z"},
		{"exact to the second, no floats", Usage{InWindow: 3, First: ago(25 * time.Hour)}, 1,
			"based on 25h, 0.02/day, 0.34 days, at 2026-11-25T20:20:00Z"},
		{"huge credit, tiny rate: capped far away", Usage{InWindow: 1, First: ago(7 * 24 * time.Hour)}, money.Amount(100_000_000_000_000),
			"based on 168h, 0.00/day, 700000000000000.00 days, at 9999-12-31T23:59:59Z"},
	} {
		if got := show(Predict(c.usage, c.available, now, DefaultWindow)); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

func TestDecideForecast(t *testing.T) {
	days := func(hundredths int64) Forecast {
		r := money.Amount(100)
		return Forecast{BurnRatePerDay: &r, DaysLeftHundredths: &hundredths}
	}
	zero := money.Amount(0)
	for _, c := range []struct {
		name    string
		horizon int
		prev    string
		f       Forecast
		raise   bool
		next    string
	}{
		{"first evaluation within the horizon raises", 72, "", days(250), true, "w72"},
		{"first evaluation outside: armed", 72, "", days(350), false, "o72"},
		{"exactly at the horizon is within", 72, "o72", days(300), true, "w72"},
		{"still within: once", 72, "w72", days(100), false, "w72"},
		{"back outside: re-armed", 72, "w72", days(301), false, "o72"},
		{"the horizon changed while within: no alert", 240, "o72", days(500), false, "w240"},
		{"the horizon changed while outside", 24, "w72", days(200), false, "o24"},
		{"too sparse to tell: state kept", 72, "w72", Forecast{BasedOnHours: 5}, false, "w72"},
		{"no usage in the window: outside", 72, "w72", Forecast{BasedOnHours: 168, BurnRatePerDay: &zero}, false, "o72"},
		{"nothing left", 72, "o72", days(0), true, "w72"},
	} {
		raise, next := DecideForecast(c.horizon, DecodeForecastState(c.prev), c.f)
		if raise != c.raise || next.Encode() != c.next {
			t.Errorf("%s: raise %v, next %q; want %v, %q", c.name, raise, next.Encode(), c.raise, c.next)
		}
	}
	if s := DecodeForecastState("x1"); s != (ForecastState{}) {
		t.Errorf("unknown state read as %+v", s)
	}
}
