package oidctest

import (
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var (
	formAction  = regexp.MustCompile(`<form[^>]* action="([^"]*)"`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// LogIn plays the person at the issuer: starting from authURL (where the
// relying party sent the browser), it follows the issuer's redirects to
// its login page, fills the form in with email and submits it, and returns
// the URL the issuer sends the browser back to (the relying party's
// redirect URI with code and state). It follows redirects itself, one at a
// time, so client may be one that follows none (such as
// presencetest.Browser's); client's cookies are kept. A nil client is a
// fresh one.
func (f *Issuer) LogIn(t testing.TB, client *http.Client, authURL, email string) *url.URL {
	t.Helper()
	if client == nil {
		client = &http.Client{}
	}
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	// To the login page.
	page, err := url.Parse(authURL)
	if err != nil {
		t.Fatalf("oidctest: auth URL %q: %v", authURL, err)
	}
	var body string
	for hops := 0; ; hops++ {
		if !f.owns(page) || hops > 5 {
			t.Fatalf("oidctest: the way to the login page left the issuer at %s", page)
		}
		resp, err := c.Get(page.String())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			body = string(b)
			break
		}
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("oidctest: GET %s: %s %s", page, resp.Status, strings.TrimSpace(string(b)))
		}
		page = loc
	}
	if page.Path != "/login" {
		t.Fatalf("oidctest: authorize ended at %s, not the login page", page)
	}

	// Fill the form in and submit it, as the page says.
	m := formAction.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("oidctest: no form on the login page %s", page)
	}
	action, err := page.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"email": {email}}
	for _, h := range hiddenInput.FindAllStringSubmatch(body, -1) {
		form.Set(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
	}
	resp, err := c.PostForm(action.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	back, err := resp.Location()
	if resp.StatusCode != http.StatusSeeOther || err != nil {
		t.Fatalf("oidctest: login as %s: %s %s, no redirect back", email, resp.Status, strings.TrimSpace(string(b)))
	}
	return back
}

// SignIn plays the browser through LogIn with a fresh client and returns
// the code and state sent back to the redirect URI.
func (f *Issuer) SignIn(t testing.TB, authURL, email string) (code, state string) {
	t.Helper()
	back := f.LogIn(t, nil, authURL, email)
	return back.Query().Get("code"), back.Query().Get("state")
}

func (f *Issuer) owns(u *url.URL) bool {
	base, _ := url.Parse(f.URL)
	return u.Scheme == base.Scheme && u.Host == base.Host
}
