// Command regioncache runs demonstrations, inspects, sizes and prunes caches
// of any backend, measures backends, manages backend plugins and runs the
// conformance suite.
//
// Usage:
//
//	regioncache <command> [flags] [args]
//
// Run "regioncache help" for the list of commands and "regioncache help
// <command>" (or "regioncache <command> -h") for one command's flags.
//
// Every command behaves the same way: flags may come before or after the
// arguments; long flags take one dash or two ("-json" and "--json"); "-h"
// prints help; "-json" prints the result as JSON; usage errors exit with
// status 2, an interrupt (Ctrl-C) with 130, other failures with 1; progress
// is shown only when standard error is a terminal; commands that delete have
// a dry run and never take a missing terminal as an answer to a prompt.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// env is what a command may touch: its streams and whether they are
// terminals. main fills it from the process; tests give it buffers.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// stdinTTY reports that stdin is a terminal a person can answer
	// prompts on. Without it no command prompts.
	stdinTTY bool
	// stderrTTY reports that stderr is a terminal: progress is shown only
	// then (or when a command's --progress forces it).
	stderrTTY bool
}

// commands holds the constructors of the subcommands, one per file, added
// from init with register. Each run builds a fresh command tree from them,
// so that runs (tests in parallel) share no flag state.
var commands = map[string]func(e *env) *cobra.Command{}

func register(name string, newCmd func(e *env) *cobra.Command) {
	if _, dup := commands[name]; dup {
		panic("duplicate command " + name)
	}
	commands[name] = newCmd
}

// errUsage marks an error caused by bad command-line usage (exit status 2).
var errUsage = errors.New("usage")

// usagef returns an error wrapping errUsage.
func usagef(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// Exit statuses.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130 // 128 + SIGINT, as shells report it
)

// newRoot builds the command tree for one run.
func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "regioncache",
		Short: "dogpile-locked caching: demonstrate, inspect, prune, measure and extend caches",
		Long: `regioncache works on the caches of the regioncache Go library.

Commands that read a cache (inspect, stats, prune, evict, rm) take a cache
directory, or any backend by name and arguments (--backend redis --arg
url=redis://host/0), or a config file and prefix (--config cache.yaml
--prefix cache.users.). Long flags take one dash or two; flags may follow
the arguments.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		Args:              cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.PersistentFlags().Bool("json", false, "print the result as JSON")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w: %v", errUsage, err)
	})
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		root.AddCommand(commands[n](e))
	}
	return root
}

// jsonOut reports whether cmd was given --json.
func jsonOut(cmd *cobra.Command) bool {
	v, _ := cmd.Flags().GetBool("json")
	return v
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// run executes one command line and returns the process exit status.
func run(ctx context.Context, e *env, argv []string) int {
	root := newRoot(e)
	argv = normalizeFlags(root, argv)
	root.SetArgs(argv)
	ran := false // did a command's own RunE start? (else the error is cobra's: usage)
	var wrapRun func(c *cobra.Command)
	wrapRun = func(c *cobra.Command) {
		if c.RunE != nil {
			inner := c.RunE
			c.RunE = func(cmd *cobra.Command, args []string) error {
				ran = true
				return inner(cmd, args)
			}
		}
		for _, s := range c.Commands() {
			wrapRun(s)
		}
	}
	wrapRun(root)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	name := "regioncache"
	if cmd != nil && cmd != root {
		name = cmd.CommandPath()
	}
	switch {
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, ctx.Err()) || ran):
		fmt.Fprintf(e.stderr, "%s: interrupted\n", name)
		return exitInterrupted
	case errors.Is(err, errUsage) || !ran:
		msg := strings.TrimPrefix(err.Error(), errUsage.Error()+": ")
		fmt.Fprintf(e.stderr, "%s: %s\n", name, msg)
		if cmd == nil || cmd == root || strings.HasPrefix(msg, "unknown command") {
			fmt.Fprintln(e.stderr)
			root.SetOut(e.stderr)
			root.Usage()
		} else {
			fmt.Fprintf(e.stderr, "usage: %s\nRun '%s -h' for help.\n", cmd.UseLine(), cmd.CommandPath())
		}
		return exitUsage
	default:
		fmt.Fprintf(e.stderr, "%s: %v\n", name, err)
		return exitFailure
	}
}

// normalizeFlags rewrites single-dash long flags ("-json", "-max-size=1G")
// of the command argv selects into their double-dash form, which is what the
// flag parser (pflag) understands, so that both spellings work. A single
// dash followed by one letter stays a shorthand ("-h", "-y"); arguments
// after "--" and the values of flags that take one are left alone.
func normalizeFlags(root *cobra.Command, argv []string) []string {
	cmd, _, err := root.Find(argv)
	if err != nil || cmd == nil {
		cmd = root
	}
	lookup := func(name string) *pflag.Flag {
		if f := cmd.Flags().Lookup(name); f != nil {
			return f
		}
		return cmd.InheritedFlags().Lookup(name)
	}
	shorthand := func(c string) *pflag.Flag {
		if f := cmd.Flags().ShorthandLookup(c); f != nil {
			return f
		}
		return cmd.InheritedFlags().ShorthandLookup(c)
	}
	out := make([]string, 0, len(argv))
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if a == "--" {
			out = append(out, argv[i:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			out = append(out, a)
			continue
		}
		body := strings.TrimLeft(a, "-")
		name, _, hasValue := strings.Cut(body, "=")
		var f *pflag.Flag
		switch {
		case strings.HasPrefix(a, "--"):
			f = lookup(name)
		case len(name) > 1:
			f = lookup(name)
			if f != nil || shorthand(name[:1]) == nil || strings.Contains(name, "-") {
				// A known long flag, or a word that is no shorthand
				// cluster ("-no-such-flag"): let the parser name the
				// whole word.
				a = "-" + a
			}
		default:
			f = shorthand(name)
		}
		out = append(out, a)
		if f != nil && !hasValue && f.NoOptDefVal == "" && i+1 < len(argv) {
			i++ // the flag's value, whatever it looks like
			out = append(out, argv[i])
		}
	}
	return out
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	go func() {
		// After the first interrupt, a second one kills at once.
		<-ctx.Done()
		stop()
	}()
	e := &env{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		stdinTTY:  term.IsTerminal(int(os.Stdin.Fd())),
		stderrTTY: term.IsTerminal(int(os.Stderr.Fd())),
	}
	code := run(ctx, e, os.Args[1:])
	stop()
	os.Exit(code)
}
