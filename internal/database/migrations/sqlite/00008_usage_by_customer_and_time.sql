-- The depletion forecast's index: see the MySQL migration of the same number.

-- +goose Up
CREATE INDEX `idx_usage_events_customer_time` ON `usage_events` (`customer_id`, `occurred_at`, `amount`);
DROP INDEX `idx_usage_events_customer_id`;

-- +goose Down
CREATE INDEX `idx_usage_events_customer_id` ON `usage_events` (`customer_id`);
DROP INDEX `idx_usage_events_customer_time`;
