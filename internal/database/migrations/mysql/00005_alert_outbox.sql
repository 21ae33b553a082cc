-- Changes write the alerts they raise to an outbox, raised_alerts, and the
-- tails number them into alerts in short transactions of their own (see
-- internal/alerts/outbox.go). Before, every change that raised an alert took
-- the alert sequence row until its commit, and such changes of all partners
-- queued on it.
--
-- The outbox checks its rows' customer (the change's transaction holds its
-- lock already), not the partner (the partner_id is the customer's, copied):
-- a check takes a shared lock on the partner's row, which a change takes
-- exclusively right after writing its alerts (see ledger.change.run), and two
-- changes would each wait for the other. The alerts table no longer checks
-- either: its rows are copies of outbox rows, and checking again would make
-- the numbering wait for whichever change holds the customer's row then.

-- +goose Up
CREATE TABLE `raised_alerts` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `partner_id` bigint(20) unsigned NOT NULL,
  `customer_id` bigint(20) unsigned NOT NULL,
  `threshold` bigint(20) NOT NULL,
  `usage_basis_points` bigint(20) NOT NULL,
  `used` bigint(20) NOT NULL,
  `credit` bigint(20) NOT NULL,
  `available` bigint(20) NOT NULL,
  `created_at` datetime(6) NOT NULL,
  PRIMARY KEY (`id`),
  CONSTRAINT `fk_raised_alerts_customer` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
ALTER TABLE `alerts`
  DROP FOREIGN KEY `fk_alerts_partner`,
  DROP FOREIGN KEY `fk_alerts_customer`,
  ADD COLUMN `raised_id` bigint(20) unsigned NULL,
  ADD KEY `idx_alerts_raised` (`raised_id`);

-- +goose Down
ALTER TABLE `alerts`
  DROP INDEX `idx_alerts_raised`,
  DROP COLUMN `raised_id`,
  ADD CONSTRAINT `fk_alerts_partner` FOREIGN KEY (`partner_id`) REFERENCES `partners` (`id`),
  ADD CONSTRAINT `fk_alerts_customer` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`);
DROP TABLE `raised_alerts`;
