// Package demo fills an empty store with a demo partner, customers and credit
// changes, so that a newcomer can explore the API at once.
package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudreseller/credit/internal/accounts"
	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/keys"
	"github.com/cloudreseller/credit/internal/ledger"
	"github.com/cloudreseller/credit/internal/money"
)

// PartnerName names the demo partner.
const PartnerName = "Demo Reseller"

// Keys are the demo keys, shown once at start-up.
type Keys struct {
	Partner string
	Billing string
}

type customer struct {
	name, email, remark string
	billing             bool
	credit, used        int64 // whole units
}

var customers = []customer{
	{"Acme Corp", "ops@acme.example", "enterprise plan", true, 5000, 1250},
	{"Globex Ltd", "billing@globex.example", "", false, 1200, 1000},
	{"Initech", "it@initech.example", "trial, 50% off", false, 300, 0},
	{"Umbrella Labs", "", "pays monthly", true, 0, 0},
	{"Stark Industries", "cloud@stark.example", "", false, 2500, 2500},
}

// Ensure makes sure the demo partner exists, creating it with Seed when it does
// not, and otherwise issuing fresh demo keys for it (keys are shown only once, so
// a restart that wants to print keys must make new ones).
func Ensure(ctx context.Context, acc *accounts.Service, ks *keys.Service, led *ledger.Ledger) (Keys, error) {
	p, err := acc.PartnerByName(ctx, PartnerName)
	if err != nil {
		return Keys{}, err
	}
	if p == nil {
		return Seed(ctx, acc, ks, led)
	}
	return issueKeys(ctx, ks, p.ID)
}

// Seed creates the demo partner (credit line 100,000.00), its customers and
// allocations, and a PARTNER and a BILLING key.
func Seed(ctx context.Context, acc *accounts.Service, ks *keys.Service, led *ledger.Ledger) (Keys, error) {
	admin := auth.WithPrincipal(ctx, auth.Principal{Role: auth.RoleAdmin, KeyName: "demo-seed"})
	line, _ := money.FromUnits(100_000)
	p, err := acc.CreatePartner(admin, accounts.NewPartner{Name: PartnerName, CreditLine: line, Currency: "USD"})
	if err != nil {
		return Keys{}, fmt.Errorf("demo partner: %w", err)
	}
	for _, c := range customers {
		email, remark := optional(c.email), optional(c.remark)
		cust, err := acc.CreateCustomer(admin, accounts.NewCustomer{
			Name: c.name, Email: email, Remark: remark, BillingPermission: c.billing, PartnerID: &p.ID,
		})
		if err != nil {
			return Keys{}, fmt.Errorf("demo customer: %w", err)
		}
		if err := fund(admin, led, cust.ID, c); err != nil {
			return Keys{}, err
		}
	}
	return issueKeys(ctx, ks, p.ID)
}

// fund gives a demo customer its credit and usage (which raises its alerts).
func fund(ctx context.Context, led *ledger.Ledger, id uint, c customer) error {
	if c.credit > 0 {
		amount, _ := money.FromUnits(c.credit)
		if _, err := led.SetCredit(ctx, ledger.Change{CustomerID: id, Amount: &amount, Remark: optional("initial credit")}); err != nil {
			return fmt.Errorf("demo credit: %w", err)
		}
	}
	if c.used > 0 {
		// Spread over the last four days, so that the depletion forecast
		// has a history to tell from.
		total, _ := money.FromUnits(c.used)
		now := time.Now().UTC()
		var events []ledger.UsageEvent
		for day := range 4 {
			amount := total / 4
			if day == 3 {
				amount = total - 3*(total/4)
			}
			at := now.Add(-time.Duration(4-day) * 24 * time.Hour)
			events = append(events, ledger.UsageEvent{EventID: fmt.Sprintf("demo-%d-%d", id, day), CustomerID: id, Amount: amount,
				OccurredAt: &at, Description: optional("demo usage")})
		}
		if _, err := led.RecordUsage(ctx, events); err != nil {
			return fmt.Errorf("demo usage: %w", err)
		}
	}
	return nil
}

func issueKeys(ctx context.Context, ks *keys.Service, partnerID uint) (Keys, error) {
	var (
		out Keys
		err error
	)
	if out.Partner, _, err = ks.Issue(ctx, keys.NewKey{Name: "demo-partner", Role: auth.RolePartner, PartnerID: &partnerID}); err != nil {
		return Keys{}, err
	}
	if out.Billing, _, err = ks.Issue(ctx, keys.NewKey{Name: "demo-billing", Role: auth.RoleBilling}); err != nil {
		return Keys{}, err
	}
	return out, nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
