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

-- A category's closed rows of the snapshots from s on, for the history, in one
-- range; closed rows only, so that inserting a publication's rows does not touch it.
CREATE INDEX sales_rank_closed_by_category ON sales_rank (category_id, last_snapshot_id)
    WHERE last_snapshot_id < 9223372036854775807;
