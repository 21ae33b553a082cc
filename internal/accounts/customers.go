package accounts

import (
	"context"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/alerts/outbox"
	"github.com/cloudreseller/credit/internal/alerts/rules"
	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/credit"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/input"
	"github.com/cloudreseller/credit/internal/money"
	"github.com/cloudreseller/credit/internal/page"
	"github.com/cloudreseller/credit/models"
)

// CustomerFilter narrows a customer listing. Zero fields do not filter.
type CustomerFilter struct {
	// Search finds a customer by id (a whole number) or e-mail address
	// (text with an @), or else by a substring of name, e-mail or remark.
	Search *string
	Status *credit.Status
	IDs    []uint
}

// CustomerOrderField is what customers can be sorted by.
type CustomerOrderField string

// The sort fields.
const (
	OrderCreatedAt    CustomerOrderField = "CREATED_AT"
	OrderName         CustomerOrderField = "NAME"
	OrderCredit       CustomerOrderField = "CREDIT"
	OrderAvailable    CustomerOrderField = "AVAILABLE"
	OrderUsagePercent CustomerOrderField = "USAGE_PERCENT"
)

// CustomerOrder is a sort order; the zero value is newest first.
type CustomerOrder struct {
	Field CustomerOrderField
	Desc  bool
}

// sortKey says how to sort customers by one field and how its cursor value is
// written and read back.
type sortKey struct {
	column string // a trusted SQL expression
	// sqliteColumn, when set, replaces column on SQLite.
	sqliteColumn string
	// index is the index of a partner's customers in this order.
	index string
	value func(*models.Customer) string
	parse func(string) (any, error)
}

func intKey(column, index string, get func(*models.Customer) int64) sortKey {
	return sortKey{
		column: column,
		index:  index,
		value:  func(c *models.Customer) string { return strconv.FormatInt(get(c), 10) },
		parse:  func(s string) (any, error) { return strconv.ParseInt(s, 10, 64) },
	}
}

var sortKeys = map[CustomerOrderField]sortKey{
	OrderCreatedAt: {
		column: "created_at",
		index:  "idx_customers_partner_created",
		value:  func(c *models.Customer) string { return c.CreatedAt.UTC().Format(time.RFC3339Nano) },
		parse: func(s string) (any, error) {
			t, err := time.Parse(time.RFC3339Nano, s)
			return t.UTC(), err
		},
	},
	OrderName: {
		// Case-insensitive on both stores, each by an index of its own
		// (idx_customers_partner_name): MySQL's collation folds case, SQLite
		// compares bytes unless told NOCASE.
		column:       "name",
		sqliteColumn: "name COLLATE NOCASE",
		index:        "idx_customers_partner_name",
		value:        func(c *models.Customer) string { return c.Name },
		parse:        func(s string) (any, error) { return s, nil },
	},
	OrderCredit:       intKey("credit", "idx_customers_partner_credit", func(c *models.Customer) int64 { return int64(c.Credit) }),
	OrderAvailable:    intKey("available", "idx_customers_partner_available", func(c *models.Customer) int64 { return int64(c.Available) }),
	OrderUsagePercent: intKey("usage_basis_points", "idx_customers_partner_usage", func(c *models.Customer) int64 { return c.UsageBasisPoints }),
}

// Customers lists customers: a PARTNER key's own, or for ADMIN those of the named
// partner or of all partners.
func (s *Service) Customers(ctx context.Context, partnerID *uint, f CustomerFilter, order CustomerOrder, args page.Args) (page.Result[*models.Customer], error) {
	var none page.Result[*models.Customer]
	scope, err := s.partnerScope(ctx, partnerID)
	if err != nil {
		return none, err
	}
	req, err := args.Parse()
	if err != nil {
		return none, err
	}
	q, err := customerQuery(s.db.WithContext(ctx), scope, f)
	if err != nil {
		return none, err
	}
	total, err := database.CountIf(req.Count, q)
	if err != nil {
		return none, err
	}
	if order.Field == "" {
		order = CustomerOrder{Field: OrderCreatedAt, Desc: true}
	}
	key, ok := sortKeys[order.Field]
	if !ok {
		return none, errs.E(errs.BadUserInput, "cannot sort customers by %s", order.Field)
	}
	var after any
	if req.After != nil {
		if after, err = key.parse(req.After.Value); err != nil {
			return none, errs.E(errs.BadUserInput, "after is not a cursor of this ordering")
		}
	}
	column := key.column
	if key.sqliteColumn != "" && !database.IsMySQL(s.db) {
		column = key.sqliteColumn
	}
	q = database.ForceIndex(q, "customers", pageIndex(key, scope, f))
	if scope != 0 && f.Search != nil && isEmail(*f.Search) && !database.IsMySQL(s.db) {
		// SQLite prefers walking the page's order over the e-mail index.
		q = q.Table("customers INDEXED BY idx_customers_partner_email")
	}
	q = database.Seek(q, column, order.Desc, req.After != nil, after, req.AfterID())
	res, err := q.Select(customerColumns).Limit(req.Limit + 1).Rows()
	if err != nil {
		return none, err
	}
	rows, err := scanCustomers(res, req.Limit+1)
	if err != nil {
		return none, err
	}
	return page.Build(rows, req, total, func(c *models.Customer) page.Cursor {
		return page.Cursor{Value: key.value(c), ID: c.ID}
	}), nil
}

// pageIndex names the index that serves a partner's page in the key's order
// (none for listings across partners or by ids).
func pageIndex(key sortKey, partnerID uint, f CustomerFilter) string {
	if partnerID == 0 || f.IDs != nil || f.Search != nil && *f.Search != "" {
		return ""
	}
	if f.Status != nil {
		if key.column != "created_at" {
			return ""
		}
		return "idx_customers_partner_status_created"
	}
	return key.index
}

// MaxSearchLength bounds a customer search (names are at most 200 characters,
// remarks 1,000: a longer search cannot match a name).
const MaxSearchLength = 1000

// customerQuery selects the customers of a partner (0: all) that match f.
func customerQuery(db *gorm.DB, partnerID uint, f CustomerFilter) (*gorm.DB, error) {
	q := db.Model(&models.Customer{})
	if partnerID != 0 {
		q = q.Where("partner_id = ?", partnerID)
	}
	if f.Status != nil {
		q = q.Where("status = ?", *f.Status)
	}
	if f.IDs != nil {
		if len(f.IDs) > 100 {
			return nil, errs.E(errs.BadUserInput, "filter.ids takes at most 100 ids")
		}
		q = q.Where("id IN ?", append([]uint{0}, f.IDs...))
	}
	if f.Search != nil && utf8.RuneCountInString(*f.Search) > MaxSearchLength {
		return nil, errs.E(errs.BadUserInput, "filter.search must be at most %d characters", MaxSearchLength)
	}
	if f.Search != nil && *f.Search != "" {
		q = search(q, *f.Search, !database.IsMySQL(db))
	}
	return q, nil
}

// search narrows q to what a search finds. A whole number is a customer id
// and an e-mail address an e-mail, found exactly by their indexes (a
// dashboard's look-up of one customer stays fast at any size); any other text
// is a substring of name, e-mail or remark, taken literally.
func search(q *gorm.DB, text string, sqlite bool) *gorm.DB {
	if id, err := strconv.ParseUint(text, 10, 64); err == nil {
		return q.Where("id = ?", id)
	}
	if isEmail(text) && sqlite {
		return q.Where("email = ? COLLATE NOCASE", text) // as MySQL's collation compares it
	}
	if isEmail(text) {
		return q.Where("email = ?", text)
	}
	like := "%" + escapeLike(text) + "%"
	return q.Where("name LIKE ? ESCAPE '!' OR email LIKE ? ESCAPE '!' OR remark LIKE ? ESCAPE '!'", like, like, like)
}

// isEmail tells whether a search is an e-mail address, found whole.
func isEmail(text string) bool {
	return strings.Contains(text, "@") && !strings.ContainsAny(text, " \t")
}

// escapeLike makes s match literally inside a LIKE pattern with ESCAPE '!'.
func escapeLike(s string) string {
	return strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(s)
}

// Customer returns the customer with the id, or nil when it does not exist or
// the caller may not see it.
func (s *Service) Customer(ctx context.Context, id uint) (*models.Customer, error) {
	c, err := s.visibleCustomer(ctx, id)
	if errs.CodeOf(err) == errs.NotFound {
		return nil, nil
	}
	return c, err
}

// visibleCustomer returns the customer, or NOT_FOUND when it does not exist or
// belongs to another partner than a PARTNER caller's (the two look the same).
func (s *Service) visibleCustomer(ctx context.Context, id uint) (*models.Customer, error) {
	p, err := customerViewer(ctx)
	if err != nil {
		return nil, err
	}
	return FindCustomer(s.db.WithContext(ctx), p, id, false)
}

// customerViewer returns the caller, if it may read customers at all.
func customerViewer(ctx context.Context) (auth.Principal, error) {
	return auth.Require(ctx, auth.RoleAdmin, auth.RolePartner)
}

// FindCustomer reads the customer with the id as p may see it (locked for the
// transaction when forUpdate is true). A customer of another partner than a PARTNER
// key's is NOT_FOUND, exactly like a missing one.
func FindCustomer(db *gorm.DB, p auth.Principal, id uint, forUpdate bool) (*models.Customer, error) {
	if forUpdate {
		return LockCustomer(db, p, id)
	}
	c, err := findCustomer(db, id)
	if isNotFound(err) || (err == nil && !p.Sees(c.PartnerID)) {
		return nil, errs.E(errs.NotFound, "no customer with id %d", id)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// CustomersByID loads customers by id, in the order asked, with nil for a
// missing one. It checks no permission: it serves data loaders that resolve
// references from records the caller could already see.
//
// Identical loads in flight at once are made once: when an alert reaches
// 10,000 listeners that each select its customer, they share one query
// instead of running 10,000. Nothing is kept after the query returns, so
// every load still sees data read after it was asked for, or by a query
// already running then.
func (s *Service) CustomersByID(ctx context.Context, ids []uint) ([]*models.Customer, error) {
	ch := s.loads.DoChan(idsKey(ids), func() (any, error) {
		// The shared query outlives a caller that gives up, within bounds.
		shared, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return s.customersByID(shared, ids)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]*models.Customer), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func idsKey(ids []uint) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(strconv.FormatUint(uint64(id), 10))
		b.WriteByte(',')
	}
	return b.String()
}

func (s *Service) customersByID(ctx context.Context, ids []uint) ([]*models.Customer, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	in, args := database.In(ids)
	rows, err := queryCustomers(s.db.WithContext(ctx), len(ids), "SELECT "+customerColumns+" FROM customers WHERE id IN "+in, args...)
	if err != nil {
		return nil, err
	}
	byID := make(map[uint]*models.Customer, len(rows))
	for _, c := range rows {
		byID[c.ID] = c
	}
	out := make([]*models.Customer, len(ids))
	for i, id := range ids {
		out[i] = byID[id]
	}
	return out, nil
}

// CustomerUpdate changes a customer's details; nil fields stay as they are.
type CustomerUpdate struct {
	Name              *string
	Email             *string // "" clears it
	Remark            *string // "" clears it
	BillingPermission *bool
}

// UpdateCustomer changes a customer's details and billing permission.
func (s *Service) UpdateCustomer(ctx context.Context, id uint, in CustomerUpdate) (*models.Customer, error) {
	p, err := customerViewer(ctx)
	if err != nil {
		return nil, err
	}
	var c *models.Customer
	var raised []*models.Alert
	err = database.Transact(ctx, s.db, func(tx *gorm.DB) error {
		if c, err = FindCustomer(tx, p, id, true); err != nil {
			return err
		}
		was := outbox.StateOf(c)
		if err := in.apply(c); err != nil {
			return err
		}
		c.Refresh()
		if raised, err = raiseOnStatusChange(tx, c, was); err != nil {
			return err
		}
		return tx.Model(c).Select("name", "email", "remark", "billing_permission", "status", "alert_fired", "updated_at").Updates(c).Error
	})
	if err != nil {
		return nil, err
	}
	s.notify(raised)
	return c, nil
}

// raiseOnStatusChange writes to the outbox the alerts a change of c's
// privileges raises (its status may change; its balance does not), in tx.
func raiseOnStatusChange(tx *gorm.DB, c *models.Customer, was rules.State) ([]*models.Alert, error) {
	if c.Status == was.Status {
		return nil, nil // no rule looks at privileges but through the status
	}
	inForce, err := outbox.RulesFor(tx, []*models.Customer{c})
	if err != nil {
		return nil, err
	}
	raised := outbox.Apply(inForce[c.ID], rules.CausePrivilegeChange, c, was)
	return raised, outbox.Insert(tx, raised)
}

// notify tells the outbox's tail of alerts a committed change raised.
func (s *Service) notify(raised []*models.Alert) {
	if len(raised) > 0 && s.outbox != nil {
		s.outbox.Raised()
	}
}

func (in CustomerUpdate) apply(c *models.Customer) error {
	var err error
	if in.Name != nil {
		if c.Name, err = input.Name("name", *in.Name, 200); err != nil {
			return err
		}
	}
	if in.Email != nil {
		if c.Email, err = input.Email(in.Email); err != nil {
			return err
		}
	}
	if in.Remark != nil {
		if c.Remark, err = input.Optional("remark", in.Remark, 1000); err != nil {
			return err
		}
	}
	if in.BillingPermission != nil {
		c.BillingPermission = *in.BillingPermission
	}
	return nil
}

// SetNonStopPrivilege grants or removes a customer's non-stop privilege (ADMIN).
func (s *Service) SetNonStopPrivilege(ctx context.Context, id uint, enabled bool) (*models.Customer, error) {
	if err := requireRole(ctx, auth.RoleAdmin); err != nil {
		return nil, err
	}
	var c *models.Customer
	var raised []*models.Alert
	err := database.Transact(ctx, s.db, func(tx *gorm.DB) (err error) {
		if c, err = FindCustomer(tx, auth.Principal{Role: auth.RoleAdmin}, id, true); err != nil {
			return err
		}
		was := outbox.StateOf(c)
		c.NonStopPrivilege = enabled
		c.Refresh()
		if raised, err = raiseOnStatusChange(tx, c, was); err != nil {
			return err
		}
		return tx.Model(c).Select("non_stop_privilege", "status", "alert_fired", "updated_at").Updates(c).Error
	})
	if err != nil {
		return nil, err
	}
	s.notify(raised)
	return c, nil
}

// PurchaseCheck tells whether a customer may buy something costing amount now.
type PurchaseCheck struct {
	Allowed   bool
	Reason    *string
	Available money.Amount
	Status    credit.Status
}

// CheckPurchase answers whether the customer may buy something costing amount.
func (s *Service) CheckPurchase(ctx context.Context, customerID uint, amount money.Amount) (*PurchaseCheck, error) {
	if amount <= 0 {
		return nil, errs.E(errs.BadUserInput, "amount must be greater than zero")
	}
	c, err := s.visibleCustomer(ctx, customerID)
	if err != nil {
		return nil, err
	}
	allowed, reason := credit.CheckPurchase(amount, c.Balance(), c.Status)
	pc := &PurchaseCheck{Allowed: allowed, Available: c.Available, Status: c.Status}
	if reason != "" {
		pc.Reason = &reason
	}
	return pc, nil
}
