package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

type nopDevice struct{}

func (nopDevice) SendNotifications([]core.Notification) {}
func (nopDevice) Close(core.Errno)                      {}

// grantVia allows app for the browser's user through the real pages and
// returns the PUID.
func (b *browser) grantVia(app *core.App, userString string) string {
	b.e.t.Helper()
	redirect := "https://" + app.Domain + "/back"
	r := b.postForm(grantPath(app.ID, redirect, userString), fmt.Sprintf("/%d", app.ID),
		url.Values{"redirect": {redirect}, "id": {userString}, "answer": {"allow"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Presence-UID") == "" {
		b.e.t.Fatalf("grant: %d\n%s", r.StatusCode, r.body)
	}
	return r.Header.Get("Presence-UID")
}

func TestMeAndRevoke(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	app := e.verifiedApp("dev@example.org", "beerchat.example")
	if _, _, err := e.router.ActivateApp(ctx, app.ID); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	wantStatus(t, b.get("/me"), http.StatusSeeOther)
	b.login("alice@example.org")
	r := b.get("/me")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "No app can see your status")

	puid := b.grantVia(app, "Alice")
	r = b.get("/me")
	wantBody(t, r, "Beer chat", "beerchat.<wbr>example", "<strong>Alice</strong>", "/me/grants/"+puid+"/revoke", `data-label="Connected">no<`)

	// The app is connected and sees Alice online.
	sink := newFakeApp()
	detach, err := e.router.AttachApp(ctx, app.ID, sink, core.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer detach()
	s, _, err := e.router.Connect(ctx, core.ConnectRequest{
		Identity: core.Identity{Subject: "alice@example.org", Email: "alice@example.org"},
		DeviceID: "phone", AppIDs: []core.AppID{app.ID}, Sink: nopDevice{},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.router.Disconnect(s)
	if err := e.router.SetStatus(s, core.Presence{Status: core.Online}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, sink, func(u []core.StatusUpdate) bool { return len(u) > 0 && u[len(u)-1].Status == core.Online })
	wantBody(t, b.get("/me"), `data-label="Connected">yes<`)

	// Another user cannot revoke Alice's grant, and learns nothing.
	mallory := e.browser()
	mallory.login("mallory@example.org")
	wantStatus(t, mallory.postForm("/me", "/me/grants/"+puid+"/revoke", nil), http.StatusNotFound)
	if strings.Contains(mallory.get("/me").body, puid) {
		t.Fatal("another user's /me shows the grant")
	}
	// Without the token: 403.
	wantStatus(t, b.post("/me/grants/"+puid+"/revoke", url.Values{"csrf_token": {"nope"}}), http.StatusForbidden)

	r = b.postForm("/me", "/me/grants/"+puid+"/revoke", nil)
	wantStatus(t, r, http.StatusSeeOther)
	if r.Header.Get("Location") != "/me" {
		t.Fatalf("Location %q", r.Header.Get("Location"))
	}
	// The app's view ends: a last offline for the PUID.
	waitFor(t, sink, func(u []core.StatusUpdate) bool {
		last := u[len(u)-1]
		return last.PUID == puid && last.Status == core.Offline
	})
	r = b.get("/me")
	wantBody(t, r, "Revoked: Beer chat no longer sees you as Alice", "No app can see your status")
	if _, err := e.router.GrantByPUID(ctx, puid); err == nil {
		t.Fatal("grant still stored")
	}
	// The PUID stops working: a probe says unknown, and a second revoke is 404.
	res, err := e.router.Probe(ctx, app.ID, []string{puid})
	if err != nil || res[0].Known {
		t.Fatalf("probe after revoke: %+v %v", res, err)
	}
	wantStatus(t, b.postForm("/me", "/me/grants/"+puid+"/revoke", nil), http.StatusNotFound)
	// Status changes no longer reach the app for this user.
	n := len(sink.all())
	e.router.SetStatus(s, core.Presence{Status: core.Unavailable}, nil)
	time.Sleep(50 * time.Millisecond)
	if got := sink.all(); len(got) != n {
		t.Fatalf("app told %v after revoke", got[n:])
	}
}

func waitFor(t *testing.T, f *fakeApp, ok func([]core.StatusUpdate) bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		if u := f.all(); len(u) > 0 && ok(u) {
			return
		}
		select {
		case <-f.got:
		case <-deadline:
			t.Fatalf("app got %v", f.all())
		}
	}
}
