package delivery

import (
	"sync/atomic"
	"testing"
	"time"
)

// Wait returns only once every job handed has run, whether it ran on a new
// worker or on one kept from an earlier job.
func TestWorkersWaitForEveryJob(t *testing.T) {
	w := newWorkers()
	var ran atomic.Int32
	release := make(chan struct{})
	for range 50 {
		w.Go(func() { <-release; ran.Add(1) })
	}
	waited := make(chan struct{})
	go func() { w.Wait(); close(waited) }()
	select {
	case <-waited:
		t.Fatal("Wait returned while jobs were still running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-waited
	// A second wave runs on the workers the first left idle.
	for range 50 {
		w.Go(func() { ran.Add(1) })
	}
	w.Wait()
	w.Close()
	if got := ran.Load(); got != 100 {
		t.Fatalf("%d jobs ran, want 100", got)
	}
}
