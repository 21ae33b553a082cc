package credit

import (
	"testing"

	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/money"
)

func TestAvailableAndUsage(t *testing.T) {
	tests := []struct {
		credit, used money.Amount
		available    money.Amount
		bp           int64
	}{
		{0, 0, 0, 0},
		{10000, 0, 10000, 0},
		{10000, 2500, 7500, 2500},
		{10000, 7500, 2500, 7500},
		{10000, 10000, 0, 10000},
		{10000, 15000, 0, 15000},
		{0, 1, 0, 10000},  // no credit but usage: 100 %
		{300, 1, 299, 33}, // 0.333… % rounds down
		{3, 2, 1, 6666},   // 66.666… % rounds down, never up to a threshold
		{1, money.MaxInput * 1000, 0, 1<<63 - 1},
	}
	for _, tt := range tests {
		b := Balance{Credit: tt.credit, Used: tt.used}
		if got := b.Available(); got != tt.available {
			t.Errorf("%+v: available %d, want %d", b, got, tt.available)
		}
		if got := b.UsageBasisPoints(); got != tt.bp {
			t.Errorf("%+v: usage %d bp, want %d", b, got, tt.bp)
		}
	}
	if p := PercentFromBasisPoints(7512); p != 75.12 {
		t.Errorf("7512 bp = %v %%", p)
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		available        money.Amount
		nonStop, billing bool
		want             Status
	}{
		{1, false, false, StatusActive},
		{1, true, true, StatusActive},
		{0, false, false, StatusSuspended},
		{0, true, false, StatusPurchasesBlocked},
		{0, false, true, StatusPurchasesBlocked},
		{0, true, true, StatusPurchasesBlocked},
	}
	for _, tt := range tests {
		if got := StatusOf(tt.available, tt.nonStop, tt.billing); got != tt.want {
			t.Errorf("StatusOf(%d, nonStop=%v, billing=%v) = %s, want %s", tt.available, tt.nonStop, tt.billing, got, tt.want)
		}
	}
}

func TestCheckChange(t *testing.T) {
	tests := []struct {
		name      string
		delta     money.Amount
		b         Balance
		remaining money.Amount
		want      errs.Code
	}{
		{"allocate within the line", 500, Balance{}, 500, ""},
		{"allocate over the line", 501, Balance{}, 500, errs.PartnerCreditExceeded},
		{"allocate with a used-up line", 1, Balance{Credit: 100}, 0, errs.PartnerCreditExceeded},
		{"take back what is available", -60, Balance{Credit: 100, Used: 40}, 0, ""},
		{"take back more than available", -61, Balance{Credit: 100, Used: 40}, 0, errs.InsufficientAvailableCredit},
		{"take back used credit", -1, Balance{Credit: 100, Used: 100}, 0, errs.InsufficientAvailableCredit},
		{"take back with nothing", -1, Balance{}, 1000, errs.InsufficientAvailableCredit},
		{"zero", 0, Balance{Credit: 100}, 100, errs.BadUserInput},
	}
	for _, tt := range tests {
		if got := errs.CodeOf(CheckChange(tt.delta, tt.b, tt.remaining)); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestCheckPurchase(t *testing.T) {
	active := Balance{Credit: 1000, Used: 400}
	tests := []struct {
		amount money.Amount
		b      Balance
		status Status
		want   bool
	}{
		{600, active, StatusActive, true},
		{601, active, StatusActive, false},
		{1, Balance{Credit: 10, Used: 10}, StatusSuspended, false},
		{1, Balance{Credit: 10, Used: 10}, StatusPurchasesBlocked, false},
	}
	for _, tt := range tests {
		allowed, reason := CheckPurchase(tt.amount, tt.b, tt.status)
		if allowed != tt.want || (allowed == (reason != "")) {
			t.Errorf("CheckPurchase(%d, %+v, %s) = %v, %q", tt.amount, tt.b, tt.status, allowed, reason)
		}
	}
}

func TestKindOf(t *testing.T) {
	if KindOf(1) != KindAllocate || KindOf(-1) != KindWithdraw {
		t.Fatal("KindOf")
	}
}
