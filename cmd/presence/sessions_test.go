package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/presence-service/presence/internal/presencetest"
)

// A restart signs nobody out of the pages (the session key is in the data
// folder), and does not bring back a session that was signed out.
func TestRestartKeepsSignInsAndSignOuts(t *testing.T) {
	config := writeConfig(t, "")
	n := startNode(t, config)
	ann := presencetest.NewBrowser(t, n.http(""))
	ann.Login("ann@example.com")
	bob := presencetest.NewBrowser(t, n.http(""))
	bob.Login("bob@example.com")
	u, _ := url.Parse(n.http("/"))
	var bobCookie *http.Cookie
	for _, c := range bob.Client.Jar.Cookies(u) {
		if c.Name == "presence_session" {
			bobCookie = c
		}
	}
	if bobCookie == nil {
		t.Fatal("bob has no session cookie")
	}
	if resp := bob.Post("/logout", url.Values{"csrf_token": {bob.CSRF("/me")}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /logout: %d", resp.StatusCode)
	}

	n.stop()
	n = startNode(t, config)
	ann.Base = n.http("")
	if status, body := ann.Get("/me"); status != http.StatusOK || !strings.Contains(body, "ann@example.com") {
		t.Fatalf("ann's /me after a restart: %d, want 200 signed in as ann@example.com\n%.300s", status, body)
	}
	copied := presencetest.NewBrowser(t, n.http(""))
	u, _ = url.Parse(n.http("/"))
	copied.Client.Jar.SetCookies(u, []*http.Cookie{{Name: bobCookie.Name, Value: bobCookie.Value, Path: "/"}})
	resp, err := copied.Client.Get(n.http("/me"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("bob's signed-out cookie after a restart: %d to %q, want 303 to /login", resp.StatusCode, resp.Header.Get("Location"))
	}
}
