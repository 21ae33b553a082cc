-- Usage by hour, for the depletion forecast: see the MySQL migration of the
-- same number.

-- +goose Up
CREATE TABLE `usage_hours` (
  `customer_id` integer NOT NULL,
  `hour` integer NOT NULL,
  `amount` integer NOT NULL,
  PRIMARY KEY (`customer_id`, `hour`)
);
INSERT INTO `usage_hours` (`customer_id`, `hour`, `amount`)
  SELECT `customer_id`, CAST(strftime('%s', `occurred_at`) AS INTEGER) / 3600, SUM(`amount`)
  FROM `usage_events` GROUP BY 1, 2;

-- +goose Down
DROP TABLE `usage_hours`;
