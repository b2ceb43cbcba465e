package ws_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

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
	t      testing.TB
	cfg    *presence.Config
	router *core.Router
	dev    *core.DevVerifier
	srv    *httptest.Server
	edge   *ws.Server
	app    core.AppID
	key    string
	dbPath string // the store's file
	// inHandler counts the HTTP requests being served now.
	inHandler *atomic.Int64
	db        *sqlite.DB
}

func newHarness(t testing.TB, tweak func(*presence.Config)) *harness {
	t.Helper()
	return newHarnessWith(t, tweak, true)
}

// newHarnessWith serves the edge through its front door (as presence
// serve does without TLS) or with net/http alone.
func newHarnessWith(t testing.TB, tweak func(*presence.Config), frontDoor bool) *harness {
	t.Helper()
	return startHarness(t, tweak, func(srv *httptest.Server, edge *ws.Server) {
		if frontDoor {
			srv.Listener = edge.FrontDoor(srv.Listener)
		}
		srv.Start()
	})
}

// newTLSHarness serves the edge over TLS, as presence serve does with
// server.tls_cert: net/http alone, and a reading goroutine per device.
func newTLSHarness(t testing.TB) *harness {
	t.Helper()
	return startHarness(t, nil, func(srv *httptest.Server, _ *ws.Server) { srv.StartTLS() })
}

func startHarness(t testing.TB, tweak func(*presence.Config), start func(*httptest.Server, *ws.Server)) *harness {
	t.Helper()
	cfg := presence.Default()
	cfg.Device.DisconnectGrace.Duration = 0
	if tweak != nil {
		tweak(cfg)
	}
	dbPath := t.TempDir() + "/presence.db"
	db, err := sqlite.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := core.NewKeyring(make([]byte, 32))
	r := core.NewRouter(core.Deps{Registry: db, Notifications: db, Statuses: db}, core.Options{
		DisconnectGrace: cfg.Device.DisconnectGrace.Duration, StatusQueueTTL: cfg.Apps.StatusQueueTTL.Duration,
		NotificationDefaultTTL: cfg.Notifications.DefaultTTL.Duration, NotificationQueueSize: cfg.Notifications.QueueSize, NotificationWindow: cfg.Notifications.Window, NotificationsPerMinute: cfg.Limits.NotificationsPerMinute, Keys: keys,
	})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	dev := &core.DevVerifier{Secret: []byte("test secret")}
	mux := http.NewServeMux()
	edge := ws.New(ws.Config{Router: r, Verifier: dev, Config: cfg})
	edge.Register(mux)
	inHandler := new(atomic.Int64)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inHandler.Add(1)
		defer inHandler.Add(-1)
		mux.ServeHTTP(w, r)
	}))
	start(srv, edge)
	t.Cleanup(func() { srv.Close(); edge.Close(); db.Close() })
	h := &harness{t: t, cfg: cfg, router: r, dev: dev, srv: srv, edge: edge, dbPath: dbPath, inHandler: inHandler, db: db}
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

func (h *harness) dial(path string) *client {
	if h.srv.TLS == nil {
		return presencetest.Dial(h.t, h.url(path))
	}
	h.t.Helper()
	dialer := websocket.Dialer{TLSClientConfig: h.srv.Client().Transport.(*http.Transport).TLSClientConfig}
	c, resp, err := dialer.Dial(h.url(path), nil)
	if err != nil {
		h.t.Fatalf("dial %s: %v (%v)", h.url(path), err, resp)
	}
	h.t.Cleanup(func() { c.Close() })
	return &client{T: h.t, Conn: c}
}

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

// rawDevice is a device on a plain TCP socket, for tests that need to
// control exactly which bytes go out in one write, or to read nothing.
type rawDevice struct {
	c       net.Conn
	br      *bufio.Reader
	session string
}

// dialRaw upgrades a plain socket and connects as email.
func (h *harness) dialRaw(email string) *rawDevice {
	h.t.Helper()
	host := strings.TrimPrefix(h.srv.URL, "http://")
	c, err := net.Dial("tcp", host)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	d := &rawDevice{c: c, br: bufio.NewReader(c)}
	c.Write([]byte(rawUpgrade(host, "/presence")))
	if resp, err := http.ReadResponse(d.br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		h.t.Fatalf("upgrade: %v %v", resp, err)
	}
	c.Write(maskedText(`{"type":"connect","assertion":"` + h.dev.Mint(email, time.Hour) + `","application_ids":[` + itoa(int64(h.app)) + `]}`))
	var answer struct {
		Result  bool   `json:"result"`
		Session string `json:"session_id"`
	}
	if got := readFrame(h.t, d.br); json.Unmarshal([]byte(got), &answer) != nil || !answer.Result {
		h.t.Fatalf("connect: %s", got)
	}
	d.session = answer.Session
	return d
}

// readServerFrame reads one unmasked server frame: its opcode and payload.
func readServerFrame(t testing.TB, br *bufio.Reader) (op byte, payload string) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatal(err)
	}
	n := int(h[1] & 0x7F)
	if n == 126 {
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			t.Fatal(err)
		}
		n = int(binary.BigEndian.Uint16(l[:]))
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatal(err)
	}
	return h[0] & 0x0F, string(p)
}
