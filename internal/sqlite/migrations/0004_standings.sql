-- 0004: full ranks ("standings"), and an index for the history of the top
-- lists.
--
-- A publication may carry the full ranks at its cutoff: every product with
-- units in the window, in every category, in ranking order. They are stored
-- one row per category, the products encoded in rank order (package salesrank,
-- AppendRanked: a varint product id and a varint drop in total per product,
-- some four bytes each), so the rank of a product is its position and a
-- category's ranks are read in one row. Rows name their cutoff rather than
-- refer to the snapshot: standings are kept for a day (the movers compare
-- against them), whatever the retention of the snapshots.
CREATE TABLE standings (
    snapshot_id     INTEGER NOT NULL, -- the publication that carried them
    cutoff          INTEGER NOT NULL, -- unix seconds: the end of the window they rank
    category_id     INTEGER NOT NULL,
    products_ranked INTEGER NOT NULL CHECK (products_ranked > 0),
    data            BLOB NOT NULL,
    PRIMARY KEY (snapshot_id, category_id)
) WITHOUT ROWID;

CREATE INDEX standings_by_cutoff ON standings (cutoff, snapshot_id);

-- The history of the top lists is the snapshots the ranker keeps (--retain).
-- A category's rows of the snapshots from s on are its open rows, which the
-- table's key hands out in one range, and its closed rows with
-- last_snapshot_id >= s, which by the key would be a scan of every category's
-- rows closed since s (a month of them for the oldest history): this index
-- makes them one range. It holds closed rows only, so a publication touches it
-- once per row it closes, and not for the rows it inserts.
CREATE INDEX sales_rank_closed_by_category ON sales_rank (category_id, last_snapshot_id)
    WHERE last_snapshot_id < 9223372036854775807;
