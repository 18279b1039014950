package flock

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFileExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rank.lock")
	a, b := NewFile(path), NewFile(path)
	if ok, err := a.TryLock(); !ok || err != nil {
		t.Fatalf("first TryLock = %v, %v; want true", ok, err)
	}
	if ok, err := b.TryLock(); ok || err != nil {
		t.Fatalf("second TryLock while held = %v, %v; want false", ok, err)
	}
	if err := a.Unlock(); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryLock(); !ok || err != nil {
		t.Fatalf("TryLock after Unlock = %v, %v; want true", ok, err)
	}
	b.Unlock()
}

// TestFileReleasedOnKill holds the lock in a child process, kills it with SIGKILL and
// checks that the lock is free at once: no lease to wait out.
func TestFileReleasedOnKill(t *testing.T) {
	if os.Getenv("LOCK_HOLDER") != "" {
		l := NewFile(os.Getenv("LOCK_HOLDER"))
		if ok, _ := l.TryLock(); ok {
			os.Stdout.WriteString("held\n")
		}
		time.Sleep(time.Minute)
		return
	}
	path := filepath.Join(t.TempDir(), "rank.lock")
	cmd := exec.Command(os.Args[0], "-test.run=TestFileReleasedOnKill")
	cmd.Env = append(os.Environ(), "LOCK_HOLDER="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := out.Read(buf); err != nil || !strings.HasPrefix(string(buf), "held") {
		t.Fatalf("child did not take the lock: %q %v", buf, err)
	}
	l := NewFile(path)
	if ok, _ := l.TryLock(); ok {
		t.Fatal("took the lock while the child holds it")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if ok, err := l.TryLock(); !ok || err != nil {
		t.Fatalf("TryLock after the holder was killed = %v, %v; want true", ok, err)
	}
	l.Unlock()
}
