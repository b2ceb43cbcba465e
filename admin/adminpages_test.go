package admin

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/presence-service/presence/core"
)

func TestAdminPages(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	app := e.verifiedApp("dev@example.org", "beerchat.example")
	if _, _, err := e.router.ActivateApp(ctx, app.ID); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, e.browser().get("/admin"), http.StatusSeeOther)

	dev := e.browser()
	dev.login("dev@example.org")
	r := dev.get("/admin")
	wantStatus(t, r, http.StatusForbidden)
	if r := dev.get("/"); r.StatusCode != 200 || strings.Contains(r.body, `href="/admin"`) {
		t.Fatal("non-admin sees the admin link")
	}
	disable := fmt.Sprintf("/admin/apps/%d/disable", app.ID)
	wantStatus(t, dev.postForm("/me", disable, nil), http.StatusForbidden)

	root := e.browser()
	root.login("root@example.org") // admin.emails says Root@Example.org
	r = root.get("/admin")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Beer chat", "dev@<wbr>example.<wbr>org", "devices connected", "app channels connected", `class="state active"`, disable)

	sink := newFakeApp()
	if _, err := e.router.AttachApp(ctx, app.ID, sink, core.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	wantBody(t, root.get("/admin"), `id="stat-channels">1<`)

	wantStatus(t, root.post(disable, nil), http.StatusForbidden) // CSRF
	r = root.postForm("/admin", disable, nil)
	wantStatus(t, r, http.StatusSeeOther)
	if a, _ := e.router.App(ctx, app.ID); a.State != core.AppDisabled || a.KeyHash != nil {
		t.Fatalf("after disable: %s", a.State)
	}
	sink.mu.Lock()
	closed := sink.closed
	sink.mu.Unlock()
	if len(closed) != 1 || closed[0] != core.ErrnoAppInactive {
		t.Fatalf("channel closed with %v", closed)
	}
	r = root.get("/admin")
	wantBody(t, r, "Disabled app", fmt.Sprintf("/admin/apps/%d/enable", app.ID))

	r = root.postForm("/admin", fmt.Sprintf("/admin/apps/%d/enable", app.ID), nil)
	wantStatus(t, r, http.StatusSeeOther)
	if a, _ := e.router.App(ctx, app.ID); a.State != core.AppVerified {
		t.Fatalf("after enable: %s", a.State)
	}
	wantStatus(t, root.postForm("/admin", "/admin/apps/99999/disable", nil), http.StatusNotFound)
	wantStatus(t, root.postForm("/admin", "/admin/apps/x/disable", nil), http.StatusNotFound)
}

func TestHomeAndNotFound(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	r := b.get("/")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Presence", `href="/login"`)
	b.login("a@example.org")
	wantBody(t, b.get("/"), "Signed in as <strong>a@example.org</strong>", `action="/logout"`)
	wantStatus(t, b.get("/nope/grant"), http.StatusNotFound)
}
