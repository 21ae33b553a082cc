-- How many allocation records (and withdrawals) each partner made on each
-- past day (UTC): see the MySQL migration of the same number.

-- +goose Up
CREATE TABLE `allocation_day_counts` (
  `partner_id` integer NOT NULL,
  `day` datetime NOT NULL,
  `records` integer NOT NULL,
  `withdrawals` integer NOT NULL,
  PRIMARY KEY (`partner_id`, `day`)
);

-- +goose Down
DROP TABLE `allocation_day_counts`;
