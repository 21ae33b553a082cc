-- Targets behind their alerts: see the MySQL migration of the same number.

-- +goose Up
CREATE TABLE `delivery_lags` (
  `channel` text NOT NULL,
  `target_id` integer NOT NULL,
  `partner_id` integer NOT NULL,
  `after_id` integer NOT NULL,
  `since` datetime NOT NULL,
  PRIMARY KEY (`channel`, `target_id`)
);

-- +goose Down
DROP TABLE `delivery_lags`;
