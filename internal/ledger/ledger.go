// Package ledger changes customers' credit. Every change runs in one transaction
// that locks the partner and then the customer row, checks the credit rules,
// updates both balances and writes exactly one allocation record; a refused
// change writes nothing.
//
// Lock order is always partner, then customer, so concurrent changes queue
// instead of deadlocking; database.Transact retries the rare deadlock MySQL
// still reports (for example against usage ingestion).
package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"sync/atomic"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/accounts"
	"github.com/cloudreseller/credit/internal/alerts/outbox"
	"github.com/cloudreseller/credit/internal/alerts/rules"
	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/credit"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/input"
	"github.com/cloudreseller/credit/internal/money"
	"github.com/cloudreseller/credit/models"
)

// Ledger applies credit changes and usage.
type Ledger struct {
	db     *gorm.DB
	outbox Outbox
	stats  counters
}

// counters are the ledger's running totals since the process started.
type counters struct {
	raised, accepted, duplicates, conflicts atomic.Uint64
}

// Stats are a ledger's totals since the process started, for operators.
type Stats struct {
	// AlertsRaised counts alerts committed by changes and usage.
	AlertsRaised uint64
	// UsageAccepted, UsageDuplicates and UsageConflicts count usage events
	// applied, events already recorded (not applied again), and events whose
	// id was recorded with other figures (their batch was refused).
	UsageAccepted, UsageDuplicates, UsageConflicts uint64
}

// Stats returns the ledger's totals.
func (l *Ledger) Stats() Stats {
	return Stats{
		AlertsRaised:    l.stats.raised.Load(),
		UsageAccepted:   l.stats.accepted.Load(),
		UsageDuplicates: l.stats.duplicates.Load(),
		UsageConflicts:  l.stats.conflicts.Load(),
	}
}

// Outbox is told about the alerts a change wrote to the outbox once it
// commits (alerts.Service).
type Outbox interface {
	// Raised says that a change committed alerts, so that they are
	// numbered and pushed to listeners at once.
	Raised()
	// Numbered waits until the alerts are numbered and returns them with
	// their ids.
	Numbered(ctx context.Context, raised []*models.Alert) ([]*models.Alert, error)
	// Touched says that the customers' usage or credit changed, so that their
	// depletion forecasts are evaluated (after the commit: the forecast reads
	// what the change wrote).
	Touched(cause rules.Cause, customerIDs ...uint)
}

// New returns a Ledger on db that tells outbox of the alerts changes raise.
func New(db *gorm.DB, outbox Outbox) *Ledger {
	return &Ledger{db: db, outbox: outbox}
}

// Change is a request to change a customer's credit.
type Change struct {
	CustomerID uint
	// Amount is the signed change for SetCredit; for WithdrawCredit the positive
	// amount to take back, or nil for all the available credit.
	Amount         *money.Amount
	Remark         *string
	IdempotencyKey *string
}

// Result is a change made (or, for a repeated idempotency key, the change made
// the first time) and the customer as it is now.
type Result struct {
	Allocation *models.CreditAllocation
	Customer   *models.Customer
}

// SetCredit changes a customer's credit by a signed, non-zero amount: positive
// allocates from the partner's line, negative takes back available credit.
func (l *Ledger) SetCredit(ctx context.Context, in Change) (*Result, error) {
	if in.Amount == nil || *in.Amount == 0 {
		return nil, errs.E(errs.BadUserInput, "amount must not be zero")
	}
	delta := *in.Amount
	return l.apply(ctx, "setCredit", in, func(credit.Balance) (money.Amount, error) { return delta, nil })
}

// WithdrawCredit takes back a positive amount of a customer's available credit,
// or all of it when no amount is given.
func (l *Ledger) WithdrawCredit(ctx context.Context, in Change) (*Result, error) {
	if in.Amount != nil && *in.Amount <= 0 {
		return nil, errs.E(errs.BadUserInput, "amount must be greater than zero")
	}
	return l.apply(ctx, "withdrawCredit", in, func(b credit.Balance) (money.Amount, error) {
		if in.Amount != nil {
			return -*in.Amount, nil
		}
		if b.Available() == 0 {
			return 0, errs.E(errs.InsufficientAvailableCredit, "the customer has no available credit to take back")
		}
		return -b.Available(), nil
	})
}

// apply runs one credit change. delta computes the signed change from the
// customer's locked balance.
func (l *Ledger) apply(ctx context.Context, op string, in Change, delta func(credit.Balance) (money.Amount, error)) (*Result, error) {
	p, err := auth.Require(ctx, auth.RoleAdmin, auth.RolePartner)
	if err != nil {
		return nil, err
	}
	if in.Remark, err = input.Optional("remark", in.Remark, 1000); err != nil {
		return nil, err
	}
	if in.IdempotencyKey != nil {
		if *in.IdempotencyKey, err = input.Identifier("idempotencyKey", *in.IdempotencyKey, 128); err != nil {
			return nil, err
		}
	}
	tx := change{p: p, op: op, in: in, delta: delta, hash: fingerprint(op, in)}
	err = database.Transact(ctx, l.db, tx.run)
	if database.IsDuplicate(err) {
		// Another request with the same idempotency key committed first; run
		// again to return its result.
		tx.res = Result{}
		err = database.Transact(ctx, l.db, tx.run)
	}
	if err != nil {
		return nil, err
	}
	if len(tx.alerts) > 0 {
		l.stats.raised.Add(uint64(len(tx.alerts)))
		l.outbox.Raised()
	}
	l.outbox.Touched(rules.CauseCreditChange, tx.res.Customer.ID)
	return &tx.res, nil
}

// change is one credit change in flight.
type change struct {
	p     auth.Principal
	op    string
	in    Change
	delta func(credit.Balance) (money.Amount, error)
	hash  string
	res   Result
	// alerts are the alerts the committed change raised (taking back credit
	// raises usage).
	alerts []*models.Alert
}

// run makes the change in tx. The partner's row, which every change of the
// partner's customers updates, is locked last and held for two statements
// and the commit: that hold bounds how many changes a partner takes a
// second. Before it, only the customer's row is locked, and the customer's
// alerts go to the outbox (which checks the customer, not the partner: a
// check of the partner's row would take a shared lock that the partner
// update of another change would then wait on, and each for the other).
func (c *change) run(tx *gorm.DB) error {
	c.alerts = nil
	cust, inForce, err := accounts.LockCustomerWithRules(tx, c.p, c.in.CustomerID)
	if err != nil {
		return err
	}
	if c.in.IdempotencyKey != nil {
		done, err := c.replay(tx, cust.PartnerID)
		if done || err != nil {
			return err
		}
	}
	before := cust.Balance()
	delta, err := c.delta(before)
	if err != nil {
		return err
	}
	// The partner's line is checked by the partner update below.
	if err := credit.CheckChange(delta, before, money.Amount(math.MaxInt64)); err != nil {
		return err
	}
	was := outbox.StateOf(cust)
	cust.SetBalance(credit.Balance{Credit: before.Credit + delta, Used: before.Used})
	cust.UpdatedAt = tx.NowFunc()
	if delta > 0 && rules.DecodeForecastState(cust.ForecastState).Within {
		cust.ForecastState = "" // new credit re-arms the depletion alert
	}
	raised := outbox.Apply(inForce, rules.CauseCreditChange, cust, was)
	if _, err := database.Exec(tx, "UPDATE customers SET credit = ?, available = ?, usage_basis_points = ?, status = ?, alert_fired = ?, forecast_state = ?, updated_at = ? WHERE id = ?",
		cust.Credit, cust.Available, cust.UsageBasisPoints, cust.Status, cust.AlertFired, cust.ForecastState, cust.UpdatedAt, cust.ID); err != nil {
		return err
	}
	if err := outbox.Insert(tx, raised); err != nil {
		return err
	}
	if err := allocate(tx, cust.PartnerID, delta, before); err != nil {
		return err
	}
	a, err := c.record(tx, cust, before, delta)
	if err != nil {
		return err
	}
	c.alerts = raised
	c.res = Result{Allocation: a, Customer: cust}
	return nil
}

// allocate adds delta to what the partner has allocated, and counts the
// record, provided the partner's credit line allows it, and locks the
// partner's row until the end of tx.
func allocate(tx *gorm.DB, partnerID uint, delta money.Amount, before credit.Balance) error {
	withdrawn := 0
	if credit.KindOf(delta) == credit.KindWithdraw {
		withdrawn = 1
	}
	res, err := database.Exec(tx, "UPDATE partners SET allocated = allocated + ?, allocation_records = allocation_records + 1, withdraw_records = withdraw_records + ?"+
		" WHERE id = ? AND (? <= 0 OR allocated + ? <= credit_line)", delta, withdrawn, partnerID, delta, delta)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	var p models.Partner
	if err := tx.Select("credit_line", "allocated").Take(&p, partnerID).Error; err != nil {
		return err
	}
	if err := credit.CheckChange(delta, before, p.RemainingCredit()); err != nil {
		return err
	}
	// Another change took credit back since the update: still refused.
	return errs.E(errs.PartnerCreditExceeded, "allocating %s would exceed the partner's credit line", delta)
}

// record writes the allocation record of a change of delta from before to the
// customer's balance now.
func (c *change) record(tx *gorm.DB, cust *models.Customer, before credit.Balance, delta money.Amount) (*models.CreditAllocation, error) {
	a := &models.CreditAllocation{
		PartnerID:      cust.PartnerID,
		CustomerID:     cust.ID,
		Kind:           credit.KindOf(delta),
		Amount:         delta,
		CreditBefore:   before.Credit,
		CreditAfter:    cust.Credit,
		AvailableAfter: cust.Available,
		Operator:       c.p.KeyName,
		Remark:         c.in.Remark,
		IdempotencyKey: c.in.IdempotencyKey,
		RequestHash:    c.hash,
	}
	if c.p.KeyID != 0 {
		a.APIKeyID = &c.p.KeyID
	}
	a.CreatedAt = tx.NowFunc()
	res, err := database.Exec(tx,
		"INSERT INTO credit_allocations (partner_id, customer_id, kind, amount, credit_before, credit_after, available_after, operator, api_key_id, remark, idempotency_key, request_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		a.PartnerID, a.CustomerID, a.Kind, a.Amount, a.CreditBefore, a.CreditAfter, a.AvailableAfter, a.Operator, a.APIKeyID, a.Remark, a.IdempotencyKey, a.RequestHash, a.CreatedAt)
	if err != nil {
		return nil, err
	}
	id, err := res.LastInsertId()
	a.ID = uint(id)
	return a, err
}

// replay looks for an earlier change with the same idempotency key. It reports
// done with the earlier result when the input is the same, and
// IDEMPOTENCY_CONFLICT when it is not.
func (c *change) replay(tx *gorm.DB, partnerID uint) (done bool, err error) {
	var a models.CreditAllocation
	err = tx.Where("partner_id = ? AND idempotency_key = ?", partnerID, *c.in.IdempotencyKey).Take(&a).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if a.RequestHash != c.hash {
		return true, errs.E(errs.IdempotencyConflict,
			"idempotencyKey %q was already used with a different input", *c.in.IdempotencyKey)
	}
	var cust models.Customer
	if err := tx.Take(&cust, a.CustomerID).Error; err != nil {
		return true, err
	}
	c.res = Result{Allocation: &a, Customer: &cust}
	return true, nil
}

// fingerprint identifies the input of a change for idempotency checks.
func fingerprint(op string, in Change) string {
	amount := "all"
	if in.Amount != nil {
		amount = in.Amount.String()
	}
	remark := ""
	if in.Remark != nil {
		remark = *in.Remark
	}
	sum := sha256.Sum256([]byte(op + "\x00" + strconv.FormatUint(uint64(in.CustomerID), 10) + "\x00" + amount + "\x00" + remark))
	return hex.EncodeToString(sum[:])
}
