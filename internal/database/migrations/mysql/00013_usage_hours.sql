-- The depletion forecast sums a customer's usage over a trailing window (a
-- week by default). Summing the events read every event in the window, a
-- cost that grew with the usage: half a second of the database a customer
-- near its limit, evaluated every second under load. Usage is now also kept
-- by hour, written with the events (internal/ledger/usage.go): the window is
-- its whole hours here, and the events of the two hours at its ends
-- (internal/alerts/forecaster.go). An hour is hours since 1970-01-01 UTC.

-- +goose Up
CREATE TABLE `usage_hours` (
  `customer_id` bigint(20) unsigned NOT NULL,
  `hour` bigint(20) NOT NULL,
  `amount` bigint(20) NOT NULL,
  PRIMARY KEY (`customer_id`, `hour`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
INSERT INTO `usage_hours` (`customer_id`, `hour`, `amount`)
  SELECT `customer_id`, TIMESTAMPDIFF(HOUR, '1970-01-01 00:00:00', `occurred_at`), SUM(`amount`)
  FROM `usage_events` GROUP BY 1, 2;

-- +goose Down
DROP TABLE `usage_hours`;
