package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
)

// runToken mints a dev assertion, for trying Presence and for tests.
func runToken(_ context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("token", stderr, &c)
	email := fs.String("email", "", "whose token")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is good for")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if *email == "" {
		return errors.New("token: --email is required")
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	if cfg.Auth.Verifier != "dev" {
		return fmt.Errorf("token: auth.verifier is %q; tokens are only for the dev verifier", cfg.Auth.Verifier)
	}
	secret, err := existingDevSecret(cfg)
	if err != nil {
		return err
	}
	v := &core.DevVerifier{Secret: secret}
	tok := v.Mint(*email, *ttl)
	if c.json {
		return printJSON(stdout, map[string]string{"assertion": tok})
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// runMigrate applies schema.sql (Open does it) and says which version.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("migrate", stderr, &c)
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	b, err := openOrCreateBackend(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer b.Close()
	if c.json {
		return printJSON(stdout, map[string]any{"database": databaseName(cfg), "schema_version": presence.SchemaVersion})
	}
	fmt.Fprintf(stdout, "%s is at schema version %d\n", databaseName(cfg), presence.SchemaVersion)
	return nil
}
