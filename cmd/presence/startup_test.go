package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/mattn/go-sqlite3"

	presence "github.com/presence-service/presence"
)

// cliRun runs a presence command in this process, returning its error
// and what it said on stderr.
func cliRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return errOut.String(), err
}

// dbPath is the database.path of a config written by writeConfig.
func dbPath(t *testing.T, config string) string {
	t.Helper()
	cfg, err := presence.Load(config)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database.Path
}

// serveRefuses runs `presence serve` as a process and wants it to exit 2
// before it serves, saying each of want on stderr.
func serveRefuses(t *testing.T, bin, config string, want ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "serve", "-config", config)
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("presence serve: %v, want exit status 2\n%s", err, stderr.String())
	}
	said := stderr.String()
	if strings.Contains(said, "presence serving") {
		t.Errorf("presence serve said it was serving:\n%s", said)
	}
	for _, w := range want {
		if !strings.Contains(said, w) {
			t.Errorf("presence serve said:\n%s\nwant it to say %q", said, w)
		}
	}
}

func TestServeRefusesADamagedStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the presence binary")
	}
	bin := buildBinary(t)

	for _, table := range []string{"apps", "users", "notifications"} {
		t.Run("without table "+table, func(t *testing.T) {
			config := writeConfig(t, "")
			if _, err := cliRun(t, "migrate", "-config", config); err != nil {
				t.Fatal(err)
			}
			path := dbPath(t, config)
			raw, err := sqlx.Open("sqlite3", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = raw.Exec(`DROP TABLE ` + table)
			raw.Close()
			if err != nil {
				t.Fatal(err)
			}
			serveRefuses(t, bin, config, path, "lacks table "+table, "restore "+path+" from a backup", "move it away")
		})
	}

	t.Run("damaged file", func(t *testing.T) {
		config := writeConfig(t, "")
		if _, err := cliRun(t, "migrate", "-config", config); err != nil {
			t.Fatal(err)
		}
		path := dbPath(t, config)
		if err := os.WriteFile(path, bytes.Repeat([]byte("damaged "), 4096), 0o600); err != nil {
			t.Fatal(err)
		}
		serveRefuses(t, bin, config, path, "is damaged", "restore "+path+" from a backup")
	})

	t.Run("node key lost while keys are sealed", func(t *testing.T) {
		config := writeConfig(t, "")
		if _, err := cliRun(t, "migrate", "-config", config); err != nil {
			t.Fatal(err)
		}
		n := &node{t: t, config: config}
		n.newApp("beer.example") // an active app: its key is sealed under the node key
		key := filepath.Join(filepath.Dir(dbPath(t, config)), "presence.key")
		if err := os.Remove(key); err != nil {
			t.Fatal(err)
		}
		serveRefuses(t, bin, config, "node key "+key+" is missing", "1 API keys", "restore "+key)
		if _, err := os.Stat(key); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("serve made a new node key at %s (%v): the sealed keys can never be opened with it", key, err)
		}
	})
}

// The CLI acts on the database its -config names, says which, and never
// makes an empty one where the server's was meant.
func TestCLINeverCreatesADatabaseSilently(t *testing.T) {
	config := writeConfig(t, "")
	path := dbPath(t, config)

	said, err := cliRun(t, "apps", "list", "-config", config)
	if err == nil || !strings.Contains(err.Error(), "no database at "+path) ||
		!strings.Contains(err.Error(), "presence migrate") || !strings.Contains(err.Error(), "-config") {
		t.Errorf("apps list with no database: %v (stderr %q), want it to name %s, `presence migrate` and -config", err, said, path)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("apps list made %s (%v)", path, err)
	}
	if _, err := cliRun(t, "token", "--email", "a@example.com", "-config", config); err == nil ||
		!strings.Contains(err.Error(), "no dev secret at") {
		t.Errorf("token with no server data: %v, want it refused (a new secret signs tokens the server refuses)", err)
	}

	if _, err := cliRun(t, "migrate", "-config", config); err != nil {
		t.Fatal(err)
	}
	said, err = cliRun(t, "apps", "list", "-config", config)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(said, "presence: database "+path) {
		t.Errorf("apps list said %q on stderr, want it to name the database %s", said, path)
	}
}

// /healthz checks a write, not only a read: with another process holding
// the write lock past the check's deadline it answers 503.
func TestHealthzChecksAWrite(t *testing.T) {
	n := startNode(t, writeConfig(t, ""))
	get := func() (int, string) {
		resp, err := http.Get(n.http("/healthz"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(); code != http.StatusOK {
		t.Fatalf("/healthz = %d %q, want 200", code, body)
	}

	raw, err := sqlx.Open("sqlite3", "file:"+n.srv.backend.db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn, err := raw.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	code, body := get()
	if _, err := conn.ExecContext(context.Background(), `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "registry not answering") {
		t.Errorf("/healthz while the database takes no write = %d %q, want 503 naming the registry", code, body)
	}
	if code, body := get(); code != http.StatusOK {
		t.Errorf("/healthz once writes go through again = %d %q, want 200", code, body)
	}
}
