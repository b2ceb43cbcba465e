package ws_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/sqlite"
	"github.com/presence-service/presence/ws"
)

// harness is the ws edge on a real router and SQLite store, served by
// httptest: one active app with a key, and a dev verifier to mint
// assertions.
type harness struct {
	t      *testing.T
	cfg    *presence.Config
	router *core.Router
	dev    *core.DevVerifier
	srv    *httptest.Server
	app    core.AppID
	key    string
}

func newHarness(t *testing.T, tweak func(*presence.Config)) *harness {
	t.Helper()
	cfg := presence.Default()
	cfg.Device.DisconnectGrace.Duration = 0
	if tweak != nil {
		tweak(cfg)
	}
	db, err := sqlite.Open(t.TempDir() + "/presence.db")
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := core.NewKeyring(make([]byte, 32))
	r := core.NewRouter(db, core.Options{
		DisconnectGrace: cfg.Device.DisconnectGrace.Duration, StatusQueueTTL: cfg.Apps.StatusQueueTTL.Duration,
		NotificationDefaultTTL: cfg.Notifications.DefaultTTL.Duration, NotificationQueueSize: cfg.Notifications.QueueSize, Keys: keys,
	})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	dev := &core.DevVerifier{Secret: []byte("test secret")}
	mux := http.NewServeMux()
	ws.New(ws.Config{Router: r, Verifier: dev, Config: cfg}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); db.Close() })
	h := &harness{t: t, cfg: cfg, router: r, dev: dev, srv: srv}
	h.app, h.key = h.newApp("beer.example")
	return h
}

func (h *harness) newApp(domain string) (core.AppID, string) {
	h.t.Helper()
	ctx := context.Background()
	a, err := h.router.RegisterApp(ctx, "dev@"+domain, domain, "App", "")
	if err != nil {
		h.t.Fatal(err)
	}
	h.router.MarkVerified(ctx, a.ID)
	_, key, err := h.router.ActivateApp(ctx, a.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	return a.ID, key
}

func (h *harness) grant(email string, app core.AppID) string {
	h.t.Helper()
	g, err := h.router.Grant(context.Background(), core.Identity{Subject: email, Email: email}, app, email)
	if err != nil {
		h.t.Fatal(err)
	}
	return g.PUID
}

func (h *harness) url(path string) string { return "ws" + strings.TrimPrefix(h.srv.URL, "http") + path }

// client is a WebSocket peer that reads with a deadline.
type client struct {
	t *testing.T
	c *websocket.Conn
}

func (h *harness) dial(path string) *client {
	h.t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(h.url(path), nil)
	if err != nil {
		h.t.Fatalf("dial %s: %v (%v)", path, err, resp)
	}
	h.t.Cleanup(func() { c.Close() })
	return &client{t: h.t, c: c}
}

func (c *client) send(frame string) {
	c.t.Helper()
	if err := c.c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) read() string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := c.c.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return string(data)
}

// expect reads the next frame and compares it with want, exactly.
func (c *client) expect(want string) {
	c.t.Helper()
	if got := c.read(); got != want {
		c.t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// expectClosed reads until the server's close frame and returns its code.
func (c *client) expectClosed() int {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, data, err := c.c.ReadMessage()
		if err == nil {
			c.t.Fatalf("want close, got frame %s", data)
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code
		}
		c.t.Fatalf("want a close frame, got %v", err)
	}
}

// stillOpen checks the socket answers a ping request.
func (c *client) stillOpen() {
	c.t.Helper()
	c.send(`{"type":"ping"}`)
	c.expect(`{"result":true}`)
}

func (c *client) decode(v any) {
	c.t.Helper()
	if err := json.Unmarshal([]byte(c.read()), v); err != nil {
		c.t.Fatal(err)
	}
}

// connect opens a device session and returns its id.
func (h *harness) connect(email, device string, apps ...core.AppID) (*client, string) {
	h.t.Helper()
	c := h.dial("/presence")
	ids, _ := json.Marshal(apps)
	if apps == nil {
		ids = []byte("[]")
	}
	c.send(`{"type":"connect","assertion":"` + h.dev.Mint(email, time.Hour) + `","application_ids":` + string(ids) + `,"device_id":"` + device + `"}`)
	var answer struct {
		Result  bool   `json:"result"`
		Session string `json:"session_id"`
		Ignored []int  `json:"ignored_application_ids"`
	}
	c.decode(&answer)
	if !answer.Result || answer.Session == "" || len(answer.Ignored) != 0 {
		h.t.Fatalf("connect: %+v", answer)
	}
	return c, answer.Session
}

// appChannel opens the app's status channel with its key.
func (h *harness) appChannel(app core.AppID, key string) *client {
	h.t.Helper()
	c := h.dial("/" + itoa(int64(app)))
	c.send(`{"key":"` + key + `"}`)
	c.expect(`{"result":true}`)
	return c
}

func itoa(n int64) string { return strings.TrimSpace(strings.Repeat(" ", 0) + jsonNumber(n)) }

func jsonNumber(n int64) string { b, _ := json.Marshal(n); return string(b) }
