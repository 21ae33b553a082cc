package ledger

import (
	"testing"
	"time"
)

// An event's hour is the hour since 1970-01-01 UTC it falls in, whatever its
// zone, and the hour starts on it: the backfill (TIMESTAMPDIFF, strftime) and
// the window's ends (UsageBetween) rely on both.
func TestHourOf(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	for _, c := range []struct {
		at   time.Time
		want int64
	}{
		{time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), 0},
		{time.Date(1970, 1, 1, 0, 59, 59, 999999000, time.UTC), 0},
		{time.Date(1970, 1, 1, 1, 0, 0, 0, time.UTC), 1},
		{time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), -1},
		{time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), -1},
		{time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), 490920},
		{time.Date(2026, 1, 2, 1, 30, 0, 0, paris), 490920},
	} {
		if got := hourOf(c.at); got != c.want {
			t.Errorf("hourOf(%v) = %d, want %d", c.at, got, c.want)
		}
		if start := startOf(c.want); start.After(c.at) || !c.at.Before(start.Add(time.Hour)) {
			t.Errorf("hour %d starts at %v: %v is not in it", c.want, start, c.at)
		}
	}
}
