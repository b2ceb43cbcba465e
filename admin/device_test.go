package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
)

func withDevAssertions(v *core.DevVerifier) envOption {
	return func(_ *presence.Config, c *Config) { c.DevAssertions = v }
}

// The page lists the user's granted apps as switches, escaped, one switch
// per app however many grants it has.
func TestDevicePageListsGrants(t *testing.T) {
	e := newEnv(t, withDevAssertions(&core.DevVerifier{Secret: []byte("s")}))
	ctx := context.Background()
	app, err := e.router.RegisterApp(ctx, "dev@example.org", "beerchat.example", `Beer <script>alert(1)</script>`, "Chat.")
	if err != nil {
		t.Fatal(err)
	}
	if app, err = e.router.MarkVerified(ctx, app.ID); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	r := b.get("/device")
	wantStatus(t, r, http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != "/login?next=%2Fdevice" {
		t.Fatalf("signed out: Location %q", loc)
	}
	b.login("ann@example.com")
	r = b.get("/device")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "No app can see your status yet", `<script type="module" src="/static/device.js"></script>`)

	b.grantVia(app, "ann")
	b.grantVia(app, "ann-at-work")
	r = b.get("/device")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, fmt.Sprintf(`data-app-id="%d"`, app.ID), "Beer &lt;script&gt;alert(1)&lt;/script&gt;",
		"as ann, ann-at-work", "app not active", `data-can-mint="true"`)
	if strings.Contains(r.body, "<script>alert") {
		t.Fatal("the app name is not escaped")
	}
	if n := strings.Count(r.body, "data-app-id="); n != 1 {
		t.Fatalf("%d switches for one app", n)
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
}

// POST /device/assertion mints a short-lived assertion for the signed-in
// user, CSRF-checked.
func TestDeviceAssertion(t *testing.T) {
	now := time.Now()
	v := &core.DevVerifier{Secret: []byte("secret"), Now: func() time.Time { return now }}
	e := newEnv(t, withDevAssertions(v))
	b := e.browser()
	r := b.post("/device/assertion", url.Values{})
	wantStatus(t, r, http.StatusForbidden) // not signed in
	b.login("Ann@Example.com")
	r = b.post("/device/assertion", url.Values{"csrf_token": {"forged"}})
	wantStatus(t, r, http.StatusForbidden)
	r = b.postForm("/device", "/device/assertion", nil)
	wantStatus(t, r, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var got struct {
		Assertion string `json:"assertion"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	if got.ExpiresIn != 600 {
		t.Fatalf("expires_in %d, want 600", got.ExpiresIn)
	}
	who, err := v.Verify(context.Background(), got.Assertion)
	if err != nil || who.Subject != "ann@example.com" {
		t.Fatalf("the minted assertion is %+v, %v", who, err)
	}
	now = now.Add(11 * time.Minute)
	if _, err := v.Verify(context.Background(), got.Assertion); core.ErrnoOf(err) != core.ErrnoExpiredAssertion {
		t.Fatalf("after 11 minutes: %v, want errno 35", err)
	}
}

// Without the dev identity the page says so, and mints nothing.
func TestDeviceAssertionOffOutsideDev(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("ann@example.com")
	r := b.get("/device")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, `data-can-mint="false"`, "this page can only connect with the <code>dev</code> identity")
	r = b.postForm("/device", "/device/assertion", nil)
	wantStatus(t, r, http.StatusNotFound)
	wantBody(t, r, `"error"`)
}
