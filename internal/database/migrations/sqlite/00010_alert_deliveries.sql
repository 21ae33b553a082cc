-- Delivery channels: see the MySQL migration of the same number.

-- +goose Up
CREATE TABLE `alert_deliveries` (
  `id` integer PRIMARY KEY AUTOINCREMENT,
  `channel` text NOT NULL,
  `target_id` integer NOT NULL,
  `partner_id` integer NOT NULL,
  `alert_id` integer,
  `notice_id` integer,
  `status` text NOT NULL,
  `attempts` integer NOT NULL DEFAULT 0,
  `next_attempt_at` datetime,
  `lease_until` datetime,
  `last_error` text,
  `created_at` datetime NOT NULL,
  `delivered_at` datetime
);
CREATE INDEX `idx_alert_deliveries_due` ON `alert_deliveries` (`status`, `channel`, `target_id`, `next_attempt_at`);
CREATE INDEX `idx_alert_deliveries_target` ON `alert_deliveries` (`channel`, `target_id`, `id`);
CREATE INDEX `idx_alert_deliveries_partner` ON `alert_deliveries` (`partner_id`, `channel`, `id`);
INSERT INTO `alert_deliveries` (`id`, `channel`, `target_id`, `partner_id`, `alert_id`, `status`, `attempts`, `next_attempt_at`, `lease_until`, `last_error`, `created_at`, `delivered_at`)
  SELECT `id`, 'webhook', `endpoint_id`, `partner_id`, `alert_id`, `status`, `attempts`, `next_attempt_at`, `lease_until`, `last_error`, `created_at`, `delivered_at` FROM `webhook_deliveries`;
CREATE TABLE `alert_delivery_attempts` (
  `id` integer PRIMARY KEY AUTOINCREMENT,
  `delivery_id` integer NOT NULL,
  `attempted_at` datetime NOT NULL,
  `code` integer,
  `latency_ms` integer NOT NULL,
  `response` text,
  `error` text
);
CREATE INDEX `idx_alert_delivery_attempts_delivery` ON `alert_delivery_attempts` (`delivery_id`, `id`);
INSERT INTO `alert_delivery_attempts` (`id`, `delivery_id`, `attempted_at`, `code`, `latency_ms`, `response`, `error`)
  SELECT `id`, `delivery_id`, `attempted_at`, `http_status`, `latency_ms`, `response`, `error` FROM `webhook_attempts`;
DROP TABLE `webhook_attempts`;
DROP TABLE `webhook_deliveries`;
CREATE TABLE `notification_addresses` (
  `id` integer PRIMARY KEY AUTOINCREMENT,
  `partner_id` integer NOT NULL CONSTRAINT `fk_notification_addresses_partner` REFERENCES `partners` (`id`),
  `customer_id` integer NOT NULL DEFAULT 0,
  `address` text NOT NULL,
  `created_at` datetime NOT NULL
);
CREATE UNIQUE INDEX `idx_notification_addresses_scope` ON `notification_addresses` (`partner_id`, `customer_id`, `address`);
CREATE TABLE `partner_notices` (
  `id` integer PRIMARY KEY AUTOINCREMENT,
  `partner_id` integer NOT NULL CONSTRAINT `fk_partner_notices_partner` REFERENCES `partners` (`id`),
  `kind` text NOT NULL,
  `endpoint_id` integer,
  `message` text NOT NULL,
  `created_at` datetime NOT NULL
);
CREATE INDEX `idx_partner_notices_partner` ON `partner_notices` (`partner_id`, `id`);

-- +goose Down
DROP TABLE `partner_notices`;
DROP TABLE `notification_addresses`;
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
INSERT INTO `webhook_deliveries` (`id`, `endpoint_id`, `partner_id`, `alert_id`, `status`, `attempts`, `next_attempt_at`, `lease_until`, `last_error`, `created_at`, `delivered_at`)
  SELECT `id`, `target_id`, `partner_id`, `alert_id`, `status`, `attempts`, `next_attempt_at`, `lease_until`, `last_error`, `created_at`, `delivered_at`
  FROM `alert_deliveries` WHERE `channel` = 'webhook' AND `alert_id` IS NOT NULL;
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
INSERT INTO `webhook_attempts` (`id`, `delivery_id`, `attempted_at`, `http_status`, `latency_ms`, `response`, `error`)
  SELECT a.`id`, a.`delivery_id`, a.`attempted_at`, a.`code`, a.`latency_ms`, a.`response`, a.`error`
  FROM `alert_delivery_attempts` a JOIN `webhook_deliveries` d ON d.`id` = a.`delivery_id`;
DROP TABLE `alert_delivery_attempts`;
DROP TABLE `alert_deliveries`;
