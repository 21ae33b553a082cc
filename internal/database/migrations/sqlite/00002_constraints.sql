-- The database guards the balance invariants and the links between rows, so
-- that no bug in the service can write a broken balance. SQLite cannot add
-- constraints to a table, so each table is rebuilt: the old ones are renamed,
-- new ones created with the constraints, the rows copied, the old ones dropped.
-- (Identifiers already compare byte for byte here: SQLite's default collation
-- is BINARY.)

-- +goose Up
DROP INDEX IF EXISTS `idx_customers_partner_created`;
DROP INDEX IF EXISTS `idx_allocations_customer_created`;
DROP INDEX IF EXISTS `idx_allocations_idempotency`;
DROP INDEX IF EXISTS `idx_allocations_partner_created`;
DROP INDEX IF EXISTS `idx_api_keys_hash`;
DROP INDEX IF EXISTS `idx_api_keys_partner_id`;
DROP INDEX IF EXISTS `idx_usage_events_customer_id`;
DROP INDEX IF EXISTS `idx_usage_events_partner_id`;
DROP INDEX IF EXISTS `idx_usage_events_event_id`;
DROP INDEX IF EXISTS `idx_alerts_created_at`;
DROP INDEX IF EXISTS `idx_alerts_customer`;
DROP INDEX IF EXISTS `idx_alerts_partner`;
ALTER TABLE `partners` RENAME TO `old_partners`;
ALTER TABLE `customers` RENAME TO `old_customers`;
ALTER TABLE `credit_allocations` RENAME TO `old_credit_allocations`;
ALTER TABLE `api_keys` RENAME TO `old_api_keys`;
ALTER TABLE `usage_events` RENAME TO `old_usage_events`;
ALTER TABLE `alerts` RENAME TO `old_alerts`;

CREATE TABLE `partners` (
  `id` integer PRIMARY KEY AUTOINCREMENT,
  `name` text NOT NULL,
  `currency` text NOT NULL,
  `credit_line` integer NOT NULL CONSTRAINT `chk_partners_credit_line` CHECK (`credit_line` >= 0),
  `allocated` integer NOT NULL DEFAULT 0,
  `created_at` datetime NOT NULL,
  CONSTRAINT `chk_partners_allocated` CHECK (`allocated` >= 0 AND `allocated` <= `credit_line`)
);
CREATE TABLE `customers` (
  `id` integer PRIMARY KEY AUTOINCREMENT,
  `partner_id` integer NOT NULL CONSTRAINT `fk_customers_partner` REFERENCES `partners` (`id`),
  `name` text NOT NULL,
  `email` text,
  `remark` text,
  `billing_permission` numeric NOT NULL DEFAULT false,
  `non_stop_privilege` numeric NOT NULL DEFAULT false,
  `credit` integer NOT NULL DEFAULT 0 CONSTRAINT `chk_customers_credit` CHECK (`credit` >= 0),
  `used` integer NOT NULL DEFAULT 0 CONSTRAINT `chk_customers_used` CHECK (`used` >= 0),
  `available` integer NOT NULL DEFAULT 0 CONSTRAINT `chk_customers_available` CHECK (`available` >= 0),
  `usage_basis_points` integer NOT NULL DEFAULT 0,
  `status` text NOT NULL,
  `created_at` datetime NOT NULL,
  `updated_at` datetime
);
CREATE TABLE `api_keys` (
  `id` integer PRIMARY KEY AUTOINCREMENT,
  `name` text NOT NULL,
  `role` text NOT NULL,
  `partner_id` integer CONSTRAINT `fk_api_keys_partner` REFERENCES `partners` (`id`),
  `hash` text NOT NULL,
  `created_at` datetime NOT NULL,
  `revoked_at` datetime
);
CREATE TABLE `credit_allocations` (
  `id` integer PRIMARY KEY AUTOINCREMENT,
  `partner_id` integer NOT NULL CONSTRAINT `fk_allocations_partner` REFERENCES `partners` (`id`),
  `customer_id` integer NOT NULL CONSTRAINT `fk_allocations_customer` REFERENCES `customers` (`id`),
  `kind` text NOT NULL,
  `amount` integer NOT NULL,
  `credit_before` integer NOT NULL,
  `credit_after` integer NOT NULL,
  `available_after` integer NOT NULL,
  `operator` text NOT NULL,
  `api_key_id` integer CONSTRAINT `fk_allocations_api_key` REFERENCES `api_keys` (`id`),
  `remark` text,
  `idempotency_key` text,
  `request_hash` text NOT NULL DEFAULT '',
  `created_at` datetime NOT NULL,
  CONSTRAINT `chk_allocations_amount` CHECK (`amount` <> 0 AND `credit_after` = `credit_before` + `amount` AND `credit_after` >= 0)
);
CREATE TABLE `usage_events` (
  `id` integer PRIMARY KEY AUTOINCREMENT,
  `event_id` text NOT NULL,
  `partner_id` integer NOT NULL CONSTRAINT `fk_usage_events_partner` REFERENCES `partners` (`id`),
  `customer_id` integer NOT NULL CONSTRAINT `fk_usage_events_customer` REFERENCES `customers` (`id`),
  `amount` integer NOT NULL CONSTRAINT `chk_usage_events_amount` CHECK (`amount` > 0),
  `description` text,
  `occurred_at` datetime NOT NULL,
  `created_at` datetime NOT NULL
);
CREATE TABLE `alerts` (
  `id` integer,
  `partner_id` integer NOT NULL CONSTRAINT `fk_alerts_partner` REFERENCES `partners` (`id`),
  `customer_id` integer NOT NULL CONSTRAINT `fk_alerts_customer` REFERENCES `customers` (`id`),
  `threshold` integer NOT NULL,
  `usage_basis_points` integer NOT NULL,
  `used` integer NOT NULL,
  `credit` integer NOT NULL,
  `available` integer NOT NULL,
  `created_at` datetime NOT NULL,
  PRIMARY KEY (`id`)
);

INSERT INTO `partners` SELECT * FROM `old_partners`;
INSERT INTO `customers` SELECT * FROM `old_customers`;
INSERT INTO `api_keys` SELECT * FROM `old_api_keys`;
INSERT INTO `credit_allocations` SELECT * FROM `old_credit_allocations`;
INSERT INTO `usage_events` SELECT * FROM `old_usage_events`;
INSERT INTO `alerts` SELECT * FROM `old_alerts`;
DROP TABLE `old_alerts`;
DROP TABLE `old_usage_events`;
DROP TABLE `old_credit_allocations`;
DROP TABLE `old_api_keys`;
DROP TABLE `old_customers`;
DROP TABLE `old_partners`;

CREATE INDEX `idx_customers_partner_created` ON `customers`(`partner_id`,`created_at`,`id`);
CREATE INDEX `idx_allocations_customer_created` ON `credit_allocations`(`customer_id`,`created_at`);
CREATE UNIQUE INDEX `idx_allocations_idempotency` ON `credit_allocations`(`partner_id`,`idempotency_key`);
CREATE INDEX `idx_allocations_partner_created` ON `credit_allocations`(`partner_id`,`created_at`);
CREATE UNIQUE INDEX `idx_api_keys_hash` ON `api_keys`(`hash`);
CREATE INDEX `idx_api_keys_partner_id` ON `api_keys`(`partner_id`);
CREATE INDEX `idx_usage_events_customer_id` ON `usage_events`(`customer_id`);
CREATE INDEX `idx_usage_events_partner_id` ON `usage_events`(`partner_id`);
CREATE UNIQUE INDEX `idx_usage_events_event_id` ON `usage_events`(`event_id`);
CREATE INDEX `idx_alerts_created_at` ON `alerts`(`created_at`);
CREATE INDEX `idx_alerts_customer` ON `alerts`(`customer_id`);
CREATE INDEX `idx_alerts_partner` ON `alerts`(`partner_id`);

-- +goose Down
SELECT 1;
