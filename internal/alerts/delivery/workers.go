package delivery

import (
	"sync"
	"time"
)

// workers runs jobs on goroutines kept between jobs. A goroutine starts with
// a small stack, and an attempt (an HTTP client's calls go deep) grew it by
// copying, twice or more, on every new one: 7 % of the server's CPU while
// delivering 550 webhooks a second. A worker waits workerIdle for its next
// job before it ends.
type workers struct {
	jobs chan func()
	quit chan struct{}  // closed: idle workers end
	wg   sync.WaitGroup // jobs handed and not done
}

// workerIdle is how long a worker waits for a job before it ends.
const workerIdle = 10 * time.Second

func newWorkers() *workers { return &workers{jobs: make(chan func()), quit: make(chan struct{})} }

// Go runs job on an idle worker, or on a new one if none is idle.
func (w *workers) Go(job func()) {
	w.wg.Add(1)
	select {
	case w.jobs <- job:
	default:
		go w.work(job)
	}
}

// Wait waits for every job handed so far.
func (w *workers) Wait() { w.wg.Wait() }

// Close ends the idle workers; call it after Wait, when no job will come.
func (w *workers) Close() { close(w.quit) }

func (w *workers) work(job func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		job()
		w.wg.Done()
		job = nil // what it held (messages, alerts) is not kept while idle
		idle.Reset(workerIdle)
		select {
		case job = <-w.jobs:
		case <-idle.C:
			return
		case <-w.quit:
			return
		}
	}
}
