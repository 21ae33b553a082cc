package delivery

import (
	"database/sql"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/models"
)

// queued is what a fan-out pass queued: deliveries leased to this process to
// hand to workers once it commits, the busy targets it queued deliveries
// behind, and whether it queued any for targets not busy here.
type queued struct {
	handoff []*held
	behind  []targetKey
	other   bool
}

// queue queues, in tx, the deliveries every channel routes alerts to. While
// the dispatcher runs, the first deliveries of each target with nothing in
// flight here are queued leased to this process already, for committed to
// hand to workers: most deliveries succeed at the first attempt, which then
// costs no lease (a transaction) and waits for no dispatcher pass.
func (s *Service) queue(tx *gorm.DB, alerts []*models.Alert) (queued, error) {
	var q queued
	byID := make(map[uint]*models.Alert, len(alerts))
	for _, a := range alerts {
		byID[a.ID] = a
	}
	for _, c := range s.order {
		routes, err := c.Route(tx, alerts)
		if err != nil {
			return q, err
		}
		if routes, err = s.bound(tx, c.Name(), routes); err != nil {
			return q, err
		}
		hot, cold := s.split(c.Name(), routes, &q)
		ids, err := queueSplit(tx, c.Name(), hot, cold, tx.NowFunc().Add(s.opts.Lease))
		if err != nil {
			return q, err
		}
		for i, r := range hot {
			q.handoff = append(q.handoff, &held{channel: c.Name(), m: &Message{DeliveryID: ids[i], TargetID: r.Target, PartnerID: r.Partner, Attempt: 1, Alert: byID[r.Alert]}})
		}
	}
	return q, nil
}

// PartnersOf lists the partners of alerts, each once: what a channel's Route
// reads targets of.
func PartnersOf(alerts []*models.Alert) []uint {
	var ids []uint
	for _, a := range alerts {
		if !slices.Contains(ids, a.PartnerID) {
			ids = append(ids, a.PartnerID)
		}
	}
	return ids
}

// held is a delivery queued leased to this process, to hand to a worker once
// its transaction commits.
type held struct {
	channel string
	m       *Message
}

// split keeps for hand-off (hot) up to PerTarget deliveries of each target
// with nothing in flight here, while the dispatcher runs; the rest are
// queued for any process (cold), and noted in q for committed.
func (s *Service) split(channel string, routes []Route, q *queued) (hot, cold []Route) {
	if !s.running.Load() {
		q.other = q.other || len(routes) > 0
		return nil, routes
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	per := map[uint]int{}
	for _, r := range routes {
		k := targetKey{channel, r.Target}
		if _, busy := s.busy[k]; busy {
			s.busy[k] = true // its worker wakes the dispatcher when done
			q.behind = append(q.behind, k)
			cold = append(cold, r)
			continue
		}
		if per[r.Target] >= s.opts.PerTarget || r.Alert == 0 {
			q.other = true
			cold = append(cold, r)
			continue
		}
		per[r.Target]++
		hot = append(hot, r)
	}
	return hot, cold
}

// committed is told that a fan-out pass committed: it hands the deliveries
// queued leased to this process to workers, and tells whether the
// dispatcher should look for the rest: not when only busy targets wait for
// them (each of those wakes it when done: a pass per fan-out leased nothing
// while endpoints were slow). A target that finished before the commit left
// its wake too early: it is looked for here.
func (s *Service) committed(q queued) (dispatch bool) {
	dispatch = q.other
	s.mu.Lock()
	for _, k := range q.behind {
		if _, busy := s.busy[k]; !busy {
			dispatch = true
		}
	}
	s.mu.Unlock()
	if len(q.handoff) > 0 && s.running.Load() {
		s.start(q.handoff)
	}
	return dispatch
}

// Queue queues deliveries of channel in tx, due at once. Call Wake after the
// commit.
func Queue(tx *gorm.DB, channel string, routes []Route) error {
	_, err := queueSplit(tx, channel, nil, routes, time.Time{})
	return err
}

// queueSplit queues deliveries of channel in tx, due at once: hot ones
// leased until the time given (to this process), cold ones for any process,
// in one statement per chunk of rows, and returns the hot ones' ids in
// order.
func queueSplit(tx *gorm.DB, channel string, hot, cold []Route, until time.Time) ([]uint, error) {
	rows := append(slices.Clip(hot), cold...)
	var ids []uint
	for start := 0; start < len(rows); start += queueChunk {
		chunk := rows[start:min(start+queueChunk, len(rows))]
		leased := min(max(len(hot)-start, 0), len(chunk))
		res, err := insertDeliveries(tx, channel, chunk, leased, until)
		if err != nil {
			return nil, err
		}
		if leased > 0 {
			chunkIDs, err := database.InsertedIDs(tx, res, len(chunk))
			if err != nil {
				return nil, err
			}
			ids = append(ids, chunkIDs[:leased]...)
		}
	}
	return ids, nil
}

// queueChunk bounds the rows of one insert (10 parameters a row: far below
// MySQL's 65,535 and SQLite's 32,766).
const queueChunk = 1000

// insertDeliveries inserts deliveries of channel due now, the first leased
// of them leased until the time given, in one statement.
func insertDeliveries(tx *gorm.DB, channel string, routes []Route, leased int, until time.Time) (sql.Result, error) {
	now := tx.NowFunc()
	return database.InsertRows(tx, "alert_deliveries",
		[]string{"channel", "target_id", "partner_id", "alert_id", "notice_id", "status", "attempts", "next_attempt_at", "lease_until", "created_at"},
		len(routes), func(i int) []any {
			r := routes[i]
			var lease *time.Time
			if i < leased {
				lease = &until
			}
			return []any{channel, r.Target, r.Partner, nullable(r.Alert), nullable(r.Notice), StatusPending, 0, now, lease, now}
		})
}

func nullable(id uint) *uint {
	if id == 0 {
		return nil
	}
	return &id
}

// Notice is a message to a partner about its own set-up, not about a
// customer: a webhook endpoint was disabled.
type Notice struct {
	ID         uint
	PartnerID  uint
	Kind       string
	EndpointID *uint
	Message    string
	CreatedAt  time.Time
}

// NoticeEndpointDisabled says a webhook endpoint was disabled (it answered
// 410 Gone, or failed every attempt for days).
const NoticeEndpointDisabled = "WEBHOOK_ENDPOINT_DISABLED"

// notify records a notice and queues its deliveries on every channel, in tx.
func (s *Service) notify(tx *gorm.DB, n *Notice) error {
	n.CreatedAt = tx.NowFunc()
	if err := tx.Table("partner_notices").Create(n).Error; err != nil {
		return err
	}
	for _, c := range s.order {
		routes, err := c.RouteNotice(tx, n)
		if err != nil {
			return err
		}
		if err := Queue(tx, c.Name(), routes); err != nil {
			return err
		}
	}
	return nil
}
