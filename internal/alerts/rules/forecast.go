package rules

import (
	"math/big"
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
