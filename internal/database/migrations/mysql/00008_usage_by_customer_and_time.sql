-- The depletion forecast sums a customer's usage over a trailing window and
-- looks up its first usage: both are ranges of one index on (customer_id,
-- occurred_at), which carries the amount so that the sum reads no row. It
-- replaces the index on customer_id alone (the foreign key uses the new one),
-- so recording usage maintains as many indexes as before.

-- +goose Up
ALTER TABLE `usage_events`
  ADD KEY `idx_usage_events_customer_time` (`customer_id`, `occurred_at`, `amount`),
  DROP KEY `idx_usage_events_customer_id`;

-- +goose Down
ALTER TABLE `usage_events`
  ADD KEY `idx_usage_events_customer_id` (`customer_id`),
  DROP KEY `idx_usage_events_customer_time`;
