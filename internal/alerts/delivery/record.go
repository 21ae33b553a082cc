package delivery

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/database"
)

// result is an attempt to record, with the delivery's next state; or,
// handBack, a delivery leased and not attempted (the process is shutting
// down), whose lease is to end.
type result struct {
	channel  string
	m        *Message
	o        Outcome
	state    string
	next     *time.Time // PENDING: when it is due again
	at       time.Time  // when the attempt began
	handBack bool
}

// Recording: attempts are written in batches, one transaction for up to
// recordBatch of them gathered over at most recordDelay. One transaction
// per attempt (a commit, and on MySQL a flush of the log, each) cost writes
// a fifth of their rate with a hundred endpoints; a batch a tenth of a
// second makes the cost of a hundred endpoints' log about that of ten, and
// a log a person reads is no worse for it.
const (
	recordBatch = 200
	recordDelay = 100 * time.Millisecond
)

// recorder writes results until results is closed, then closes done.
// Deliveries whose results fail to be written keep their leases, which run
// out: they are attempted again (at least once, never lost).
func (s *Service) recorder(results <-chan result, done chan<- struct{}) {
	defer close(done)
	for first := range results {
		batch := []result{first}
		timer := time.NewTimer(recordDelay)
	gather:
		for len(batch) < recordBatch {
			select {
			case r, ok := <-results:
				if !ok {
					break gather
				}
				batch = append(batch, r)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := s.write(ctx, batch); err != nil {
			s.log.Warn("deliveries: recording attempts failed; they will be retried when their leases end", "attempts", len(batch), "err", err)
		}
		cancel()
	}
}

// write records a batch of attempts and their deliveries' next states in
// one transaction, with what they mean for their targets (a target disabled
// by them raises a notice to its partner), and ends the leases of the
// deliveries handed back.
func (s *Service) write(ctx context.Context, results []result) error {
	var batch []result
	var handBack []uint
	for _, r := range results {
		if r.handBack {
			handBack = append(handBack, r.m.DeliveryID)
		} else {
			batch = append(batch, r)
		}
	}
	return database.Transact(ctx, s.db, func(tx *gorm.DB) error {
		if len(handBack) > 0 {
			if err := tx.Exec("UPDATE alert_deliveries SET lease_until = NULL WHERE id IN ? AND status = ?", handBack, StatusPending).Error; err != nil {
				return err
			}
		}
		if len(batch) == 0 {
			return nil
		}
		now := tx.NowFunc()
		if _, err := database.InsertRows(tx, "alert_delivery_attempts", []string{"delivery_id", "attempted_at", "code", "latency_ms", "response", "error"},
			len(batch), func(i int) []any {
				o := batch[i].o
				return []any{batch[i].m.DeliveryID, batch[i].at, o.Code, o.Latency.Milliseconds(), text(clip(o.Response, 1024)), text(clip(o.Error, 500))}
			}); err != nil {
			return err
		}
		if err := updateDeliveries(tx, batch, now); err != nil {
			return err
		}
		return s.settle(tx, batch, now)
	})
}

// updateDeliveries sets each delivery's state in one statement.
func updateDeliveries(tx *gorm.DB, batch []result, now time.Time) error {
	var status, next, lastErr, delivered strings.Builder
	var sArgs, nArgs, eArgs, dArgs []any
	ids := make([]uint, len(batch))
	for i, r := range batch {
		id := r.m.DeliveryID
		ids[i] = id
		status.WriteString(" WHEN ? THEN ?")
		sArgs = append(sArgs, id, r.state)
		next.WriteString(" WHEN ? THEN ?")
		nArgs = append(nArgs, id, r.next)
		lastErr.WriteString(" WHEN ? THEN ?")
		e := r.o.Error
		if r.o.Delivered {
			e = ""
		}
		eArgs = append(eArgs, id, text(clip(e, 500)))
		if r.state == StatusDelivered {
			delivered.WriteString(" WHEN ? THEN ?")
			dArgs = append(dArgs, id, now)
		}
	}
	deliveredAt := "delivered_at"
	if delivered.Len() > 0 {
		deliveredAt = "CASE id" + delivered.String() + " ELSE delivered_at END"
	}
	in, idArgs := database.In(ids)
	args := append(append(append(append(sArgs, nArgs...), eArgs...), dArgs...), idArgs...)
	_, err := database.Exec(tx, "UPDATE alert_deliveries SET attempts = attempts + 1, lease_until = NULL, status = CASE id"+status.String()+
		" END, next_attempt_at = CASE id"+next.String()+" END, last_error = CASE id"+lastErr.String()+" END, delivered_at = "+deliveredAt+
		" WHERE id IN "+in, args...)
	return err
}

// settle tells each channel what its targets' attempts came to, in order;
// a target it disables raises a notice to its partner.
func (s *Service) settle(tx *gorm.DB, batch []result, now time.Time) error {
	outcomes := map[string]map[uint][]Outcome{} // by channel, by target
	partner := map[targetKey]uint{}
	for _, r := range batch {
		if outcomes[r.channel] == nil {
			outcomes[r.channel] = map[uint][]Outcome{}
		}
		outcomes[r.channel][r.m.TargetID] = append(outcomes[r.channel][r.m.TargetID], r.o)
		partner[targetKey{r.channel, r.m.TargetID}] = r.m.PartnerID
	}
	for _, c := range s.order {
		if outcomes[c.Name()] == nil {
			continue
		}
		notices, err := c.Settle(tx, outcomes[c.Name()], now)
		if err != nil {
			return err
		}
		for _, n := range notices {
			if n.EndpointID != nil {
				n.PartnerID = partner[targetKey{c.Name(), *n.EndpointID}]
			}
			s.log.Warn("deliveries: target disabled", "channel", c.Name(), "partner_id", n.PartnerID, "notice", n.Message)
			if err := s.notify(tx, n); err != nil {
				return err
			}
		}
	}
	return nil
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
