package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presence-service/presence/internal/presencetest"
)

// TestBrowserDevicePages walks headless chromium through /device (two
// tabs of one user) and this app's page with admin/browsertest/device.mjs
// (playwright-core), restarting the real server in the middle. It runs
// only with PRESENCE_BROWSER=1; then a missing chromium or node_modules
// fails the test rather than skipping it. Install both with
// admin/browsertest/install.sh. Screenshots go to PRESENCE_SCREENSHOTS
// (default: a new temporary folder, named in the log).
func TestBrowserDevicePages(t *testing.T) {
	chromium, node, dir := presencetest.BrowserPeers(t, "../../admin/browsertest")
	out := os.Getenv("PRESENCE_SCREENSHOTS")
	if out != "" {
		out = filepath.Join(out, "device") // admin's browser test empties PRESENCE_SCREENSHOTS
	} else {
		var err error
		if out, err = os.MkdirTemp("", "presence-device-screenshots-"); err != nil {
			t.Fatal(err)
		}
	}

	s := newServer(t)
	appAddr := freeAddr(t)
	id, key := s.registerApp(appAddr)
	s.start()
	a, appURL := startApp(t, s, appAddr, id, key, false)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "device.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BASE_URL=http://"+s.HTTP, "APP_URL="+appURL, "OUT_DIR="+out, "CHROMIUM="+chromium)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		last         map[string]any
		restartedAt  = -1 // the app's event count when the server went down
		backAt       = -1
		restartTaken time.Duration
	)
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		var msg map[string]any
		if err := json.Unmarshal(lines.Bytes(), &msg); err != nil {
			t.Errorf("device.mjs printed %q", lines.Text())
			continue
		}
		switch msg["step"] {
		case "restart":
			snap, _ := a.snapshot()
			restartedAt = len(snap.Events)
			began := time.Now()
			s.stop()
			s.start()
			restartTaken = time.Since(began)
			stdin.Write([]byte("restarted\n"))
		case "expire":
			postNotification(t, s, id, key, puidOf(t, a, "ann"), "Lunch at noon?", 5)
			stdin.Write([]byte("posted\n"))
		case "back":
			snap, _ := a.snapshot()
			backAt = len(snap.Events)
		default:
			last = msg
		}
	}
	if err := cmd.Wait(); err != nil || last["ok"] != true {
		t.Fatalf("device.mjs: %v, said %v\nstderr:\n%s", err, last, stderr.String())
	}
	t.Logf("device.mjs:\n%s", stderr.String())
	if restartedAt < 0 || backAt < 0 {
		t.Fatal("device.mjs never asked for the restart")
	}

	// What the app saw while the server restarted: the channel dropped and
	// came back, ann's status was said again, and never offline.
	snap, _ := a.snapshot()
	var during []string
	for _, e := range snap.Events[restartedAt:backAt] {
		during = append(during, e.Kind+": "+e.Text)
		if e.Kind == "status" && strings.Contains(e.Text, " is offline") {
			t.Errorf("the app saw %q during the restart (the disconnect grace should cover it)", e.Text)
		}
	}
	t.Logf("the server restarted in %s; the app saw:\n  %s", restartTaken.Round(time.Millisecond), strings.Join(during, "\n  "))
	t.Logf("screenshots in %s", out)
}

func puidOf(t *testing.T, a *app, name string) string {
	t.Helper()
	snap, _ := a.snapshot()
	for _, u := range snap.Users {
		if u.Name == name {
			return u.PUID
		}
	}
	t.Fatalf("the app has no user %s", name)
	return ""
}

// postNotification sends one notification as the app's server would.
func postNotification(t *testing.T, s *server, app int64, key, puid, msg string, ttl int) {
	t.Helper()
	body, _ := json.Marshal([]map[string]any{{"UID": puid, "message": msg, "action": "https://example.org/lunch", "ttl": ttl}})
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://%s/%d/notification", s.HTTP, app), bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST notification: %s", resp.Status)
	}
}
