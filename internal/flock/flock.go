// Package flock elects the one active ranker among processes sharing a SQLite database. A
// File lock is an flock(2) on a file beside the database: the kernel drops it when its holder dies,
// however it dies, so a standby can take over without a lease to expire. (PostgreSQL
// deployments use an advisory lock behind the same two methods.)
package flock

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// File is an exclusive lock on a file. The zero value is not usable; see NewFile.
type File struct {
	path string
	mu   sync.Mutex
	f    *os.File // open while held
}

// NewFile returns a lock on path, which is created if missing and never deleted (deleting a
// lock file while another process waits on it would let two processes hold "the" lock).
func NewFile(path string) *File { return &File{path: path} }

// TryLock takes the lock if no other process holds it, without waiting. It reports whether
// the lock is now held by this File.
func (l *File) TryLock() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		return true, nil
	}
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", l.path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return false, nil
		}
		return false, fmt.Errorf("lock %s: %w", l.path, err)
	}
	// Say who holds it, for an operator wondering which process is active.
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	l.f = f
	return true, nil
}

// Unlock releases the lock if held.
func (l *File) Unlock() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor releases the flock
	l.f = nil
	return err
}
