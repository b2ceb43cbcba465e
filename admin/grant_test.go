package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
)

func grantPath(id core.AppID, redirect, userString string) string {
	return fmt.Sprintf("/%d/grant?redirect=%s&id=%s", id, url.QueryEscape(redirect), url.QueryEscape(userString))
}

func TestGrantNeedsSignIn(t *testing.T) {
	e := newEnv(t)
	app := e.verifiedApp("dev@example.org", "beerchat.example")
	b := e.browser()
	path := grantPath(app.ID, "https://beerchat.example/back", "alice")
	r := b.get(path)
	wantStatus(t, r, http.StatusSeeOther)
	want := "/login?next=" + url.QueryEscape(path)
	if got := r.Header.Get("Location"); got != want {
		t.Fatalf("Location %q, want %q", got, want)
	}
	// Signing in with that next comes back to the grant page.
	r = b.get(want)
	tok := csrfRE.FindStringSubmatch(r.body)[1]
	r = b.post("/login", url.Values{"email": {"alice@example.org"}, "next": {path}, "csrf_token": {tok}})
	wantStatus(t, r, http.StatusSeeOther)
	if got := r.Header.Get("Location"); got != path {
		t.Fatalf("after sign-in Location %q, want %q", got, path)
	}
}

func TestGrantAllowDeny(t *testing.T) {
	e := newEnv(t)
	app := e.verifiedApp("dev@example.org", "beerchat.example")
	b := e.browser()
	b.login("alice@example.org")
	redirect := "https://chat.beerchat.example/presence/back?room=beer&x=1"
	path := grantPath(app.ID, redirect, "Alice Smith")
	r := b.get(path)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Beer chat", "beerchat.example", "Chat about beer.", "appear online as <strong class=\"userstring\">Alice Smith</strong>",
		`value="allow"`, `value="deny"`, fmt.Sprintf(`action="/%d"`, app.ID))

	action := fmt.Sprintf("/%d", app.ID)
	r = b.postForm(path, action, url.Values{"redirect": {redirect}, "id": {"Alice Smith"}, "answer": {"allow"}})
	wantStatus(t, r, http.StatusSeeOther)
	puid := r.Header.Get("Presence-UID")
	if len(puid) != 32 {
		t.Fatalf("Presence-UID %q", puid)
	}
	if got, want := r.Header.Get("Location"), redirect+"&presence_uid="+puid; got != want {
		t.Fatalf("Location %q, want %q", got, want)
	}
	g, err := e.router.GrantByPUID(context.Background(), puid)
	if err != nil || g.UserID != "alice@example.org" || g.AppID != app.ID || g.UserString != "Alice Smith" {
		t.Fatalf("grant %+v %v", g, err)
	}

	// The same (user, app, userstring) reuses the PUID.
	r = b.postForm(path, action, url.Values{"redirect": {redirect}, "id": {"Alice Smith"}, "answer": {"allow"}})
	if r.Header.Get("Presence-UID") != puid {
		t.Fatalf("second allow gave %q, want %q", r.Header.Get("Presence-UID"), puid)
	}

	r = b.postForm(path, action, url.Values{"redirect": {"https://beerchat.example/back"}, "id": {"Alice Smith"}, "answer": {"deny"}})
	wantStatus(t, r, http.StatusSeeOther)
	if got := r.Header.Get("Location"); got != "https://beerchat.example/back?presence_error=access_denied" {
		t.Fatalf("deny Location %q", got)
	}
	if r.Header.Get("Presence-UID") != "" {
		t.Fatal("deny sent a Presence-UID")
	}

	// A redirect that already carries our parameters gets only ours.
	r = b.postForm(path, action, url.Values{"redirect": {"https://beerchat.example/b?presence_uid=forged"}, "id": {"Alice Smith"}, "answer": {"allow"}})
	if got := r.Header.Get("Location"); got != "https://beerchat.example/b?presence_uid="+puid {
		t.Fatalf("Location %q", got)
	}
	r = b.postForm(path, action, url.Values{"redirect": {redirect}, "id": {"Alice Smith"}, "answer": {"maybe"}})
	wantStatus(t, r, http.StatusBadRequest)
}

func TestGrantRedirectChecks(t *testing.T) {
	e := newEnv(t, func(c *presence.Config, _ *Config) { c.Server.Dev = false })
	app := e.verifiedApp("dev@example.org", "beerchat.example")
	withPort := e.verifiedApp("dev@example.org", "chat.example:8443")
	b := e.browser()
	b.login("alice@example.org")
	ok := grantPath(app.ID, "https://beerchat.example/", "alice")
	cases := []struct {
		app      core.AppID
		redirect string
		status   int
	}{
		{app.ID, "https://beerchat.example/back", http.StatusSeeOther},
		{app.ID, "https://a.b.beerchat.example/back", http.StatusSeeOther},
		{app.ID, "https://BEERCHAT.example:8443/back", http.StatusSeeOther},
		{app.ID, "http://beerchat.example/back", http.StatusBadRequest}, // http only when server.dev
		{app.ID, "https://evil.example/", http.StatusBadRequest},
		{app.ID, "https://beerchat.example.evil.example/", http.StatusBadRequest},
		{app.ID, "https://evilbeerchat.example/", http.StatusBadRequest},
		{app.ID, "https://beerchat.example@evil.example/", http.StatusBadRequest},
		{app.ID, "https://evil.example\\@beerchat.example/", http.StatusBadRequest},
		{app.ID, "//evil.example/", http.StatusBadRequest},
		{app.ID, "/local/path", http.StatusBadRequest},
		{app.ID, "javascript:alert(1)//beerchat.example", http.StatusBadRequest},
		{app.ID, "", http.StatusBadRequest},
		{withPort.ID, "https://chat.example:8443/back", http.StatusSeeOther},
		{withPort.ID, "https://chat.example/back", http.StatusBadRequest},
		{withPort.ID, "https://chat.example:9000/back", http.StatusBadRequest},
	}
	for _, c := range cases {
		form := url.Values{"redirect": {c.redirect}, "id": {"alice"}, "answer": {"allow"}}
		r := b.postForm(ok, fmt.Sprintf("/%d", c.app), form)
		if r.StatusCode != c.status {
			t.Errorf("POST redirect %q: %d, want %d (Location %q)", c.redirect, r.StatusCode, c.status, r.Header.Get("Location"))
		}
		if c.status == http.StatusBadRequest {
			if r.Header.Get("Location") != "" {
				t.Errorf("redirect %q: refused but Location %q", c.redirect, r.Header.Get("Location"))
			}
			// The page itself refuses it too, before anyone clicks.
			if g := b.get(grantPath(c.app, c.redirect, "alice")); g.StatusCode != http.StatusBadRequest {
				t.Errorf("GET grant redirect %q: %d, want 400", c.redirect, g.StatusCode)
			}
		}
	}
}

func TestGrantCSRF(t *testing.T) {
	e := newEnv(t)
	app := e.verifiedApp("dev@example.org", "beerchat.example")
	b := e.browser()
	b.login("alice@example.org")
	form := url.Values{"redirect": {"https://beerchat.example/"}, "id": {"alice"}, "answer": {"allow"}}
	action := fmt.Sprintf("/%d", app.ID)
	wantStatus(t, b.post(action, form), http.StatusForbidden)
	form.Set("csrf_token", "wrong")
	wantStatus(t, b.post(action, form), http.StatusForbidden)
	// Another user's token does not work in my session.
	other := e.browser()
	other.login("bob@example.org")
	form.Set("csrf_token", other.csrf("/me"))
	wantStatus(t, b.post(action, form), http.StatusForbidden)
	// Not signed in at all: 403 too.
	wantStatus(t, e.browser().post(action, form), http.StatusForbidden)
}

func TestGrantAppStates(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	unverified, _ := e.router.RegisterApp(ctx, "dev@example.org", "u.example", "U", "")
	disabled := e.verifiedApp("dev@example.org", "d.example")
	if _, err := e.router.DeactivateApp(ctx, disabled.ID); err != nil {
		t.Fatal(err)
	}
	active := e.verifiedApp("dev@example.org", "a.example")
	if _, _, err := e.router.ActivateApp(ctx, active.ID); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.login("alice@example.org")
	for _, c := range []struct {
		path   string
		status int
		text   string
	}{
		{grantPath(unverified.ID, "https://u.example/", "a"), http.StatusBadRequest, "not proven its domain"},
		{grantPath(disabled.ID, "https://d.example/", "a"), http.StatusBadRequest, "disabled"},
		{grantPath(active.ID, "https://a.example/", "a"), http.StatusOK, "Allow"},
		{grantPath(9999, "https://a.example/", "a"), http.StatusNotFound, "no app"},
		{"/abc/grant?redirect=https://a.example/&id=a", http.StatusNotFound, ""},
		{"/0421/grant?redirect=https://a.example/&id=a", http.StatusNotFound, ""},
		{fmt.Sprintf("/%d/other", active.ID), http.StatusNotFound, ""},
		{grantPath(active.ID, "https://a.example/", ""), http.StatusBadRequest, "invalid name"},
	} {
		r := b.get(c.path)
		wantStatus(t, r, c.status)
		wantBody(t, r, c.text)
	}
	wantStatus(t, b.postForm("/me", "/abc", url.Values{"redirect": {"https://a.example/"}, "id": {"a"}, "answer": {"allow"}}), http.StatusNotFound)
}
