// Package auth knows who is calling: API keys, their roles, and the principal a
// request acts as.
//
// Keys are 256 random bits, shown once and stored only as their SHA-256 hash. A
// slow password hash buys nothing for keys with that much entropy, and a plain
// hash lets a key be looked up by an index.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/cloudreseller/credit/internal/errs"
)

// Role is what an API key may do.
type Role string

// The roles.
const (
	RoleAdmin   Role = "ADMIN"
	RolePartner Role = "PARTNER"
	RoleBilling Role = "BILLING"
)

// KeyPrefix starts every generated key, so that a leaked key is easy to recognise.
const KeyPrefix = "ck_"

// Principal is the caller a request acts as.
type Principal struct {
	Role    Role
	KeyID   uint   // 0 for the bootstrap ADMIN_TOKEN
	KeyName string // recorded as the operator of the changes it makes
	// PartnerID is the partner a PARTNER key belongs to, 0 for other roles.
	PartnerID uint
}

// Require returns FORBIDDEN unless the principal has one of the roles.
func (p Principal) Require(roles ...Role) error {
	for _, r := range roles {
		if p.Role == r {
			return nil
		}
	}
	return errs.E(errs.Forbidden, "a %s key may not do this", p.Role)
}

// Sees tells whether the principal may see a partner's data: a PARTNER key
// only its own partner's, other roles (once allowed the operation) every one.
func (p Principal) Sees(partnerID uint) bool {
	return p.Role != RolePartner || p.PartnerID == partnerID
}

// NewKey returns a new random API key and its hash.
func NewKey() (key, hash string) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("auth: no randomness: " + err.Error())
	}
	key = KeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	return key, HashKey(key)
}

// HashKey returns the stored form of a key.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Authenticator resolves a presented key to a principal. It returns an
// UNAUTHENTICATED error for an unknown or revoked key.
type Authenticator interface {
	Authenticate(ctx context.Context, key string) (Principal, error)
}

type ctxKey struct{}

// outcome is what authentication of a request produced: a principal, or the
// error every operation of the request will report.
type outcome struct {
	principal Principal
	err       error
}

// WithPrincipal returns a context acting as p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, outcome{principal: p})
}

// WithError returns a context whose operations fail with err.
func WithError(ctx context.Context, err error) context.Context {
	return context.WithValue(ctx, ctxKey{}, outcome{err: err})
}

// FromContext returns the principal of the request, or UNAUTHENTICATED.
func FromContext(ctx context.Context) (Principal, error) {
	o, ok := ctx.Value(ctxKey{}).(outcome)
	switch {
	case !ok:
		return Principal{}, errs.E(errs.Unauthenticated, "send an API key as 'Authorization: Bearer <key>'")
	case o.err != nil:
		return Principal{}, o.err
	}
	return o.principal, nil
}

// Require returns the principal of the request if it has one of the roles:
// UNAUTHENTICATED without one, FORBIDDEN for another role.
func Require(ctx context.Context, roles ...Role) (Principal, error) {
	p, err := FromContext(ctx)
	if err != nil {
		return p, err
	}
	return p, p.Require(roles...)
}

// Resolve authenticates a bearer credential ("Bearer <key>") and returns a
// context carrying the outcome. An empty credential leaves ctx as it is, so that
// schema introspection works without a key while every operation asks for one.
func Resolve(ctx context.Context, a Authenticator, credential string) context.Context {
	if credential == "" {
		return ctx
	}
	scheme, key, ok := strings.Cut(strings.TrimSpace(credential), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(key) == "" {
		return WithError(ctx, errs.E(errs.Unauthenticated, "the Authorization header must be 'Bearer <key>'"))
	}
	p, err := a.Authenticate(ctx, strings.TrimSpace(key))
	if err != nil {
		return WithError(ctx, err)
	}
	return WithPrincipal(ctx, p)
}

// Middleware authenticates the Authorization header of every request.
func Middleware(a Authenticator, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := Resolve(r.Context(), a, r.Header.Get("Authorization"))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
