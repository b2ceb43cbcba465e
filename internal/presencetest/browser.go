package presencetest

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Browser signs in and grants through the real web pages, as a person
// with a browser would: it keeps cookies and reads each form's CSRF token,
// but follows no redirect, so tests see every 303.
type Browser struct {
	T      testing.TB
	Base   string // http://host:port
	Client *http.Client
}

// NewBrowser returns a browser with an empty cookie jar.
func NewBrowser(t testing.TB, base string) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{T: t, Base: base, Client: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

var csrfInput = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// Get fetches a page and returns its status and body.
func (b *Browser) Get(path string) (int, string) {
	b.T.Helper()
	resp, err := b.Client.Get(b.Base + path)
	if err != nil {
		b.T.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// CSRF fetches a page and returns the CSRF token of its first form.
func (b *Browser) CSRF(path string) string {
	b.T.Helper()
	status, body := b.Get(path)
	m := csrfInput.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		b.T.Fatalf("GET %s: %d, no csrf_token in the page", path, status)
	}
	return m[1]
}

// Post submits a form and returns the response (body read and closed).
func (b *Browser) Post(path string, form url.Values) *http.Response {
	b.T.Helper()
	resp, err := b.Client.PostForm(b.Base+path, form)
	if err != nil {
		b.T.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// Login signs in with the dev form.
func (b *Browser) Login(email string) {
	b.T.Helper()
	token := b.CSRF("/login?next=/me")
	resp := b.Post("/login", url.Values{"email": {email}, "next": {"/me"}, "csrf_token": {token}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/me" {
		b.T.Fatalf("POST /login: %d to %q, want 303 to /me", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// Grant opens the grant page of app and answers it ("allow" or "deny");
// it returns the 303 response.
func (b *Browser) Grant(app, redirect, userString, answer string) *http.Response {
	b.T.Helper()
	page := "/" + app + "/grant?" + url.Values{"redirect": {redirect}, "id": {userString}}.Encode()
	token := b.CSRF(page)
	return b.Post("/"+app, url.Values{"redirect": {redirect}, "id": {userString}, "answer": {answer}, "csrf_token": {token}})
}

// Allow grants and returns the PUID, checking the 303 of PROTOCOL §6.
func (b *Browser) Allow(app, redirect, userString string) string {
	b.T.Helper()
	resp := b.Grant(app, redirect, userString, "allow")
	puid := resp.Header.Get("Presence-UID")
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || puid == "" || err != nil ||
		loc.Query().Get("presence_uid") != puid || !strings.HasPrefix(loc.String(), redirect) {
		b.T.Fatalf("grant: %d Location %q Presence-UID %q", resp.StatusCode, resp.Header.Get("Location"), puid)
	}
	return puid
}
