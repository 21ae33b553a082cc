-- Identifiers compare byte for byte: the database's collation folds case and
-- pads spaces, so 'aZ3' matched 'Az3' and 'x-1 ' matched 'x-1'. VARBINARY
-- compares bytes and never pads (utf8mb4_bin still pads in MariaDB). Lengths are
-- in bytes: four per character of the former utf8mb4 columns.
--
-- The database also guards the balance invariants and the links between rows,
-- so that no bug in the service can write a broken balance.

-- +goose Up
ALTER TABLE `usage_events` MODIFY `event_id` varbinary(256) NOT NULL;
ALTER TABLE `credit_allocations`
  MODIFY `idempotency_key` varbinary(512) DEFAULT NULL,
  MODIFY `request_hash` varbinary(64) NOT NULL DEFAULT '';
ALTER TABLE `api_keys` MODIFY `hash` varbinary(64) NOT NULL;

ALTER TABLE `partners`
  ADD CONSTRAINT `chk_partners_credit_line` CHECK (`credit_line` >= 0),
  ADD CONSTRAINT `chk_partners_allocated` CHECK (`allocated` >= 0 AND `allocated` <= `credit_line`);
ALTER TABLE `customers`
  ADD CONSTRAINT `chk_customers_credit` CHECK (`credit` >= 0),
  ADD CONSTRAINT `chk_customers_used` CHECK (`used` >= 0),
  ADD CONSTRAINT `chk_customers_available` CHECK (`available` >= 0),
  ADD CONSTRAINT `fk_customers_partner` FOREIGN KEY (`partner_id`) REFERENCES `partners` (`id`);
ALTER TABLE `api_keys`
  ADD CONSTRAINT `fk_api_keys_partner` FOREIGN KEY (`partner_id`) REFERENCES `partners` (`id`);
ALTER TABLE `credit_allocations`
  ADD CONSTRAINT `chk_allocations_amount` CHECK (`amount` <> 0 AND `credit_after` = `credit_before` + `amount` AND `credit_after` >= 0),
  ADD CONSTRAINT `fk_allocations_partner` FOREIGN KEY (`partner_id`) REFERENCES `partners` (`id`),
  ADD CONSTRAINT `fk_allocations_customer` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`),
  ADD CONSTRAINT `fk_allocations_api_key` FOREIGN KEY (`api_key_id`) REFERENCES `api_keys` (`id`);
ALTER TABLE `usage_events`
  ADD CONSTRAINT `chk_usage_events_amount` CHECK (`amount` > 0),
  ADD CONSTRAINT `fk_usage_events_partner` FOREIGN KEY (`partner_id`) REFERENCES `partners` (`id`),
  ADD CONSTRAINT `fk_usage_events_customer` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`);
ALTER TABLE `alerts`
  ADD CONSTRAINT `fk_alerts_partner` FOREIGN KEY (`partner_id`) REFERENCES `partners` (`id`),
  ADD CONSTRAINT `fk_alerts_customer` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`);

-- +goose Down
ALTER TABLE `alerts` DROP FOREIGN KEY `fk_alerts_partner`, DROP FOREIGN KEY `fk_alerts_customer`;
ALTER TABLE `usage_events` DROP CONSTRAINT `chk_usage_events_amount`,
  DROP FOREIGN KEY `fk_usage_events_partner`, DROP FOREIGN KEY `fk_usage_events_customer`;
ALTER TABLE `credit_allocations` DROP CONSTRAINT `chk_allocations_amount`,
  DROP FOREIGN KEY `fk_allocations_partner`, DROP FOREIGN KEY `fk_allocations_customer`, DROP FOREIGN KEY `fk_allocations_api_key`;
ALTER TABLE `api_keys` DROP FOREIGN KEY `fk_api_keys_partner`;
ALTER TABLE `customers` DROP CONSTRAINT `chk_customers_credit`, DROP CONSTRAINT `chk_customers_used`,
  DROP CONSTRAINT `chk_customers_available`, DROP FOREIGN KEY `fk_customers_partner`;
ALTER TABLE `partners` DROP CONSTRAINT `chk_partners_credit_line`, DROP CONSTRAINT `chk_partners_allocated`;
