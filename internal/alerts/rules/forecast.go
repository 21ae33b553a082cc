package rules

import (
	"math/big"
	"strconv"
	"time"

	"github.com/cloudreseller/credit/internal/money"
)

// The depletion forecast, written down:
//
//   - The burn rate is the usage that occurred within the trailing window
//     (DefaultWindow) divided by the history it covers: the window, or less
//     when the customer's first usage is more recent. Under MinHistory of
//     history the rate is not told (too sparse to tell).
//   - Days left are available credit divided by that rate, rounded down to
//     hundredths of a day; credit runs out at now plus that time (exactly, to
//     the second). No usage in the window: a rate of zero, and no depletion.
//   - Money stays in integer minor units: the arithmetic is exact (big
//     integers), and only the days left are shown as a decimal number.

// Forecast defaults.
const (
	DefaultWindow = 7 * 24 * time.Hour
	MinHistory    = 24 * time.Hour
)

// Usage is what the forecast reads of a customer's usage.
type Usage struct {
	// InWindow is the usage that occurred within the window.
	InWindow money.Amount
	// First is when the customer's first usage occurred (zero: never).
	First time.Time
}

// Forecast tells when a customer's available credit runs out at its current
// burn rate.
type Forecast struct {
	// BasedOnHours is the history the rate is based on, in whole hours, at
	// most the window.
	BasedOnHours int
	// BurnRatePerDay is nil under MinHistory of history (rounded down to the
	// minor unit).
	BurnRatePerDay *money.Amount
	// DepletesAt and DaysLeftHundredths are nil when the rate is unknown or
	// zero.
	DepletesAt         *time.Time
	DaysLeftHundredths *int64
}

// DaysLeft is DaysLeftHundredths as a number of days, or nil.
func (f Forecast) DaysLeft() *float64 {
	if f.DaysLeftHundredths == nil {
		return nil
	}
	d := float64(*f.DaysLeftHundredths) / 100
	return &d
}

// latest caps a depletion time (a tiny rate over a large credit).
var latest = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// Predict forecasts depletion from the usage, the available credit now and the
// window.
func Predict(u Usage, available money.Amount, now time.Time, window time.Duration) Forecast {
	if u.First.IsZero() || !u.First.Before(now) {
		return Forecast{}
	}
	span := min(now.Sub(u.First), window)
	f := Forecast{BasedOnHours: int(span / time.Hour)}
	if span < MinHistory {
		return f
	}
	seconds := big.NewInt(int64(span / time.Second))
	day := big.NewInt(int64(24 * time.Hour / time.Second))
	used := big.NewInt(int64(u.InWindow))
	// rate per day = used × day / span
	rate := new(big.Int).Quo(new(big.Int).Mul(used, day), seconds)
	r := money.Amount(rate.Int64())
	f.BurnRatePerDay = &r
	if u.InWindow <= 0 {
		return f
	}
	avail := big.NewInt(int64(max(available, 0)))
	// days left = available × span / (used × day), in hundredths
	hundredths := new(big.Int).Quo(new(big.Int).Mul(new(big.Int).Mul(avail, seconds), big.NewInt(100)), new(big.Int).Mul(used, day))
	h := hundredths.Int64()
	f.DaysLeftHundredths = &h
	// seconds left = available × span / used
	left := new(big.Int).Quo(new(big.Int).Mul(avail, seconds), used)
	at := latest
	if left.IsInt64() && left.Int64() < int64(latest.Sub(now)/time.Second) {
		at = now.Add(time.Duration(left.Int64()) * time.Second)
	}
	f.DepletesAt = &at
	return f
}

// The depletion alert, written down:
//
//   - DEPLETION_FORECAST is raised when the days left fall to or below the
//     horizon: from above it (or from unknown, as for a customer whose
//     history just reached a day, or whose credit was just added), once.
//   - It re-arms when the days left rise above the horizon again, or when
//     credit is added (the ledger clears the state).
//   - A horizon changed while the customer is within it does not raise: the
//     state remembers the horizon it was taken under, and a state of another
//     horizon is re-based without an alert (armed from the current state).
//   - A rate that cannot be told (under a day of history) leaves the state as
//     it is; a rate of zero is above every horizon.

// ForecastState is what a customer's forecast said at its last evaluation, and
// under which horizon. The zero state is unknown (never evaluated, or re-armed
// by new credit).
type ForecastState struct {
	Within       bool
	HorizonHours int
}

// Encode writes the state as stored with the customer: "" (unknown),
// "w72" (within a horizon of 72 hours), "o72" (outside it).
func (s ForecastState) Encode() string {
	if s.HorizonHours == 0 {
		return ""
	}
	mark := "o"
	if s.Within {
		mark = "w"
	}
	return mark + strconv.Itoa(s.HorizonHours)
}

// DecodeForecastState reads what Encode wrote (unknown for anything else).
func DecodeForecastState(s string) ForecastState {
	if len(s) < 2 || (s[0] != 'w' && s[0] != 'o') {
		return ForecastState{}
	}
	h, err := strconv.Atoi(s[1:])
	if err != nil || h <= 0 {
		return ForecastState{}
	}
	return ForecastState{Within: s[0] == 'w', HorizonHours: h}
}

// DecideForecast tells whether forecast f raises DEPLETION_FORECAST for a
// customer whose last state was prev, under a horizon of horizonHours, and
// returns the state to keep.
func DecideForecast(horizonHours int, prev ForecastState, f Forecast) (raise bool, next ForecastState) {
	var within bool
	switch {
	case f.BurnRatePerDay == nil:
		return false, prev // too sparse to tell
	case f.DaysLeftHundredths != nil:
		// days × 24 ≤ hours, in hundredths of a day
		within = *f.DaysLeftHundredths*24 <= int64(horizonHours)*100
	}
	next = ForecastState{Within: within, HorizonHours: horizonHours}
	switch {
	case prev.HorizonHours == 0:
		return within, next
	case prev.HorizonHours != horizonHours:
		return false, next // the rule changed: armed from where the customer is
	}
	return within && !prev.Within, next
}
