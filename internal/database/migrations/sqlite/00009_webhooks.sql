-- Webhooks: see the MySQL migration of the same number.

-- +goose Up
CREATE TABLE `webhook_endpoints` (
  `id` integer PRIMARY KEY AUTOINCREMENT,
  `partner_id` integer NOT NULL CONSTRAINT `fk_webhook_endpoints_partner` REFERENCES `partners` (`id`),
  `url` text NOT NULL,
  `description` text,
  `filter_kinds` text,
  `filter_customers` text,
  `secret` text NOT NULL,
  `previous_secret` text,
  `previous_secret_until` datetime,
  `disabled_at` datetime,
  `disabled_reason` text,
  `failing_since` datetime,
  `created_at` datetime NOT NULL,
  `updated_at` datetime NOT NULL
);
CREATE INDEX `idx_webhook_endpoints_partner` ON `webhook_endpoints` (`partner_id`, `id`);
CREATE TABLE `webhook_deliveries` (
  `id` integer PRIMARY KEY AUTOINCREMENT,
  `endpoint_id` integer NOT NULL,
  `partner_id` integer NOT NULL,
  `alert_id` integer NOT NULL,
  `status` text NOT NULL,
  `attempts` integer NOT NULL DEFAULT 0,
  `next_attempt_at` datetime,
  `lease_until` datetime,
  `last_error` text,
  `created_at` datetime NOT NULL,
  `delivered_at` datetime
);
CREATE INDEX `idx_webhook_deliveries_due` ON `webhook_deliveries` (`status`, `next_attempt_at`);
CREATE INDEX `idx_webhook_deliveries_endpoint` ON `webhook_deliveries` (`endpoint_id`, `id`);
CREATE TABLE `webhook_attempts` (
  `id` integer PRIMARY KEY AUTOINCREMENT,
  `delivery_id` integer NOT NULL,
  `attempted_at` datetime NOT NULL,
  `http_status` integer,
  `latency_ms` integer NOT NULL,
  `response` text,
  `error` text
);
CREATE INDEX `idx_webhook_attempts_delivery` ON `webhook_attempts` (`delivery_id`, `id`);

-- +goose Down
DROP TABLE `webhook_attempts`;
DROP TABLE `webhook_deliveries`;
DROP TABLE `webhook_endpoints`;
