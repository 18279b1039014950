-- 0004: full ranks ("standings"). It mirrors
-- internal/sqlite/migrations/0004_standings.sql, which explains the scheme:
-- one row per category of a publication that carried its full ranks, the
-- products encoded in rank order; rows name their cutoff, and are kept for a
-- day whatever the retention of the snapshots.
CREATE TABLE standings (
    snapshot_id     BIGINT NOT NULL,
    cutoff          BIGINT NOT NULL,
    category_id     INTEGER NOT NULL,
    products_ranked INTEGER NOT NULL CHECK (products_ranked > 0),
    data            BYTEA NOT NULL,
    PRIMARY KEY (snapshot_id, category_id)
);

CREATE INDEX standings_by_cutoff ON standings (cutoff, snapshot_id);

-- A category's rows of the snapshots from s on, for the history, in one range.
CREATE INDEX sales_rank_by_category ON sales_rank (category_id, last_snapshot_id);
