// Package money holds exact amounts of money.
//
// Amounts are integers of minor units (cents): every currency the service deals in
// has two decimals, and integers make every sum exact. Nothing here ever goes
// through a float.
package money

import (
	"errors"
	"strconv"
	"strings"
)

// Amount is an exact amount in minor units (hundredths of the currency unit).
type Amount int64

// MaxInput is the largest magnitude accepted from a client: 1,000,000,000,000.00.
const MaxInput Amount = 1_000_000_000_000 * 100

// ErrInvalid reports text that is not an amount this service accepts.
var ErrInvalid = errors.New("not a valid amount")

// Parse reads an amount written as an optional minus sign, digits, and
// optionally a point followed by one or two digits ("12", "-0.5", "1250.00").
// Anything else (exponents, spaces, a plus sign, more than two decimals, a
// magnitude above MaxInput) is ErrInvalid.
func Parse(s string) (Amount, error) {
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	whole, frac, hasPoint := strings.Cut(s, ".")
	if whole == "" || !digitsOnly(whole) || len(whole) > 13 {
		return 0, ErrInvalid
	}
	if hasPoint && (frac == "" || len(frac) > 2 || !digitsOnly(frac)) {
		return 0, ErrInvalid
	}
	units, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, ErrInvalid
	}
	cents := int64(0)
	if frac != "" {
		cents, _ = strconv.ParseInt((frac + "0")[:2], 10, 64)
	}
	a := Amount(units*100 + cents)
	if a > MaxInput {
		return 0, ErrInvalid
	}
	if neg {
		a = -a
	}
	return a, nil
}

// FromUnits returns an amount of whole currency units, such as 12 for "12.00".
func FromUnits(units int64) (Amount, error) {
	if units > int64(MaxInput/100) || units < -int64(MaxInput/100) {
		return 0, ErrInvalid
	}
	return Amount(units * 100), nil
}

// String writes the amount with exactly two decimals: "1250.00", "-0.50".
func (a Amount) String() string {
	sign := ""
	u := uint64(a)
	if a < 0 {
		sign = "-"
		u = uint64(-a)
	}
	cents := u % 100
	return sign + strconv.FormatUint(u/100, 10) + "." + string(rune('0'+cents/10)) + string(rune('0'+cents%10))
}

// Abs returns the magnitude of a.
func (a Amount) Abs() Amount {
	if a < 0 {
		return -a
	}
	return a
}

func digitsOnly(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
