package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/presence-service/presence/core"
)

var keyRE = regexp.MustCompile(`id="api-key" readonly value="([A-Za-z0-9_-]+)"`)

// register posts the register form and returns the new app's id.
func (b *browser) register(domain, name string) core.AppID {
	b.e.t.Helper()
	r := b.postForm("/myapps", "/myapps", url.Values{"domain": {domain}, "name": {name}, "description": {"About " + name}})
	if r.StatusCode != http.StatusSeeOther {
		b.e.t.Fatalf("register: %d\n%s", r.StatusCode, r.body)
	}
	var id core.AppID
	if _, err := fmt.Sscanf(r.Header.Get("Location"), "/myapps/%d", &id); err != nil {
		b.e.t.Fatalf("register: Location %q", r.Header.Get("Location"))
	}
	return id
}

func TestMyAppsRegister(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	wantStatus(t, b.get("/myapps"), http.StatusSeeOther) // sign in first
	b.login("Dev@Example.org")
	r := b.get("/myapps")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "You have no apps yet", `name="domain"`, `name="name"`, `name="description"`)

	id := b.register("Beerchat.Example:8080", "Beer chat")
	r = b.get(appPath(id))
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Registered Beer chat", "beerchat.example:8080", "unverified", "http://beerchat.example:8080/__presence", "text/plain")
	app, err := e.router.App(context.Background(), id)
	if err != nil || app.OwnerEmail != "dev@example.org" || len(app.VerificationKey) != 1024 {
		t.Fatalf("app %+v %v", app, err)
	}
	wantBody(t, r, app.VerificationKey)

	r = b.get("/myapps")
	wantBody(t, r, "Beer chat", "beerchat.example:8080", fmt.Sprintf(`href="/myapps/%d"`, id))

	// Bad input comes back on the form, with the reason and what was typed.
	r = b.postForm("/myapps", "/myapps", url.Values{"domain": {"https://x.example/path"}, "name": {"Kept name"}})
	wantStatus(t, r, http.StatusBadRequest)
	wantBody(t, r, "domain: want a host name", `value="Kept name"`)
	r = b.postForm("/myapps", "/myapps", url.Values{"domain": {"ok.example"}, "name": {""}})
	wantStatus(t, r, http.StatusBadRequest)
	wantBody(t, r, "name must be 1 to 100 characters")
	wantStatus(t, b.post("/myapps", url.Values{"domain": {"ok.example"}, "name": {"x"}}), http.StatusForbidden)
}

func TestMyAppsLifecycle(t *testing.T) {
	e := newEnv(t)
	proof := newProofServer(t)
	b := e.browser()
	b.login("dev@example.org")
	id := b.register(proof.domain, "Beer chat")
	path := appPath(id)
	app, _ := e.router.App(context.Background(), id)
	proof.set(app.VerificationKey)

	// Activate before verification: refused with the reason.
	r := b.postForm(path, path+"/activate", nil)
	wantStatus(t, r, http.StatusSeeOther)
	wantBody(t, b.get(path), "The domain is not verified yet")

	r = b.postForm(path, path+"/verify", nil)
	wantStatus(t, r, http.StatusSeeOther)
	r = b.get(path)
	wantBody(t, r, "Verified: you own", "verified", "/activate")

	r = b.postForm(path, path+"/activate", nil)
	wantStatus(t, r, http.StatusOK)
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("key page Cache-Control %q", cc)
	}
	m := keyRE.FindStringSubmatch(r.body)
	if m == nil || len(m[1]) != 1024 {
		t.Fatalf("no 1024-character key on the activate answer:\n%s", r.body)
	}
	key := m[1]
	wantBody(t, r, "shown only once", `data-copy="api-key"`)
	if _, err := e.router.AuthenticateApp(context.Background(), id, key); err != nil {
		t.Fatalf("shown key does not authenticate: %v", err)
	}
	// The entry points, ready to paste.
	ws := strings.Replace(e.srv.URL, "http://", "ws://", 1)
	wantBody(t, r, fmt.Sprintf("%s/%d", ws, id), fmt.Sprintf("POST %s/%d/notification", e.srv.URL, id),
		"curl -X POST", "Authorization: Bearer", fmt.Sprintf("%s/%d/grant?redirect=", e.srv.URL, id),
		fmt.Sprintf("%d.presence.test", id), ":5347")
	// Shown once: the app page does not show it again.
	if r = b.get(path); strings.Contains(r.body, key) {
		t.Fatal("the key is shown again")
	}

	r = b.postForm(path, path+"/rotate", nil)
	wantStatus(t, r, http.StatusOK)
	key2 := keyRE.FindStringSubmatch(r.body)[1]
	if key2 == key {
		t.Fatal("rotate kept the key")
	}
	if _, err := e.router.AuthenticateApp(context.Background(), id, key); err == nil {
		t.Fatal("old key still works after rotate")
	}

	r = b.postForm(path, path+"/deactivate", nil)
	wantStatus(t, r, http.StatusSeeOther)
	r = b.get(path)
	wantBody(t, r, "Deactivated", "disabled", "/activate")
	if _, err := e.router.AuthenticateApp(context.Background(), id, key2); err == nil {
		t.Fatal("key works after deactivate")
	}
	// Rotating a disabled app is refused with a reason, not a 500.
	r = b.postForm(path, path+"/rotate", nil)
	wantStatus(t, r, http.StatusSeeOther)
	wantBody(t, b.get(path), "Only an active app has a key to rotate.")
}

func TestMyAppsOtherDeveloper(t *testing.T) {
	e := newEnv(t)
	proof := newProofServer(t)
	mine := e.browser()
	mine.login("dev@example.org")
	id := mine.register(proof.domain, "Mine")
	app, _ := e.router.App(context.Background(), id)
	proof.set(app.VerificationKey)

	other := e.browser()
	other.login("mallory@example.org")
	r := other.get(appPath(id))
	wantStatus(t, r, http.StatusNotFound)
	if strings.Contains(r.body, app.VerificationKey) || strings.Contains(r.body, "Mine") {
		t.Fatal("the 404 page leaks the app")
	}
	if r := other.get("/myapps"); strings.Contains(r.body, "Mine") {
		t.Fatal("another developer's list shows my app")
	}
	for _, action := range []string{"verify", "activate", "rotate", "deactivate"} {
		r := other.postForm("/myapps", appPath(id)+"/"+action, nil)
		wantStatus(t, r, http.StatusNotFound)
	}
	// Nothing happened to the app.
	if a, _ := e.router.App(context.Background(), id); a.State != core.AppUnverified {
		t.Fatalf("state %s after another developer's actions", a.State)
	}
	// Non-numeric and unknown ids: 404 as well.
	wantStatus(t, mine.get("/myapps/abc"), http.StatusNotFound)
	wantStatus(t, mine.get("/myapps/99999"), http.StatusNotFound)
	wantStatus(t, mine.postForm("/myapps", "/myapps/abc/verify", nil), http.StatusNotFound)
	// And the CSRF check comes first for my own app.
	wantStatus(t, mine.post(appPath(id)+"/verify", url.Values{"csrf_token": {"x"}}), http.StatusForbidden)
}
