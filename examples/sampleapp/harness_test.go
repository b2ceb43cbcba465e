package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests run the real thing: the presence binary, built from
// cmd/presence, provisioned with its own CLI (as the README's tour does),
// and this app in-process against it.

const timeout = 20 * time.Second

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// presenceBinary builds cmd/presence once per test process.
func presenceBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sampleapp-presence-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "presence")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/presence-service/presence/cmd/presence").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build cmd/presence: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// server is one presence serve process over a data folder that outlives
// restarts.
type server struct {
	t        *testing.T
	bin, cfg string
	HTTP     string // host:port
	XMPP     string
	cmd      *exec.Cmd
	out      *bytes.Buffer
	done     chan error
}

func newServer(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	s := &server{t: t, bin: presenceBinary(t), cfg: filepath.Join(dir, "presence.toml"), HTTP: freeAddr(t), XMPP: freeAddr(t)}
	conf := fmt.Sprintf(`[server]
listen = %q
public_url = "http://%s"
[database]
path = %q
[xmpp]
listen = %q
[device]
disconnect_grace = "15s"
`, s.HTTP, s.HTTP, filepath.Join(dir, "data", "presence.db"), s.XMPP)
	if err := os.WriteFile(s.cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	var migrated struct {
		Version int `json:"schema_version"`
	}
	s.cli(&migrated, "migrate") // the CLI creates no database by itself
	return s
}

// cli runs a presence subcommand with --json on the server's config and
// decodes its one object.
func (s *server) cli(v any, args ...string) {
	s.t.Helper()
	args = append(args, "-config", s.cfg, "--json")
	out, err := exec.Command(s.bin, args...).Output()
	if err != nil {
		s.t.Fatalf("presence %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if err := json.Unmarshal(out, v); err != nil {
		s.t.Fatalf("presence %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// registerApp adds and activates an app for domain, as an operator would.
func (s *server) registerApp(domain string) (id int64, key string) {
	s.t.Helper()
	var added struct {
		AppID int64 `json:"app_id"`
	}
	s.cli(&added, "apps", "add", "--domain", domain, "--name", "Sample app", "--email", "dev@example.org", "--verified")
	var act struct {
		APIKey string `json:"api_key"`
	}
	s.cli(&act, "apps", "activate", strconv.FormatInt(added.AppID, 10))
	return added.AppID, act.APIKey
}

func (s *server) token(email string) string {
	s.t.Helper()
	var tok struct {
		Assertion string `json:"assertion"`
	}
	s.cli(&tok, "token", "--email", email)
	return tok.Assertion
}

// start runs serve and waits until /healthz answers 200.
func (s *server) start() {
	s.t.Helper()
	s.out = &bytes.Buffer{}
	s.cmd = exec.Command(s.bin, "serve", "-config", s.cfg)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan error, 1)
	go func(c *exec.Cmd, done chan error) { done <- c.Wait() }(s.cmd, s.done)
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get("http://" + s.HTTP + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case err := <-s.done:
			s.t.Fatalf("presence serve exited: %v\n%s", err, s.out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("presence serve not healthy after %s\n%s", timeout, s.out)
		}
	}
}

// stop sends SIGTERM (PROTOCOL §9: devices get errno -4) and waits.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(timeout):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// startApp runs this app in-process on addr against s.
func startApp(t *testing.T, s *server, addr string, id int64, key string, json bool) (*app, string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	a := newApp(config{Listen: addr, Public: "http://" + addr, Presence: "http://" + s.HTTP, AppID: id, Key: key,
		XMPP: s.XMPP, XMPPDomain: "presence.localhost", JSONChannel: json})
	ctx, cancel := context.WithCancel(context.Background())
	go a.watch(ctx)
	hs := httptest.NewUnstartedServer(a.routes())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(func() { cancel(); hs.Close() })
	return a, hs.URL
}

// waitFor polls the app's state until ok says yes.
func waitFor(t *testing.T, a *app, what string, ok func(snapshot) bool) snapshot {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s, changed := a.snapshot()
		if ok(s) {
			return s
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("the app never saw %s; it has %+v", what, s)
		}
	}
}

func userIs(puid, status, message string) func(snapshot) bool {
	return func(s snapshot) bool {
		for _, u := range s.Users {
			if u.PUID == puid && u.Status == status && u.Message == message {
				return true
			}
		}
		return false
	}
}
