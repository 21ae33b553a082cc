package accounts

import (
	"database/sql"
	"errors"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/alerts/outbox"
	"github.com/cloudreseller/credit/internal/alerts/rules"
	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/models"
)

// Customer rows are read by hand on the paths every request takes (one
// customer, a page, a batch of references): GORM's reflection over the row was
// a sixth of the server's CPU reading one customer and a fifth reading a page
// (go run . bench -profile). Writes stay with GORM.

// customerColumns are a customers row's columns in the order scanCustomer
// reads them.
const customerColumns = "id, partner_id, name, email, remark, billing_permission, non_stop_privilege, " +
	"credit, used, available, usage_basis_points, status, alert_fired, alert_percent_levels, alert_available_levels, " +
	"alert_forecast_horizon_hours, forecast_state, created_at, updated_at"

// scanCustomer reads one row of customerColumns.
func scanCustomer(row interface{ Scan(dest ...any) error }) (*models.Customer, error) {
	c := new(models.Customer)
	err := row.Scan(customerFields(c)...)
	return c, err
}

// customerFields are where the columns of customerColumns go.
func customerFields(c *models.Customer) []any {
	return []any{&c.ID, &c.PartnerID, &c.Name, &c.Email, &c.Remark, &c.BillingPermission, &c.NonStopPrivilege,
		&c.Credit, &c.Used, &c.Available, &c.UsageBasisPoints, &c.Status, &c.AlertFired, &c.AlertPercentLevels, &c.AlertAvailableLevels,
		&c.AlertForecastHorizonHours, &c.ForecastState, &c.CreatedAt, &c.UpdatedAt}
}

// scanCustomers reads every row of customerColumns and closes rows.
func scanCustomers(rows *sql.Rows, size int) ([]*models.Customer, error) {
	defer rows.Close()
	out := make([]*models.Customer, 0, size)
	for rows.Next() {
		c, err := scanCustomer(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// queryCustomers runs a statement selecting customerColumns in db's
// transaction (if any), with db's context.
func queryCustomers(db *gorm.DB, size int, query string, args ...any) ([]*models.Customer, error) {
	rows, err := database.Query(db, query, args...)
	if err != nil {
		return nil, err
	}
	return scanCustomers(rows, size)
}

// findCustomer reads the customer with the id, or gorm.ErrRecordNotFound.
func findCustomer(db *gorm.DB, id uint) (*models.Customer, error) {
	cs, err := queryCustomers(db, 1, "SELECT "+customerColumns+" FROM customers WHERE id = ?", id)
	if err == nil && len(cs) == 0 {
		err = gorm.ErrRecordNotFound
	}
	if err != nil {
		return nil, err
	}
	return cs[0], nil
}

// isNotFound tells a missing row from a failure.
func isNotFound(err error) bool { return errors.Is(err, gorm.ErrRecordNotFound) }

// LockCustomer reads the customer with the id, as p may see it, and locks
// its row until the end of tx. Another partner's customer is NOT_FOUND, and
// its row is left unlocked (the condition is part of the statement).
func LockCustomer(tx *gorm.DB, p auth.Principal, id uint) (*models.Customer, error) {
	c, _, err := lockCustomer(tx, p, id, false)
	return c, err
}

// LockCustomerWithRules is LockCustomer that also reads, in the same
// statement, the alert rules in force for the customer (and locks their rows
// shared until the end of tx: see outbox.RuleColumns).
func LockCustomerWithRules(tx *gorm.DB, p auth.Principal, id uint) (*models.Customer, rules.Rules, error) {
	return lockCustomer(tx, p, id, true)
}

func lockCustomer(tx *gorm.DB, p auth.Principal, id uint, withRules bool) (*models.Customer, rules.Rules, error) {
	columns := customerColumns
	if withRules {
		columns += outbox.RuleColumns(tx)
	}
	query, args := "SELECT "+columns+" FROM customers WHERE id = ?", []any{id}
	if p.Role == auth.RolePartner {
		query, args = query+" AND partner_id = ?", append(args, p.PartnerID)
	}
	c := new(models.Customer)
	var inForce outbox.WithCustomer
	fields := customerFields(c)
	if withRules {
		fields = append(fields, inForce.Fields()...)
	}
	err := database.QueryRow(tx, query+database.ForUpdate(tx), args...).Scan(fields...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, rules.Rules{}, errs.E(errs.NotFound, "no customer with id %d", id)
	}
	if err != nil {
		return nil, rules.Rules{}, err
	}
	if !withRules {
		return c, rules.Rules{}, nil
	}
	return c, inForce.Rules(c), nil
}
