package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	presence "github.com/presence-service/presence"
)

// A stolen database file (with its WAL) reveals no API key: keys are kept
// as a SHA-256 and sealed under presence.key, which lives beside the
// database but never in it.
func TestDatabaseFileRevealsNoAPIKey(t *testing.T) {
	config := writeConfig(t, "")
	n := startNode(t, config)
	_, key := n.newApp("beer.example")
	var rotated struct {
		APIKey string `json:"api_key"`
	}
	n.cli(&rotated, "apps", "rotate-key", "1")
	dir := filepath.Dir(dbPath(t, config))
	n.stop()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var searched int
	for _, e := range entries {
		if e.Name() == "presence.key" || e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		searched++
		for _, k := range []string{key, rotated.APIKey} {
			if len(k) != 1024 {
				t.Fatalf("key of %d characters", len(k))
			}
			if bytes.Contains(b, []byte(k[:64])) {
				t.Errorf("%s holds an API key in clear", e.Name())
			}
		}
	}
	if searched == 0 {
		t.Fatal("no file in the data folder")
	}
}

// The dev identity (anyone signs in as anyone) is refused off loopback
// unless server.dev says so, before anything listens.
func TestDevIdentityRefusedOffLoopback(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		listen string
		dev    bool
		ok     bool
	}{
		{"127.0.0.1:8080", false, true},
		{"[::1]:8080", false, true},
		{"localhost:8080", false, true},
		{"0.0.0.0:8080", false, false},
		{"192.0.2.1:8080", false, false},
		{":8080", false, false},
		{"0.0.0.0:8080", true, true},
	} {
		cfg := presence.Default()
		cfg.Auth.Verifier = "dev"
		cfg.Server.Listen, cfg.Server.Dev = tc.listen, tc.dev
		err := checkDevMode(cfg, log)
		if (err == nil) != tc.ok {
			t.Errorf("listen %s, server.dev %v: %v, want allowed %v", tc.listen, tc.dev, err, tc.ok)
		}
	}
}
