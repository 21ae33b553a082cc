package delivery

import (
	"context"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/models"
)

// Fan-out: the deliveries of alerts are queued after the alerts are
// numbered, in transactions of their own, in alert id order; the row
// alert_fanout says up to which alert they are. Queued inside the numbering
// instead (as they were), routing, and a failure of it, held the alert
// sequence row: numbering waited, and with it the alerts sent to
// subscriptions and the usage batches that wait for their alerts' ids.
//
// The process that numbers alerts fans them out at once (Numbered wakes it);
// every process also looks once a Poll whether alerts wait (one numbered by a
// process that stopped before fanning it out). Passes of all processes take
// turns on the alert_fanout row, so each alert's deliveries are queued once.

// fanoutBatch is the most alerts one fan-out pass queues deliveries of.
const fanoutBatch = 500

// freshLimit bounds the numbered alerts kept in memory for the fan-out;
// past it (fan-out behind, the store failing) it reads them back instead.
const freshLimit = 10 * fanoutBatch

// Numbered tells the dispatcher that this process numbered alerts, in id
// order (their numbering committed): it queues their deliveries next, from
// these, without reading them back when they are the next ones to queue.
func (s *Service) Numbered(alerts []*models.Alert) {
	s.mu.Lock()
	if len(s.fresh)+len(alerts) > freshLimit {
		s.fresh = nil
	} else {
		s.fresh = append(s.fresh, alerts...)
	}
	s.mu.Unlock()
	select {
	case s.numbered <- struct{}{}:
	default:
	}
}

// Published tells the dispatcher that this process's tail read alerts other
// processes numbered: if their deliveries are not queued yet (the process
// that numbered them does not deliver, or stopped), it queues them next.
func (s *Service) Published([]*models.Alert) {
	select {
	case s.others <- struct{}{}:
	default:
	}
}

// next returns the alerts after last to queue, up to fanoutBatch: the
// numbered ones this process kept when they follow last without a gap, else
// read from the store in tx.
func (s *Service) next(tx *gorm.DB, last uint) ([]*models.Alert, error) {
	s.mu.Lock()
	i := 0
	for i < len(s.fresh) && s.fresh[i].ID <= last {
		i++ // queued already, by this process or another
	}
	s.fresh = s.fresh[i:]
	var kept []*models.Alert
	if len(s.fresh) > 0 && s.fresh[0].ID == last+1 {
		n := 1
		for n < len(s.fresh) && n < fanoutBatch && s.fresh[n].ID == s.fresh[n-1].ID+1 {
			n++
		}
		kept = s.fresh[:n:n]
	}
	s.mu.Unlock()
	if kept != nil {
		return kept, nil
	}
	var alerts []*models.Alert
	err := tx.Where("id > ?", last).Order("id").Limit(fanoutBatch).Find(&alerts).Error
	return alerts, err
}

// fanOut queues the deliveries of every alert numbered and not yet fanned
// out, one pass of up to fanoutBatch alerts after another, and hands the first
// ones to workers; it tells whether the dispatcher should look for the rest.
// Unless told that alerts were numbered (surely), it first looks whether any
// wait, outside a transaction.
func (s *Service) fanOut(ctx context.Context, surely bool) (dispatch bool, err error) {
	if !surely {
		if n, err := s.Unqueued(ctx); err != nil || n == 0 {
			return false, err
		}
	}
	for {
		n, more, err := s.fanOutPass(ctx)
		dispatch = dispatch || more
		if err != nil || n < fanoutBatch {
			return dispatch, err
		}
	}
}

// fanOutPass queues the deliveries of the next alerts not fanned out, up to
// fanoutBatch of them, in one transaction that holds the alert_fanout row.
// It returns how many alerts it took.
func (s *Service) fanOutPass(ctx context.Context) (n int, dispatch bool, err error) {
	var q queued
	err = database.Transact(ctx, s.db, func(tx *gorm.DB) error {
		q, n = queued{}, 0
		last, err := lockFanout(tx)
		if err != nil {
			return err
		}
		alerts, err := s.next(tx, last)
		if err != nil || len(alerts) == 0 {
			return err
		}
		if q, err = s.queue(tx, alerts); err != nil {
			return err
		}
		n = len(alerts)
		_, err = database.Exec(tx, "UPDATE alert_fanout SET last_id = ? WHERE id = 1", alerts[n-1].ID)
		return err
	})
	if err != nil {
		return 0, false, err
	}
	return n, s.committed(q), nil
}

// lockFanout takes the alert_fanout row in tx, which fan-outs and
// catch-ups take turns on, and returns the last alert fanned out.
func lockFanout(tx *gorm.DB) (uint, error) {
	var last uint
	err := database.QueryRow(tx, "SELECT last_id FROM alert_fanout WHERE id = 1"+database.ForUpdate(tx)).Scan(&last)
	return last, err
}

// UnqueuedQuery counts the alerts numbered whose deliveries are not queued
// yet. A cursor ahead of the sequence (alerts imported straight into the
// tables) counts as none; compared first, since MySQL refuses an unsigned
// subtraction below zero. The benchmark reads it too.
const UnqueuedQuery = "SELECT CASE WHEN q.last_id > f.last_id THEN q.last_id - f.last_id ELSE 0 END" +
	" FROM alert_sequences q, alert_fanout f WHERE q.id = 1 AND f.id = 1"

// Unqueued counts the alerts numbered whose deliveries are not queued yet
// (every process's): above a few for long, fan-out falls behind.
func (s *Service) Unqueued(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Raw(UnqueuedQuery).Scan(&n).Error
	return n, err
}
