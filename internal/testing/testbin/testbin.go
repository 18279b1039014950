// Package testbin builds the programs that black-box tests start as processes (the
// salesrank binary, helpers of their own) once per test binary, from TestMain.
package testbin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Build compiles each package (an import path, or a path relative to the test's folder) into
// a new temporary folder whose name starts with prefix, and returns the folder, which the
// caller removes, and one binary path per package, named after the package's last element.
// They are built without -race whatever the tests are built with: they are the system under
// test, and the race detector would slow them tenfold (cmd/salesrank's own tests cover them
// under it). go test puts its own toolchain first on PATH, so this is the same Go.
func Build(prefix string, pkgs ...string) (dir string, bins []string, err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, pkg := range pkgs {
		bin := filepath.Join(dir, path.Base(pkg))
		out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			os.RemoveAll(dir)
			return "", nil, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
		bins = append(bins, bin)
	}
	if err := listSources(ctx, pkgs); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, bins, nil
}

// sources are the files the binaries that Build built were built from, but those in the
// module cache (which never change) and the standard library; CleanEnv stats them.
var sources struct {
	sync.Mutex
	files   []string
	statted bool
}

// listSources records the files the packages pkgs are built from.
func listSources(ctx context.Context, pkgs []string) error {
	args := append([]string{"list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{range .EmbedFiles}}|{{.}}{{end}}{{end}}"}, pkgs...)
	out, err := exec.CommandContext(ctx, "go", args...).Output()
	if err != nil {
		return fmt.Errorf("go list the sources of %v: %w", pkgs, err)
	}
	modcache, _ := exec.CommandContext(ctx, "go", "env", "GOMODCACHE").Output()
	cache := strings.TrimSpace(string(modcache))
	var files []string
	for line := range strings.Lines(string(out)) {
		parts := strings.Split(strings.TrimSpace(line), "|")
		pkgDir := parts[0]
		if pkgDir == "" || (cache != "" && strings.HasPrefix(pkgDir, cache+string(filepath.Separator))) {
			continue
		}
		entries, err := os.ReadDir(pkgDir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Type().IsRegular() {
				files = append(files, filepath.Join(pkgDir, e.Name()))
			}
		}
		for _, f := range parts[1:] {
			files = append(files, filepath.Join(pkgDir, f))
		}
	}
	sources.Lock()
	sources.files = append(sources.files, files...)
	sources.Unlock()
	return nil
}

// statSources makes go test's result cache depend on the sources of the binaries: go test
// keys a cached result on the test binary and on the files the test opened or statted once
// tests began (not in TestMain, where Build runs), and the binaries built here are neither,
// so without this a changed program would get a stale cached pass.
func statSources() {
	sources.Lock()
	defer sources.Unlock()
	if sources.statted || !testing.Testing() {
		return
	}
	for _, f := range sources.files {
		os.Stat(f)
	}
	sources.statted = true
}
