package testbin

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// CleanEnv returns the test's environment without SALESRANK_* variables, which would
// otherwise fill in flags the tests leave out on purpose. Every test that starts a binary
// Build built gets its environment here, so this is also where the binaries' sources are
// statted for go test's result cache, once (see statSources).
func CleanEnv() []string {
	statSources()
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "SALESRANK_") })
}

// Run runs bin with args in CleanEnv, waits at most two minutes, fails t unless it exits 0,
// and returns its stdout.
func Run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = CleanEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
