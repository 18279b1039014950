-- 0004: full ranks ("standings"). The history of the top lists needs no
-- schema: it is the snapshots the ranker keeps (see --retain), whose rows are
-- read by the (last_snapshot_id, category_id, …) key that publication uses.
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
