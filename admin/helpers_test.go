package admin

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/memstore"
)

// env is one admin server on a real router over a real SQLite file.
type env struct {
	t      *testing.T
	cfg    *presence.Config
	router *core.Router
	admin  *Server
	srv    *httptest.Server
	mux    *http.ServeMux
}

type envOption func(*presence.Config, *Config)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	cfg := presence.Default()
	cfg.Server.Dev = true
	cfg.Admin.Emails = []string{"Root@Example.org"}
	cfg.Registration.AllowPrivateDomains = true
	cfg.XMPP.Domain = "presence.test"
	db := memstore.New()
	keys, err := core.NewKeyring(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	r := core.NewRouter(db.Deps(), core.Options{Keys: keys, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ac := Config{Router: r, Config: cfg, VerifyTimeout: 300 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, o := range opts {
		o(cfg, &ac)
	}
	e := &env{t: t, cfg: cfg, router: r, mux: http.NewServeMux()}
	e.srv = httptest.NewServer(e.mux)
	t.Cleanup(e.srv.Close)
	cfg.Server.PublicURL = e.srv.URL
	a, err := New(ac)
	if err != nil {
		t.Fatal(err)
	}
	e.admin = a
	a.Register(e.mux)
	return e
}

// browser is one cookie jar that never follows redirects, so that tests
// see every 303.
type browser struct {
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type response struct {
	*http.Response
	body string
}

func (b *browser) do(req *http.Request) *response {
	b.e.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &response{Response: resp, body: string(body)}
}

func (b *browser) get(path string) *response {
	b.e.t.Helper()
	req, _ := http.NewRequest("GET", b.e.srv.URL+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) *response {
	b.e.t.Helper()
	req, _ := http.NewRequest("POST", b.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrf reads the token of the first form on a page.
func (b *browser) csrf(path string) string {
	b.e.t.Helper()
	r := b.get(path)
	m := csrfRE.FindStringSubmatch(r.body)
	if m == nil {
		b.e.t.Fatalf("GET %s: no csrf_token in %d page:\n%s", path, r.StatusCode, r.body)
	}
	return m[1]
}

// login signs in through the dev form, as a user would.
func (b *browser) login(email string) {
	b.e.t.Helper()
	tok := b.csrf("/login")
	r := b.post("/login", url.Values{"email": {email}, "next": {"/"}, "csrf_token": {tok}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/" {
		b.e.t.Fatalf("login: %d %q\n%s", r.StatusCode, r.Header.Get("Location"), r.body)
	}
}

// postForm posts with the csrf token of the page at tokenFrom.
func (b *browser) postForm(tokenFrom, path string, form url.Values) *response {
	b.e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf_token", b.csrf(tokenFrom))
	return b.post(path, form)
}

func wantStatus(t *testing.T, r *response, status int) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d\n%s", r.Request.Method, r.Request.URL, r.StatusCode, status, r.body)
	}
}

func wantBody(t *testing.T, r *response, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(r.body, p) {
			t.Fatalf("%s %s: body lacks %q:\n%s", r.Request.Method, r.Request.URL, p, r.body)
		}
	}
}

// verifiedApp registers an app for owner straight on the router, verified.
func (e *env) verifiedApp(owner, domain string) *core.App {
	e.t.Helper()
	ctx := context.Background()
	a, err := e.router.RegisterApp(ctx, owner, domain, "Beer chat", "Chat about beer.")
	if err != nil {
		e.t.Fatal(err)
	}
	if a, err = e.router.MarkVerified(ctx, a.ID); err != nil {
		e.t.Fatal(err)
	}
	return a
}

// fakeApp is an app channel that records what the router tells it.
type fakeApp struct {
	mu      sync.Mutex
	updates []core.StatusUpdate
	closed  []core.Errno
	got     chan struct{}
}

func newFakeApp() *fakeApp { return &fakeApp{got: make(chan struct{}, 100)} }

func (f *fakeApp) SendStatus(u core.StatusUpdate) {
	f.mu.Lock()
	f.updates = append(f.updates, u)
	f.mu.Unlock()
	select {
	case f.got <- struct{}{}:
	default:
	}
}

func (f *fakeApp) Close(e core.Errno) {
	f.mu.Lock()
	f.closed = append(f.closed, e)
	f.mu.Unlock()
}

func (f *fakeApp) all() []core.StatusUpdate {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]core.StatusUpdate(nil), f.updates...)
}
