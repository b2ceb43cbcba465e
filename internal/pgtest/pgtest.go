package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/presence-service/presence/internal/pgserver"
)

// Env names the variables that decide where (and whether) the tests run.
const (
	EnvURL     = "PRESENCE_PG_URL"  // an existing server to create databases in
	EnvCluster = "PRESENCE_CLUSTER" // "1": cluster tests must run; a missing engine fails them
)

// Server is a throwaway PostgreSQL cluster (package pgserver), for
// tests that stop and restart it.
type Server = pgserver.Server

var (
	mu       sync.Mutex // guards: local, localErr, started
	local    *Server    // the process's own cluster, once started
	localErr error      // why it could not start
	started  bool
)

// Run runs the package's tests, then stops the cluster that Database may
// have started. Use it from TestMain: os.Exit(pgtest.Run(m)).
func Run(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	s := local
	local, started = nil, false
	mu.Unlock()
	if s != nil {
		if err := s.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
	return code
}

// Database creates an empty database for this test and returns its URL
// (for pgx: "postgres://…"); it is dropped when the test ends, after the
// test's own cleanups, so close the pools first (t.Cleanup runs them in
// reverse order). It skips the test when neither PRESENCE_CLUSTER nor
// PRESENCE_PG_URL is set, and fails it when they are set and no
// PostgreSQL can be had.
func Database(t testing.TB) string {
	t.Helper()
	admin := adminURL(t)
	name := "pgtest_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := adminExec(ctx, admin, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE ends the connections a failed test left open.
		if err := adminExec(ctx, admin, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

// Local returns the test process's own cluster, starting it if need be,
// for tests that stop and restart PostgreSQL under a running store. It
// skips or fails as Database does, and also skips when PRESENCE_PG_URL
// names a server (that one cannot be restarted from here).
func Local(t testing.TB) *Server {
	t.Helper()
	if os.Getenv(EnvURL) != "" {
		t.Skipf("pgtest: %s names an outside server; this test restarts its own", EnvURL)
	}
	skipUnlessWanted(t)
	s, err := localServer()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return s
}

// adminURL is the URL of a database to run CREATE DATABASE in.
func adminURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	skipUnlessWanted(t)
	s, err := localServer()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return s.URL()
}

func skipUnlessWanted(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvCluster) == "" {
		t.Skipf("pgtest: PostgreSQL tests run with %s=1 (scripts/test.sh sets it and installs postgresql) or %s=postgres://… (a server whose role may CREATE DATABASE)", EnvCluster, EnvURL)
	}
}

// localServer starts the process's cluster once; a failure is remembered
// (every later test fails with it rather than trying again).
func localServer() (*Server, error) {
	mu.Lock()
	defer mu.Unlock()
	if !started {
		started = true
		local, localErr = pgserver.Start()
		if errors.Is(localErr, pgserver.ErrNoEngine) {
			localErr = fmt.Errorf("%w, or set %s", localErr, EnvURL)
		}
	}
	return local, localErr
}

func adminExec(ctx context.Context, admin, sql string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
