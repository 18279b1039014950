package faults_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
)

// The tests read the SQLite file through dbcheck (testdata/dbcheck), a program TestMain
// builds without -race: see its doc comment for why.
var dbcheck string

// dbcheckRun runs dbcheck and decodes its JSON into v.
func dbcheckRun(v any, args ...string) error {
	cmd := exec.Command(dbcheck, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("dbcheck %v: %v: %s", args, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return json.Unmarshal(stdout.Bytes(), v)
}

// dbState is what tells whether a run got past its commits: the highest batch and
// snapshot ids ever handed out (both AUTOINCREMENT, so never reused or lowered by pruning)
// and the current snapshot's id (0 if none).
type dbState struct {
	Migrated bool  `json:"migrated"`
	Batch    int64 `json:"batch"`
	Snapshot int64 `json:"snapshot"`
	Current  int64 `json:"current"`
}

func readState(path string) (dbState, error) {
	var s dbState
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	err := dbcheckRun(&s, "state", path)
	return s, err
}

func stateOf(t testing.TB, path string) dbState {
	t.Helper()
	s, err := readState(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// manifestRow is one row of table objects.
type manifestRow struct {
	Key      string `json:"key"`
	Size     int64  `json:"size"`
	Batch    int64  `json:"batch"`
	Read     int64  `json:"read"`
	Rejected int64  `json:"rejected"`
	TooLate  int64  `json:"too_late"`
}

// checked is dbcheck check's answer: the state, every problem found (integrity_check, a
// broken foreign key, a current snapshot that is not whole or not ranked 1..n in order,
// intake tables that disagree) and the manifest by key.
type checked struct {
	State    dbState       `json:"state"`
	Problems []string      `json:"problems"`
	Manifest []manifestRow `json:"manifest"`
}

func checkFile(t testing.TB, path string) (checked, map[string]manifestRow) {
	t.Helper()
	var c checked
	if err := dbcheckRun(&c, "check", path); err != nil {
		t.Fatal(err)
	}
	man := make(map[string]manifestRow, len(c.Manifest))
	for _, m := range c.Manifest {
		man[m.Key] = m
	}
	return c, man
}

func manifest(t testing.TB, path string) map[string]manifestRow {
	t.Helper()
	_, man := checkFile(t, path)
	return man
}

func rankingOf(t testing.TB, path string, id int64) ranking {
	t.Helper()
	var out struct {
		Cats []int32    `json:"cats"`
		Rows [][4]int64 `json:"rows"`
	}
	if err := dbcheckRun(&out, "ranking", path, strconv.FormatInt(id, 10)); err != nil {
		t.Fatal(err)
	}
	r := ranking{cats: out.Cats}
	for _, row := range out.Rows {
		r.rows = append(r.rows, rankRow{cat: int32(row[0]), rank: int(row[1]), prod: row[2], total: row[3]})
	}
	return r
}

// snapshotCutoffs returns every stored snapshot's id → cutoff (unix seconds).
func snapshotCutoffs(t testing.TB, path string) map[int64]int64 {
	t.Helper()
	var raw map[string]int64
	if err := dbcheckRun(&raw, "cutoffs", path); err != nil {
		t.Fatal(err)
	}
	out := make(map[int64]int64, len(raw))
	for k, v := range raw {
		id, _ := strconv.ParseInt(k, 10, 64)
		out[id] = v
	}
	return out
}

// fullRanksIDs returns the stored snapshots that carry full ranks.
func fullRanksIDs(t testing.TB, path string) map[int64]bool {
	t.Helper()
	var ids []int64
	if err := dbcheckRun(&ids, "fullranks", path); err != nil {
		t.Fatal(err)
	}
	out := make(map[int64]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out
}

// writeLockHolder returns the pid holding the SQLite WAL write lock of the database at path,
// or 0. SQLite's unix VFS takes it as an fcntl lock on byte 120 of the -shm file
// (UNIX_SHM_BASE + WAL_WRITE_LOCK) for the whole of a write transaction, so F_GETLK sees it
// without disturbing anyone. (The test process itself holds no SQLite connection: closing
// the descriptor would drop its fcntl locks on the file.)
func writeLockHolder(path string) int {
	f, err := os.Open(path + "-shm")
	if err != nil {
		return 0
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 120, Len: 1}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil || lk.Type == syscall.F_UNLCK {
		return 0
	}
	return int(lk.Pid)
}
