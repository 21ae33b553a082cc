-- An index for every order a customer listing offers, and for the filters of
-- the record and alert listings, so that a page reads its rows from an index
-- (keyset pagination) instead of sorting or scanning all of a partner's rows.
-- InnoDB appends the primary key (id) to every secondary index: (partner_id,
-- credit) is (partner_id, credit, id), the order of a page and its cursor.

-- +goose Up
CREATE INDEX `idx_customers_partner_name` ON `customers` (`partner_id`, `name`);
CREATE INDEX `idx_customers_partner_credit` ON `customers` (`partner_id`, `credit`);
CREATE INDEX `idx_customers_partner_available` ON `customers` (`partner_id`, `available`);
CREATE INDEX `idx_customers_partner_usage` ON `customers` (`partner_id`, `usage_basis_points`);
CREATE INDEX `idx_customers_partner_status_created` ON `customers` (`partner_id`, `status`, `created_at`);
CREATE INDEX `idx_customers_email` ON `customers` (`email`);
CREATE INDEX `idx_allocations_partner_kind_created` ON `credit_allocations` (`partner_id`, `kind`, `created_at`);
CREATE INDEX `idx_alerts_partner_threshold` ON `alerts` (`partner_id`, `threshold`);

-- +goose Down
DROP INDEX `idx_customers_partner_name` ON `customers`;
DROP INDEX `idx_customers_partner_credit` ON `customers`;
DROP INDEX `idx_customers_partner_available` ON `customers`;
DROP INDEX `idx_customers_partner_usage` ON `customers`;
DROP INDEX `idx_customers_partner_status_created` ON `customers`;
DROP INDEX `idx_customers_email` ON `customers`;
DROP INDEX `idx_allocations_partner_kind_created` ON `credit_allocations`;
DROP INDEX `idx_alerts_partner_threshold` ON `alerts`;
