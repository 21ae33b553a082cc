package auth

import (
	"context"
	"strings"
	"testing"

	"github.com/cloudreseller/credit/internal/errs"
)

func TestSeesAndRequire(t *testing.T) {
	partner := Principal{Role: RolePartner, PartnerID: 7}
	admin := Principal{Role: RoleAdmin}
	if !partner.Sees(7) || partner.Sees(8) || !admin.Sees(8) {
		t.Fatal("Sees")
	}
	if errs.CodeOf(partner.Require(RoleAdmin)) != errs.Forbidden || partner.Require(RoleAdmin, RolePartner) != nil {
		t.Fatal("Require")
	}
}

func TestNewKey(t *testing.T) {
	k1, h1 := NewKey()
	k2, _ := NewKey()
	if len(k1) < 32 || !strings.HasPrefix(k1, KeyPrefix) || k1 == k2 || h1 != HashKey(k1) || strings.Contains(h1, k1) {
		t.Fatalf("keys %q %q hash %q", k1, k2, h1)
	}
}

type keyring map[string]Principal

func (k keyring) Authenticate(_ context.Context, key string) (Principal, error) {
	if p, ok := k[key]; ok {
		return p, nil
	}
	return Principal{}, errs.E(errs.Unauthenticated, "unknown API key")
}

func TestResolve(t *testing.T) {
	keys := keyring{"good": {Role: RoleBilling, KeyName: "feed"}}
	tests := []struct {
		credential string
		want       errs.Code
	}{
		{"Bearer good", ""},
		{"bearer   good ", ""},
		{"", errs.Unauthenticated},
		{"Bearer bad", errs.Unauthenticated},
		{"Basic good", errs.Unauthenticated},
		{"Bearer", errs.Unauthenticated},
		{"good", errs.Unauthenticated},
	}
	for _, tt := range tests {
		p, err := FromContext(Resolve(context.Background(), keys, tt.credential))
		if errs.CodeOf(err) != tt.want || (err == nil && p.KeyName != "feed") {
			t.Errorf("%q: %+v, %v; want %q", tt.credential, p, err, tt.want)
		}
	}
}
