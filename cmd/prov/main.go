// Command prov is the actor and verifier CLI of provtrail.
//
// Actors use it to make keys, enroll actors (the operator), register items,
// hand them off, receive them, dispute them and rule on disputes; anyone
// uses it to read an item's verified history, save its proof bundle, and
// verify a bundle offline against pinned keys.
//
// Every verb that reads or writes the log works on a data directory
// (--data, default ./data) in-process, or on a running provd (--server
// URL, or PROV_SERVER), through the small backend interface in
// backend.go; verify never opens either.
//
// Run "prov help" for the verbs and "prov VERB --help" for each.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and failed: bad data, refused event, bad bundle
	exitUsage = 2 // the command line could not be understood
)

// env is what a verb may use of the world outside it. Tests set their own.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	rand           io.Reader        // crypto/rand.Reader
	now            func() time.Time // time.Now
	isTerminal     func(w io.Writer) bool
	getenv         func(string) string // os.Getenv
}

// A usageError is a command line that cannot be understood. It exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// A verb is one of prov's commands.
type verb struct {
	name     string
	args     string // the synopsis after the verb's name
	summary  string // one line, for "prov help"
	help     string // what it does, with an example
	needData bool   // works on a data directory: gets --data
	// setup defines the verb's flags on fs and returns the action, run once
	// the flags are parsed.
	setup func(fs *flag.FlagSet, c *conn) func(ctx context.Context) error
}

// run runs prov with args (without the program name) and returns the exit
// status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return newEnv(stdin, stdout, stderr).run(ctx, args)
}

// newEnv returns the env of a real run.
func newEnv(stdin io.Reader, stdout, stderr io.Writer) *env {
	return &env{
		stdin: stdin, stdout: stdout, stderr: stderr,
		rand: rand.Reader, now: time.Now, getenv: os.Getenv,
		isTerminal: func(w io.Writer) bool {
			f, ok := w.(*os.File)
			return ok && term.IsTerminal(int(f.Fd()))
		},
	}
}

func (e *env) run(ctx context.Context, args []string) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(e.stderr, "prov: internal error (a bug in prov, please report it): %v\n", r)
			code = exitFail
		}
	}()
	verbs := e.verbs()
	if len(args) == 0 {
		e.listVerbs(e.stderr, verbs)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) == 0 {
			e.listVerbs(e.stdout, verbs)
			return exitOK
		}
		name, rest = rest[0], []string{"--help"}
	}
	var v *verb
	for i := range verbs {
		if verbs[i].name == name {
			v = &verbs[i]
		}
	}
	if v == nil {
		fmt.Fprintf(e.stderr, "prov: unknown verb %q; run \"prov help\" for the list\n", name)
		return exitUsage
	}
	return e.runVerb(ctx, v, rest)
}

func (e *env) runVerb(ctx context.Context, v *verb, args []string) int {
	fs := flag.NewFlagSet("prov "+v.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := &conn{env: e}
	if v.needData {
		fs.StringVar(&c.dataDir, "data", "data", "the data `directory`")
		server := ""
		if e.getenv != nil {
			server = e.getenv("PROV_SERVER")
		}
		fs.StringVar(&c.server, "server", server, "the `URL` of a provd to use instead of a data directory (PROV_SERVER)")
	}
	action := v.setup(fs, c)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			e.verbHelp(e.stdout, v, fs)
			return exitOK
		}
		fmt.Fprintf(e.stderr, "prov %s: %s; run \"prov %s --help\"\n", v.name, oneLine(err.Error()), v.name)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "prov %s: unexpected argument %q (every input is a flag); run \"prov %s --help\"\n", v.name, fs.Arg(0), v.name)
		return exitUsage
	}
	err := action(ctx)
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "prov %s: %s; run \"prov %s --help\"\n", v.name, oneLine(ue.msg), v.name)
		return exitUsage
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		fmt.Fprintf(e.stderr, "prov %s: interrupted\n", v.name)
		return exitFail
	}
	fmt.Fprintf(e.stderr, "prov %s: %s\n", v.name, oneLine(err.Error()))
	return exitFail
}

// oneLine keeps an error message on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

func (e *env) listVerbs(w io.Writer, verbs []verb) {
	fmt.Fprint(w, "prov is the provtrail actor and verifier CLI.\n\nUsage: prov VERB [flags]\n\nVerbs:\n")
	for _, v := range verbs {
		fmt.Fprintf(w, "  %-9s %s\n", v.name, v.summary)
	}
	fmt.Fprint(w, "\nRun \"prov VERB --help\" for a verb's flags and an example.\n")
}

func (e *env) verbHelp(w io.Writer, v *verb, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: prov %s %s\n\n%s\n", v.name, v.args, strings.TrimSpace(v.help))
	fmt.Fprint(w, "\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// verbs returns prov's verbs, in the order "prov help" lists them.
func (e *env) verbs() []verb {
	return []verb{
		keygenVerb(), enrollVerb(), revokeVerb(), registerVerb(), handoffVerb(), receiveVerb(),
		disputeVerb(), rulingVerb(), historyVerb(), bundleVerb(), verifyVerb(), keysVerb(), rebuildVerb(), webhooksVerb(),
		monitorVerb(), witnessVerb(), labelsVerb(),
		labelSignVerb(), verifyLabelVerb(),
	}
}

// required returns a usage error naming the first flag in names whose
// value is empty.
func required(fs *flag.FlagSet, names ...string) error {
	for _, n := range names {
		if f := fs.Lookup(n); f != nil && f.Value.String() == "" {
			return usagef("missing --%s", n)
		}
	}
	return nil
}
