-- 0002: incremental intake. Each ranker run takes new log objects and commits,
-- in one transaction, a batches row, the objects' manifest entries, their
-- encoded hourly partial sums, their quarantined lines and the categories
-- they name: an object is counted exactly once, or not at all. It mirrors
-- internal/sqlite/migrations/0002_intake.sql.
--
-- Units: committed_at, mod_time and taken_at are unix nanoseconds (NULL for an
-- unknown, zero time); hour is unix seconds of the hour's first second.
-- From here on categories.first_seen_at may also be a batch's committed_at.

-- An identity: a batch id is never handed out twice, so "every partial up to
-- batch N" keeps its meaning even if batches are ever deleted by hand.
CREATE TABLE batches (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    committed_at BIGINT NOT NULL
);

-- The manifest. The key's uniqueness is what makes two rankers racing on one
-- object safe: the second commit finds the key and commits nothing. Keys and
-- ETags are BYTEA (see 0001): BYTEA also sorts in byte order, whatever the
-- database's collation.
CREATE TABLE objects (
    key            BYTEA PRIMARY KEY,
    etag           BYTEA NOT NULL, -- empty where the object store gives none
    size           BIGINT NOT NULL,
    mod_time       BIGINT,
    batch_id       BIGINT NOT NULL REFERENCES batches (id),
    lines_read     BIGINT NOT NULL CHECK (lines_read >= 0),
    lines_rejected BIGINT NOT NULL CHECK (lines_rejected >= 0),
    lines_too_late BIGINT NOT NULL CHECK (lines_too_late >= 0),
    taken_at       BIGINT
);

-- One opaque blob per (hour, batch); compaction folds an hour's rows into one
-- that keeps the highest batch id. Blobs of megabytes are TOASTed out of line,
-- so reading the key never touches them.
CREATE TABLE partials (
    hour     BIGINT NOT NULL CHECK (hour % 60 = 0), -- a bucket's start: an hour, or minutes
    batch_id BIGINT NOT NULL REFERENCES batches (id),
    data     BYTEA NOT NULL,
    PRIMARY KEY (hour, batch_id)
);

-- Rejects of a batch name it; those of a Publish keep snapshot_id instead.
ALTER TABLE rejected_lines ADD COLUMN batch_id BIGINT REFERENCES batches (id);
