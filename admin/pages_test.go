package admin

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// Unknown addresses get the site's own 404 page, with its headers; the
// machine endpoints' answers pass untouched.
func TestUnknownURLsGetTheSite404Page(t *testing.T) {
	e := newEnv(t)
	e.mux.HandleFunc("GET /{app_id}", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }) // as ws's app channel does
	e.mux.HandleFunc("POST /{app_id}/notification", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"result":"error","errno":44}`))
	})
	srv := httptest.NewServer(e.admin.NotFoundPage(e.mux))
	t.Cleanup(srv.Close)
	e.srv = srv
	b := e.browser()
	for _, path := range []string{"/nothing", "/a/b/c", "/static/nothing.css", "/myapps/1/nothing", "/1/nothing"} {
		r := b.get(path)
		wantStatus(t, r, http.StatusNotFound)
		wantBody(t, r, "<title>", "Not Found", `href="/static/style.css"`, `<a href="/">Home</a>`)
		if ct := r.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" || r.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: Content-Type %q, CSP %q; want the page's", path, ct, r.Header.Get("Content-Security-Policy"))
		}
		if strings.Contains(r.body, "404 page not found") {
			t.Errorf("GET %s: Go's bare text", path)
		}
	}
	resp, err := http.Post(srv.URL+"/1/notification", "application/json", strings.NewReader("[]"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("POST /1/notification: %d %q, want its own JSON 404", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// A user who already allowed this app with this userstring is told so,
// not asked as if for the first time.
func TestGrantPageSaysWhenAlreadyAllowed(t *testing.T) {
	e := newEnv(t)
	app := e.verifiedApp("dev@example.org", "beerchat.example")
	b := e.browser()
	b.login("alice@example.org")
	path := grantPath(app.ID, "https://beerchat.example/back", "Alice")
	r := b.get(path)
	wantBody(t, r, "to see when you are online?")
	if strings.Contains(r.body, "can already see") {
		t.Fatal("a first grant page says the app is already allowed")
	}
	b.grantVia(app, "Alice")
	r = b.get(path)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Beer chat</span> can already see when you are online", "You allowed this app to see you as <strong>Alice</strong>", `value="allow"`)
	// Another userstring is another grant: asked afresh.
	if r := b.get(grantPath(app.ID, "https://beerchat.example/back", "Alice at work")); strings.Contains(r.body, "can already see") {
		t.Fatal("another userstring is shown as already allowed")
	}
}

// The API key is one short field and a copy button, not 1,024 characters
// spread over the page.
func TestAppKeyIsAShortFieldWithACopyButton(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("dev@example.org")
	app := e.verifiedApp("dev@example.org", "beerchat.example")
	r := b.postForm("/myapps/"+fmt.Sprint(app.ID), "/myapps/"+fmt.Sprint(app.ID)+"/activate", nil)
	wantStatus(t, r, http.StatusOK)
	field := regexp.MustCompile(`<input type="text" class="key" id="api-key" readonly value="([A-Za-z0-9_-]+)"`).FindStringSubmatch(r.body)
	if field == nil || len(field[1]) != 1024 || strings.Contains(r.body, `<textarea class="key"`) {
		t.Fatalf("the key is not one input field:\n%s", r.body)
	}
	wantBody(t, r, `data-copy="api-key"`, "1024 characters")
}

// Table cells break words only where a word cannot fit: no rule of the
// stylesheet cuts words anywhere (the /me page showed "Revok/e" and
// "beerchat.examp/le" at 1280 px), only the long-token class may, and
// domains break at their dots.
func TestStylesheetDoesNotCutWords(t *testing.T) {
	css, err := staticFS.ReadFile("static/style.css")
	if err != nil {
		t.Fatal(err)
	}
	rules := regexp.MustCompile(`(?m)^([^{}\n]+)\{([^}]*)\}`).FindAllStringSubmatch(string(css), -1)
	for _, r := range rules {
		sel, body := strings.TrimSpace(r[1]), r[2]
		if strings.Contains(body, "break-all") {
			t.Errorf("%s { %s }: word-break: break-all cuts every word", sel, body)
		}
		if strings.Contains(body, "overflow-wrap: anywhere") && strings.Contains(sel, ".table") && sel != ".table .token" {
			t.Errorf("%s { %s }: anywhere lets a table squeeze words apart", sel, body)
		}
	}
	if got := string(breakable(`beer<chat>.example`)); got != "beer&lt;chat&gt;.<wbr>example" {
		t.Errorf("breakable = %q", got)
	}
}
