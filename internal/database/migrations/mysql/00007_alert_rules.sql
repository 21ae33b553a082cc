-- Alert rules partners set themselves (internal/alerts/rules): percent and
-- available-credit levels per platform, partner and customer, every change of
-- them recorded; alerts of new kinds with their cause; and, with each
-- customer, the levels that fired and have not recovered (so that a recovery
-- is told only of levels the partner was alerted of).
--
-- A customer's own rules live on its row, which every change of it locks
-- already; the platform's (partner_id 0) and each partner's live in
-- alert_rules, one row each, always there: a change reads the rows it needs
-- with a shared lock, and a rule change takes its row exclusively, so a rule
-- change and the changes around it are ordered by their locks (and the
-- times recorded follow that order, which reconcile replays).
--
-- Customers already past the levels in force until now (75, 90, 100 %) were
-- alerted of them when they crossed: they start with those levels fired.

-- +goose Up
CREATE TABLE `alert_rules` (
  `partner_id` bigint(20) unsigned NOT NULL,
  `percent_levels` varchar(64) COLLATE utf8mb4_bin NULL,
  `available_levels` varchar(200) COLLATE utf8mb4_bin NULL,
  `forecast_horizon_hours` int NULL,
  `updated_by` varchar(100) NULL,
  `updated_at` datetime(6) NULL,
  PRIMARY KEY (`partner_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
INSERT INTO `alert_rules` (`partner_id`) VALUES (0);
INSERT INTO `alert_rules` (`partner_id`) SELECT `id` FROM `partners`;
CREATE TABLE `alert_rule_changes` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `partner_id` bigint(20) unsigned NOT NULL DEFAULT 0,
  `customer_id` bigint(20) unsigned NOT NULL DEFAULT 0,
  `percent_levels` varchar(64) COLLATE utf8mb4_bin NULL,
  `available_levels` varchar(200) COLLATE utf8mb4_bin NULL,
  `forecast_horizon_hours` int NULL,
  `operator` varchar(100) NOT NULL,
  `created_at` datetime(6) NOT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_alert_rule_changes_partner` (`partner_id`, `id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
ALTER TABLE `customers`
  ADD COLUMN `alert_fired` varchar(400) COLLATE utf8mb4_bin NOT NULL DEFAULT '',
  ADD COLUMN `alert_percent_levels` varchar(64) COLLATE utf8mb4_bin NULL,
  ADD COLUMN `alert_available_levels` varchar(200) COLLATE utf8mb4_bin NULL,
  ADD COLUMN `alert_forecast_horizon_hours` int NULL,
  ADD COLUMN `forecast_state` varchar(16) COLLATE utf8mb4_bin NOT NULL DEFAULT '';
UPDATE `customers` SET `alert_fired` = CASE
  WHEN `usage_basis_points` >= 10000 THEN 'p75,p90,p100'
  WHEN `usage_basis_points` >= 9000 THEN 'p75,p90'
  WHEN `usage_basis_points` >= 7500 THEN 'p75'
  ELSE '' END;
ALTER TABLE `raised_alerts`
  ADD COLUMN `kind` varchar(24) NOT NULL DEFAULT 'USAGE_THRESHOLD',
  ADD COLUMN `cause` varchar(24) NOT NULL DEFAULT 'USAGE',
  ADD COLUMN `level` bigint(20) NULL,
  ADD COLUMN `recovered_kind` varchar(24) NULL,
  ADD COLUMN `status` varchar(20) NULL,
  ADD COLUMN `previous_status` varchar(20) NULL,
  ADD COLUMN `burn_rate_per_day` bigint(20) NULL,
  ADD COLUMN `depletes_at` datetime(6) NULL,
  ADD COLUMN `days_left` bigint(20) NULL,
  ADD COLUMN `based_on_hours` int NULL;
ALTER TABLE `alerts`
  ADD COLUMN `kind` varchar(24) NOT NULL DEFAULT 'USAGE_THRESHOLD',
  ADD COLUMN `cause` varchar(24) NOT NULL DEFAULT 'USAGE',
  ADD COLUMN `level` bigint(20) NULL,
  ADD COLUMN `recovered_kind` varchar(24) NULL,
  ADD COLUMN `status` varchar(20) NULL,
  ADD COLUMN `previous_status` varchar(20) NULL,
  ADD COLUMN `burn_rate_per_day` bigint(20) NULL,
  ADD COLUMN `depletes_at` datetime(6) NULL,
  ADD COLUMN `days_left` bigint(20) NULL,
  ADD COLUMN `based_on_hours` int NULL,
  ADD KEY `idx_alerts_partner_kind` (`partner_id`, `kind`, `id`);

-- +goose Down
ALTER TABLE `alerts`
  DROP INDEX `idx_alerts_partner_kind`,
  DROP COLUMN `kind`, DROP COLUMN `cause`, DROP COLUMN `level`,
  DROP COLUMN `recovered_kind`, DROP COLUMN `status`, DROP COLUMN `previous_status`,
  DROP COLUMN `burn_rate_per_day`, DROP COLUMN `depletes_at`, DROP COLUMN `days_left`, DROP COLUMN `based_on_hours`;
ALTER TABLE `raised_alerts`
  DROP COLUMN `kind`, DROP COLUMN `cause`, DROP COLUMN `level`,
  DROP COLUMN `recovered_kind`, DROP COLUMN `status`, DROP COLUMN `previous_status`,
  DROP COLUMN `burn_rate_per_day`, DROP COLUMN `depletes_at`, DROP COLUMN `days_left`, DROP COLUMN `based_on_hours`;
ALTER TABLE `customers` DROP COLUMN `alert_fired`, DROP COLUMN `alert_percent_levels`, DROP COLUMN `alert_available_levels`,
  DROP COLUMN `alert_forecast_horizon_hours`, DROP COLUMN `forecast_state`;
DROP TABLE `alert_rule_changes`;
DROP TABLE `alert_rules`;
