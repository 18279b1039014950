package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/term"
)

// newFlagSet returns a flag set for one subcommand whose usage text starts with synopsis
// and lists every flag with its environment-variable twin.
func newFlagSet(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "%s\n\nFlags (each also read from the environment variable shown):\n", strings.TrimSpace(synopsis))
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(w, "  --%s", f.Name)
			if name != "" {
				fmt.Fprintf(w, " %s", name)
			}
			fmt.Fprintf(w, "   [$%s]\n      %s", envName(f.Name), strings.ReplaceAll(usage, "\n", "\n      "))
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(w)
		})
	}
	return fs
}

// envName is the environment variable that stands in for a flag: --logs → SALESRANK_LOGS.
func envName(flagName string) string {
	return "SALESRANK_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags parses args, then fills every flag not given on the command line from its
// environment variable, so the order of precedence is: default, environment, command line.
// Help output goes to stdout: asking for help is not an error.
func parseFlags(e *env, fs *flag.FlagSet, args []string) error {
	_, err := parseFlagSources(e, fs, args)
	return err
}

// parseFlagSources is parseFlags that also returns the flags given on the command line, for
// commands whose flags exclude each other: a flag on the command line then beats a
// conflicting one from the environment instead of making an error of it.
func parseFlagSources(e *env, fs *flag.FlagSet, args []string) (cmdline map[string]bool, err error) {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(e.stdout)
			fs.Usage()
			return nil, flag.ErrHelp
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q (flags start with --)\n", fs.Name(), fs.Arg(0))
		return nil, errUsage
	}
	cmdline = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { cmdline[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		if cmdline[f.Name] || err != nil {
			return
		}
		v := e.getenv(envName(f.Name))
		if v == "" {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("%s=%q: %v", envName(f.Name), v, serr)
		}
	})
	return cmdline, err
}

// isTerminal reports whether w is a terminal, where people read progress lines; elsewhere
// (CI, a service manager) output stays quiet and structured.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newLogger logs readable text to a terminal and JSON lines otherwise.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if isTerminal(w) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
