-- 0005: sales_rank clustered by category first, for an hourly publication that changes most
-- rows.
--
-- At an hourly refresh some 70% of the top lists' rows change (the window drops an hour and
-- gains one, and nearly every best seller sold in both), so a publication closes and inserts
-- tens of thousands of rows. With the key of 0003, (last_snapshot_id, category_id, ...), a
-- row being closed left the open rows at the end of the table for the closed rows of its
-- publication, and the partial index sales_rank_closed_by_category gained an entry: three
-- B-tree searches a row, in three places.
--
-- Keyed on (category_id, last_snapshot_id, total_sold DESC, product_id) instead:
--   * a category's open rows are the range (category, 2^63-1), in ranking order, and its
--     closed rows lie just before them, by the publication that closed them: closing a row
--     moves it a few cells back in pages already in the cache, and one statement per
--     category closes all of its rows (see CloseRows);
--   * a category's rows of the kept snapshots (history, an older top list) are the range
--     (category, last_snapshot_id >= s): the partial index is no longer needed;
--   * the open rows of every category, and pruning by last_snapshot_id, are one search per
--     category (category_id IN (SELECT id FROM categories)), not one range.
--
-- category_id and product_id no longer declare foreign keys: SQLite checked both parents on
-- every inserted row, 13% of an hourly publication (bench/README.md, session 9). Publish
-- writes the categories and products in the same transaction before the rows that name
-- them, and the tests check after every publication that each row's parents exist.
--
-- The table's name, columns and meaning do not change, so readers of 0003 and 0004 keep
-- working. The copy runs once, when the first new binary opens the file: 2 M rows took
-- 2.9 s on the machine of bench/README.md.
CREATE TABLE sales_rank_by_category (
    id                INTEGER NOT NULL CHECK (id > 0),
    category_id       INTEGER NOT NULL, -- categories (id)
    product_id        INTEGER NOT NULL, -- products (id)
    total_sold        INTEGER NOT NULL CHECK (total_sold > 0),
    first_snapshot_id INTEGER NOT NULL,
    last_snapshot_id  INTEGER NOT NULL,
    CHECK (first_snapshot_id <= last_snapshot_id),
    PRIMARY KEY (category_id, last_snapshot_id, total_sold DESC, product_id)
) WITHOUT ROWID;

-- In key order, so that every row is appended.
INSERT INTO sales_rank_by_category (id, category_id, product_id, total_sold, first_snapshot_id, last_snapshot_id)
SELECT id, category_id, product_id, total_sold, first_snapshot_id, last_snapshot_id FROM sales_rank
ORDER BY category_id, last_snapshot_id, total_sold DESC, product_id;

DROP VIEW snapshot_sales_rank;
DROP TABLE sales_rank; -- and its index sales_rank_closed_by_category
ALTER TABLE sales_rank_by_category RENAME TO sales_rank;

-- Every stored snapshot's rows with their rank, as in 0003.
CREATE VIEW snapshot_sales_rank AS
SELECT r.id, s.id AS snapshot_id, r.category_id,
       row_number() OVER (PARTITION BY s.id, r.category_id ORDER BY r.total_sold DESC, r.product_id) AS rank,
       r.product_id, r.total_sold
FROM snapshots AS s
JOIN sales_rank AS r ON r.first_snapshot_id <= s.id AND r.last_snapshot_id >= s.id;
