// Package resolvers translates GraphQL operations into calls on the services and
// their results back into GraphQL types. The rules live in the services.
package resolvers

import (
	"github.com/cloudreseller/credit/internal/accounts"
	"github.com/cloudreseller/credit/internal/alerts"
	"github.com/cloudreseller/credit/internal/alerts/delivery"
	"github.com/cloudreseller/credit/internal/alerts/email"
	"github.com/cloudreseller/credit/internal/alerts/webhook"
	"github.com/cloudreseller/credit/internal/keys"
	"github.com/cloudreseller/credit/internal/ledger"
)

// Resolver is the root resolver: the services the operations call.
type Resolver struct {
	Accounts *accounts.Service
	Keys     *keys.Service
	Ledger   *ledger.Ledger
	Alerts   *alerts.Service
	Webhooks *webhook.Service
	Email    *email.Service
	// Deliveries is the log and queue every channel shares.
	Deliveries *delivery.Service
}
