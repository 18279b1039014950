package sqlite

import (
	"database/sql"
	"fmt"
	"net/url"
	"sync"
	"time"
)

// walAutocheckpoint is the WAL size, in pages, past which the committing writer copies
// the WAL into the database file itself (SQLite's automatic checkpoint). It counts the
// frames written since the WAL last started over, which happens at the first write after
// a checkpoint has copied everything and no reader still uses the old frames. It is a
// backstop: the checkpointer copies after every commit, beside the writer, and a commit
// pays for it only if writes outrun the checkpointer or readers hold it back this long.
// 32768 pages of 4 KiB is 128 MiB: more than an hourly step writes at the seed's scale
// with its full ranks (some 70 MB).
const walAutocheckpoint = 32768

// Retries of a checkpoint that could not copy everything (a reader still on an older
// snapshot holds frames back): from minRetry, doubling, up to maxRetry.
const (
	minRetry = 100 * time.Millisecond
	maxRetry = 5 * time.Second
)

// checkpointer copies the pages a commit wrote to the WAL into the database file, on a
// connection of its own, after every commit. With SQLite's automatic checkpoint the
// committing writer did it before its commit returned: a first run's 27 MB of partial
// sums were written twice (to the WAL, then to the file) before the snapshot could be
// published, and every hourly step paid it twice, for its batch and for its publication.
// A passive checkpoint runs beside readers and writers and never waits for them; what it
// could not copy it tries again a little later, and the next commit's checkpoint does too.
type checkpointer struct {
	conn  *sql.DB
	kicks chan struct{} // one pending checkpoint at most
	stop  chan struct{} // closed by close
	done  chan struct{} // closed when run returns
	once  sync.Once     // close's
}

func startCheckpointer(abs string) (*checkpointer, error) {
	conn, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_pragma": {fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds())},
	}))
	if err != nil {
		return nil, err
	}
	conn.SetMaxOpenConns(1)
	c := &checkpointer{conn: conn, kicks: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

// kick asks for a checkpoint; kicks that arrive while one runs make one more. A nil
// checkpointer (a DB still opening) does nothing.
func (c *checkpointer) kick() {
	if c == nil {
		return
	}
	select {
	case c.kicks <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	var retry <-chan time.Time
	wait := minRetry
	for {
		select {
		case <-c.stop:
			return
		case <-c.kicks:
			wait = minRetry
		case <-retry:
		}
		retry = nil
		if !c.checkpoint() && wait <= maxRetry {
			retry = time.After(wait)
			wait *= 2
		}
	}
}

// checkpoint copies what it can of the WAL into the file and reports whether that was
// all of it. A failure (the file busy, a full disk) leaves the pages in the WAL, where
// readers find them.
func (c *checkpointer) checkpoint() bool {
	var busy, log, copied int
	err := c.conn.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &copied)
	return err == nil && busy == 0 && copied >= log
}

// close waits for a running checkpoint and closes the connection; calls after the first
// do nothing.
func (c *checkpointer) close() error {
	var err error
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		err = c.conn.Close()
	})
	return err
}
