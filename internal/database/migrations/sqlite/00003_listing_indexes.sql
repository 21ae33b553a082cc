-- An index for every order a customer listing offers, and for the filters of
-- the record and alert listings, so that a page reads its rows from an index
-- (keyset pagination) instead of sorting or scanning all of a partner's rows.
-- Names sort case-insensitively (COLLATE NOCASE, as the listing orders them).

-- +goose Up
CREATE INDEX `idx_customers_partner_name` ON `customers` (`partner_id`, `name` COLLATE NOCASE, `id`);
CREATE INDEX `idx_customers_partner_credit` ON `customers` (`partner_id`, `credit`, `id`);
CREATE INDEX `idx_customers_partner_available` ON `customers` (`partner_id`, `available`, `id`);
CREATE INDEX `idx_customers_partner_usage` ON `customers` (`partner_id`, `usage_basis_points`, `id`);
CREATE INDEX `idx_customers_partner_status_created` ON `customers` (`partner_id`, `status`, `created_at`, `id`);
CREATE INDEX `idx_customers_email` ON `customers` (`email` COLLATE NOCASE);
CREATE INDEX `idx_customers_partner_email` ON `customers` (`partner_id`, `email` COLLATE NOCASE);
CREATE INDEX `idx_allocations_partner_kind_created` ON `credit_allocations` (`partner_id`, `kind`, `created_at`, `id`);
CREATE INDEX `idx_alerts_partner_threshold` ON `alerts` (`partner_id`, `threshold`, `id`);
ANALYZE;

-- +goose Down
DROP INDEX `idx_customers_partner_name`;
DROP INDEX `idx_customers_partner_credit`;
DROP INDEX `idx_customers_partner_available`;
DROP INDEX `idx_customers_partner_usage`;
DROP INDEX `idx_customers_partner_status_created`;
DROP INDEX `idx_customers_email`;
DROP INDEX `idx_customers_partner_email`;
DROP INDEX `idx_allocations_partner_kind_created`;
DROP INDEX `idx_alerts_partner_threshold`;
