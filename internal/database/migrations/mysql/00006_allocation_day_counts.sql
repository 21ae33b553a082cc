-- How many allocation records (and withdrawals) each partner made on each
-- past day (UTC), filled in as listings ask for them: a totalCount over a time
-- range of a partner's million records adds up days instead of counting
-- hundreds of thousands of index entries. Only days that ended more than a day
-- ago are kept, so no change still in flight can add to them.

-- +goose Up
CREATE TABLE `allocation_day_counts` (
  `partner_id` bigint(20) unsigned NOT NULL,
  `day` datetime(6) NOT NULL,
  `records` bigint(20) NOT NULL,
  `withdrawals` bigint(20) NOT NULL,
  PRIMARY KEY (`partner_id`, `day`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE `allocation_day_counts`;
