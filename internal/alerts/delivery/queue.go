package delivery

import (
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/models"
)

// Enqueue queues the deliveries every channel routes alerts to, in tx: the
// transaction that numbers the alerts.
func (s *Service) Enqueue(tx *gorm.DB, alerts []*models.Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	for _, c := range s.order {
		routes, err := c.Route(tx, alerts)
		if err != nil {
			return err
		}
		if err := Queue(tx, c.Name(), routes); err != nil {
			return err
		}
	}
	return nil
}

// queueChunk bounds the rows of one insert (8 parameters a row: far below
// MySQL's 65,535 and SQLite's 32,766).
const queueChunk = 1000

// Queue queues deliveries of channel in tx, due at once. Call Wake after the
// commit.
func Queue(tx *gorm.DB, channel string, routes []Route) error {
	now := tx.NowFunc()
	for len(routes) > 0 {
		chunk := routes[:min(len(routes), queueChunk)]
		routes = routes[len(chunk):]
		_, err := database.InsertRows(tx, "alert_deliveries",
			[]string{"channel", "target_id", "partner_id", "alert_id", "notice_id", "status", "attempts", "next_attempt_at", "created_at"},
			len(chunk), func(i int) []any {
				r := chunk[i]
				return []any{channel, r.Target, r.Partner, nullable(r.Alert), nullable(r.Notice), StatusPending, 0, now, now}
			})
		if err != nil {
			return err
		}
	}
	return nil
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
