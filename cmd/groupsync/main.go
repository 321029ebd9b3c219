// Command groupsync keeps Virgil E3Kit groups in step with CometChat groups.
//
// One binary, several roles:
//
//	groupsync [dev]          the whole system on one machine (default)
//	groupsync serve          HTTP server: CometChat webhooks and the client API
//	groupsync worker         worker pool: applies jobs to Virgil; run as many as you like
//	groupsync emulator       a local Virgil-compatible service
//	groupsync owner init     create the owner key and publish its card
//	groupsync jobs failed|retry|purge   inspect and replay dead-lettered jobs
//	groupsync reconcile GUID...|--all   bring Virgil groups in line with CometChat (--status: the last scheduled run)
//	groupsync history GUID   the changes applied to a group's Virgil group
//	groupsync explain GUID [UID]   a group in the store and in Virgil; why a member is or is not in it
//	groupsync version        print the version
//
// Every flag also reads a GROUPSYNC_* environment variable; secrets come only
// from the environment or a file. Configuration mistakes print one line and
// exit with status 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/redact"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is what a command sees of its process.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

type command struct {
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

func commands() map[string]command {
	return map[string]command{
		"dev":       {"run the whole system on this machine (default)", runDev},
		"serve":     {"HTTP server: CometChat webhooks and the client API", runServe},
		"worker":    {"worker pool: apply jobs to Virgil", runWorker},
		"emulator":  {"a local Virgil-compatible service", runEmulator},
		"owner":     {"owner init|rotate: create the owner key and publish its card; replace it and re-key every group", runOwner},
		"jobs":      {"jobs failed|retry ID...|--all|purge: dead-lettered jobs", runJobs},
		"reconcile": {"reconcile GUID...|--all|--status: bring Virgil groups in line with CometChat, or show the last scheduled run", runReconcile},
		"history":   {"history GUID: the changes applied to a group's Virgil group (audit trail)", runHistory},
		"explain":   {"explain GUID [UID]: the group in the store and in Virgil, its last and failed jobs; why a member is or is not in it", runExplain},
		"version":   {"print the version", runVersion},
	}
}

// run executes one command line and returns the process exit status: 0 on
// success, 2 on a usage or configuration error, 1 on any other failure.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}
	name := "dev"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		printHelp(stdout)
		return 0
	}
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	cmd, ok := commands()[name]
	if !ok {
		fmt.Fprintf(stderr, "groupsync: unknown command %q (see groupsync help)\n", name)
		return 2
	}
	err := cmd.run(ctx, e, args)
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue), errors.Is(err, queue.ErrInvalidConfig):
		// A setting that cannot work, found before or while connecting
		// (a replica count JetStream refuses, a malformed NATS URL).
		fmt.Fprintf(stderr, "groupsync %s: %s\n", name, oneLine(redact.Text(err.Error())))
		return 2
	default:
		fmt.Fprintf(stderr, "groupsync %s: %s\n", name, oneLine(redact.Text(err.Error())))
		return 1
	}
}

// oneLine joins the lines of an error message, so every failure is one
// line of stderr.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "groupsync keeps Virgil E3Kit groups in step with CometChat groups.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "usage: groupsync [command] [flags]")
	fmt.Fprintln(w)
	for _, n := range []string{"dev", "serve", "worker", "emulator", "owner", "jobs", "reconcile", "history", "explain", "version"} {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands()[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'groupsync COMMAND -h' for its flags. Every flag also reads GROUPSYNC_<FLAG>.")
}

func runVersion(_ context.Context, e env, _ []string) error {
	fmt.Fprintln(e.stdout, "groupsync", buildVersion())
	return nil
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "devel-" + s.Value[:12]
			}
		}
		if bi.Main.Version != "" {
			return bi.Main.Version
		}
	}
	return "devel"
}
