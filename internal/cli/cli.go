// Package cli is the salesrank command line: its subcommands, their flags (each with an
// environment twin) and how they wire the packages below. Two binaries are built on it:
// cmd/salesrank, which counts on this machine, and salesrank-beam (the beam/ module), whose
// rank counts with Apache Beam and shares everything else, flags and summary included.
package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/salesrank/salesrank/internal/ranker"
)

// Program is what one binary adds to the shared command line.
type Program struct {
	// Name is the binary's name, as help and errors print it; "" means "salesrank".
	Name string
	// Commands lists the subcommands this binary offers; nil means all of them.
	Commands []string
	// Counter, if set, makes the engine that rank counts with; nil counts on this machine.
	Counter Counter
}

// Counter makes the engine of a rank run: it adds its own flags to rank's, then builds the
// engine from them once they are parsed.
type Counter interface {
	// Flags adds the counter's flags to rank's flag set; they get environment twins too.
	Flags(fs *flag.FlagSet)
	// Help is a paragraph for rank --help about how this counter counts.
	Help() string
	// Engine returns the engine for one rank command over the logs at logsURL (as given
	// to --logs). close releases what it holds.
	Engine(ctx context.Context, logsURL string, log *slog.Logger) (eng ranker.Engine, close func(), err error)
}

// Main runs the program with the process's arguments, environment and standard streams,
// and exits with its status: 0, 1 for a failure, 2 for a command line that could not be
// parsed.
func Main(p Program) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := Run(ctx, p, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		// The usage text has been printed; asking for help is not a failure.
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "%s: %v\n", p.name(), err)
		os.Exit(1)
	}
}

// errUsage reports a command line that could not be parsed; the flag package has already
// printed what was wrong.
var errUsage = errors.New("usage error")

// env is what a subcommand may touch of the outside world. Tests build one with their own
// getenv, writers and clock, so no subcommand reads os.* directly.
type env struct {
	prog   Program
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

func (p Program) name() string { return cmp.Or(p.Name, "salesrank") }

// commands returns the subcommands p offers.
func (p Program) commands() []command {
	all := []command{
		{"demo", "generate a sample week, rank it and serve it on 127.0.0.1:8080", runDemo},
		{"gen", "write realistic synthetic sales logs", runGen},
		{"rank", "rank the past week of sales logs and publish a snapshot", runRank},
		{"serve", "serve the current snapshot over HTTP", runServe},
		{"version", "print the version", runVersion},
	}
	if p.Commands == nil {
		return all
	}
	return slices.DeleteFunc(all, func(c command) bool { return !slices.Contains(p.Commands, c.name) })
}

// Run runs one command line of p: args[0] is the program, args[1] the subcommand.
func Run(ctx context.Context, p Program, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{prog: p, getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now}
	if len(args) < 2 {
		usage(p, stderr)
		return errUsage
	}
	name := args[1]
	switch name {
	case "help", "-h", "-help", "--help":
		usage(p, stdout)
		return nil
	}
	for _, c := range p.commands() {
		if c.name == name {
			return c.run(ctx, e, args[2:])
		}
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\n\n", p.name(), name)
	usage(p, stderr)
	return errUsage
}

func usage(p Program, w io.Writer) {
	fmt.Fprintf(w, `%s computes, for every product category, the best sellers of the past week
from raw sales logs, and serves those lists over HTTP.

Usage:
  %[1]s <command> [flags]

Commands:
`, p.name())
	cmds := p.commands()
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, `
Run "%s <command> --help" for a command's flags. Every flag can also be set by an
environment variable: --db is SALESRANK_DB, --every is SALESRANK_EVERY, and so on.
A flag on the command line wins over its variable.
`, p.name())
	if slices.ContainsFunc(cmds, func(c command) bool { return c.name == "demo" }) {
		fmt.Fprint(w, `
Quick start:
  salesrank demo
`)
	}
}

// Version is the version the binaries report; set it at build time with
// -ldflags "-X github.com/salesrank/salesrank/internal/cli.Version=…".
var Version = "dev"

func runVersion(ctx context.Context, e *env, args []string) error {
	fmt.Fprintf(e.stdout, "%s %s\n", e.prog.name(), Version)
	return nil
}
