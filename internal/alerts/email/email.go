// Package email is the delivery channel of e-mail: alerts written for the
// people who act on them, sent through the SMTP server SMTP_URL names to the
// notification addresses partners set (for all their customers, or for one).
// Queueing, leases, retries and the log of attempts are the delivery
// package's, shared with every channel.
package email

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/accounts"
	"github.com/cloudreseller/credit/internal/alerts/delivery"
	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/input"
	"github.com/cloudreseller/credit/internal/page"
)

// Channel is the channel's name in the delivery log.
const Channel = "email"

// Options configure sending.
type Options struct {
	// Server is where mail is sent: smtp://user:pass@host:port (STARTTLS
	// when the server offers it) or smtps://… (TLS from the start).
	Server *url.URL
	// From is the sender's address.
	From string
	// Link is where a customer can be seen, with {id} for its id (a
	// dashboard); empty: the playground, at Playground.
	Link string
	// Playground is the address of this server's playground (PUBLIC_URL):
	// without Link, e-mails link to it, opened on the query that shows the
	// customer. Empty: they name that query.
	Playground string
	// Timeout bounds one attempt (30 s).
	Timeout time.Duration
	// TLS, if set, is used for STARTTLS and smtps (the tests trust their own
	// certificate with it).
	TLS *tls.Config
}

// ParseServer checks an SMTP_URL.
func ParseServer(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
		return nil, fmt.Errorf("must look like smtp://user:password@host:587 or smtps://user:password@host:465")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("has no usable port")
		}
	}
	return u, nil
}

// Service manages notification addresses and sends to them; it is a
// delivery.Channel.
type Service struct {
	db         *gorm.DB
	deliveries *delivery.Service
	opts       Options
}

// New returns the e-mail channel on db, whose deliveries go through
// deliveries (the caller Adds it there when mail is configured).
func New(db *gorm.DB, deliveries *delivery.Service, opts Options) *Service {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.From == "" {
		opts.From = "credit-alerts@localhost"
	}
	return &Service{db: db, deliveries: deliveries, opts: opts}
}

// Enabled tells whether mail is sent (SMTP_URL is set).
func (s *Service) Enabled() bool { return s.opts.Server != nil }

// Address is a notification address: of a partner for all its customers, or
// for one customer.
type Address struct {
	ID         uint
	PartnerID  uint
	CustomerID uint // 0: every customer of the partner
	Address    string
	CreatedAt  time.Time
}

// MaxAddresses bounds the addresses of one scope.
const MaxAddresses = 10

// checkAddresses validates addresses and drops repeats, keeping the order.
func checkAddresses(in []string) ([]string, error) {
	if len(in) > MaxAddresses {
		return nil, errs.E(errs.BadUserInput, "addresses takes at most %d addresses", MaxAddresses)
	}
	var out []string
	seen := map[string]bool{}
	for i, a := range in {
		a = strings.TrimSpace(a)
		if !input.MailAddress(a) {
			return nil, errs.E(errs.BadUserInput, "addresses[%d] is not an e-mail address (name@example.com)", i)
		}
		if k := input.MailKey(a); !seen[k] {
			seen[k] = true
			out = append(out, a)
		}
	}
	return out, nil
}

// Set replaces the notification addresses of a partner (customerID nil;
// PARTNER: its own, ADMIN names partnerID) or of one customer; an empty list
// removes them. It returns the addresses of that scope.
func (s *Service) Set(ctx context.Context, partnerID, customerID *uint, addresses []string) ([]*Address, error) {
	list, err := checkAddresses(addresses)
	if err != nil {
		return nil, err
	}
	pid, cid, err := s.scope(ctx, partnerID, customerID)
	if err != nil {
		return nil, err
	}
	err = database.Transact(ctx, s.db, func(tx *gorm.DB) error {
		// Addresses that stay keep their rows (and ids): e-mails queued for
		// them still go out.
		var have []Address
		if err := tx.Table("notification_addresses").Where("partner_id = ? AND customer_id = ?", pid, cid).Find(&have).Error; err != nil {
			return err
		}
		keep := map[string]bool{}
		for _, a := range list {
			keep[a] = true
		}
		var gone []uint
		for _, a := range have {
			if keep[a.Address] {
				delete(keep, a.Address)
			} else {
				gone = append(gone, a.ID)
			}
		}
		if len(gone) > 0 {
			if err := tx.Exec("DELETE FROM notification_addresses WHERE id IN ?", gone).Error; err != nil {
				return err
			}
		}
		var added []string
		for _, a := range list {
			if keep[a] {
				added = append(added, a)
			}
		}
		if len(added) == 0 {
			return nil
		}
		now := tx.NowFunc()
		_, err := database.InsertRows(tx, "notification_addresses", []string{"partner_id", "customer_id", "address", "created_at"},
			len(added), func(i int) []any { return []any{pid, cid, added[i], now} })
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.of(ctx, pid, &cid)
}

// scope resolves who may set which addresses: a partner's own (ADMIN names
// it), or a customer it sees (NOT_FOUND otherwise).
func (s *Service) scope(ctx context.Context, partnerID, customerID *uint) (uint, uint, error) {
	if customerID == nil {
		pid, err := accounts.ManagedPartner(ctx, s.db.WithContext(ctx), partnerID)
		return pid, 0, err
	}
	p, err := auth.Require(ctx, auth.RoleAdmin, auth.RolePartner)
	if err != nil {
		return 0, 0, err
	}
	c, err := accounts.FindCustomer(s.db.WithContext(ctx), p, *customerID, false)
	if err != nil {
		return 0, 0, err
	}
	return c.PartnerID, c.ID, nil
}

// List lists notification addresses: a partner's (its own for every
// customer and each customer's), or one customer's.
func (s *Service) List(ctx context.Context, partnerID, customerID *uint) ([]*Address, error) {
	pid, cid, err := s.scope(ctx, partnerID, customerID)
	if err != nil {
		return nil, err
	}
	if customerID == nil {
		return s.of(ctx, pid, nil)
	}
	return s.of(ctx, pid, &cid)
}

// of reads a partner's addresses, optionally of one scope (0: the partner's
// own).
func (s *Service) of(ctx context.Context, partnerID uint, customerID *uint) ([]*Address, error) {
	q := s.db.WithContext(ctx).Table("notification_addresses").Where("partner_id = ?", partnerID)
	if customerID != nil {
		q = q.Where("customer_id = ?", *customerID)
	}
	var out []*Address
	return out, q.Order("customer_id, id").Limit(1000).Find(&out).Error
}

// Deliveries lists e-mail deliveries, newest first, with their attempts: one
// address's (NOT_FOUND when the caller does not see it), or every address's
// of the caller (ADMIN: of every partner, or of partnerID); optionally in one
// state (FAILED: the dead letters).
func (s *Service) Deliveries(ctx context.Context, addressID, partnerID *uint, status *string, from, to *time.Time, args page.Args) (page.Result[*delivery.Delivery], error) {
	if addressID != nil {
		p, err := auth.Require(ctx, auth.RoleAdmin, auth.RolePartner)
		if err != nil {
			return page.Result[*delivery.Delivery]{}, err
		}
		var owners []uint
		if err := s.db.WithContext(ctx).Table("notification_addresses").Where("id = ?", *addressID).Pluck("partner_id", &owners).Error; err != nil {
			return page.Result[*delivery.Delivery]{}, err
		}
		// Deliveries outlive a removed address: its id stays listable by its partner.
		if len(owners) > 0 && !p.Sees(owners[0]) {
			return page.Result[*delivery.Delivery]{}, errs.E(errs.NotFound, "no notification address with id %d", *addressID)
		}
	}
	return s.deliveries.List(ctx, delivery.Filter{Channel: Channel, TargetID: addressID, PartnerID: partnerID, Status: status, From: from, To: to}, args)
}

// Resend queues an e-mail delivery again, whatever its state.
func (s *Service) Resend(ctx context.Context, id uint) (*delivery.Delivery, error) {
	return s.deliveries.Resend(ctx, Channel, id)
}
