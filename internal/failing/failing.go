// Package failing logs a failure that repeats (a loop polling a store that is
// down) when it starts, once a minute while it lasts, and when it ends,
// instead of at every try.
package failing

import (
	"log/slog"
	"sync"
	"time"
)

// Reminder is how often a failure that lasts is logged again.
const Reminder = time.Minute

// Log follows one repeating operation. It is safe for concurrent use.
type Log struct {
	log                     *slog.Logger
	subject, started, ended string
	mu                      sync.Mutex
	since, last             time.Time
}

// New returns a Log whose lines read "<subject>: <started>" (a warning, with
// the error), "<subject>: still failing" and "<subject>: <ended>".
func New(log *slog.Logger, subject, started, ended string) *Log {
	return &Log{log: log, subject: subject, started: started, ended: ended}
}

// Note records the outcome of one try (nil: it worked).
func (l *Log) Note(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	switch {
	case err == nil && !l.since.IsZero():
		l.log.Info(l.subject+": "+l.ended, "failed_for", now.Sub(l.since).Round(time.Millisecond))
		l.since = time.Time{}
	case err != nil && l.since.IsZero():
		l.log.Warn(l.subject+": "+l.started, "err", err)
		l.since, l.last = now, now
	case err != nil && now.Sub(l.last) >= Reminder:
		l.log.Warn(l.subject+": still failing", "since", l.since, "err", err)
		l.last = now
	}
}

// Failing tells whether the last try failed.
func (l *Log) Failing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.since.IsZero()
}
