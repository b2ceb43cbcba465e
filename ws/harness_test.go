package ws_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/sqlite"
	"github.com/presence-service/presence/internal/presencetest"
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
	edge   *ws.Server
	app    core.AppID
	key    string
}

func newHarness(t *testing.T, tweak func(*presence.Config)) *harness {
	t.Helper()
	return newHarnessWith(t, tweak, true)
}

// newHarnessWith serves the edge through its front door (as presence
// serve does without TLS) or with net/http alone (as with TLS).
func newHarnessWith(t *testing.T, tweak func(*presence.Config), frontDoor bool) *harness {
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
		NotificationDefaultTTL: cfg.Notifications.DefaultTTL.Duration, NotificationQueueSize: cfg.Notifications.QueueSize, NotificationsPerMinute: cfg.Limits.NotificationsPerMinute, Keys: keys,
	})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	dev := &core.DevVerifier{Secret: []byte("test secret")}
	mux := http.NewServeMux()
	edge := ws.New(ws.Config{Router: r, Verifier: dev, Config: cfg})
	edge.Register(mux)
	srv := httptest.NewUnstartedServer(mux)
	if frontDoor {
		srv.Listener = edge.FrontDoor(srv.Listener)
	}
	srv.Start()
	t.Cleanup(func() { srv.Close(); edge.Close(); db.Close() })
	h := &harness{t: t, cfg: cfg, router: r, dev: dev, srv: srv, edge: edge}
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

func (h *harness) dial(path string) *client { return presencetest.Dial(h.t, h.url(path)) }

type client = presencetest.WS

// connect opens a device session and returns its id.
func (h *harness) connect(email, device string, apps ...core.AppID) (*client, string) {
	h.t.Helper()
	c := h.dial("/presence")
	ids, _ := json.Marshal(apps)
	if apps == nil {
		ids = []byte("[]")
	}
	c.Send(`{"type":"connect","assertion":"` + h.dev.Mint(email, time.Hour) + `","application_ids":` + string(ids) + `,"device_id":"` + device + `"}`)
	var answer struct {
		Result  bool   `json:"result"`
		Session string `json:"session_id"`
		Ignored []int  `json:"ignored_application_ids"`
	}
	c.Decode(&answer)
	if !answer.Result || answer.Session == "" || len(answer.Ignored) != 0 {
		h.t.Fatalf("connect: %+v", answer)
	}
	return c, answer.Session
}

// appChannel opens the app's status channel with its key.
func (h *harness) appChannel(app core.AppID, key string) *client {
	h.t.Helper()
	c := h.dial("/" + itoa(int64(app)))
	c.Send(`{"key":"` + key + `"}`)
	c.Expect(`{"result":true}`)
	return c
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
