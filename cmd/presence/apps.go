package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/presence-service/presence/core"
)

const appsUsage = `usage: presence apps <list|add|activate|rotate-key|disable> [flags]

  apps list [--owner E]
  apps add --domain D --name N --email E [--description T] [--verified]
  apps activate ID
  apps rotate-key ID
  apps disable ID`

// parseInterspersed lets flags come before or after positional arguments
// (presence apps activate 3 --json), which the flag package alone does not.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelpShown
			}
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func runApps(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, appsUsage)
		return flag.ErrHelp
	}
	sub, args := args[0], args[1:]
	if isHelp(sub) {
		fmt.Fprintln(stdout, appsUsage)
		return nil
	}
	var c common
	fs := newFlags("apps "+sub, stderr, &c)
	var domain, name, email, description, owner string
	var verified bool
	switch sub {
	case "add":
		fs.StringVar(&domain, "domain", "", "the app's domain (host or host:port)")
		fs.StringVar(&name, "name", "", "the app's name")
		fs.StringVar(&email, "email", "", "the owner's email")
		fs.StringVar(&description, "description", "", "what the app is")
		fs.BoolVar(&verified, "verified", false, "skip the domain check: an admin vouches for it")
	case "list":
		fs.StringVar(&owner, "owner", "", "only the apps of this owner")
	case "activate", "rotate-key", "disable":
	default:
		fmt.Fprintln(stderr, appsUsage)
		return fmt.Errorf("unknown apps command %q", sub)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if sub == "add" {
		// Checked before the database is opened: a mistake on the
		// command line is said as such, in the words of the flags.
		if err := checkAddFlags(pos, domain, name, &email); err != nil {
			return err
		}
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	b, err := openBackend(ctx, cfg, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), stderr)
	if err != nil {
		return err
	}
	defer b.Close()
	r := b.router

	if sub == "list" {
		return listApps(ctx, b, owner, c.json, stdout)
	}
	if sub == "add" {
		a, err := r.RegisterApp(ctx, email, domain, name, description)
		if err != nil {
			return cliError(err, 0)
		}
		if verified {
			if a, err = r.MarkVerified(ctx, a.ID); err != nil {
				return cliError(err, a.ID)
			}
		}
		if c.json {
			return printJSON(stdout, map[string]any{"app_id": a.ID, "verification_key": a.VerificationKey, "state": a.State})
		}
		fmt.Fprintf(stdout, "app %d registered (%s)\n", a.ID, a.State)
		if !verified {
			fmt.Fprintf(stdout, "serve this as text/plain at http://%s/__presence, then verify on /myapps/%d:\n%s\n", a.Domain, a.ID, a.VerificationKey)
		}
		return nil
	}

	if len(pos) != 1 {
		return fmt.Errorf("apps %s takes one app id", sub)
	}
	n, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil {
		return fmt.Errorf("app id %q is not a number", pos[0])
	}
	id := core.AppID(n)
	var key string
	var a *core.App
	switch sub {
	case "activate":
		a, key, err = r.ActivateApp(ctx, id)
	case "rotate-key":
		a, key, err = r.RotateKey(ctx, id)
	case "disable":
		a, err = r.DeactivateApp(ctx, id)
	}
	if err != nil {
		return cliError(err, id)
	}
	if c.json {
		out := map[string]any{"app_id": a.ID, "state": a.State}
		if key != "" {
			out["api_key"] = key
		}
		return printJSON(stdout, out)
	}
	fmt.Fprintf(stdout, "app %d is %s\n", a.ID, a.State)
	if key != "" {
		fmt.Fprintf(stdout, "API key (shown once, keep it secret):\n%s\n", key)
	}
	return nil
}

func listApps(ctx context.Context, b *backend, owner string, asJSON bool, stdout io.Writer) error {
	apps, err := b.deps.Registry.Apps(ctx, owner)
	if err != nil {
		return err
	}
	if asJSON {
		type row struct {
			ID        core.AppID    `json:"app_id"`
			Name      string        `json:"name"`
			Domain    string        `json:"domain"`
			Owner     string        `json:"owner"`
			State     core.AppState `json:"state"`
			CreatedAt time.Time     `json:"created_at"`
		}
		rows := make([]row, len(apps))
		for i, a := range apps {
			rows[i] = row{a.ID, a.Name, a.Domain, a.OwnerEmail, a.State, a.CreatedAt.UTC()}
		}
		return printJSON(stdout, map[string]any{"apps": rows})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tDOMAIN\tNAME\tOWNER")
	for _, a := range apps {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", a.ID, a.State, a.Domain, a.Name, a.OwnerEmail)
	}
	return tw.Flush()
}

// checkAddFlags says what apps add is missing, in the words of its flags,
// and normalizes the owner email as the sign-in page does.
func checkAddFlags(pos []string, domain, name string, email *string) error {
	if len(pos) != 0 {
		return fmt.Errorf("apps add takes no arguments, got %q (want --domain D --name N --email E)", pos)
	}
	var missing []string
	for _, f := range []struct{ flag, v string }{{"--domain", domain}, {"--name", name}, {"--email", *email}} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.flag)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("apps add needs %s (the app's domain, its name and its owner's email)", strings.Join(missing, ", "))
	}
	e, err := core.NormalizeEmail(*email)
	if err != nil {
		return fmt.Errorf("--email %q: %s", *email, core.ReasonOf(err))
	}
	*email = e
	return nil
}

// cliError words a refusal for the person at the terminal: what is wrong
// in the terms of the command (no app 999; name must be 1 to 100
// characters), not the layers it passed through. An error that is not a
// refusal (the database failed) is kept whole: an operator needs it.
func cliError(err error, id core.AppID) error {
	var e *core.Error
	switch {
	case errors.Is(err, core.ErrNotFound):
		return fmt.Errorf("no app %d", id)
	case errors.Is(err, core.ErrConflict):
		// "conflict: <why>": the why is the message.
		why := strings.TrimPrefix(err.Error(), core.ErrConflict.Error()+": ")
		return fmt.Errorf("app %d: %s", id, why)
	case errors.As(err, &e) && e.Errno != core.ErrnoInternal:
		if id != 0 {
			return fmt.Errorf("app %d: %s", id, core.ReasonOf(err))
		}
		return errors.New(core.ReasonOf(err))
	}
	return err
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}
