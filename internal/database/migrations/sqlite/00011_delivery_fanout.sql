-- Deliveries queued after numbering: see the MySQL migration of the same
-- number.

-- +goose Up
CREATE TABLE `alert_fanout` (`id` integer, `last_id` integer NOT NULL, PRIMARY KEY (`id`));
INSERT INTO `alert_fanout` (`id`, `last_id`) SELECT 1, COALESCE(MAX(`last_id`), 0) FROM `alert_sequences`;

-- +goose Down
DROP TABLE `alert_fanout`;
