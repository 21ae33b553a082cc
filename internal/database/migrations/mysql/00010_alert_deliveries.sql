-- Delivery channels (internal/alerts/delivery): webhook deliveries become
-- deliveries of any channel (webhook, email) to a target of that channel (an
-- endpoint, an address), of an alert or of a notice to the partner (an
-- endpoint was disabled). E-mail addresses partners set, and those notices.

-- +goose Up
CREATE TABLE `alert_deliveries` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `channel` varchar(10) COLLATE utf8mb4_bin NOT NULL,
  `target_id` bigint(20) unsigned NOT NULL,
  `partner_id` bigint(20) unsigned NOT NULL,
  `alert_id` bigint(20) unsigned NULL,
  `notice_id` bigint(20) unsigned NULL,
  `status` varchar(12) COLLATE utf8mb4_bin NOT NULL,
  `attempts` int NOT NULL DEFAULT 0,
  `next_attempt_at` datetime(6) NULL,
  `lease_until` datetime(6) NULL,
  `last_error` varchar(500) NULL,
  `created_at` datetime(6) NOT NULL,
  `delivered_at` datetime(6) NULL,
  PRIMARY KEY (`id`),
  KEY `idx_alert_deliveries_due` (`status`, `channel`, `target_id`, `next_attempt_at`),
  KEY `idx_alert_deliveries_target` (`channel`, `target_id`, `id`),
  KEY `idx_alert_deliveries_partner` (`partner_id`, `channel`, `id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
INSERT INTO `alert_deliveries` (`id`, `channel`, `target_id`, `partner_id`, `alert_id`, `status`, `attempts`, `next_attempt_at`, `lease_until`, `last_error`, `created_at`, `delivered_at`)
  SELECT `id`, 'webhook', `endpoint_id`, `partner_id`, `alert_id`, `status`, `attempts`, `next_attempt_at`, `lease_until`, `last_error`, `created_at`, `delivered_at` FROM `webhook_deliveries`;
CREATE TABLE `alert_delivery_attempts` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `delivery_id` bigint(20) unsigned NOT NULL,
  `attempted_at` datetime(6) NOT NULL,
  `code` int NULL,
  `latency_ms` int NOT NULL,
  `response` varchar(1024) NULL,
  `error` varchar(500) NULL,
  PRIMARY KEY (`id`),
  KEY `idx_alert_delivery_attempts_delivery` (`delivery_id`, `id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
INSERT INTO `alert_delivery_attempts` (`id`, `delivery_id`, `attempted_at`, `code`, `latency_ms`, `response`, `error`)
  SELECT `id`, `delivery_id`, `attempted_at`, `http_status`, `latency_ms`, `response`, `error` FROM `webhook_attempts`;
DROP TABLE `webhook_attempts`;
DROP TABLE `webhook_deliveries`;
CREATE TABLE `notification_addresses` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `partner_id` bigint(20) unsigned NOT NULL,
  `customer_id` bigint(20) unsigned NOT NULL DEFAULT 0,
  `address` varchar(254) COLLATE utf8mb4_bin NOT NULL,
  `created_at` datetime(6) NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `idx_notification_addresses_scope` (`partner_id`, `customer_id`, `address`),
  CONSTRAINT `fk_notification_addresses_partner` FOREIGN KEY (`partner_id`) REFERENCES `partners` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE `partner_notices` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `partner_id` bigint(20) unsigned NOT NULL,
  `kind` varchar(40) COLLATE utf8mb4_bin NOT NULL,
  `endpoint_id` bigint(20) unsigned NULL,
  `message` varchar(500) NOT NULL,
  `created_at` datetime(6) NOT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_partner_notices_partner` (`partner_id`, `id`),
  CONSTRAINT `fk_partner_notices_partner` FOREIGN KEY (`partner_id`) REFERENCES `partners` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE `partner_notices`;
DROP TABLE `notification_addresses`;
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
INSERT INTO `webhook_deliveries` (`id`, `endpoint_id`, `partner_id`, `alert_id`, `status`, `attempts`, `next_attempt_at`, `lease_until`, `last_error`, `created_at`, `delivered_at`)
  SELECT `id`, `target_id`, `partner_id`, `alert_id`, `status`, `attempts`, `next_attempt_at`, `lease_until`, `last_error`, `created_at`, `delivered_at`
  FROM `alert_deliveries` WHERE `channel` = 'webhook' AND `alert_id` IS NOT NULL;
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
INSERT INTO `webhook_attempts` (`id`, `delivery_id`, `attempted_at`, `http_status`, `latency_ms`, `response`, `error`)
  SELECT a.`id`, a.`delivery_id`, a.`attempted_at`, a.`code`, a.`latency_ms`, a.`response`, a.`error`
  FROM `alert_delivery_attempts` a JOIN `webhook_deliveries` d ON d.`id` = a.`delivery_id`;
DROP TABLE `alert_delivery_attempts`;
DROP TABLE `alert_deliveries`;
