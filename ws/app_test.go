package ws_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func TestAppChannelWrongKey(t *testing.T) {
	h := newHarness(t, nil)
	c := h.dial(fmt.Sprintf("/%d", h.app))
	c.Send(`{"key":"not the key"}`)
	c.Expect(`{"result":false,"errno":40,"reason":"wrong API key"}`)
	if code := c.ExpectClosed(); code != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
}

func TestAppChannelFirstFrameMustBeKey(t *testing.T) {
	h := newHarness(t, nil)
	c := h.dial(fmt.Sprintf("/%d", h.app))
	c.Send(`hello`)
	c.Expect(`{"result":false,"errno":40,"reason":"first frame must be {\"key\": \"<api key>\"}"}`)
	if code := c.ExpectClosed(); code != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
}

func TestAppChannelInactiveApp(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := h.router.DeactivateApp(t.Context(), h.app); err != nil {
		t.Fatal(err)
	}
	c := h.dial(fmt.Sprintf("/%d", h.app))
	c.Send(`{"key":"` + h.key + `"}`)
	c.Expect(`{"result":false,"errno":41,"reason":"app not activated"}`)
	if code := c.ExpectClosed(); code != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
}

func TestAppChannelUnknownApp(t *testing.T) {
	h := newHarness(t, nil)
	for _, path := range []string{"/9999", "/abc"} {
		_, resp, err := websocket.DefaultDialer.Dial(h.url(path), nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s: err %v, resp %v; want 404", path, err, resp)
		}
	}
}

func TestAppChannelReceivesUpdatesAndProbes(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	app := h.appChannel(h.app, h.key)
	dev, sid := h.connect("ann@example.com", "phone", h.app)
	dev.Send(`{"type":"status","session_id":"` + sid + `","status":"online","message":"In a \"meeting\""}`)
	dev.Expect(`{"result":true}`)
	got := app.Read()
	want := `[{"UID":"` + puid + `","status":"online","message":"In a \"meeting\"","at":"`
	if !strings.HasPrefix(got, want) {
		t.Fatalf("got %s, want prefix %s", got, want)
	}
	app.Send(`{"type":"probe","UIDs":["` + puid + `","nobody"]}`)
	got = app.Read()
	if !strings.Contains(got, `{"UID":"`+puid+`","status":"online","message":"In a \"meeting\"","at":"`) ||
		!strings.Contains(got, `{"UID":"nobody","status":"offline","at":"`) || !strings.Contains(got, `,"error":"unknown UID"}`) {
		t.Fatalf("probe answer %s", got)
	}
	app.Send(`{"type":"dance"}`)
	app.Expect(`{"result":false,"errno":2,"reason":"unknown type: the app channel takes probe"}`)
	app.Send(`nonsense`)
	app.Expect(`{"result":false,"errno":1,"reason":"frame is not a JSON object of the app channel"}`)
}

func TestAllChannelsOfAnAppGetEveryUpdate(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	a1, a2 := h.appChannel(h.app, h.key), h.appChannel(h.app, h.key)
	dev, sid := h.connect("ann@example.com", "phone", h.app)
	dev.Send(`{"type":"status","session_id":"` + sid + `","status":"unavailable"}`)
	dev.Expect(`{"result":true}`)
	for _, a := range []*client{a1, a2} {
		if got := a.Read(); !strings.HasPrefix(got, `[{"UID":"`+puid+`","status":"unavailable","at":"`) {
			t.Fatalf("got %s", got)
		}
	}
}

func TestRotatingKeyClosesAppChannel(t *testing.T) {
	h := newHarness(t, nil)
	app := h.appChannel(h.app, h.key)
	if _, _, err := h.router.RotateKey(t.Context(), h.app); err != nil {
		t.Fatal(err)
	}
	if code := app.ExpectClosed(); code != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
	c := h.dial(fmt.Sprintf("/%d", h.app))
	c.Send(`{"key":"` + h.key + `"}`)
	c.Expect(`{"result":false,"errno":40,"reason":"wrong API key"}`)
}
