package sqlite

import (
	"database/sql"
	"fmt"
	"net/url"
)

// walAutocheckpoint is the WAL size, in pages, past which the committing writer copies
// the WAL into the database file itself (SQLite's automatic checkpoint). It is a backstop:
// the checkpointer does it after every commit, beside the writer, and a commit waits for
// it only if the checkpointer falls this far behind (a reader holding an old snapshot
// keeps it from finishing). 16384 pages of 4 KiB is 64 MiB, more than a publication with
// full ranks writes at the seed's scale.
const walAutocheckpoint = 16384

// checkpointer copies the pages a commit wrote to the WAL into the database file, on a
// connection of its own, after every commit. With SQLite's automatic checkpoint the
// committing writer did it before its commit returned: a first run's 27 MB of partial
// sums were written twice (to the WAL, then to the file) before the snapshot could be
// published, and every hourly step paid it twice, for its batch and for its publication.
// A passive checkpoint runs beside readers and writers and never waits for them; what it
// could not copy the next one does.
type checkpointer struct {
	conn  *sql.DB
	kicks chan struct{} // one pending checkpoint at most
	stop  chan struct{} // closed by close
	done  chan struct{} // closed when run returns
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
	for {
		select {
		case <-c.stop:
			return
		case <-c.kicks:
		}
		// A failure (the file busy, a full disk) leaves the pages in the WAL, where readers
		// find them; the next checkpoint, or the writer's own past walAutocheckpoint, copies
		// them.
		var busy, log, copied int
		_ = c.conn.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &copied)
	}
}

// close waits for a running checkpoint and closes the connection.
func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	return c.conn.Close()
}
