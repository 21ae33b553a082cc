package model

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cloudreseller/credit/internal/errs"
)

// Every scalar input either parses to a value that writes back the same, or
// is refused with BAD_USER_INPUT: never another error, never a panic.

func badInput(t *testing.T, what string, in any, err error) {
	t.Helper()
	if errs.CodeOf(err) != errs.BadUserInput {
		t.Fatalf("%s(%q): error %v, want BAD_USER_INPUT", what, in, err)
	}
}

func FuzzUnmarshalDecimal(f *testing.F) {
	for _, s := range []string{"1250.00", "-0.01", "1000000000000", "1e3", "12.345", " 1", "0x10", "", "-", "١٢"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, asNumber bool) {
		var in any = s
		if asNumber {
			in = json.Number(s)
		}
		a, err := UnmarshalDecimal(in)
		if err != nil {
			badInput(t, "UnmarshalDecimal", in, err)
			return
		}
		var b strings.Builder
		MarshalDecimal(a).MarshalGQL(&b)
		back, err := UnmarshalDecimal(strings.Trim(b.String(), `"`))
		if err != nil || back != a {
			t.Fatalf("%q → %s → %d, %v", s, b.String(), back, err)
		}
	})
}

func FuzzUnmarshalTime(f *testing.F) {
	for _, s := range []string{"2026-01-31T12:00:00Z", "0000-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59.999999999Z",
		"2026-01-31T12:00:00+14:00", "2026-13-01T00:00:00Z", "yesterday", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := UnmarshalTime(s)
		if err != nil {
			badInput(t, "UnmarshalTime", s, err)
			return
		}
		if tm.Before(Earliest) || tm.After(Latest) || tm.Location() != time.UTC {
			t.Fatalf("UnmarshalTime(%q) = %v: outside the bounds or not UTC", s, tm)
		}
	})
}

func FuzzUnmarshalString(f *testing.F) {
	for _, s := range []string{"acme", "a\x00b", "\xff", strings.Repeat("x", MaxStringLength+1), "Straße"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := UnmarshalString(s)
		if err != nil {
			badInput(t, "UnmarshalString", s, err)
			return
		}
		if got != s || strings.ContainsRune(got, 0) || !utf8.ValidString(got) || utf8.RuneCountInString(got) > MaxStringLength {
			t.Fatalf("UnmarshalString(%q) accepted %q", s, got)
		}
	})
}

func FuzzUnmarshalID(f *testing.F) {
	for _, s := range []string{"1", "0", "-1", "18446744073709551616", "9223372036854775807", "1e3", " 1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := UnmarshalID(s)
		if err != nil {
			badInput(t, "UnmarshalID", s, err)
			return
		}
		var b strings.Builder
		MarshalID(id).MarshalGQL(&b)
		if back, err := UnmarshalID(strings.Trim(b.String(), `"`)); err != nil || back != id {
			t.Fatalf("%q → %s → %d, %v", s, b.String(), back, err)
		}
	})
}
