-- Each partner counts its allocation records (and how many took credit back)
-- in the row every credit change already locks and updates: a listing's
-- totalCount over a partner's million records reads one row instead of
-- counting an index of a million entries.

-- +goose Up
ALTER TABLE `partners`
  ADD COLUMN `allocation_records` bigint(20) NOT NULL DEFAULT 0,
  ADD COLUMN `withdraw_records` bigint(20) NOT NULL DEFAULT 0;
UPDATE `partners` p SET
  `allocation_records` = (SELECT COUNT(*) FROM `credit_allocations` a WHERE a.`partner_id` = p.`id`),
  `withdraw_records` = (SELECT COUNT(*) FROM `credit_allocations` a WHERE a.`partner_id` = p.`id` AND a.`kind` = 'WITHDRAW');

-- +goose Down
ALTER TABLE `partners` DROP COLUMN `allocation_records`, DROP COLUMN `withdraw_records`;
