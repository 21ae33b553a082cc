// Package model holds the GraphQL-only types: scalars and the types gqlgen
// generates for inputs, payloads and connections.
package model

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"

	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/money"
)

// MarshalDecimal writes an amount as a JSON string with two decimals.
func MarshalDecimal(a money.Amount) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		io.WriteString(w, strconv.Quote(a.String()))
	})
}

// UnmarshalDecimal reads an amount from a string or an integer. Floats are
// refused even when they look whole: a float has already lost exactness.
func UnmarshalDecimal(v any) (money.Amount, error) {
	bad := errs.E(errs.BadUserInput,
		"a Decimal is a string or an integer with at most two decimals and a magnitude of at most 1000000000000, such as \"1250.00\"")
	switch v := v.(type) {
	case string:
		a, err := money.Parse(v)
		if err != nil {
			return 0, bad
		}
		return a, nil
	case json.Number:
		i, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return 0, bad
		}
		return fromUnits(i, bad)
	case int64:
		return fromUnits(v, bad)
	case int:
		return fromUnits(int64(v), bad)
	}
	return 0, bad
}

func fromUnits(i int64, bad error) (money.Amount, error) {
	a, err := money.FromUnits(i)
	if err != nil {
		return 0, bad
	}
	return a, nil
}

// MarshalID writes a numeric id as a GraphQL ID (a string).
func MarshalID(id uint) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		io.WriteString(w, strconv.Quote(strconv.FormatUint(uint64(id), 10)))
	})
}

// UnmarshalID reads an id given as a string or an integer.
func UnmarshalID(v any) (uint, error) {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case json.Number:
		s = string(v)
	case int64:
		s = strconv.FormatInt(v, 10)
	case int:
		s = strconv.Itoa(v)
	default:
		return 0, errs.E(errs.BadUserInput, "an ID is a string of digits")
	}
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id > uint64(^uint(0)>>1) {
		return 0, errs.E(errs.BadUserInput, "%q is not an ID", s)
	}
	return uint(id), nil
}

// MarshalTime writes an instant in RFC 3339, in UTC.
func MarshalTime(t time.Time) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		io.WriteString(w, strconv.Quote(t.UTC().Format(time.RFC3339Nano)))
	})
}

// Earliest and Latest bound Time input: what both stores hold and sort exactly.
var (
	Earliest = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	Latest   = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// UnmarshalTime reads an RFC 3339 instant between 1970 and 9999.
func UnmarshalTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, errs.E(errs.BadUserInput, "a Time is an RFC 3339 string such as \"2026-01-31T12:00:00Z\"")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errs.E(errs.BadUserInput, "a Time is an RFC 3339 string such as \"2026-01-31T12:00:00Z\"")
	}
	if t = t.UTC(); t.Before(Earliest) || t.After(Latest) {
		return time.Time{}, errs.E(errs.BadUserInput, "a Time must lie in the years 1970 to 9999")
	}
	return t, nil
}

// MaxStringLength bounds every String input; fields have tighter limits of
// their own.
const MaxStringLength = 10000

// MarshalString writes a String.
func MarshalString(s string) graphql.Marshaler { return graphql.MarshalString(s) }

// UnmarshalString reads a String input. A NUL character is refused: it is no
// text a person types, and a store may treat it as the end of a string or a
// wildcard.
func UnmarshalString(v any) (string, error) {
	s, ok := v.(string)
	switch {
	case !ok:
		return "", errs.E(errs.BadUserInput, "expected a string")
	case strings.ContainsRune(s, 0):
		return "", errs.E(errs.BadUserInput, "text must not contain NUL characters (\\u0000)")
	case !utf8.ValidString(s):
		return "", errs.E(errs.BadUserInput, "text must be valid UTF-8")
	case utf8.RuneCountInString(s) > MaxStringLength:
		return "", errs.E(errs.BadUserInput, "text must be at most %d characters", MaxStringLength)
	}
	return s, nil
}
