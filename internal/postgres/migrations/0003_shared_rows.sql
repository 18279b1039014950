-- 0003: sales_rank rows are shared between consecutive snapshots. It mirrors
-- internal/sqlite/migrations/0003_shared_rows.sql, which explains the scheme:
-- a row is valid from first_snapshot_id to last_snapshot_id, both inclusive;
-- the latest publication's rows are open (last_snapshot_id =
-- 9223372036854775807); no rank is stored; the view snapshot_sales_rank shows
-- every stored snapshot's rows with their rank, as sales_rank did before.

ALTER TABLE sales_rank
    ADD COLUMN first_snapshot_id BIGINT,
    ADD COLUMN last_snapshot_id BIGINT;

UPDATE sales_rank SET
    first_snapshot_id = snapshot_id,
    last_snapshot_id = CASE WHEN snapshot_id = (SELECT max(id) FROM snapshots)
                            THEN 9223372036854775807 ELSE snapshot_id END;

-- Dropping snapshot_id drops its foreign key and the (snapshot_id, category_id,
-- rank) index with it: a row outlives the snapshot that first published it.
ALTER TABLE sales_rank
    DROP COLUMN snapshot_id,
    DROP COLUMN rank,
    ALTER COLUMN first_snapshot_id SET NOT NULL,
    ALTER COLUMN last_snapshot_id SET NOT NULL,
    ADD CHECK (first_snapshot_id <= last_snapshot_id);

CREATE INDEX sales_rank_by_last ON sales_rank (last_snapshot_id, category_id, total_sold DESC, product_id);

CREATE VIEW snapshot_sales_rank AS
SELECT r.id, s.id AS snapshot_id, r.category_id,
       row_number() OVER (PARTITION BY s.id, r.category_id ORDER BY r.total_sold DESC, r.product_id) AS rank,
       r.product_id, r.total_sold
FROM snapshots AS s
JOIN sales_rank AS r ON r.first_snapshot_id <= s.id AND r.last_snapshot_id >= s.id;
