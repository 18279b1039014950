package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// How Watch keeps its connection. A LISTEN connection that silently died (a server restart,
// a NAT dropping an idle flow) would otherwise wait for ever, so Watch pings it when it has
// heard nothing for listenIdle, and reconnects with a backoff of up to maxBackoff.
const (
	listenIdle  = 15 * time.Second
	pingTimeout = 5 * time.Second
	minBackoff  = 100 * time.Millisecond
	maxBackoff  = 5 * time.Second
)

// keepalives make the server drop the session of a client that vanished (a partition, a
// dead machine) within about half a minute, instead of the OS default of two hours: the
// ranker lock is held by a session, and a standby must be able to take it over. Unix-socket
// connections ignore them.
var keepalives = map[string]string{
	"tcp_keepalives_idle":     "10",
	"tcp_keepalives_interval": "5",
	"tcp_keepalives_count":    "3",
}

// connect opens a connection of its own, outside the pool, for LISTEN or the ranker lock:
// both live as long as the session does, which a pooled connection's must not.
func (db *DB) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg := db.pool.Config().ConnConfig.Copy()
	for k, v := range keepalives {
		if _, set := cfg.RuntimeParams[k]; !set {
			cfg.RuntimeParams[k] = v
		}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", db.desc, err)
	}
	return conn, nil
}

// Watch listens on Channel and calls fn with the snapshot id each notification carries (the
// id that is current after a publish) until ctx is done; then it returns nil. It calls fn(0)
// each time it starts listening, first and after every reconnection, because notifications
// sent while it was not listening are lost: 0 means "something may have changed".
//
// Watch is a hint, not a source of truth: a serve replica keeps polling CurrentID (slowly,
// say every 30 s) and, from fn, wakes its poller at once, so it learns of a new snapshot
// within a round trip of the commit and still recovers if a notification is lost. fn runs on
// Watch's goroutine and must not block; a non-blocking send on a channel of capacity 1 is
// the usual body:
//
//	wake := make(chan struct{}, 1)
//	go db.Watch(ctx, func(int64) {
//		select {
//		case wake <- struct{}{}:
//		default:
//		}
//	})
//	// the poller: select on ctx.Done(), a ticker and wake, then compare CurrentID.
//
// Notifications are per database, not per schema: another schema's publishes also call fn,
// which costs a CurrentID that finds nothing new. Watch holds one connection of its own,
// outside the pool; it needs a direct or session-mode connection (not PgBouncer's
// transaction mode). Errors are logged on db.Logger and retried, never returned.
func (db *DB) Watch(ctx context.Context, fn func(id int64)) error {
	log := db.logger().With("component", "postgres-listen")
	backoff := minBackoff
	for ctx.Err() == nil {
		err := db.listen(ctx, fn, func() { backoff = minBackoff })
		if ctx.Err() != nil {
			break
		}
		log.Warn("snapshot notifications interrupted; reconnecting", "err", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
	return nil
}

// listen holds one LISTEN connection until it fails or ctx is done. It calls connected once
// it listens.
func (db *DB) listen(ctx context.Context, fn func(id int64), connected func()) error {
	conn, err := db.connect(ctx)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{Channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	connected()
	fn(0)
	for {
		wctx, cancel := context.WithTimeout(ctx, listenIdle)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			id, perr := strconv.ParseInt(n.Payload, 10, 64)
			if perr != nil {
				id = 0 // not ours, or a future format: still a reason to look
			}
			fn(id)
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case wctx.Err() == nil:
			return fmt.Errorf("wait for notification: %w", err)
		}
		// Quiet for listenIdle: check that the connection is alive. A timed-out wait
		// leaves it usable.
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("ping listening connection: %w", err)
		}
	}
}
