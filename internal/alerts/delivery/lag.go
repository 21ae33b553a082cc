package delivery

import (
	"context"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/models"
)

// Targets that fall behind: a target holds at most MaxPending deliveries
// due and not yet made (leased ones included; not those waiting for a retry
// later, so that a failing endpoint keeps its alerts' retries on their own
// schedules, as they were before there was a bound). A fan-out
// that would queue more for it queues up to the bound and notes, in
// delivery_lags, the alert after which the target's next deliveries are not
// queued; further fan-outs queue none for it. Its alerts wait in the alerts
// table, which holds them anyway, instead of as rows queued faster than the
// target takes them: a storm of alerts to a hundred endpoints inserted ten
// thousand rows a second, six times what was attempted, and left 33,000
// pending after 4 s (9,000 with the bound). At each poll, catchUp queues the missed deliveries
// of targets with room again (fewer than half the bound pending), in alert
// order, up to the bound, until the target is level with the fan-out.
//
// Fan-out and catch-up hold the alert_fanout row: a target is either behind
// or not for both, and a missed alert is queued once.

// DefaultMaxPending bounds the deliveries of one target due and not yet
// made.
const DefaultMaxPending = 100

// lag is a target behind, in delivery_lags.
type lag struct {
	Channel   string
	TargetID  uint
	PartnerID uint
	AfterID   uint
}

// bound keeps, of a fan-out's routes of a channel (in alert order for each
// target), those that leave each target within MaxPending deliveries due
// and not yet made, and marks behind, in tx, the targets it kept some from.
// Targets already behind get none, and their deliveries due are not
// counted: an endpoint slower than its alerts sits at the bound, and
// counting its backlog at every pass read MaxPending rows of each such
// endpoint for nothing. Notices are always kept.
func (s *Service) bound(tx *gorm.DB, channel string, routes []Route) ([]Route, error) {
	var targets []uint
	seen := map[uint]bool{}
	for _, r := range routes {
		if r.Alert != 0 && !seen[r.Target] {
			seen[r.Target] = true
			targets = append(targets, r.Target)
		}
	}
	if len(targets) == 0 {
		return routes, nil
	}
	behind, err := behindOf(tx, channel, targets)
	if err != nil {
		return nil, err
	}
	targets = slices.DeleteFunc(targets, func(t uint) bool { return behind[t] })
	due, err := dueOf(tx, channel, targets)
	if err != nil {
		return nil, err
	}
	kept, from := keepWithin(routes, due, behind, s.opts.MaxPending)
	if len(from) > 0 {
		now := tx.NowFunc()
		if _, err := database.InsertRows(tx, "delivery_lags", []string{"channel", "target_id", "partner_id", "after_id", "since"}, len(from),
			func(i int) []any {
				return []any{channel, from[i].TargetID, from[i].PartnerID, from[i].AfterID, now}
			}); err != nil {
			return nil, err
		}
	}
	return kept, nil
}

// keepWithin is bound's rule, apart from the store: of routes (each
// target's in alert order), it keeps notices, and for each target not behind
// those that leave it within most due, counting due (which it updates); it
// returns the routes kept and, for each target that reached the bound, the
// alert after which its deliveries are not queued (Channel left empty).
func keepWithin(routes []Route, due map[uint]int, behind map[uint]bool, most int) (kept []Route, from []lag) {
	kept = routes[:0:0]
	for _, r := range routes {
		switch {
		case r.Alert == 0:
			kept = append(kept, r)
		case behind[r.Target]:
		case due[r.Target] >= most:
			behind[r.Target] = true
			from = append(from, lag{TargetID: r.Target, PartnerID: r.Partner, AfterID: r.Alert - 1})
		default:
			due[r.Target]++
			kept = append(kept, r)
		}
	}
	return kept, from
}

// behindOf tells which of a channel's targets are behind.
func behindOf(tx *gorm.DB, channel string, targets []uint) (map[uint]bool, error) {
	var ids []uint
	err := tx.Raw("SELECT target_id FROM delivery_lags WHERE channel = ? AND target_id IN ?", channel, targets).Scan(&ids).Error
	behind := make(map[uint]bool, len(ids))
	for _, id := range ids {
		behind[id] = true
	}
	return behind, err
}

// dueOf counts the deliveries of a channel's targets due and not yet made.
func dueOf(tx *gorm.DB, channel string, targets []uint) (map[uint]int, error) {
	due := map[uint]int{}
	if len(targets) == 0 {
		return due, nil
	}
	var rows []struct {
		TargetID uint
		N        int
	}
	err := tx.Raw("SELECT target_id, COUNT(*) AS n FROM alert_deliveries WHERE status = ? AND channel = ? AND target_id IN ? AND next_attempt_at <= ? GROUP BY target_id",
		StatusPending, channel, targets, tx.NowFunc()).Scan(&rows).Error
	for _, r := range rows {
		due[r.TargetID] = r.N
	}
	return due, err
}

// catchUpTargets bounds the targets one catch-up takes.
const catchUpTargets = 64

// catchUp queues, for targets behind with room again, the deliveries they
// missed, in alert order, up to the bound; a target level with the fan-out
// is behind no more. It tells whether it queued any. A plain read first:
// most polls find no target behind, and need no transaction.
func (s *Service) catchUp(ctx context.Context) (bool, error) {
	const marks = "SELECT channel, target_id, partner_id, after_id FROM delivery_lags ORDER BY since LIMIT ?"
	var lags []lag
	if err := s.db.WithContext(ctx).Raw(marks, catchUpTargets).Scan(&lags).Error; err != nil || len(lags) == 0 {
		return false, err
	}
	queuedAny := false
	err := database.Transact(ctx, s.db, func(tx *gorm.DB) error {
		queuedAny = false
		last, err := lockFanout(tx)
		if err != nil {
			return err
		}
		// Read again under the lock: another process may have moved them,
		// or dropped them all. Into an empty slice: gorm's Scan leaves a
		// slice as it was when no row comes back, and the marks of the read
		// before the lock had the missed deliveries queued a second time.
		lags = nil
		if err := tx.Raw(marks, catchUpTargets).Scan(&lags).Error; err != nil {
			return err
		}
		due, err := s.dueOfLagging(tx, lags)
		if err != nil {
			return err
		}
		for _, l := range lags {
			n, err := s.catchUpTarget(tx, l, due[targetKey{l.Channel, l.TargetID}], last)
			if err != nil {
				return err
			}
			queuedAny = queuedAny || n > 0
		}
		return nil
	})
	return queuedAny, err
}

// dueOfLagging counts the deliveries due of targets behind, one statement
// per channel.
func (s *Service) dueOfLagging(tx *gorm.DB, lags []lag) (map[targetKey]int, error) {
	byChannel := map[string][]uint{}
	for _, l := range lags {
		byChannel[l.Channel] = append(byChannel[l.Channel], l.TargetID)
	}
	out := map[targetKey]int{}
	for channel, targets := range byChannel {
		due, err := dueOf(tx, channel, targets)
		if err != nil {
			return nil, err
		}
		for t, n := range due {
			out[targetKey{channel, t}] = n
		}
	}
	return out, nil
}

// catchUpScan bounds the alerts of its partner one catch-up of a target
// reads.
const catchUpScan = 500

// catchUpTarget queues, in tx, the missed deliveries of one target behind,
// which has due deliveries due, up to its room, among the alerts after its mark up
// to last (the fan-out's cursor), and moves its mark, or drops it once level.
// It returns how many it queued.
func (s *Service) catchUpTarget(tx *gorm.DB, l lag, due int, last uint) (int, error) {
	c := s.channels[l.Channel]
	if c == nil {
		return 0, nil // a channel this process does not run (e-mail off): left to one that does
	}
	room := s.opts.MaxPending - due
	if room < (s.opts.MaxPending+1)/2 {
		return 0, nil // still busy with what it has
	}
	var alerts []*models.Alert
	if err := tx.Where("partner_id = ? AND id > ? AND id <= ?", l.PartnerID, l.AfterID, last).Order("id").Limit(catchUpScan).Find(&alerts).Error; err != nil {
		return 0, err
	}
	var taken []Route
	mark := last // level, unless it stops short
	if len(alerts) == catchUpScan {
		mark = alerts[len(alerts)-1].ID
	}
	if len(alerts) > 0 {
		routes, err := c.Route(tx, alerts)
		if err != nil {
			return 0, err
		}
		for _, r := range routes {
			if r.Target != l.TargetID {
				continue
			}
			if len(taken) == room {
				mark = taken[len(taken)-1].Alert
				break
			}
			taken = append(taken, r)
		}
	}
	if err := Queue(tx, l.Channel, taken); err != nil {
		return 0, err
	}
	if mark >= last {
		return len(taken), tx.Exec("DELETE FROM delivery_lags WHERE channel = ? AND target_id = ?", l.Channel, l.TargetID).Error
	}
	return len(taken), tx.Exec("UPDATE delivery_lags SET after_id = ? WHERE channel = ? AND target_id = ?", mark, l.Channel, l.TargetID).Error
}

// Behind counts the targets behind their alerts (every process's), and how
// long the longest has been.
func (s *Service) Behind(ctx context.Context) (n int64, longest time.Duration, err error) {
	// Scanned by hand: the oldest mark comes back as text or a time,
	// depending on the store (database.ScanTime reads both).
	var since any
	err = s.db.WithContext(ctx).Raw("SELECT COUNT(*), MIN(since) FROM delivery_lags").Row().Scan(&n, &since)
	if err != nil || n == 0 {
		return 0, 0, err
	}
	t, err := database.ScanTime(since)
	if err != nil {
		return 0, 0, err
	}
	return n, s.db.NowFunc().Sub(t), nil
}
