package admin

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestLoginDev(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	r := b.get("/login?next=/me")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, `name="email"`, `name="next" value="/me"`, `name="csrf_token"`)
	tok := csrfRE.FindStringSubmatch(r.body)[1]

	r = b.post("/login", url.Values{"email": {"Alice@Example.org"}, "next": {"/me"}, "csrf_token": {tok}})
	wantStatus(t, r, http.StatusSeeOther)
	if got := r.Header.Get("Location"); got != "/me" {
		t.Fatalf("Location %q", got)
	}
	var sc *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == sessionCookie {
			sc = c
		}
	}
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Secure {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Lax, not Secure over http", sc)
	}
	r = b.get("/me")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "alice@example.org")
}

func TestLoginCSRF(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.get("/login")
	for name, tok := range map[string]string{"missing": "", "wrong": "AAAA"} {
		r := b.post("/login", url.Values{"email": {"a@example.org"}, "csrf_token": {tok}})
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("%s token: %d, want 403", name, r.StatusCode)
		}
	}
	// A token without its cookie (another browser's) is refused too.
	tok := b.csrf("/login")
	other := e.browser()
	r := other.post("/login", url.Values{"email": {"a@example.org"}, "csrf_token": {tok}})
	wantStatus(t, r, http.StatusForbidden)
}

func TestLoginBadEmail(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	r := b.postForm("/login", "/login", url.Values{"email": {"not an email"}})
	wantStatus(t, r, http.StatusBadRequest)
	wantBody(t, r, "Enter an email address")
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"":                     "/",
		"/me":                  "/me",
		"/421/grant?id=a&b=c":  "/421/grant?id=a&b=c",
		"//evil.example":       "/",
		"/\\evil.example":      "/",
		"https://evil.example": "/",
		"http:/evil":           "/",
		"evil.example":         "/",
		"/x\r\nSet-Cookie: a":  "/",
		"javascript:alert(1)":  "/",
		"/ok/\\..":             "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoginOpenRedirect(t *testing.T) {
	e := newEnv(t)
	for _, next := range []string{"//evil.example/", "/\\evil.example", "https://evil.example/x", "http://127.0.0.1:1/"} {
		b := e.browser()
		r := b.postForm("/login", "/login", url.Values{"email": {"a@example.org"}, "next": {next}})
		wantStatus(t, r, http.StatusSeeOther)
		if got := r.Header.Get("Location"); got != "/" {
			t.Errorf("next %q: Location %q, want /", next, got)
		}
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("alice@example.org")
	// Without the token, sign-out is refused (a cross-site form cannot end it).
	wantStatus(t, b.post("/logout", nil), http.StatusForbidden)
	r := b.postForm("/me", "/logout", nil)
	wantStatus(t, r, http.StatusSeeOther)
	r = b.get("/me")
	wantStatus(t, r, http.StatusSeeOther)
	if got := r.Header.Get("Location"); got != "/login?next=%2Fme" {
		t.Fatalf("after sign-out /me goes to %q", got)
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	for _, path := range []string{"/", "/login", "/nope/grant", "/999/grant"} {
		r := b.get(path)
		h := r.Header
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") == "" {
			t.Errorf("%s: headers %v", path, h)
		}
		if strings.Contains(r.body, "<script>") || strings.Contains(r.body, "style=") || strings.Contains(r.body, "onclick") {
			t.Errorf("%s: inline script or style", path)
		}
	}
	r := b.get("/static/style.css")
	wantStatus(t, r, http.StatusOK)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/css") {
		t.Fatalf("style.css type %q", r.Header.Get("Content-Type"))
	}
	wantStatus(t, b.get("/static/copy.js"), http.StatusOK)
	wantStatus(t, b.get("/static/nope.js"), http.StatusNotFound)
}

// The edge and the pages share one mux: their patterns must not conflict
// (ServeMux panics when two patterns overlap and neither is more specific).
func TestPatternsCoexistWithEdge(t *testing.T) {
	e := newEnv(t)
	mux := http.NewServeMux()
	for _, p := range []string{"GET /presence", "GET /{app_id}", "POST /{app_id}/notification", "GET /healthz", "GET /metrics"} {
		mux.HandleFunc(p, func(http.ResponseWriter, *http.Request) {})
	}
	e.admin.Register(mux)
}
