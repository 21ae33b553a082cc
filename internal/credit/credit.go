// Package credit holds the rules of customer credit: what is available, how much
// of it is used, what status follows, and which changes are allowed.
//
// The balance rules, in one place:
//
//	available     = max(0, credit - used)
//	usagePercent  = used / credit * 100, rounded down to 0.01
//	                (0 when both are 0; 100 when credit is 0 and used is not)
//	status        = ACTIVE while available > 0; at zero, PURCHASES_BLOCKED for a
//	                customer with the non-stop privilege or billing permission,
//	                otherwise SUSPENDED
//	partner line  = allocated (sum of its customers' credit) never exceeds creditLine
//
// A credit change is signed: positive allocates from the partner's remaining
// line, negative takes back available credit and returns it to the line.
package credit

import (
	"math/big"

	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/money"
)

// Status says whether a customer can use and buy services.
type Status string

// The customer statuses.
const (
	StatusActive           Status = "ACTIVE"
	StatusPurchasesBlocked Status = "PURCHASES_BLOCKED"
	StatusSuspended        Status = "SUSPENDED"
)

// Kind is the direction of a credit change.
type Kind string

// The kinds of allocation records.
const (
	KindAllocate Kind = "ALLOCATE"
	KindWithdraw Kind = "WITHDRAW"
)

// KindOf returns the kind of a signed change.
func KindOf(delta money.Amount) Kind {
	if delta < 0 {
		return KindWithdraw
	}
	return KindAllocate
}

// Balance is a customer's credit and the usage counted against it.
type Balance struct {
	Credit money.Amount
	Used   money.Amount
}

// Available is the credit the customer can still spend: max(0, credit - used).
func (b Balance) Available() money.Amount {
	if b.Used >= b.Credit {
		return 0
	}
	return b.Credit - b.Used
}

// UsageBasisPoints is used / credit in hundredths of a percent, rounded down
// (7500 is 75 %). It is exact integer arithmetic, so it can be stored, sorted
// and compared with thresholds without float surprises.
func (b Balance) UsageBasisPoints() int64 {
	switch {
	case b.Used <= 0:
		return 0
	case b.Credit <= 0:
		return 100 * 100
	}
	q := new(big.Int).Mul(big.NewInt(int64(b.Used)), big.NewInt(100*100))
	q.Quo(q, big.NewInt(int64(b.Credit)))
	if !q.IsInt64() {
		return 1<<63 - 1
	}
	return q.Int64()
}

// PercentFromBasisPoints turns basis points of usage into the percentage shown to
// clients (7512 becomes 75.12).
func PercentFromBasisPoints(bp int64) float64 {
	return float64(bp) / 100
}

// StatusOf returns the status of a customer with the given available credit and
// privileges.
func StatusOf(available money.Amount, nonStop, billingPermission bool) Status {
	switch {
	case available > 0:
		return StatusActive
	case nonStop || billingPermission:
		return StatusPurchasesBlocked
	default:
		return StatusSuspended
	}
}

// CheckChange tells whether a signed change to a customer's credit may be made,
// given the customer's balance and what remains of its partner's credit line.
func CheckChange(delta money.Amount, b Balance, partnerRemaining money.Amount) error {
	switch {
	case delta == 0:
		return errs.E(errs.BadUserInput, "amount must not be zero")
	case delta > 0 && delta > partnerRemaining:
		return errs.E(errs.PartnerCreditExceeded,
			"allocating %s would exceed the partner's credit line: %s remains", delta, partnerRemaining)
	case delta < 0 && -delta > b.Available():
		return errs.E(errs.InsufficientAvailableCredit,
			"cannot take back %s: the customer has %s available", -delta, b.Available())
	}
	return nil
}

// CheckPurchase tells whether a customer may buy something costing amount, and if
// not, why.
func CheckPurchase(amount money.Amount, b Balance, status Status) (allowed bool, reason string) {
	switch {
	case status == StatusSuspended:
		return false, "the customer is suspended: it has no available credit"
	case status == StatusPurchasesBlocked:
		return false, "purchases are blocked: the customer has no available credit"
	case amount > b.Available():
		return false, "the amount exceeds the customer's available credit of " + b.Available().String()
	}
	return true, ""
}
