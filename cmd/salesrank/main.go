// Command salesrank computes each category's best sellers of the past week from raw sales
// logs and serves them over HTTP. Run "salesrank help" for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		// The usage text has been printed; asking for help is not a failure.
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "salesrank: %v\n", err)
		os.Exit(1)
	}
}

// errUsage reports a command line that could not be parsed; the flag package has already
// printed what was wrong.
var errUsage = errors.New("usage error")

// env is what a subcommand may touch of the outside world. Tests build one with their own
// getenv, writers and clock, so no subcommand reads os.* directly.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time
}

// command is one subcommand: its name, a one-line summary for "salesrank help", and the
// function that runs it with the arguments after its name.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{
		{"demo", "generate a sample week, rank it and serve it on 127.0.0.1:8080", runDemo},
		{"gen", "write realistic synthetic sales logs", runGen},
		{"rank", "rank the past week of sales logs and publish a snapshot", runRank},
		{"serve", "serve the current snapshot over HTTP", runServe},
		{"version", "print the version", runVersion},
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now}
	if len(args) < 2 {
		usage(stderr)
		return errUsage
	}
	name := args[1]
	switch name {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, e, args[2:])
		}
	}
	fmt.Fprintf(stderr, "salesrank: unknown command %q\n\n", name)
	usage(stderr)
	return errUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `salesrank computes, for every product category, the best sellers of the past week
from raw sales logs, and serves those lists over HTTP.

Usage:
  salesrank <command> [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run "salesrank <command> --help" for a command's flags. Every flag can also be set by an
environment variable: --db is SALESRANK_DB, --every is SALESRANK_EVERY, and so on.
A flag on the command line wins over its variable.

Quick start:
  salesrank demo
`)
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func runVersion(ctx context.Context, e *env, args []string) error {
	fmt.Fprintf(e.stdout, "salesrank %s\n", version)
	return nil
}
