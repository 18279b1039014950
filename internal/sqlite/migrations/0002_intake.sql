-- 0002: incremental intake. Each ranker run takes new log objects and commits,
-- in one transaction, a batches row, the objects' manifest entries, their
-- encoded hourly partial sums, their quarantined lines and the categories
-- they name: an object is counted exactly once, or not at all.
--
-- Units: committed_at, mod_time and taken_at are unix nanoseconds (NULL for an
-- unknown, zero time); hour is unix seconds of the hour's first second.
-- From here on categories.first_seen_at may also be a batch's committed_at.

-- AUTOINCREMENT: a batch id is never handed out twice, so "every partial up to
-- batch N" keeps its meaning even if batches are ever deleted by hand.
CREATE TABLE batches (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    committed_at INTEGER NOT NULL
);

-- The manifest. The key's uniqueness is what makes two rankers racing on one
-- object safe: the second commit finds the key and commits nothing.
CREATE TABLE objects (
    key            TEXT PRIMARY KEY,
    etag           TEXT NOT NULL, -- '' where the object store gives none
    size           INTEGER NOT NULL,
    mod_time       INTEGER,
    batch_id       INTEGER NOT NULL REFERENCES batches (id),
    lines_read     INTEGER NOT NULL CHECK (lines_read >= 0),
    lines_rejected INTEGER NOT NULL CHECK (lines_rejected >= 0),
    lines_too_late INTEGER NOT NULL CHECK (lines_too_late >= 0),
    taken_at       INTEGER
) WITHOUT ROWID;

-- One opaque blob per (hour, batch); compaction folds an hour's rows into one
-- that keeps the highest batch id. A rowid table, not WITHOUT ROWID: blobs of
-- megabytes belong in overflow pages off a small b-tree entry, and data is
-- the last column so that reading the key never touches them.
CREATE TABLE partials (
    hour     INTEGER NOT NULL CHECK (hour % 60 = 0), -- a bucket's start: an hour, or minutes
    batch_id INTEGER NOT NULL REFERENCES batches (id),
    data     BLOB NOT NULL,
    PRIMARY KEY (hour, batch_id)
);

-- Rejects of a batch name it; those of a Publish keep snapshot_id instead.
ALTER TABLE rejected_lines ADD COLUMN batch_id INTEGER REFERENCES batches (id);
