-- Webhooks (internal/alerts/webhook): endpoints partners register, one
-- delivery per alert and endpoint (queued in the numbering pass that gives
-- the alert its id, so that none is lost or queued twice), and every attempt.

-- +goose Up
CREATE TABLE `webhook_endpoints` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `partner_id` bigint(20) unsigned NOT NULL,
  `url` varchar(2000) COLLATE utf8mb4_bin NOT NULL,
  `description` varchar(500) NULL,
  `filter_kinds` varchar(200) COLLATE utf8mb4_bin NULL,
  `filter_customers` varchar(2000) COLLATE utf8mb4_bin NULL,
  `secret` varchar(100) COLLATE utf8mb4_bin NOT NULL,
  `previous_secret` varchar(100) COLLATE utf8mb4_bin NULL,
  `previous_secret_until` datetime(6) NULL,
  `disabled_at` datetime(6) NULL,
  `disabled_reason` varchar(200) NULL,
  `failing_since` datetime(6) NULL,
  `created_at` datetime(6) NOT NULL,
  `updated_at` datetime(6) NOT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_webhook_endpoints_partner` (`partner_id`, `id`),
  CONSTRAINT `fk_webhook_endpoints_partner` FOREIGN KEY (`partner_id`) REFERENCES `partners` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE `webhook_deliveries` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `endpoint_id` bigint(20) unsigned NOT NULL,
  `partner_id` bigint(20) unsigned NOT NULL,
  `alert_id` bigint(20) unsigned NOT NULL,
  `status` varchar(12) NOT NULL,
  `attempts` int NOT NULL DEFAULT 0,
  `next_attempt_at` datetime(6) NULL,
  `lease_until` datetime(6) NULL,
  `last_error` varchar(500) NULL,
  `created_at` datetime(6) NOT NULL,
  `delivered_at` datetime(6) NULL,
  PRIMARY KEY (`id`),
  KEY `idx_webhook_deliveries_due` (`status`, `next_attempt_at`),
  KEY `idx_webhook_deliveries_endpoint` (`endpoint_id`, `id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE `webhook_attempts` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `delivery_id` bigint(20) unsigned NOT NULL,
  `attempted_at` datetime(6) NOT NULL,
  `http_status` int NULL,
  `latency_ms` int NOT NULL,
  `response` varchar(1024) NULL,
  `error` varchar(500) NULL,
  PRIMARY KEY (`id`),
  KEY `idx_webhook_attempts_delivery` (`delivery_id`, `id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE `webhook_attempts`;
DROP TABLE `webhook_deliveries`;
DROP TABLE `webhook_endpoints`;
