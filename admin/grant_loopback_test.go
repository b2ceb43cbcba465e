package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
)

// An app on a loopback address (the sample app of README's tour) may be
// sent back over plain http even without server.dev: the redirect never
// leaves the machine. Its host and port must still be the app's own.
func TestGrantLoopbackHTTP(t *testing.T) {
	e := newEnv(t, func(c *presence.Config, _ *Config) { c.Server.Dev = false })
	local := e.verifiedApp("dev@example.org", "127.0.0.1:8090")
	public := e.verifiedApp("dev@example.org", "beerchat.example")
	b := e.browser()
	b.login("alice@example.org")

	back := "http://127.0.0.1:8090/back?name=alice"
	r := b.postForm(grantPath(local.ID, back, "alice"), fmt.Sprintf("/%d", local.ID),
		url.Values{"redirect": {back}, "id": {"alice"}, "answer": {"allow"}})
	wantStatus(t, r, http.StatusSeeOther)
	if loc := r.Header.Get("Location"); !strings.HasPrefix(loc, back+"&presence_uid=") {
		t.Fatalf("Location %q", loc)
	}
	tok := b.csrf(grantPath(local.ID, back, "alice"))
	for _, c := range []struct {
		app      core.AppID
		redirect string
	}{
		{local.ID, "http://127.0.0.1:8091/back"},    // another port
		{local.ID, "http://localhost:8090/back"},    // not its domain
		{public.ID, "http://beerchat.example/back"}, // leaves the machine
		{public.ID, "http://127.0.0.1/back"},        // not its domain
	} {
		if g := b.get(grantPath(c.app, c.redirect, "alice")); g.StatusCode != http.StatusBadRequest {
			t.Errorf("GET grant redirect %q: %d, want 400", c.redirect, g.StatusCode)
		}
		form := url.Values{"redirect": {c.redirect}, "id": {"alice"}, "answer": {"allow"}, "csrf_token": {tok}}
		if p := b.post(fmt.Sprintf("/%d", c.app), form); p.StatusCode != http.StatusBadRequest {
			t.Errorf("POST grant redirect %q: %d, want 400", c.redirect, p.StatusCode)
		}
	}
}
