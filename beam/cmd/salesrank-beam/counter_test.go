package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"
)

// parseRank parses args with rank's Beam flags, as rank's flag set holds them.
func parseRank(t *testing.T, args ...string) (*counter, error) {
	t.Helper()
	fs := flag.NewFlagSet("rank", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := &counter{}
	c.Flags(fs)
	return c, fs.Parse(args)
}

// TestBeamOptionsReachBeam shows that Beam's options given to rank are set where Beam
// reads them, and marked as set: Beam passes on to the runner and its workers only the
// options that flag.Visit lists.
func TestBeamOptionsReachBeam(t *testing.T) {
	if _, err := parseRank(t, "--endpoint", "localhost:8099", "--beam-opt", "experiments=x"); err != nil {
		t.Fatal(err)
	}
	set := map[string]string{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = f.Value.String() })
	if set["endpoint"] != "localhost:8099" || *jobopts.Endpoint != "localhost:8099" {
		t.Errorf("--endpoint: Beam's flag is %q, flag.Visit sees %v", *jobopts.Endpoint, set)
	}
	if set["experiments"] != "x" {
		t.Errorf("--beam-opt experiments=x: flag.Visit sees %v", set)
	}
	if _, err := parseRank(t, "--beam-opt", "async=true"); err == nil || !strings.Contains(err.Error(), "rank must wait") {
		t.Errorf("--beam-opt async=true: got %v, want a refusal", err)
	}
	if _, err := parseRank(t, "--beam-opt", "no_such_option=1"); err == nil {
		t.Error("--beam-opt no_such_option=1 was accepted")
	}
}

// TestRemoteWorkersNeedURLs shows that a runner whose workers run elsewhere is refused
// folders it could not reach, and gets this binary as its worker.
func TestRemoteWorkersNeedURLs(t *testing.T) {
	t.Cleanup(func() {
		for _, name := range []string{"endpoint", "environment_type", "worker_binary"} {
			flag.CommandLine.Set(name, "")
		}
	})
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		logs string
		want string // in the error; "" for none
	}{
		{[]string{"--runner", "flink", "--endpoint", "localhost:8099"}, "./logs", `--logs "./logs" must be a URL`},
		{[]string{"--runner", "flink", "--endpoint", "localhost:8099"}, "file:///srv/logs", "must be a URL"},
		{[]string{"--runner", "flink", "--endpoint", "localhost:8099"}, "s3://sales/logs", "set --staging to a URL"},
		{[]string{"--runner", "flink", "--endpoint", "localhost:8099", "--staging", "/tmp/x"}, "s3://sales/logs", "set --staging to a URL"},
		{[]string{"--runner", "prism", "--endpoint", "localhost:8099"}, "./logs", "must be a URL"},
		{[]string{"--runner", "universal", "--endpoint", "localhost:8099", "--environment_type", "LOOPBACK"}, "./logs", ""},
		{[]string{"--runner", "flink", "--endpoint", "localhost:8099", "--environment_type", "PROCESS", "--staging", "gs://b/staging"}, "s3://sales/logs", ""},
	} {
		flag.CommandLine.Set("environment_type", "")
		flag.CommandLine.Set("worker_binary", "")
		c, err := parseRank(t, tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		_, closeEngine, err := c.Engine(ctx, tc.logs, log)
		if closeEngine != nil {
			closeEngine()
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v --logs %s: %v", tc.args, tc.logs, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v --logs %s: got %v, want an error containing %q", tc.args, tc.logs, err, tc.want)
		}
		if tc.want == "" && !strings.EqualFold(*jobopts.EnvironmentType, "loopback") {
			if exe, _ := os.Executable(); *jobopts.WorkerBinary != exe {
				t.Errorf("%v: --worker_binary is %q, want this binary %q", tc.args, *jobopts.WorkerBinary, exe)
			}
		}
	}
}
