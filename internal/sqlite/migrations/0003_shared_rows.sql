-- 0003: sales_rank rows are shared between consecutive snapshots (see
-- package internal/delta). A row is valid from first_snapshot_id to
-- last_snapshot_id, both inclusive; the rows of the latest publication are
-- open, with last_snapshot_id = 9223372036854775807. Publishing closes the
-- open rows that changed and inserts the new ones, so a one-minute refresh
-- writes what changed instead of every category's whole list.
--
-- The rank is not stored: it is the row's position in its category ordered by
-- total_sold DESC, product_id ASC, which the table's key keeps. The view
-- snapshot_sales_rank shows every stored snapshot's rows with their rank, in
-- the shape sales_rank had before this migration.
--
-- Snapshot ids are no foreign key here: a row outlives the snapshot that
-- first published it. Publish deletes a closed row once no stored snapshot
-- lies in its range.
--
-- Readers of the old shape (salesrank serve before this version) cannot read
-- a migrated file; they keep serving the snapshot they hold, marked stale,
-- until they are upgraded.

-- WITHOUT ROWID, clustered on (last_snapshot_id, category_id, total_sold
-- DESC, product_id): the open rows of a category sit together in ranking
-- order, closing a row moves it within one b-tree (a rowid table would also
-- move its entry in a second one), and pruning deletes one range. The key is
-- unique: a product appears once in a category's list, so once among the open
-- rows and once among the rows closed by one publication.
--
-- id has no index: nothing looks a row up by it. Publish hands ids out in
-- ascending order from sales_rank_seq, which keeps the high-water mark, so an
-- id is never reused after its row is pruned.
CREATE TABLE sales_rank_shared (
    id                INTEGER NOT NULL CHECK (id > 0),
    category_id       INTEGER NOT NULL REFERENCES categories (id),
    product_id        INTEGER NOT NULL REFERENCES products (id),
    total_sold        INTEGER NOT NULL CHECK (total_sold > 0),
    first_snapshot_id INTEGER NOT NULL,
    last_snapshot_id  INTEGER NOT NULL,
    CHECK (first_snapshot_id <= last_snapshot_id),
    PRIMARY KEY (last_snapshot_id, category_id, total_sold DESC, product_id)
) WITHOUT ROWID;

INSERT INTO sales_rank_shared (id, category_id, product_id, total_sold, first_snapshot_id, last_snapshot_id)
SELECT id, category_id, product_id, total_sold, snapshot_id,
       CASE WHEN snapshot_id = (SELECT max(id) FROM snapshots) THEN 9223372036854775807 ELSE snapshot_id END
FROM sales_rank;

CREATE TABLE sales_rank_seq (
    last_id INTEGER NOT NULL -- the highest sales_rank id ever handed out
);
INSERT INTO sales_rank_seq (last_id)
SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'sales_rank'), 0),
           coalesce((SELECT max(id) FROM sales_rank), 0));

DROP TABLE sales_rank;
ALTER TABLE sales_rank_shared RENAME TO sales_rank;

-- Every stored snapshot's rows with their rank.
CREATE VIEW snapshot_sales_rank AS
SELECT r.id, s.id AS snapshot_id, r.category_id,
       row_number() OVER (PARTITION BY s.id, r.category_id ORDER BY r.total_sold DESC, r.product_id) AS rank,
       r.product_id, r.total_sold
FROM snapshots AS s
JOIN sales_rank AS r ON r.first_snapshot_id <= s.id AND r.last_snapshot_id >= s.id;
