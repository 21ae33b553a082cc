-- Alert rules partners set themselves: see the MySQL migration of the same
-- number.

-- +goose Up
CREATE TABLE `alert_rules` (
  `partner_id` integer PRIMARY KEY,
  `percent_levels` text,
  `available_levels` text,
  `forecast_horizon_hours` integer,
  `updated_by` text,
  `updated_at` datetime
);
INSERT INTO `alert_rules` (`partner_id`) VALUES (0);
INSERT INTO `alert_rules` (`partner_id`) SELECT `id` FROM `partners`;
CREATE TABLE `alert_rule_changes` (
  `id` integer PRIMARY KEY AUTOINCREMENT,
  `partner_id` integer NOT NULL DEFAULT 0,
  `customer_id` integer NOT NULL DEFAULT 0,
  `percent_levels` text,
  `available_levels` text,
  `forecast_horizon_hours` integer,
  `operator` text NOT NULL,
  `created_at` datetime NOT NULL
);
CREATE INDEX `idx_alert_rule_changes_partner` ON `alert_rule_changes` (`partner_id`, `id`);
ALTER TABLE `customers` ADD COLUMN `alert_fired` text NOT NULL DEFAULT '';
ALTER TABLE `customers` ADD COLUMN `alert_percent_levels` text;
ALTER TABLE `customers` ADD COLUMN `alert_available_levels` text;
ALTER TABLE `customers` ADD COLUMN `alert_forecast_horizon_hours` integer;
ALTER TABLE `customers` ADD COLUMN `forecast_state` text NOT NULL DEFAULT '';
UPDATE `customers` SET `alert_fired` = CASE
  WHEN `usage_basis_points` >= 10000 THEN 'p75,p90,p100'
  WHEN `usage_basis_points` >= 9000 THEN 'p75,p90'
  WHEN `usage_basis_points` >= 7500 THEN 'p75'
  ELSE '' END;
ALTER TABLE `raised_alerts` ADD COLUMN `kind` text NOT NULL DEFAULT 'USAGE_THRESHOLD';
ALTER TABLE `raised_alerts` ADD COLUMN `cause` text NOT NULL DEFAULT 'USAGE';
ALTER TABLE `raised_alerts` ADD COLUMN `level` integer;
ALTER TABLE `raised_alerts` ADD COLUMN `recovered_kind` text;
ALTER TABLE `raised_alerts` ADD COLUMN `status` text;
ALTER TABLE `raised_alerts` ADD COLUMN `previous_status` text;
ALTER TABLE `raised_alerts` ADD COLUMN `burn_rate_per_day` integer;
ALTER TABLE `raised_alerts` ADD COLUMN `depletes_at` datetime;
ALTER TABLE `raised_alerts` ADD COLUMN `days_left` integer;
ALTER TABLE `raised_alerts` ADD COLUMN `based_on_hours` integer;
ALTER TABLE `alerts` ADD COLUMN `kind` text NOT NULL DEFAULT 'USAGE_THRESHOLD';
ALTER TABLE `alerts` ADD COLUMN `cause` text NOT NULL DEFAULT 'USAGE';
ALTER TABLE `alerts` ADD COLUMN `level` integer;
ALTER TABLE `alerts` ADD COLUMN `recovered_kind` text;
ALTER TABLE `alerts` ADD COLUMN `status` text;
ALTER TABLE `alerts` ADD COLUMN `previous_status` text;
ALTER TABLE `alerts` ADD COLUMN `burn_rate_per_day` integer;
ALTER TABLE `alerts` ADD COLUMN `depletes_at` datetime;
ALTER TABLE `alerts` ADD COLUMN `days_left` integer;
ALTER TABLE `alerts` ADD COLUMN `based_on_hours` integer;
CREATE INDEX `idx_alerts_partner_kind` ON `alerts` (`partner_id`, `kind`, `id`);

-- +goose Down
DROP INDEX `idx_alerts_partner_kind`;
ALTER TABLE `alerts` DROP COLUMN `based_on_hours`;
ALTER TABLE `alerts` DROP COLUMN `days_left`;
ALTER TABLE `alerts` DROP COLUMN `depletes_at`;
ALTER TABLE `alerts` DROP COLUMN `burn_rate_per_day`;
ALTER TABLE `alerts` DROP COLUMN `previous_status`;
ALTER TABLE `alerts` DROP COLUMN `status`;
ALTER TABLE `alerts` DROP COLUMN `recovered_kind`;
ALTER TABLE `alerts` DROP COLUMN `level`;
ALTER TABLE `alerts` DROP COLUMN `cause`;
ALTER TABLE `alerts` DROP COLUMN `kind`;
ALTER TABLE `raised_alerts` DROP COLUMN `based_on_hours`;
ALTER TABLE `raised_alerts` DROP COLUMN `days_left`;
ALTER TABLE `raised_alerts` DROP COLUMN `depletes_at`;
ALTER TABLE `raised_alerts` DROP COLUMN `burn_rate_per_day`;
ALTER TABLE `raised_alerts` DROP COLUMN `previous_status`;
ALTER TABLE `raised_alerts` DROP COLUMN `status`;
ALTER TABLE `raised_alerts` DROP COLUMN `recovered_kind`;
ALTER TABLE `raised_alerts` DROP COLUMN `level`;
ALTER TABLE `raised_alerts` DROP COLUMN `cause`;
ALTER TABLE `raised_alerts` DROP COLUMN `kind`;
ALTER TABLE `customers` DROP COLUMN `forecast_state`;
ALTER TABLE `customers` DROP COLUMN `alert_forecast_horizon_hours`;
ALTER TABLE `customers` DROP COLUMN `alert_available_levels`;
ALTER TABLE `customers` DROP COLUMN `alert_percent_levels`;
ALTER TABLE `customers` DROP COLUMN `alert_fired`;
DROP TABLE `alert_rule_changes`;
DROP TABLE `alert_rules`;
