package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	presence "github.com/presence-service/presence"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "presence:", err)
		}
		os.Exit(2)
	}
}

const usage = `usage: presence <command> [flags]

commands:
  serve        run the service (HTTP, WebSocket and XMPP listeners)
  migrate      apply schema.sql to the database
  apps         list | add | activate | rotate-key | disable
  token        mint a dev assertion: token --email E
  cluster      forget-secrets: let the next node record the cluster's secrets anew
  version      print the version

Every command takes -config presence.toml (default: the embedded default)
and --json where it prints something.`

// run is main without the process: tests call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return flag.ErrHelp
	}
	err := dispatch(ctx, args, stdout, stderr)
	if errors.Is(err, errHelpShown) {
		return nil // asked for: the flag package printed the usage
	}
	return err
}

// errHelpShown is a command's -h: its usage was printed, nothing failed.
var errHelpShown = errors.New("help shown")

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, stdout, stderr)
	case "apps":
		return runApps(ctx, rest, stdout, stderr)
	case "token":
		return runToken(ctx, rest, stdout, stderr)
	case "cluster":
		return runCluster(ctx, rest, stdout, stderr)
	case "version":
		return runVersion(rest, stdout, stderr)
	}
	if isHelp(cmd) {
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// common are the flags every command has.
type common struct {
	config string
	json   bool
}

// newFlags is a command's flag set: -config, and --json for the commands
// that print a result (serve prints only its log).
func newFlags(name string, stderr io.Writer, c *common) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.config, "config", "", "presence.toml to read over the embedded default")
	if name != "serve" {
		fs.BoolVar(&c.json, "json", false, "print one JSON object")
	}
	return fs
}

func (c *common) load() (*presence.Config, error) { return presence.Load(c.config) }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	return enc.Encode(v)
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("version", stderr, &c)
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if c.json {
		return printJSON(stdout, map[string]string{"version": presence.Version})
	}
	fmt.Fprintln(stdout, "presence", presence.Version)
	return nil
}
