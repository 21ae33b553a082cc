package delivery

import (
	"testing"
	"time"
)

// The budget paces attempts to MaxRate after its burst, and a shutdown ends
// the wait: what a worker holds is attempted, not left to its lease.
func TestPaceKeepsToTheRateUntilShutdown(t *testing.T) {
	s := New(nil, Options{MaxRate: 10}, nil)
	running := make(chan struct{})
	s.pace(running, DefaultPerTarget) // the burst: no wait
	if s.Paced() != 0 {
		t.Fatalf("the burst waited %v", s.Paced())
	}
	start := time.Now()
	s.pace(running, 2) // 2 attempts at 10 a second
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Fatalf("2 attempts past the burst went after %v, want about 200ms", waited)
	}
	if p := s.Paced(); p < 150*time.Millisecond || p > 250*time.Millisecond {
		t.Fatalf("Paced() = %v, want about 200ms", p)
	}
	stopped := make(chan struct{})
	close(stopped)
	start = time.Now()
	s.pace(stopped, DefaultPerTarget) // half a second's budget, at shutdown
	if waited := time.Since(start); waited > 100*time.Millisecond {
		t.Fatalf("at shutdown an attempt waited %v for the budget", waited)
	}
}
