-- 0001: the source design's sales_rank table, versioned by snapshot.
--
-- Units: cutoff and window_start are unix seconds (cutoffs are whole minutes);
-- published_at and recorded_at are unix nanoseconds so that a snapshot's
-- PublishedAt round-trips exactly. Every id and total is a 64-bit INTEGER.

CREATE TABLE categories (
    id            INTEGER PRIMARY KEY CHECK (id BETWEEN 0 AND 2147483647),
    first_seen_at INTEGER NOT NULL -- published_at of the first snapshot that named it
);

CREATE TABLE products (
    id            INTEGER PRIMARY KEY CHECK (id >= 0),
    first_seen_at INTEGER NOT NULL -- published_at of the first snapshot that ranked it
);

-- A snapshot row and all its rows below are written in one transaction, so a
-- snapshot is visible whole or not at all; no "complete" flag is needed.
-- AUTOINCREMENT keeps ids from being reused after pruning, so a client's
-- ETag or sales_rank id never comes to mean a different snapshot.
CREATE TABLE snapshots (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    cutoff           INTEGER NOT NULL, -- Window.End
    window_start     INTEGER NOT NULL,
    interval_seconds INTEGER NOT NULL CHECK (interval_seconds > 0),
    top_k            INTEGER NOT NULL CHECK (top_k >= 0),
    published_at     INTEGER NOT NULL,
    categories       INTEGER NOT NULL, -- how many categories it covers
    entries          INTEGER NOT NULL  -- how many sales_rank rows it holds
);

-- The current snapshot is the one with the latest cutoff, then the highest id.
CREATE INDEX snapshots_by_cutoff ON snapshots (cutoff DESC, id DESC);

-- Which categories a snapshot covers, including those that sold nothing in
-- its window: they are known (200 and []), unlike never-seen ones (404).
CREATE TABLE snapshot_categories (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    category_id INTEGER NOT NULL REFERENCES categories (id),
    PRIMARY KEY (snapshot_id, category_id)
) WITHOUT ROWID;

CREATE TABLE sales_rank (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    category_id INTEGER NOT NULL REFERENCES categories (id),
    rank        INTEGER NOT NULL CHECK (rank >= 1), -- 1 is the best seller
    product_id  INTEGER NOT NULL REFERENCES products (id),
    total_sold  INTEGER NOT NULL CHECK (total_sold > 0)
);

-- Serves a whole snapshot in order, a category's page, and cascaded deletes.
CREATE UNIQUE INDEX sales_rank_by_snapshot ON sales_rank (snapshot_id, category_id, rank);

-- The quarantine of lines that could not be counted. It has no foreign key to
-- snapshots on purpose: operators must still read it after its snapshot is
-- pruned (or when the publish it belonged to named no snapshot at all).
CREATE TABLE rejected_lines (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    snapshot_id INTEGER, -- the snapshot published with it, for reference only
    object      TEXT NOT NULL,
    line        INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    text        BLOB NOT NULL, -- the line's bytes, verbatim
    recorded_at INTEGER NOT NULL
);
