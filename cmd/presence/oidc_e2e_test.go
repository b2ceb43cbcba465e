package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/presence-service/presence/internal/oidctest"
	"github.com/presence-service/presence/internal/presencetest"
)

// startOIDCNode starts the real server with auth.verifier = "oidc" against
// iss. The sign-in's redirect URI is built from server.public_url, so the
// node must know its own address before it starts: the port is picked
// first and given to both server.listen and server.public_url.
func startOIDCNode(t *testing.T, iss *oidctest.Issuer) *node {
	t.Helper()
	config := writeConfig(t, fmt.Sprintf(`[auth]
verifier = "oidc"
oidc_issuer = %q
oidc_client_id = %q
oidc_client_secret = %q
`, iss.URL, iss.ClientID, iss.ClientSecret))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	text, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	const server = "[server]\nlisten = \"127.0.0.1:0\"\n"
	if !strings.Contains(string(text), server) {
		t.Fatalf("writeConfig no longer starts with %q:\n%s", server, text)
	}
	patched := strings.Replace(string(text), server,
		fmt.Sprintf("[server]\nlisten = %q\npublic_url = %q\n", addr, "http://"+addr), 1)
	if err := os.WriteFile(config, []byte(patched), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, config)
	if n.srv.HTTPAddr != addr {
		t.Fatalf("bound %s, want %s", n.srv.HTTPAddr, addr)
	}
	return n
}

// webSignIn signs email in as a person would: GET /login sends the
// browser to the issuer, the issuer's login form sends it back to
// /login/callback, and the callback signs it in and sends it on to /me.
// It returns the browser, signed in, and the /me page.
func webSignIn(t *testing.T, n *node, iss *oidctest.Issuer, email string) (*presencetest.Browser, string) {
	t.Helper()
	b := presencetest.NewBrowser(t, n.http(""))
	resp := get(t, b, n.http("/login?next=/me"))
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, iss.URL+"/authorize?") {
		t.Fatalf("GET /login: %d to %q, want 303 to the issuer", resp.StatusCode, loc)
	}
	back := iss.LogIn(t, b.Client, loc, email)
	if back.Scheme+"://"+back.Host != n.http("") || back.Path != "/login/callback" {
		t.Fatalf("the issuer sent the browser back to %s, want %s", back, n.http("/login/callback"))
	}
	resp = get(t, b, back.String())
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/me" {
		t.Fatalf("GET /login/callback: %d to %q, want 303 to /me", resp.StatusCode, resp.Header.Get("Location"))
	}
	status, me := b.Get("/me")
	if status != http.StatusOK || !strings.Contains(me, "Signed in as <strong>"+email+"</strong>") {
		t.Fatalf("GET /me after sign-in: %d\n%s", status, me)
	}
	return b, me
}

func get(t *testing.T, b *presencetest.Browser, u string) *http.Response {
	t.Helper()
	resp, err := b.Client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

type connectAnswer struct {
	Result  bool    `json:"result"`
	Session string  `json:"session_id"`
	Ignored []int64 `json:"ignored_application_ids"`
	Errno   int     `json:"errno"`
	Reason  string  `json:"reason"`
}

func sendConnect(c *presencetest.WS, assertion, deviceID string, apps ...int64) connectAnswer {
	c.T.Helper()
	ids, _ := json.Marshal(apps)
	c.Send(fmt.Sprintf(`{"type":"connect","assertion":%q,"application_ids":%s,"device_id":%q}`, assertion, ids, deviceID))
	var a connectAnswer
	c.Decode(&a)
	return a
}

// deviceWith connects a device with an assertion of the identity
// provider; every app must be granted.
func deviceWith(n *node, assertion, deviceID string, apps ...int64) (*presencetest.WS, string) {
	n.t.Helper()
	c := presencetest.Dial(n.t, n.ws("/presence"))
	a := sendConnect(c, assertion, deviceID, apps...)
	if !a.Result || a.Session == "" || len(a.Ignored) != 0 {
		n.t.Fatalf("connect %s: %+v", deviceID, a)
	}
	return c, a.Session
}

// TestOIDCEndToEnd runs the server against an OpenID Connect issuer (an
// in-process one, as Firefox Accounts would be): a person signs in on the
// web through the issuer's login and grants an app; a device connects
// with the access token the issuer gave out for the same person, and the
// app sees it under the PUID of the web grant. The subject, not the email,
// is the person: after an email change at the issuer the grant holds.
func TestOIDCEndToEnd(t *testing.T) {
	iss := oidctest.NewIssuer(t)
	n := startOIDCNode(t, iss)
	beer, beerKey := n.newApp("beer.example")
	beerID := fmt.Sprint(beer)

	dana, me := webSignIn(t, n, iss, "dana@example.com")
	if !strings.Contains(me, "No app can see your status.") {
		t.Fatalf("a new user has grants:\n%s", me)
	}
	webToken := iss.LastAccessToken() // what the sign-in's code was redeemed for
	puid := dana.Allow(beerID, "https://beer.example/back", "dana")
	feed := presencetest.OpenFeed(t, n.ws("/"+beerID), beerKey)

	// The device's assertion is an access token of the same subject.
	if webToken == "" {
		t.Fatal("the sign-in redeemed no code at the issuer")
	}
	phone, phoneSID := deviceWith(n, webToken, "phone", beer)
	status(phone, phoneSID, "online", "signed in with the issuer")
	feed.Expect(puid, "online", "signed in with the issuer")

	// Refusals over the real socket, each with its errno; the socket
	// stays usable and the next good token connects on it.
	sub := iss.Subject("dana@example.com")
	c := presencetest.Dial(t, n.ws("/presence"))
	if a := sendConnect(c, iss.AccessToken(sub, "dana@example.com", -time.Minute), "tablet", beer); a.Result || a.Errno != 35 {
		t.Fatalf("expired token: %+v, want errno 35", a)
	}
	wrongAud := iss.Claims(sub)
	wrongAud["aud"] = "another-client"
	if a := sendConnect(c, iss.Mint(wrongAud), "tablet", beer); a.Result || a.Errno != 34 || !strings.Contains(a.Reason, "audience") {
		t.Fatalf("token for another audience: %+v, want errno 34 about the audience", a)
	}
	stranger := oidctest.NewKey(t, "k1")
	if a := sendConnect(c, oidctest.SignJWT(t, "RS256", stranger.JWK(), iss.Claims(sub)), "tablet", beer); a.Result || a.Errno != 34 {
		t.Fatalf("token signed by a stranger: %+v, want errno 34", a)
	}
	if a := sendConnect(c, iss.AccessToken(sub, "dana@example.com", time.Hour), "tablet", beer); !a.Result || len(a.Ignored) != 0 {
		t.Fatalf("good token after the refusals: %+v", a)
	}
	c.Conn.Close()

	status(phone, phoneSID, "offline", "")
	feed.Expect(puid, "offline", "")

	// Dana changes her email at the issuer; her account, and so her
	// subject, stays. A device with a token of the new address still has
	// the grant: beer is not ignored, and the app sees the same PUID.
	if got := iss.ChangeEmail("dana@example.com", "dana@new.example"); got != sub {
		t.Fatalf("the issuer changed the subject: %q, was %q", got, sub)
	}
	laptop, laptopSID := deviceWith(n, iss.AccessToken(sub, "dana@new.example", time.Hour), "laptop", beer)
	status(laptop, laptopSID, "online", "new address")
	feed.Expect(puid, "online", "new address")

	// On the web too: the new address signs in to the same grants, and
	// granting again reuses the PUID.
	dana2, me := webSignIn(t, n, iss, "dana@new.example")
	if !strings.Contains(me, "/me/grants/"+puid+"/revoke") {
		t.Fatalf("after the email change /me does not list the grant %s:\n%s", puid, me)
	}
	if again := dana2.Allow(beerID, "https://beer.example/back", "dana"); again != puid {
		t.Fatalf("granting again after the email change gave PUID %s, want %s", again, puid)
	}
	// Whoever signs up with the old address now is somebody else.
	_, me = webSignIn(t, n, iss, "dana@example.com")
	if !strings.Contains(me, "No app can see your status.") {
		t.Fatalf("a new account with dana's old address sees her grants:\n%s", me)
	}
}

// TestOIDCSignInRefusals: a callback that the issuer did not send (a forged
// state) or whose code was already spent does not sign anyone in.
func TestOIDCSignInRefusals(t *testing.T) {
	iss := oidctest.NewIssuer(t)
	n := startOIDCNode(t, iss)
	b := presencetest.NewBrowser(t, n.http(""))
	resp := get(t, b, n.http("/login?next=/me"))
	back := iss.LogIn(t, b.Client, resp.Header.Get("Location"), "eve@example.com")

	forged := *back
	q := forged.Query()
	q.Set("state", "forged")
	forged.RawQuery = q.Encode()
	if resp := get(t, b, forged.String()); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("callback with a forged state: %d, want 400", resp.StatusCode)
	}
	// The state cookie was single use: even the real callback is refused now.
	if resp := get(t, b, back.String()); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("callback after the state cookie was spent: %d, want 400", resp.StatusCode)
	}
	if resp := get(t, b, n.http("/me")); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("GET /me after refused callbacks: %d, want 303 to sign in", resp.StatusCode)
	}

	// Another browser that replays someone's callback (login CSRF) is refused.
	b2 := presencetest.NewBrowser(t, n.http(""))
	resp = get(t, b2, n.http("/login?next=/me"))
	back = iss.LogIn(t, b2.Client, resp.Header.Get("Location"), "eve@example.com")
	other := presencetest.NewBrowser(t, n.http(""))
	if resp := get(t, other, back.String()); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("callback in another browser: %d, want 400", resp.StatusCode)
	}
	// The browser that started the sign-in finishes it, once.
	if resp := get(t, b2, back.String()); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/me" {
		t.Fatalf("the real callback: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if status, _ := b2.Get("/me"); status != http.StatusOK {
		t.Fatalf("GET /me after sign-in: %d", status)
	}
	if resp := get(t, b2, back.String()); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("the callback replayed: %d, want 400", resp.StatusCode)
	}
}
