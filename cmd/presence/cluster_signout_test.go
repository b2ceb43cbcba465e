package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/presence-service/presence/internal/natstest"
	"github.com/presence-service/presence/internal/pgtest"
	"github.com/presence-service/presence/internal/presencetest"
)

// sessionCookieOf is the browser's presence_session cookie value.
func sessionCookieOf(t *testing.T, b *presencetest.Browser) string {
	t.Helper()
	u, _ := url.Parse(b.Base + "/")
	for _, c := range b.Client.Jar.Cookies(u) {
		if c.Name == "presence_session" {
			return c.Value
		}
	}
	t.Fatal("the browser has no session cookie")
	return ""
}

// meWith loads /me on base with only the session cookie value (a copied
// cookie, as a thief would use it) and returns the status and where a
// redirect goes.
func meWith(t *testing.T, base, cookie string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/me", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: "presence_session", Value: cookie})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// signedOutOn says whether /me on base sends the cookie to sign in, as
// one node does for a signed-out session.
func signedOutOn(t *testing.T, base, cookie string) bool {
	t.Helper()
	code, where := meWith(t, base, cookie)
	if code == http.StatusOK {
		return false
	}
	if code != http.StatusSeeOther || !strings.HasPrefix(where, "/login") {
		t.Fatalf("/me on %s: %d to %q, want 200 or 303 to /login", base, code, where)
	}
	return true
}

// PROTOCOL §10 and SECURITY.md: a web sign-out on one node ends the
// session on every node within 1 s (every node has the same session
// key, so the cookie is valid everywhere until then), on a node restarted
// after it and on a node that starts after it. A node that cannot reach
// NATS cannot tell, and refuses the session (503) instead of honoring a
// cookie that may have been signed out elsewhere; its sign-out page says
// the session goes on rather than that it ended.
func TestClusterSignOutReachesEveryNode(t *testing.T) {
	pgURL := pgtest.Database(t) // skips without PRESENCE_CLUSTER
	nats := natstest.Start(t, 3)
	dirA := t.TempDir()
	writeNodeKey(t, dirA)
	configFor := func(name, dir string) string {
		return clusterConfig(t, name, dir, nats.URL(), pgURL, "")
	}
	// Each node its own data folder (with the cluster's secrets), so that
	// no node reads another's signed_out file.
	a := startNode(t, configFor("node-a", dirA))
	configB := configFor("node-b", copySecrets(t, dirA, ""))
	b := startNode(t, configB)
	c := startNode(t, configFor("node-c", copySecrets(t, dirA, "")))

	ann := presencetest.NewBrowser(t, a.http(""))
	ann.Login("ann@example.com")
	cookie := sessionCookieOf(t, ann)
	for _, n := range []*node{a, b, c} {
		if signedOutOn(t, n.http(""), cookie) {
			t.Fatalf("node A's sign-in is refused on %s", n.http(""))
		}
	}

	resp := ann.Post("/logout", url.Values{"csrf_token": {ann.CSRF("/me")}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /logout on node A: %d, want 303", resp.StatusCode)
	}
	signedOut := time.Now()
	for _, n := range []*node{a, b, c} {
		for !signedOutOn(t, n.http(""), cookie) {
			if time.Since(signedOut) > time.Second {
				t.Fatalf("%s still honors the session 1 s after its sign-out on node A", n.http(""))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("the sign-out was refused on A, B and C %v after node A answered it", time.Since(signedOut))

	// A node that starts after the sign-out, and one restarted.
	d := startNode(t, configFor("node-d", copySecrets(t, dirA, "")))
	if !signedOutOn(t, d.http(""), cookie) {
		t.Fatal("a node started after the sign-out honors the signed-out session")
	}
	b.stop()
	b = startNode(t, configB)
	if !signedOutOn(t, b.http(""), cookie) {
		t.Fatal("node B, restarted, honors the signed-out session")
	}

	// Another user signed in on B; a sign-out on C ends it too.
	bob := presencetest.NewBrowser(t, b.http(""))
	bob.Login("bob@example.com")
	bobCookie := sessionCookieOf(t, bob)
	bob.Base = c.http("")
	if resp := bob.Post("/logout", url.Values{"csrf_token": {bob.CSRF("/me")}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /logout on node C: %d, want 303", resp.StatusCode)
	}
	if !signedOutOn(t, b.http(""), bobCookie) {
		t.Fatal("node B honors a session signed out on node C")
	}

	// Without NATS, no node can tell whether a session was signed out
	// elsewhere: it refuses it (503), and a sign-out says it did not happen.
	eve := presencetest.NewBrowser(t, a.http(""))
	eve.Login("eve@example.com")
	eveCookie := sessionCookieOf(t, eve)
	csrf := eve.CSRF("/me")
	for i := range 3 {
		nats.Kill(i)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := meWith(t, a.http(""), eveCookie)
		if code == http.StatusServiceUnavailable {
			break
		}
		if code != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("/me without NATS: %d, want 503", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := eve.Get("/me"); code != http.StatusServiceUnavailable {
		t.Fatalf("/me in the browser without NATS: %d, want 503", code)
	}
	resp = eve.Post("/logout", url.Values{"csrf_token": {csrf}})
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("POST /logout without NATS: %d, want 503", resp.StatusCode)
	}
	if sessionCookieOf(t, eve) != eveCookie {
		t.Fatal("a sign-out that was not recorded cleared the browser's cookie")
	}
	for i := range 3 {
		nats.Restart(i)
	}
	nats.WaitJetStream()
	deadline = time.Now().Add(60 * time.Second)
	for {
		code, _ := meWith(t, a.http(""), eveCookie)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/me once NATS is back: %d, want 200", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp := eve.Post("/logout", url.Values{"csrf_token": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /logout once NATS is back: %d, want 303", resp.StatusCode)
	}
	for _, n := range []*node{a, b, c, d} {
		if !signedOutOn(t, n.http(""), eveCookie) {
			t.Fatalf("%s honors a session signed out once NATS was back", n.http(""))
		}
	}
}
