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
	return dir, bins, nil
}
