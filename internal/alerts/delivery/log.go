package delivery

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/page"
)

// MaxAttemptsListed bounds the attempts listed with a delivery: its last
// ones. Retries make at most a few, but every resend makes one more.
const MaxAttemptsListed = 20

// Delivery is one message for one target, with every attempt.
type Delivery struct {
	ID        uint
	Channel   string
	TargetID  uint
	PartnerID uint
	// AlertID or NoticeID is set.
	AlertID       *uint
	NoticeID      *uint
	Status        string
	Attempts      []*Attempt `gorm:"-"` // the last MaxAttemptsListed
	AttemptCount  int        `gorm:"column:attempts"`
	NextAttemptAt *time.Time
	DeliveredAt   *time.Time
	LastError     *string
	CreatedAt     time.Time
}

// Attempt is one try at a delivery.
type Attempt struct {
	AttemptedAt time.Time
	// Code is the HTTP status or SMTP reply code, when there was one.
	Code      *int
	LatencyMs int
	Response  *string
	Error     *string
}

// Filter selects deliveries of a channel.
type Filter struct {
	Channel string
	// PartnerID: one partner's (a PARTNER's own, whatever is asked).
	PartnerID *uint
	// TargetID: one target's.
	TargetID *uint
	// Status: in one state.
	Status *string
	// From and To: queued at or after From, before To.
	From, To *time.Time
}

const deliveryColumns = "id, channel, target_id, partner_id, alert_id, notice_id, status, attempts, next_attempt_at, delivered_at, last_error, created_at"

// List lists deliveries, newest first, with their attempts (oldest first).
func (s *Service) List(ctx context.Context, f Filter, args page.Args) (page.Result[*Delivery], error) {
	var none page.Result[*Delivery]
	p, err := auth.Require(ctx, auth.RoleAdmin, auth.RolePartner)
	if err != nil {
		return none, err
	}
	if p.Role == auth.RolePartner {
		f.PartnerID = &p.PartnerID
	}
	req, err := args.Parse()
	if err != nil {
		return none, err
	}
	q := s.db.WithContext(ctx).Table("alert_deliveries").Where("channel = ?", f.Channel)
	if f.PartnerID != nil {
		q = q.Where("partner_id = ?", *f.PartnerID)
	}
	if f.TargetID != nil {
		q = q.Where("target_id = ?", *f.TargetID)
	}
	if f.Status != nil {
		q = q.Where("status = ?", *f.Status)
	}
	q = database.CreatedBetween(q, f.From, f.To)
	total, err := database.CountIf(req.Count, q)
	if err != nil {
		return none, err
	}
	var rows []*Delivery
	q = database.Seek(q, "id", true, req.After != nil, nil, req.AfterID())
	if err := q.Select(deliveryColumns).Limit(req.Limit + 1).Find(&rows).Error; err != nil {
		return none, err
	}
	res := page.Build(rows, req, total, func(d *Delivery) page.Cursor { return page.Cursor{ID: d.ID} })
	return res, s.attachAttempts(s.db.WithContext(ctx), res.Items)
}

// attemptRow is an attempt as stored, with its delivery.
type attemptRow struct {
	ID, DeliveryID uint
	Attempt
}

// attachAttempts reads the last MaxAttemptsListed attempts of each of
// deliveries, in one statement that reads no more than those by index
// (however many resends made), and lists them oldest first.
func (s *Service) attachAttempts(db *gorm.DB, ds []*Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	byID := map[uint]*Delivery{}
	parts := make([]string, len(ds))
	args := make([]any, len(ds))
	for i, d := range ds {
		byID[d.ID] = d
		d.Attempts = []*Attempt{}
		parts[i] = fmt.Sprintf("SELECT * FROM (SELECT id, delivery_id, attempted_at, code, latency_ms, response, error FROM alert_delivery_attempts"+
			" WHERE delivery_id = ? ORDER BY id DESC LIMIT %d) a%d", MaxAttemptsListed, i)
		args[i] = d.ID
	}
	var attempts []attemptRow
	if err := db.Raw(strings.Join(parts, " UNION ALL "), args...).Scan(&attempts).Error; err != nil {
		return err
	}
	slices.SortFunc(attempts, func(a, b attemptRow) int { return cmp.Compare(a.ID, b.ID) })
	for i := range attempts {
		a := attempts[i].Attempt
		byID[attempts[i].DeliveryID].Attempts = append(byID[attempts[i].DeliveryID].Attempts, &a)
	}
	return nil
}

// Resend queues a delivery of channel again, whatever its state (a delivered
// one too): it is attempted at once, as the same message (receivers can drop
// repeats).
func (s *Service) Resend(ctx context.Context, channel string, id uint) (*Delivery, error) {
	p, err := auth.Require(ctx, auth.RoleAdmin, auth.RolePartner)
	if err != nil {
		return nil, err
	}
	q := s.db.WithContext(ctx).Table("alert_deliveries").Where("id = ? AND channel = ?", id, channel)
	if p.Role == auth.RolePartner {
		q = q.Where("partner_id = ?", p.PartnerID)
	}
	var rows []*Delivery
	if err := q.Select(deliveryColumns).Find(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, errs.E(errs.NotFound, "no %s delivery with id %d", channel, id)
	}
	now := s.db.NowFunc()
	if _, err := database.Exec(s.db.WithContext(ctx), "UPDATE alert_deliveries SET status = ?, next_attempt_at = ?, lease_until = NULL WHERE id = ?",
		StatusPending, now, id); err != nil {
		return nil, err
	}
	d := rows[0]
	d.Status, d.NextAttemptAt = StatusPending, &now
	if err := s.attachAttempts(s.db.WithContext(ctx), rows); err != nil {
		return nil, err
	}
	s.Wake()
	return d, nil
}

// Notices lists a partner's notices (a PARTNER's own), newest first.
func (s *Service) Notices(ctx context.Context, partnerID *uint, args page.Args) (page.Result[*Notice], error) {
	var none page.Result[*Notice]
	p, err := auth.Require(ctx, auth.RoleAdmin, auth.RolePartner)
	if err != nil {
		return none, err
	}
	if p.Role == auth.RolePartner {
		partnerID = &p.PartnerID
	}
	req, err := args.Parse()
	if err != nil {
		return none, err
	}
	q := s.db.WithContext(ctx).Table("partner_notices")
	if partnerID != nil {
		q = q.Where("partner_id = ?", *partnerID)
	}
	total, err := database.CountIf(req.Count, q)
	if err != nil {
		return none, err
	}
	var rows []*Notice
	if err := database.Seek(q, "id", true, req.After != nil, nil, req.AfterID()).Limit(req.Limit + 1).Find(&rows).Error; err != nil {
		return none, err
	}
	return page.Build(rows, req, total, func(n *Notice) page.Cursor { return page.Cursor{ID: n.ID} }), nil
}
