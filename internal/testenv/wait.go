package testenv

import "time"

// Eventually tells whether cond holds, asked every 20 ms, before d has passed.
// It leaves the failure to the caller, so that the test says what was not met
// and with what it last saw.
func Eventually(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}
