-- The schema as the first release created it (with GORM's AutoMigrate). On a
-- database that release made, every statement here changes nothing, so later
-- migrations adopt it as it is.

-- +goose Up
CREATE TABLE IF NOT EXISTS `partners` (`id` integer PRIMARY KEY AUTOINCREMENT,`name` text NOT NULL,`currency` text NOT NULL,`credit_line` integer NOT NULL,`allocated` integer NOT NULL DEFAULT 0,`created_at` datetime NOT NULL);
CREATE TABLE IF NOT EXISTS `customers` (`id` integer PRIMARY KEY AUTOINCREMENT,`partner_id` integer NOT NULL,`name` text NOT NULL,`email` text,`remark` text,`billing_permission` numeric NOT NULL DEFAULT false,`non_stop_privilege` numeric NOT NULL DEFAULT false,`credit` integer NOT NULL DEFAULT 0,`used` integer NOT NULL DEFAULT 0,`available` integer NOT NULL DEFAULT 0,`usage_basis_points` integer NOT NULL DEFAULT 0,`status` text NOT NULL,`created_at` datetime NOT NULL,`updated_at` datetime);
CREATE INDEX IF NOT EXISTS `idx_customers_partner_created` ON `customers`(`partner_id`,`created_at`,`id`);
CREATE TABLE IF NOT EXISTS `credit_allocations` (`id` integer PRIMARY KEY AUTOINCREMENT,`partner_id` integer NOT NULL,`customer_id` integer NOT NULL,`kind` text NOT NULL,`amount` integer NOT NULL,`credit_before` integer NOT NULL,`credit_after` integer NOT NULL,`available_after` integer NOT NULL,`operator` text NOT NULL,`api_key_id` integer,`remark` text,`idempotency_key` text,`request_hash` text NOT NULL DEFAULT '',`created_at` datetime NOT NULL);
CREATE INDEX IF NOT EXISTS `idx_allocations_customer_created` ON `credit_allocations`(`customer_id`,`created_at`);
CREATE UNIQUE INDEX IF NOT EXISTS `idx_allocations_idempotency` ON `credit_allocations`(`partner_id`,`idempotency_key`);
CREATE INDEX IF NOT EXISTS `idx_allocations_partner_created` ON `credit_allocations`(`partner_id`,`created_at`);
CREATE TABLE IF NOT EXISTS `api_keys` (`id` integer PRIMARY KEY AUTOINCREMENT,`name` text NOT NULL,`role` text NOT NULL,`partner_id` integer,`hash` text NOT NULL,`created_at` datetime NOT NULL,`revoked_at` datetime);
CREATE UNIQUE INDEX IF NOT EXISTS `idx_api_keys_hash` ON `api_keys`(`hash`);
CREATE INDEX IF NOT EXISTS `idx_api_keys_partner_id` ON `api_keys`(`partner_id`);
CREATE TABLE IF NOT EXISTS `usage_events` (`id` integer PRIMARY KEY AUTOINCREMENT,`event_id` text NOT NULL,`partner_id` integer NOT NULL,`customer_id` integer NOT NULL,`amount` integer NOT NULL,`description` text,`occurred_at` datetime NOT NULL,`created_at` datetime NOT NULL);
CREATE INDEX IF NOT EXISTS `idx_usage_events_customer_id` ON `usage_events`(`customer_id`);
CREATE INDEX IF NOT EXISTS `idx_usage_events_partner_id` ON `usage_events`(`partner_id`);
CREATE UNIQUE INDEX IF NOT EXISTS `idx_usage_events_event_id` ON `usage_events`(`event_id`);
CREATE TABLE IF NOT EXISTS `alerts` (`id` integer,`partner_id` integer NOT NULL,`customer_id` integer NOT NULL,`threshold` integer NOT NULL,`usage_basis_points` integer NOT NULL,`used` integer NOT NULL,`credit` integer NOT NULL,`available` integer NOT NULL,`created_at` datetime NOT NULL,PRIMARY KEY (`id`));
CREATE INDEX IF NOT EXISTS `idx_alerts_created_at` ON `alerts`(`created_at`);
CREATE INDEX IF NOT EXISTS `idx_alerts_customer` ON `alerts`(`customer_id`);
CREATE INDEX IF NOT EXISTS `idx_alerts_partner` ON `alerts`(`partner_id`);
CREATE TABLE IF NOT EXISTS `alert_sequences` (`id` integer,`last_id` integer NOT NULL,PRIMARY KEY (`id`));
INSERT OR IGNORE INTO `alert_sequences` (`id`, `last_id`) VALUES (1, 0);

-- +goose Down
-- The baseline is not undone: it would drop every table.
SELECT 1;
