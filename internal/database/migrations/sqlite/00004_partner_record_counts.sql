-- Each partner counts its allocation records (and how many took credit back)
-- in the row every credit change already locks and updates: a listing's
-- totalCount over a partner's million records reads one row instead of
-- counting an index of a million entries.

-- +goose Up
ALTER TABLE `partners` ADD COLUMN `allocation_records` integer NOT NULL DEFAULT 0;
ALTER TABLE `partners` ADD COLUMN `withdraw_records` integer NOT NULL DEFAULT 0;
UPDATE `partners` SET
  `allocation_records` = (SELECT COUNT(*) FROM `credit_allocations` a WHERE a.`partner_id` = `partners`.`id`),
  `withdraw_records` = (SELECT COUNT(*) FROM `credit_allocations` a WHERE a.`partner_id` = `partners`.`id` AND a.`kind` = 'WITHDRAW');

-- +goose Down
ALTER TABLE `partners` DROP COLUMN `allocation_records`;
ALTER TABLE `partners` DROP COLUMN `withdraw_records`;
