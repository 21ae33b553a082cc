package delivery

import (
	"context"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

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
// in flight (each bounded by its channel's timeout) and records them.
func (s *Service) Run(ctx context.Context) {
	results := make(chan result, 4*recordBatch)
	recorded := make(chan struct{})
	go s.recorder(results, recorded)
	s.results = results
	defer func() {
		s.inFlight.Wait()
		close(results)
		<-recorded
	}()
	tick := time.NewTicker(s.opts.Poll)
	defer tick.Stop()
	dispatches := failing.New(s.log, "deliveries", "dispatch failed; retrying", "dispatch works again")
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-tick.C:
		}
		for ctx.Err() == nil {
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
		s.release(batch)
		return false, err
	}
	type key struct {
		channel string
		target  uint
	}
	byTarget := map[key][]*Message{}
	var order []key
	for i, d := range batch {
		k := key{d.Channel, d.TargetID}
		if _, ok := byTarget[k]; !ok {
			order = append(order, k)
		}
		byTarget[k] = append(byTarget[k], messages[i])
	}
	for _, k := range order {
		ms := byTarget[k]
		s.inFlight.Go(func() {
			defer s.done(k.channel, k.target)
			s.attempt(context.WithoutCancel(ctx), k.channel, k.target, ms)
		})
	}
	return full, nil
}

// done frees a target and wakes the dispatcher for what waited on it.
func (s *Service) done(channel string, target uint) {
	s.mu.Lock()
	delete(s.busy[channel], target)
	s.mu.Unlock()
	s.Wake()
}

// release frees the targets of deliveries that will not be attempted now
// (their leases run out and they are taken again).
func (s *Service) release(batch []leased) {
	for _, d := range batch {
		s.mu.Lock()
		delete(s.busy[d.Channel], d.TargetID)
		s.mu.Unlock()
	}
}

// lease takes due deliveries for this process until now + Lease, at most
// PerTarget per target, of targets with nothing in flight here, in a short
// transaction that skips rows another process is leasing. It marks their
// targets busy.
func (s *Service) lease(ctx context.Context) ([]leased, bool, error) {
	s.mu.Lock()
	busy := map[string][]uint{}
	room := s.opts.Targets
	for ch, targets := range s.busy {
		room -= len(targets)
		for t := range targets {
			busy[ch] = append(busy[ch], t)
		}
	}
	s.mu.Unlock()
	if room <= 0 || len(s.order) == 0 {
		return nil, false, nil
	}
	limit := 4 * s.opts.Targets
	var out []leased
	full := false
	err := database.Transact(ctx, s.db, func(tx *gorm.DB) error {
		out, full = nil, false
		now := tx.NowFunc()
		q := "SELECT id, channel, target_id, partner_id, alert_id, notice_id, attempts FROM alert_deliveries" +
			" WHERE status = ? AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)"
		names := make([]string, len(s.order))
		for i, c := range s.order {
			names[i] = c.Name()
		}
		in, args := database.In(names)
		q += " AND channel IN " + in
		args = append([]any{StatusPending, now, now}, args...)
		for ch, targets := range busy {
			in, ids := database.In(targets)
			q += " AND NOT (channel = ? AND target_id IN " + in + ")"
			args = append(append(args, ch), ids...)
		}
		q += " ORDER BY next_attempt_at, id LIMIT ?"
		args = append(args, limit)
		if database.IsMySQL(tx) {
			q += " FOR UPDATE SKIP LOCKED"
		}
		var rows []leased
		if err := tx.Raw(q, args...).Scan(&rows).Error; err != nil || len(rows) == 0 {
			return err
		}
		full = len(rows) == limit
		out = s.take(rows, room)
		ids := make([]uint, len(out))
		for i, d := range out {
			ids[i] = d.ID
		}
		return tx.Exec("UPDATE alert_deliveries SET lease_until = ? WHERE id IN ?", now.Add(s.opts.Lease), ids).Error
	})
	if err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	for _, d := range out {
		s.busy[d.Channel][d.TargetID] = true
	}
	s.mu.Unlock()
	return out, full, nil
}

// take keeps, of due rows in order, at most PerTarget per target and rooms
// targets.
func (s *Service) take(rows []leased, room int) []leased {
	type key struct {
		channel string
		target  uint
	}
	per := map[key]int{}
	var out []leased
	for _, d := range rows {
		k := key{d.Channel, d.TargetID}
		n, seen := per[k]
		if (!seen && len(per) >= room) || n >= s.opts.PerTarget || s.channels[d.Channel] == nil {
			continue
		}
		per[k] = n + 1
		out = append(out, d)
	}
	return out
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

// attempt sends a target's deliveries, in order, and hands each outcome to
// the recorder.
func (s *Service) attempt(ctx context.Context, channel string, target uint, ms []*Message) {
	c := s.channels[channel]
	var live []*Message
	for _, m := range ms {
		if m.Alert == nil && m.Notice == nil {
			s.results <- s.outcome(channel, m, Outcome{Error: "what it carried is gone", Final: true})
			continue
		}
		live = append(live, m)
	}
	if len(live) > 0 {
		c.Send(ctx, target, live, func(m *Message, o Outcome) { s.results <- s.outcome(channel, m, o) })
	}
}

// outcome decides what an attempt's outcome makes of its delivery:
// delivered, failed for good (after the last retry, or refused), or due
// again after the next pause of the schedule (±20 %).
func (s *Service) outcome(channel string, m *Message, o Outcome) result {
	r := result{channel: channel, m: m, o: o}
	switch {
	case o.Delivered:
		s.Stats.Delivered.Add(1)
		r.state = StatusDelivered
	case o.Final || m.Attempt > len(s.opts.Retries):
		s.Stats.Failed.Add(1)
		r.state = StatusFailed
	default:
		s.Stats.Retried.Add(1)
		pause := s.opts.Retries[m.Attempt-1]
		pause += time.Duration((rand.Float64()*0.4 - 0.2) * float64(pause))
		next := time.Now().Add(pause)
		r.state, r.next = StatusPending, &next
	}
	return r
}

// text is s as valid UTF-8 (a response may be anything; the store takes
// only text), or NULL when empty.
func text(s string) *string {
	if s == "" {
		return nil
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return &s
}

// clip cuts s to at most n bytes, not inside a character.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for range 3 {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}
