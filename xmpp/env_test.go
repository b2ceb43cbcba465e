package xmpp_test

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/memstore"
	pxmpp "github.com/presence-service/presence/xmpp"
)

const domain = "presence.localhost"

// env is a whole Presence minus the WebSocket edge: SQLite store, router,
// one active app with two granted users, and the XEP-0114 listener on a
// loopback port.
type env struct {
	t      *testing.T
	db     *memstore.Store
	router *core.Router
	srv    *pxmpp.Server
	addr   string // host:port of the listener
	app    core.AppID
	key    string
	alice  string // PUIDs
	bob    string
}

type envOption func(*pxmpp.Config)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	db := memstore.New()
	keys, err := core.NewKeyring(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	r := core.NewRouter(db.Deps(), core.Options{Keys: keys, Logger: testLogger(t)})
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, router: r}
	e.app, e.key = e.newApp("beerchat.example")
	e.alice = e.grant("alice@example.com", e.app, "alice")
	e.bob = e.grant("bob@example.com", e.app, "bob")

	cfg := pxmpp.Config{Router: r, Domain: domain, Logger: testLogger(t)}
	for _, o := range opts {
		o(&cfg)
	}
	e.srv = pxmpp.NewServer(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, pxmpp.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		r.Shutdown(ctx)
		db.Close()
	})
	return e
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("XMPP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newApp registers, verifies and activates an app; it returns its key.
func (e *env) newApp(domain string) (core.AppID, string) {
	e.t.Helper()
	ctx := context.Background()
	a, err := e.router.RegisterApp(ctx, "dev@example.com", domain, "Beer chat", "")
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.router.MarkVerified(ctx, a.ID); err != nil {
		e.t.Fatal(err)
	}
	_, key, err := e.router.ActivateApp(ctx, a.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return a.ID, key
}

func (e *env) grant(user string, app core.AppID, as string) string {
	e.t.Helper()
	g, err := e.router.Grant(context.Background(), core.Identity{Subject: user, Email: user}, app, as)
	if err != nil {
		e.t.Fatal(err)
	}
	return g.PUID
}

func (e *env) componentJID(app core.AppID) jid.JID {
	return jid.MustParse(strconv.FormatInt(int64(app), 10) + "." + domain)
}

func userJID(puid string) string { return puid + "@" + domain }

// device is a fake core.DeviceSink: what the router pushes to a device.
type device struct {
	sess  *core.Session
	notes chan core.Notification
}

func (d *device) SendNotifications(ns []core.Notification) {
	for _, n := range ns {
		d.notes <- n
	}
}
func (d *device) Close(core.Errno) {}

// connect connects a device of user that shows its status to the apps.
func (e *env) connect(user string, apps ...core.AppID) *device {
	e.t.Helper()
	d := &device{notes: make(chan core.Notification, 100)}
	s, ignored, err := e.router.Connect(context.Background(), core.ConnectRequest{
		Identity: core.Identity{Subject: user, Email: user}, DeviceID: "phone", AppIDs: apps, Sink: d})
	if err != nil || len(ignored) > 0 {
		e.t.Fatalf("Connect: %v, ignored %v", err, ignored)
	}
	d.sess = s
	return d
}

func (e *env) setStatus(d *device, st core.Status, msg string) {
	e.t.Helper()
	if err := e.router.SetStatus(d.sess, core.Presence{Status: st, Message: msg}, nil); err != nil {
		e.t.Fatal(err)
	}
}

// got is a stanza as a component received it.
type got struct {
	XMLName xml.Name
	From    string `xml:"from,attr"`
	To      string `xml:"to,attr"`
	Type    string `xml:"type,attr"`
	ID      string `xml:"id,attr"`
	Show    string `xml:"show"`
	Status  string `xml:"status"`
	Delay   *struct {
		Stamp string `xml:"stamp,attr"`
	} `xml:"urn:xmpp:delay delay"`
	Received *struct {
		ID string `xml:"id,attr"`
	} `xml:"urn:xmpp:receipts received"`
	Error *struct {
		Type  string `xml:"type,attr"`
		Conds []struct {
			XMLName xml.Name
		} `xml:",any"`
	} `xml:"error"`
}

// cond is the defined condition of an error stanza.
func (g got) cond() string {
	if g.Error == nil {
		return ""
	}
	for _, c := range g.Error.Conds {
		if c.XMLName.Local != "text" {
			return c.XMLName.Local
		}
	}
	return ""
}

// client is a component connected with mellium's own component client.
type client struct {
	t      *testing.T
	s      *xmpp.Session
	conn   net.Conn
	in     chan got
	served chan error
}

// dial connects as app's component with key; the session serves in the
// background, each stanza received lands in c.in.
func (e *env) dial(app core.AppID, key string) (*client, error) {
	e.t.Helper()
	nc, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	return startClient(e.t, nc, e.componentJID(app), key)
}

func startClient(t *testing.T, nc net.Conn, addr jid.JID, key string) (*client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := component.NewSession(ctx, addr, []byte(key), nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c := &client{t: t, s: s, conn: nc, in: make(chan got, 1000), served: make(chan error, 1)}
	go func() {
		c.served <- s.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			var g got
			if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r)).Decode(&g); err != nil {
				return err
			}
			c.in <- g
			return nil
		}))
	}()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { s.Close(); nc.Close() }) })
	return c, nil
}

func (e *env) mustDial() *client {
	e.t.Helper()
	c, err := e.dial(e.app, e.key)
	if err != nil {
		e.t.Fatalf("component handshake: %v", err)
	}
	return c
}

// next returns the next stanza received, failing after a while.
func (c *client) next() got {
	c.t.Helper()
	select {
	case g := <-c.in:
		return g
	case err := <-c.served:
		c.t.Fatalf("stream ended while waiting for a stanza: %v", err)
	case <-time.After(5 * time.Second):
		c.t.Fatal("no stanza within 5 s")
	}
	return got{}
}

// none checks that nothing arrives for a short while.
func (c *client) none() {
	c.t.Helper()
	select {
	case g := <-c.in:
		c.t.Fatalf("unexpected stanza %+v", g)
	case <-time.After(200 * time.Millisecond):
	}
}

// ended waits for the stream to end and returns Serve's error (the
// stream error received, for instance).
func (c *client) ended() error {
	c.t.Helper()
	select {
	case err := <-c.served:
		return err
	case <-time.After(5 * time.Second):
		c.t.Fatal("stream still open after 5 s")
	}
	return nil
}

// send writes raw XML on the stream.
func (c *client) send(raw string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, raw); err != nil {
		c.t.Fatal(err)
	}
}
