-- Deliveries of alerts are queued after the alerts are numbered, in
-- transactions of their own (internal/alerts/delivery/fanout.go), no longer
-- inside the numbering, which holds the alert sequence row (with a hundred
-- endpoints, a hundred rows an alert were inserted meanwhile). This row
-- says up to which alert deliveries are queued; every alert numbered so far
-- had its deliveries queued with its numbering.

-- +goose Up
CREATE TABLE `alert_fanout` (
  `id` int NOT NULL,
  `last_id` bigint(20) unsigned NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
INSERT INTO `alert_fanout` (`id`, `last_id`) SELECT 1, COALESCE(MAX(`last_id`), 0) FROM `alert_sequences`;

-- +goose Down
DROP TABLE `alert_fanout`;
