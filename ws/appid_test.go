package ws_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// An app id has one form on every route: "/01" or "/+1" is no app, on
// the app channel and on POST, as it is on XMPP and the pages.
func TestAppIDOnlyInItsCanonicalForm(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	id := itoa(int64(h.app))
	for _, path := range []string{"/0" + id, "/00" + id, "/+" + id} {
		_, resp, err := websocket.DefaultDialer.Dial(h.url(path), nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
			t.Errorf("app channel at %s: %v %v, want 404", path, resp, err)
		}
		req, _ := http.NewRequest("POST", h.srv.URL+path+"/notification", strings.NewReader("["+item(puid, "x")+"]"))
		req.Header.Set("Authorization", "Bearer "+h.key)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s/notification: %d, want 404", path, r.StatusCode)
		}
	}
	h.appChannel(h.app, h.key) // the canonical form still works
	if status, body, _ := h.post(int64(h.app), h.key, "["+item(puid, "x")+"]"); status != http.StatusOK {
		t.Fatalf("POST /%s/notification: %d %s", id, status, body)
	}
}
