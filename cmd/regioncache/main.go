// Command regioncache runs demonstrations, inspects and prunes cache
// directories, manages backend plugins and runs the conformance suite.
//
// Usage:
//
//	regioncache <command> [flags] [args]
//
// Run "regioncache help" for the list of commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
)

// command is one subcommand. Each lives in its own file and registers itself
// from init with register.
type command struct {
	name  string
	usage string // one line: "demo [-callers N]"
	short string // one sentence for the command list
	run   func(ctx context.Context, env *env, args []string) error
}

// env is what a command may touch: its streams. Tests give it buffers.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("duplicate command " + c.name)
	}
	commands[c.name] = c
}

// errUsage marks an error caused by bad command-line usage (exit status 2).
var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: regioncache <command> [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].short)
	}
	fmt.Fprintln(w, "\nRun 'regioncache <command> -h' for a command's flags.")
}

// run executes one command line and returns the process exit status.
func run(ctx context.Context, e *env, argv []string) int {
	if len(argv) == 0 || argv[0] == "help" || argv[0] == "-h" || argv[0] == "--help" {
		usage(e.stdout)
		return 0
	}
	c, ok := commands[argv[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "regioncache: unknown command %q\n\n", argv[0])
		usage(e.stderr)
		return 2
	}
	err := c.run(ctx, e, argv[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(e.stderr, "regioncache %s: %v\nusage: regioncache %s\n", c.name, err, c.usage)
		return 2
	default:
		fmt.Fprintf(e.stderr, "regioncache %s: %v\n", c.name, err)
		return 1
	}
}

// newFlagSet returns a flag set for command c that reports errors as usage
// errors instead of exiting.
func newFlagSet(c string, e *env) *flag.FlagSet {
	fs := flag.NewFlagSet(c, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// usagef returns an error wrapping errUsage.
func usagef(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}
