// Package models holds the GORM models: what the service stores. The schema
// itself is versioned SQL in internal/database/migrations; the tags here only
// describe it.
//
// Money columns are BIGINT minor units (money.Amount). Customer rows also store
// figures derived from credit and used (available, usage, status) so that
// listings can filter and sort on them with indexes; Customer.SetBalance is the
// only place that writes them, so they cannot drift.
package models

import (
	"time"

	"github.com/cloudreseller/credit/internal/alerts/rules"
	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/credit"
	"github.com/cloudreseller/credit/internal/money"
)

// Partner is a reseller with a credit line to allocate to its customers.
type Partner struct {
	ID         uint         `gorm:"primaryKey"`
	Name       string       `gorm:"size:200;not null"`
	Currency   string       `gorm:"size:3;not null"`
	CreditLine money.Amount `gorm:"not null"`
	// Allocated is the sum of the partner's customers' credit, kept in the same
	// transaction as every change to it.
	Allocated money.Amount `gorm:"not null;default:0"`
	// AllocationRecords and WithdrawRecords count the partner's allocation
	// records (all, and those that took credit back), kept with Allocated, so
	// that a listing's totalCount need not count a million rows.
	AllocationRecords int64     `gorm:"not null;default:0"`
	WithdrawRecords   int64     `gorm:"not null;default:0"`
	CreatedAt         time.Time `gorm:"precision:6;not null"`
}

// RemainingCredit is what the partner may still allocate.
func (p *Partner) RemainingCredit() money.Amount { return p.CreditLine - p.Allocated }

// Customer is a partner's customer with its credit and usage.
type Customer struct {
	ID                uint    `gorm:"primaryKey;index:idx_customers_partner_created,priority:3"`
	PartnerID         uint    `gorm:"not null;index:idx_customers_partner_created,priority:1"`
	Name              string  `gorm:"size:200;not null"`
	Email             *string `gorm:"size:254"`
	Remark            *string `gorm:"size:1000"`
	BillingPermission bool    `gorm:"not null;default:false"`
	NonStopPrivilege  bool    `gorm:"not null;default:false"`

	Credit money.Amount `gorm:"not null;default:0"`
	Used   money.Amount `gorm:"not null;default:0"`
	// Derived from the fields above by SetBalance.
	Available        money.Amount  `gorm:"not null;default:0"`
	UsageBasisPoints int64         `gorm:"not null;default:0"`
	Status           credit.Status `gorm:"size:20;not null"`
	// AlertFired are the alert levels that fired and have not recovered
	// (rules.Fired, encoded).
	AlertFired string `gorm:"size:400;not null;default:''"`
	// AlertPercentLevels and AlertAvailableLevels are the customer's own alert
	// rules (rules.EncodePercent, rules.EncodeAvailable); nil inherits its
	// partner's.
	AlertPercentLevels        *string `gorm:"size:64"`
	AlertAvailableLevels      *string `gorm:"size:200"`
	AlertForecastHorizonHours *int
	// ForecastState is what its depletion forecast said at its last
	// evaluation (rules.ForecastState, encoded).
	ForecastState string `gorm:"size:16;not null;default:''"`

	CreatedAt time.Time `gorm:"precision:6;not null;index:idx_customers_partner_created,priority:2"`
	UpdatedAt time.Time `gorm:"precision:6"`
}

// Balance returns the customer's credit and usage.
func (c *Customer) Balance() credit.Balance {
	return credit.Balance{Credit: c.Credit, Used: c.Used}
}

// SetBalance sets credit and used and recomputes what follows from them.
func (c *Customer) SetBalance(b credit.Balance) {
	c.Credit, c.Used = b.Credit, b.Used
	c.Refresh()
}

// Refresh recomputes available credit, usage and status, after a change of
// balance or privileges.
func (c *Customer) Refresh() {
	b := c.Balance()
	c.Available = b.Available()
	c.UsageBasisPoints = b.UsageBasisPoints()
	c.Status = credit.StatusOf(c.Available, c.NonStopPrivilege, c.BillingPermission)
}

// UsagePercent is used / credit * 100, rounded down to two decimals.
func (c *Customer) UsagePercent() float64 {
	return credit.PercentFromBasisPoints(c.UsageBasisPoints)
}

// CreditAllocation records one change of a customer's credit.
type CreditAllocation struct {
	ID         uint         `gorm:"primaryKey"`
	PartnerID  uint         `gorm:"not null;index:idx_allocations_partner_created,priority:1;uniqueIndex:idx_allocations_idempotency,priority:1"`
	CustomerID uint         `gorm:"not null;index:idx_allocations_customer_created,priority:1"`
	Kind       credit.Kind  `gorm:"size:10;not null"`
	Amount     money.Amount `gorm:"not null"`

	CreditBefore   money.Amount `gorm:"not null"`
	CreditAfter    money.Amount `gorm:"not null"`
	AvailableAfter money.Amount `gorm:"not null"`

	// Operator is the name of the key that made the change, kept even if the key
	// is later revoked.
	Operator string  `gorm:"size:100;not null"`
	APIKeyID *uint   // nil for the bootstrap ADMIN_TOKEN
	Remark   *string `gorm:"size:1000"`

	// IdempotencyKey is unique per partner; RequestHash fingerprints the input it
	// was first used with.
	IdempotencyKey *string `gorm:"size:128;uniqueIndex:idx_allocations_idempotency,priority:2"`
	RequestHash    string  `gorm:"size:64;not null;default:''"`

	CreatedAt time.Time `gorm:"precision:6;not null;index:idx_allocations_partner_created,priority:2;index:idx_allocations_customer_created,priority:2"`
}

// APIKey is a stored API key: only the hash of its secret is kept.
type APIKey struct {
	ID        uint       `gorm:"primaryKey"`
	Name      string     `gorm:"size:100;not null"`
	Role      auth.Role  `gorm:"size:10;not null"`
	PartnerID *uint      `gorm:"index"`
	Hash      string     `gorm:"size:64;not null;uniqueIndex"`
	CreatedAt time.Time  `gorm:"precision:6;not null"`
	RevokedAt *time.Time `gorm:"precision:6"`
}

// TableName keeps the table name readable ("api_keys", not "api_k_eys").
func (APIKey) TableName() string { return "api_keys" }

// UsageEvent is one usage record from the billing feed, counted at list price.
type UsageEvent struct {
	ID uint `gorm:"primaryKey"`
	// EventID is the feed's own id: an event is applied once, however often it
	// is sent.
	EventID     string       `gorm:"size:64;not null;uniqueIndex"`
	PartnerID   uint         `gorm:"not null;index"`
	CustomerID  uint         `gorm:"not null;index"`
	Amount      money.Amount `gorm:"not null"`
	Description *string      `gorm:"size:500"`
	OccurredAt  time.Time    `gorm:"precision:6;not null"`
	CreatedAt   time.Time    `gorm:"precision:6;not null"`
}

// Alert records that a customer's usage crossed a threshold.
//
// IDs are not auto-increment: each comes from the AlertSequence row, locked
// until the raising transaction commits, so alert ids become visible in id
// order. That is what lets every process tail the table with "id > last seen"
// and lets a listener resume after an id without missing anything.
type Alert struct {
	ID               uint         `gorm:"primaryKey;autoIncrement:false"`
	PartnerID        uint         `gorm:"not null;index:idx_alerts_partner,priority:1"`
	CustomerID       uint         `gorm:"not null;index:idx_alerts_customer,priority:1"`
	Threshold        int          `gorm:"not null"`
	UsageBasisPoints int64        `gorm:"not null"`
	Used             money.Amount `gorm:"not null"`
	Credit           money.Amount `gorm:"not null"`
	Available        money.Amount `gorm:"not null"`
	CreatedAt        time.Time    `gorm:"precision:6;not null;index"`
	// RaisedID is the alert's row in the outbox (raised_alerts) before it was
	// numbered; nil for alerts numbered before the outbox existed.
	RaisedID *uint
	// Kind is what the alert says; Cause what made the change that raised it.
	Kind  rules.Kind  `gorm:"size:24;not null;default:USAGE_THRESHOLD"`
	Cause rules.Cause `gorm:"size:24;not null;default:USAGE"`
	// Level is the available level of AVAILABLE_BELOW (and of RECOVERED when
	// an available level recovered).
	Level *money.Amount
	// RecoveredKind is the kind of level that recovered (RECOVERED).
	RecoveredKind *rules.Kind `gorm:"size:24"`
	// Status is the customer's status right after the change (nil for alerts
	// raised before alert kinds existed); PreviousStatus the one before it
	// (STATUS_CHANGED).
	Status         *credit.Status `gorm:"size:20"`
	PreviousStatus *credit.Status `gorm:"size:20"`
	// The forecast of a DEPLETION_FORECAST alert: burn rate, depletion time,
	// days left in hundredths, and the hours of history it is based on.
	BurnRatePerDay *money.Amount
	DepletesAt     *time.Time `gorm:"precision:6"`
	DaysLeft       *int64
	BasedOnHours   *int
}

// UsagePercent is the customer's usage right after the change that raised the alert.
func (a *Alert) UsagePercent() float64 {
	return credit.PercentFromBasisPoints(a.UsageBasisPoints)
}

// AlertSequence is a one-row counter that hands out alert ids in commit order.
type AlertSequence struct {
	ID     uint `gorm:"primaryKey;autoIncrement:false"`
	LastID uint `gorm:"not null"`
}
