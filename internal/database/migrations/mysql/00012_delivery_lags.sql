-- A target (webhook endpoint, e-mail address) holds at most so many
-- deliveries queued and not yet made (delivery.Options.MaxPending); past it
-- its alerts wait in the alerts table, and a row here says from which alert
-- on, until it catches up (internal/alerts/delivery/lag.go). A storm of alerts
-- to a hundred endpoints inserted rows faster than they could be attempted.

-- +goose Up
CREATE TABLE `delivery_lags` (
  `channel` varchar(10) COLLATE utf8mb4_bin NOT NULL,
  `target_id` bigint(20) unsigned NOT NULL,
  `partner_id` bigint(20) unsigned NOT NULL,
  `after_id` bigint(20) unsigned NOT NULL,
  `since` datetime(6) NOT NULL,
  PRIMARY KEY (`channel`, `target_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE `delivery_lags`;
