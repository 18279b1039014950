package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// lockTimeout bounds each of TryLock's round trips: TryLock must not wait on a lock, and
// must not hang on a network either.
const lockTimeout = 5 * time.Second

// RankerLock elects the one active ranker among the processes using this database (and
// schema): a session-level advisory lock, pg_try_advisory_lock, held on a connection of its
// own. PostgreSQL releases it when that session ends, however it ends (the ranker exits or
// dies, the connection drops), so a standby takes over without a lease to expire; the
// session's TCP keepalives make the server notice a vanished ranker within about 30 s.
//
// If the holding connection drops, the lock is lost, possibly to a standby at once. TryLock
// notices: while held, it checks in pg_locks that its session still holds the lock, and if
// not (or the connection is gone) it drops the connection and tries to take the lock afresh,
// reporting whether it got it. A holder should therefore call TryLock before each run, not
// only once. Between the loss and that check, two rankers may both believe they are active;
// the manifest still takes each object exactly once (CommitBatch refuses the second taker).
func (db *DB) RankerLock() *AdvisoryLock { return &AdvisoryLock{db: db} }

// AdvisoryLock is the ranker lock; see DB.RankerLock. It is safe for concurrent use.
type AdvisoryLock struct {
	db   *DB
	mu   sync.Mutex
	conn *pgx.Conn // open while held
	key2 int32     // the second half of the key, computed by the server when taken
}

// TryLock takes the lock if no other session holds it, without waiting, and reports whether
// this AdvisoryLock now holds it. While it holds it, TryLock verifies that it still does.
func (l *AdvisoryLock) TryLock() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	if l.conn != nil {
		held, err := l.stillHeld(ctx)
		if err == nil && held {
			return true, nil
		}
		l.db.logger().Warn("the ranker lock was lost; trying to take it again", "db", l.db.desc, "err", err)
		l.drop()
	}
	conn, err := l.db.connect(ctx)
	if err != nil {
		return false, fmt.Errorf("ranker lock: %w", err)
	}
	var (
		ok   bool
		key2 int32
	)
	err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, k), k FROM (SELECT `+schemaKey+` AS k) AS key`,
		lockRanker).Scan(&ok, &key2)
	if err != nil || !ok {
		closeConn(conn)
		if err != nil {
			return false, fmt.Errorf("ranker lock on %s: %w", l.db.desc, err)
		}
		return false, nil
	}
	l.conn, l.key2 = conn, key2
	return true, nil
}

// stillHeld asks the server whether the holding session still holds the lock: a ping would
// not notice pg_advisory_unlock_all, and costs the same round trip.
func (l *AdvisoryLock) stillHeld(ctx context.Context) (bool, error) {
	var n int
	// pg_locks shows a two-key advisory lock as classid, objid (oids, so a negative half is
	// read modulo 2^32) and objsubid 2.
	err := l.conn.QueryRow(ctx, `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 2
		AND classid = ($1::bigint & 4294967295)::oid AND objid = ($2::bigint & 4294967295)::oid`,
		lockRanker, l.key2).Scan(&n)
	if err != nil {
		return false, err
	}
	if n == 0 {
		return false, errors.New("the session no longer holds it")
	}
	return true, nil
}

// Unlock releases the lock if held, then ends its session. The explicit unlock matters:
// the server ends a closed session asynchronously, and until it has, another process would
// still find the lock taken.
func (l *AdvisoryLock) Unlock() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	// An error here (a dead connection) leaves the release to the session's end.
	l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1, $2)`, lockRanker, l.key2)
	return l.drop()
}

// drop closes the holding connection, which releases the lock on the server.
func (l *AdvisoryLock) drop() error {
	err := closeConn(l.conn)
	l.conn = nil
	if err != nil {
		return fmt.Errorf("ranker lock: release: %w", err)
	}
	return nil
}

func closeConn(conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	return conn.Close(ctx)
}
