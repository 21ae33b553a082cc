-- Changes write the alerts they raise to an outbox, raised_alerts, and the
-- tails number them into alerts in short transactions of their own (see
-- internal/alerts/outbox.go and the MySQL migration of the same number).
-- SQLite has one writer at a time and no row locks, so the alerts table keeps
-- its foreign keys here.

-- +goose Up
CREATE TABLE `raised_alerts` (
  `id` integer PRIMARY KEY AUTOINCREMENT,
  `partner_id` integer NOT NULL,
  `customer_id` integer NOT NULL CONSTRAINT `fk_raised_alerts_customer` REFERENCES `customers` (`id`),
  `threshold` integer NOT NULL,
  `usage_basis_points` integer NOT NULL,
  `used` integer NOT NULL,
  `credit` integer NOT NULL,
  `available` integer NOT NULL,
  `created_at` datetime NOT NULL
);
ALTER TABLE `alerts` ADD COLUMN `raised_id` integer;
CREATE INDEX `idx_alerts_raised` ON `alerts` (`raised_id`);

-- +goose Down
DROP INDEX `idx_alerts_raised`;
ALTER TABLE `alerts` DROP COLUMN `raised_id`;
DROP TABLE `raised_alerts`;
