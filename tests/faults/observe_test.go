package faults_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// fdView is what a ranker process has open under the logs folder at one moment.
type fdView struct {
	dirs    int      // folders: fileblob's listing walks the tree (os.ReadDir)
	attrs   []string // keys whose .attrs file is open: the listing reads every object's, a reader its own
	objects int      // log objects: the engine reads them
}

// scanFDs reads /proc/PID/fd. Keys are relative to logs, with slashes.
func scanFDs(pid int, logs string) fdView {
	var v fdView
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return v
	}
	prefix := logs + string(filepath.Separator)
	for _, e := range ents {
		target, err := os.Readlink(dir + "/" + e.Name())
		if err != nil || (target != logs && !strings.HasPrefix(target, prefix)) {
			continue
		}
		rel := filepath.ToSlash(strings.TrimPrefix(target, prefix))
		switch name := filepath.Base(target); {
		case strings.HasSuffix(name, ".attrs"):
			v.attrs = append(v.attrs, strings.TrimSuffix(rel, ".attrs"))
		case target == logs || !strings.Contains(name, "."):
			v.dirs++ // the tests' folders have no dot in their names, objects all have one
		default:
			v.objects++
		}
	}
	return v
}

// stopped reports whether every thread of pid is stopped (state T).
func stopped(pid int) bool {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/stat")
		if err != nil {
			return false
		}
		// pid (comm) STATE …; comm may hold spaces or parentheses, so cut at the last ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) || (s[i+2] != 'T' && s[i+2] != 't') {
			return false
		}
	}
	return true
}

// freeze stops p (SIGSTOP) and waits until all its threads are stopped, so that what is
// read afterwards is the moment a SIGKILL would hit. It reports false if p is gone.
func freeze(p *proc) bool {
	if !p.signal(syscall.SIGSTOP) {
		return false
	}
	deadline := time.Now().Add(2 * time.Second)
	for !stopped(p.pid()) {
		if p.exited() || time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Microsecond)
	}
	return true
}

func thaw(p *proc) { p.signal(syscall.SIGCONT) }
