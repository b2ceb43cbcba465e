package admin

import (
	"net/http"
	"strings"
	"testing"
)

// presence.js is served as JavaScript, so a page can import it as a module
// (browsers refuse a module with another MIME type under nosniff).
func TestPresenceJSServed(t *testing.T) {
	e := newEnv(t)
	r := e.browser().get("/static/presence.js")
	wantStatus(t, r, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Fatalf("Content-Type %q, want text/javascript", ct)
	}
	wantBody(t, r, "export class PresenceClient")
}
