package delivery

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/failing"
	"github.com/cloudreseller/credit/models"
)

// passGap is the least time between two leases of a dispatcher: wakes that
// come closer together (targets freeing up one after another) share a lease,
// a transaction of the store's.
const passGap = 10 * time.Millisecond

// Run dispatches due deliveries until ctx ends, then waits for the attempts
// in flight (each bounded by its channel's timeout), records them, and hands
// back the deliveries its workers held and had not started.
func (s *Service) Run(ctx context.Context) {
	results := make(chan result, 4*recordBatch)
	recorded := make(chan struct{})
	go s.recorder(results, recorded)
	s.mu.Lock()
	s.results, s.runCtx, s.inFlight = results, ctx, newWorkers()
	s.mu.Unlock()
	s.running.Store(true)
	defer func() {
		s.mu.Lock()
		s.running.Store(false) // no hand-off from now on: workers are waited for
		s.mu.Unlock()
		s.inFlight.Wait()
		s.inFlight.Close()
		close(results)
		<-recorded
	}()
	tick := time.NewTicker(s.opts.Poll)
	defer tick.Stop()
	dispatches := failing.New(s.log, "deliveries", "dispatch failed; retrying", "dispatch works again")
	fanouts := failing.New(s.log, "deliveries", "queueing the deliveries of new alerts failed; retrying", "queueing works again")
	for {
		// Alerts this process numbered are fanned out at once; others',
		// when its tail reads them and at each poll, if they are not yet (a
		// process that does not deliver, or stopped before).
		fan, surely, poll, dispatch := false, false, false, true
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-s.numbered:
			fan, surely, dispatch = true, true, false
		case <-s.others:
			fan, dispatch = true, false
		case <-tick.C:
			fan, poll = true, true
		}
		if fan {
			more, err := s.queueNew(ctx, surely, poll)
			if ctx.Err() != nil {
				return
			}
			fanouts.Note(err)
			dispatch = dispatch || more
		}
		for dispatch && ctx.Err() == nil {
			more, err := s.dispatch(ctx)
			if ctx.Err() != nil {
				return
			}
			dispatches.Note(err)
			if err != nil || !more {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(passGap):
		}
	}
}

// queueNew queues the deliveries of alerts not fanned out yet (surely: this
// process just numbered some) and, at a poll, those targets behind missed.
// It tells whether it queued any for the dispatcher to lease.
func (s *Service) queueNew(ctx context.Context, surely, poll bool) (bool, error) {
	more, err := s.fanOut(ctx, surely)
	if err != nil || !poll {
		return more, err
	}
	caught, err := s.catchUp(ctx)
	return more || caught, err
}

// leased is a delivery this process holds.
type leased struct {
	ID, TargetID, PartnerID uint
	Channel                 string
	AlertID, NoticeID       *uint
	Attempts                int
}

// dispatch leases due deliveries of targets not busy here and hands each
// target's to a worker of its own; it does not wait for them. It tells
// whether a full lease was taken (there may be more).
func (s *Service) dispatch(ctx context.Context) (bool, error) {
	batch, full, err := s.lease(ctx)
	if err != nil || len(batch) == 0 {
		return false, err
	}
	messages, err := s.load(ctx, batch)
	if err != nil {
		for _, d := range batch {
			s.done(d.Channel, d.TargetID, false) // the leases run out; they are taken again
		}
		return false, err
	}
	ds := make([]*held, len(batch))
	for i, d := range batch {
		ds[i] = &held{channel: d.Channel, m: messages[i]}
	}
	s.start(ds)
	return full, nil
}

// start hands deliveries this process holds to a worker per target, which
// attempts its target's in order; it does not wait for them.
func (s *Service) start(ds []*held) {
	byTarget := map[targetKey][]*Message{}
	var order []targetKey
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running.Load() {
		return // shutting down: the leases run out and another process (or the next start) sends them
	}
	for _, d := range ds {
		k := targetKey{d.channel, d.m.TargetID}
		if _, ok := byTarget[k]; !ok {
			order = append(order, k)
		}
		byTarget[k] = append(byTarget[k], d.m)
		s.markBusy(k)
	}
	ctx := context.WithoutCancel(s.runCtx)
	stop := s.runCtx.Done()
	for _, k := range order {
		ms := byTarget[k]
		s.inFlight.Go(func() {
			// A target that had a full lease may have more due: look again
			// when it is done. Others wait for the next wake or poll, so that
			// targets finishing one after another do not each cost a lease.
			defer s.done(k.Channel, k.TargetID, len(ms) >= s.opts.PerTarget)
			s.attempt(ctx, stop, k.Channel, k.TargetID, ms)
		})
	}
}

// markBusy marks a target busy, keeping whether deliveries were queued
// behind it. s.mu is held.
func (s *Service) markBusy(k targetKey) {
	if _, ok := s.busy[k]; !ok {
		s.busy[k] = false
	}
}

// done frees a target, and wakes the dispatcher when more may wait for it:
// its lease was full, or deliveries were queued for it meanwhile.
func (s *Service) done(channel string, target uint, more bool) {
	k := targetKey{channel, target}
	s.mu.Lock()
	behind := s.busy[k]
	delete(s.busy, k)
	s.mu.Unlock()
	if more || behind {
		s.Wake()
	}
}

// lease takes due deliveries for this process until now + Lease, at most
// PerTarget of each target and Targets targets at once, of targets with
// nothing in flight here, in a short transaction that skips rows another
// process is leasing; it marks their targets busy (so that a fan-out hands
// none of theirs off meanwhile). It tells whether due targets were left for
// lack of room.
//
// It goes by target, not by row: first the targets with deliveries due
// (a loose scan of idx_alert_deliveries_due, one step per target), then the
// first few of each. Picking the oldest due rows instead rescanned, at every
// lease, the backlog of endpoints too slow to keep up: with a hundred
// endpoints a quarter of them slow, that took a core of the database within
// a minute.
func (s *Service) lease(ctx context.Context) ([]leased, bool, error) {
	s.mu.Lock()
	busy := maps.Clone(s.busy)
	s.mu.Unlock()
	room := s.opts.Targets - len(busy)
	if room <= 0 || len(s.order) == 0 {
		return nil, false, nil
	}
	// Which targets have deliveries due is read outside the transaction:
	// most passes find none, and need no transaction at all.
	now := s.db.NowFunc()
	var due []targetKey
	if err := s.db.WithContext(ctx).Raw(dueTargets, StatusPending, now, s.opts.Targets+len(busy)).Scan(&due).Error; err != nil {
		return nil, false, err
	}
	due = slices.DeleteFunc(due, func(k targetKey) bool {
		_, b := busy[k]
		return b || s.channels[k.Channel] == nil
	})
	if len(due) == 0 {
		return nil, false, nil
	}
	full := len(due) > room
	if full {
		due = due[:room]
	}
	var out []leased
	err := database.Transact(ctx, s.db, func(tx *gorm.DB) error {
		out = nil
		now := tx.NowFunc()
		ids, err := s.firstDue(tx, due, now)
		if err != nil || len(ids) == 0 {
			return err
		}
		q := "SELECT id, channel, target_id, partner_id, alert_id, notice_id, attempts FROM alert_deliveries" +
			" WHERE id IN ? AND status = ? AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_attempt_at, id"
		if database.IsMySQL(tx) {
			q += " FOR UPDATE SKIP LOCKED"
		}
		if err := tx.Raw(q, ids, StatusPending, now).Scan(&out).Error; err != nil || len(out) == 0 {
			return err
		}
		leasedIDs := make([]uint, len(out))
		for i, d := range out {
			leasedIDs[i] = d.ID
		}
		return tx.Exec("UPDATE alert_deliveries SET lease_until = ? WHERE id IN ?", now.Add(s.opts.Lease), leasedIDs).Error
	})
	if err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	for _, d := range out {
		s.markBusy(targetKey{d.Channel, d.TargetID})
	}
	s.mu.Unlock()
	return out, full, nil
}

// dueTargets lists the targets with deliveries due, the longest due first.
// status leads the GROUP BY although the WHERE fixes it: MariaDB scans
// idx_alert_deliveries_due loosely (one step per target) only when the
// grouping names every column before the aggregated one; without it, it read
// every pending row at every pass.
const dueTargets = "SELECT channel, target_id FROM alert_deliveries WHERE status = ? GROUP BY status, channel, target_id" +
	" HAVING MIN(next_attempt_at) <= ? ORDER BY MIN(next_attempt_at) LIMIT ?"

// targetKey names a target of a channel.
type targetKey struct {
	Channel  string
	TargetID uint
}

// firstDue returns the ids of the first PerTarget due deliveries of each
// target, not leased, in one statement.
func (s *Service) firstDue(tx *gorm.DB, targets []targetKey, now time.Time) ([]uint, error) {
	parts := make([]string, len(targets))
	var args []any
	for i, k := range targets {
		parts[i] = fmt.Sprintf("SELECT * FROM (SELECT id FROM alert_deliveries WHERE status = ? AND channel = ? AND target_id = ? AND next_attempt_at <= ?"+
			" AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_attempt_at, id LIMIT %d) t%d", s.opts.PerTarget, i)
		args = append(args, StatusPending, k.Channel, k.TargetID, now, now)
	}
	var ids []uint
	err := tx.Raw(strings.Join(parts, " UNION ALL "), args...).Scan(&ids).Error
	return ids, err
}

// load reads the alerts and notices of a batch, two statements for all, and
// returns each delivery's message.
func (s *Service) load(ctx context.Context, batch []leased) ([]*Message, error) {
	var alertIDs, noticeIDs []uint
	for _, d := range batch {
		if d.AlertID != nil {
			alertIDs = append(alertIDs, *d.AlertID)
		}
		if d.NoticeID != nil {
			noticeIDs = append(noticeIDs, *d.NoticeID)
		}
	}
	db := s.db.WithContext(ctx)
	alerts := map[uint]*models.Alert{}
	if len(alertIDs) > 0 {
		var rows []*models.Alert
		if err := db.Where("id IN ?", alertIDs).Find(&rows).Error; err != nil {
			return nil, err
		}
		for _, a := range rows {
			alerts[a.ID] = a
		}
	}
	notices := map[uint]*Notice{}
	if len(noticeIDs) > 0 {
		var rows []*Notice
		if err := db.Table("partner_notices").Where("id IN ?", noticeIDs).Find(&rows).Error; err != nil {
			return nil, err
		}
		for _, n := range rows {
			notices[n.ID] = n
		}
	}
	out := make([]*Message, len(batch))
	for i, d := range batch {
		m := &Message{DeliveryID: d.ID, TargetID: d.TargetID, PartnerID: d.PartnerID, Attempt: d.Attempts + 1}
		if d.AlertID != nil {
			m.Alert = alerts[*d.AlertID]
		}
		if d.NoticeID != nil {
			m.Notice = notices[*d.NoticeID]
		}
		out[i] = m
	}
	return out, nil
}

// attempt sends a target's deliveries, in order, once the budget allows, and
// hands each outcome to the recorder. Once stop is closed (shutdown) it
// starts no more: the attempt in flight finishes and is recorded, and the
// deliveries not started are handed back (their leases ended), for the
// next process to send at once. Each could take the channel's timeout:
// sending them all made a shutdown wait up to PerTarget timeouts.
func (s *Service) attempt(ctx context.Context, stop <-chan struct{}, channel string, target uint, ms []*Message) {
	c := s.channels[channel]
	var live []*Message
	for _, m := range ms {
		if m.Alert == nil && m.Notice == nil {
			s.results <- s.outcome(channel, m, Outcome{Error: "what it carried is gone", Final: true})
			continue
		}
		live = append(live, m)
	}
	if len(live) == 0 {
		return
	}
	s.pace(stop, len(live))
	sent := 0
	if !stopped(stop) {
		send := c.Sender(ctx, target)
		for _, m := range live {
			s.results <- s.outcome(channel, m, send(m))
			sent++
			if stopped(stop) {
				break
			}
		}
	}
	for _, m := range live[sent:] {
		s.results <- result{channel: channel, m: m, handBack: true}
	}
}

// stopped tells whether stop is closed.
func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// pace waits until the budget allows n more attempts. Once stop is closed
// (shutdown) it waits no longer.
func (s *Service) pace(stop <-chan struct{}, n int) {
	r := s.budget.ReserveN(time.Now(), n)
	if !r.OK() {
		return
	}
	wait := r.Delay()
	if wait <= 0 {
		return
	}
	s.paced.Add(int64(wait))
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-stop:
	}
}

// outcome decides what an attempt's outcome makes of its delivery:
// delivered, failed for good (after the last retry, or refused), or due
// again after the next pause of the schedule (±20 %).
func (s *Service) outcome(channel string, m *Message, o Outcome) result {
	now := s.db.NowFunc()
	r := result{channel: channel, m: m, o: o, at: now.Add(-o.Latency).Truncate(time.Microsecond)}
	n := s.attempts[channel]
	switch {
	case o.Delivered:
		n.delivered.Add(1)
		r.state = StatusDelivered
	case o.Final || m.Attempt > len(s.opts.Retries):
		n.failed.Add(1)
		r.state = StatusFailed
	default:
		n.retried.Add(1)
		pause := s.opts.Retries[m.Attempt-1]
		pause += time.Duration((rand.Float64()*0.4 - 0.2) * float64(pause))
		next := now.Add(pause)
		r.state, r.next = StatusPending, &next
	}
	return r
}
