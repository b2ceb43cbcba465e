package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/internal/presencetest"
)

// TestBrowser walks a real chromium through the pages with
// admin/browsertest/walk.mjs (playwright-core). It runs only with
// PRESENCE_BROWSER=1; then a missing chromium or node_modules fails the
// test rather than skipping it, so CI cannot pass without the browser.
// Install both with admin/browsertest/install.sh. Screenshots go to
// PRESENCE_SCREENSHOTS (default admin/browsertest/out).
func TestBrowser(t *testing.T) {
	chromium, node, dir := presencetest.BrowserPeers(t, "browsertest")
	out := os.Getenv("PRESENCE_SCREENSHOTS")
	if out == "" {
		out = filepath.Join(dir, "out")
	}
	os.RemoveAll(out)

	e := newEnv(t) // dev mode (http return addresses), private domains allowed
	// The developer's site: serves the verification key of whichever app
	// registered this host, as the developer would after copying it, and
	// the page the grant returns to.
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/__presence":
			apps, err := e.router.Apps(r.Context(), "")
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			for _, a := range apps {
				if a.Domain == r.Host {
					w.Header().Set("Content-Type", "text/plain")
					fmt.Fprintln(w, a.VerificationKey)
					return
				}
			}
			http.NotFound(w, r)
		case "/back":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, `<!doctype html><title>Beer chat</title><link rel="icon" href="data:,"><h1>Back on Beer chat</h1>`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer site.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "walk.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BASE_URL="+e.srv.URL, "PROOF_HOST="+strings.TrimPrefix(site.URL, "http://"),
		"OUT_DIR="+out, "CHROMIUM="+chromium)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("walk.mjs: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	var res struct {
		OK          bool       `json:"ok"`
		AppID       core.AppID `json:"appId"`
		APIKey      string     `json:"apiKey"`
		PUID        string     `json:"puid"`
		Screenshots int        `json:"screenshots"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil || !res.OK {
		t.Fatalf("walk.mjs said %q (%v)", stdout.String(), err)
	}
	// What the browser did is what the server holds.
	if _, err := e.router.AuthenticateApp(ctx, res.AppID, res.APIKey); err != nil {
		t.Fatalf("the key shown in the browser does not authenticate: %v", err)
	}
	if _, err := e.router.GrantByPUID(ctx, res.PUID); err == nil {
		t.Fatal("the grant revoked in the browser is still stored")
	}
	t.Logf("%d screenshots in %s", res.Screenshots, out)
}
