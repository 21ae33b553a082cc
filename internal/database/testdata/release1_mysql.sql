CREATE TABLE `alert_sequences` (
  `id` bigint(20) unsigned NOT NULL,
  `last_id` bigint(20) unsigned NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `alerts` (
  `id` bigint(20) unsigned NOT NULL,
  `partner_id` bigint(20) unsigned NOT NULL,
  `customer_id` bigint(20) unsigned NOT NULL,
  `threshold` bigint(20) NOT NULL,
  `usage_basis_points` bigint(20) NOT NULL,
  `used` bigint(20) NOT NULL,
  `credit` bigint(20) NOT NULL,
  `available` bigint(20) NOT NULL,
  `created_at` datetime(6) NOT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_alerts_partner` (`partner_id`),
  KEY `idx_alerts_customer` (`customer_id`),
  KEY `idx_alerts_created_at` (`created_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `api_keys` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `name` varchar(100) NOT NULL,
  `role` varchar(10) NOT NULL,
  `partner_id` bigint(20) unsigned DEFAULT NULL,
  `hash` varchar(64) NOT NULL,
  `created_at` datetime(6) NOT NULL,
  `revoked_at` datetime(6) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `idx_api_keys_hash` (`hash`),
  KEY `idx_api_keys_partner_id` (`partner_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `credit_allocations` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `partner_id` bigint(20) unsigned NOT NULL,
  `customer_id` bigint(20) unsigned NOT NULL,
  `kind` varchar(10) NOT NULL,
  `amount` bigint(20) NOT NULL,
  `credit_before` bigint(20) NOT NULL,
  `credit_after` bigint(20) NOT NULL,
  `available_after` bigint(20) NOT NULL,
  `operator` varchar(100) NOT NULL,
  `api_key_id` bigint(20) unsigned DEFAULT NULL,
  `remark` varchar(1000) DEFAULT NULL,
  `idempotency_key` varchar(128) DEFAULT NULL,
  `request_hash` varchar(64) NOT NULL DEFAULT '',
  `created_at` datetime(6) NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `idx_allocations_idempotency` (`partner_id`,`idempotency_key`),
  KEY `idx_allocations_partner_created` (`partner_id`,`created_at`),
  KEY `idx_allocations_customer_created` (`customer_id`,`created_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `customers` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `partner_id` bigint(20) unsigned NOT NULL,
  `name` varchar(200) NOT NULL,
  `email` varchar(254) DEFAULT NULL,
  `remark` varchar(1000) DEFAULT NULL,
  `billing_permission` tinyint(1) NOT NULL DEFAULT 0,
  `non_stop_privilege` tinyint(1) NOT NULL DEFAULT 0,
  `credit` bigint(20) NOT NULL DEFAULT 0,
  `used` bigint(20) NOT NULL DEFAULT 0,
  `available` bigint(20) NOT NULL DEFAULT 0,
  `usage_basis_points` bigint(20) NOT NULL DEFAULT 0,
  `status` varchar(20) NOT NULL,
  `created_at` datetime(6) NOT NULL,
  `updated_at` datetime(6) DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_customers_partner_created` (`partner_id`,`created_at`,`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `partners` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `name` varchar(200) NOT NULL,
  `currency` varchar(3) NOT NULL,
  `credit_line` bigint(20) NOT NULL,
  `allocated` bigint(20) NOT NULL DEFAULT 0,
  `created_at` datetime(6) NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `usage_events` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `event_id` varchar(64) NOT NULL,
  `partner_id` bigint(20) unsigned NOT NULL,
  `customer_id` bigint(20) unsigned NOT NULL,
  `amount` bigint(20) NOT NULL,
  `description` varchar(500) DEFAULT NULL,
  `occurred_at` datetime(6) NOT NULL,
  `created_at` datetime(6) NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `idx_usage_events_event_id` (`event_id`),
  KEY `idx_usage_events_partner_id` (`partner_id`),
  KEY `idx_usage_events_customer_id` (`customer_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

