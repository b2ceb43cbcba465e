package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presence-service/presence/internal/presencetest"
)

// The hostile-input suite: every surface (device WebSocket, app
// WebSocket, HTTP POSTs and pages, the XMPP stream) gets input a broken
// or hostile peer would send, and each case asserts the contract's exact
// answer (errno, HTTP status, close code, stream error), then that a
// healthy client is served right after. One whole server (presence serve
// on :0) per surface.

// hostile is the server and what its cases need.
type hostile struct {
	t           *testing.T
	n           *node
	app         int64  // active, with key
	key         string //
	other       int64  // another active app
	otherKey    string
	inactive    int64  // registered and verified, never activated
	puid        string // ann's grant of app
	otherPUID   string // ann's grant of other
	annToken    string // a dev assertion for ann@example.com
	healthyTok  string // one for healthy@example.com
	nextSource  atomic.Int32
	healthyDevs atomic.Int32
}

func newHostile(t *testing.T) *hostile {
	t.Helper()
	n := startNode(t, writeConfig(t, ""))
	h := &hostile{t: t, n: n}
	h.app, h.key = n.newApp("beer.example")
	h.other, h.otherKey = n.newApp("game.example")
	var added struct {
		AppID int64 `json:"app_id"`
	}
	n.cli(&added, "apps", "add", "--domain", "idle.example", "--name", "Idle", "--email", "dev@idle.example", "--verified")
	h.inactive = added.AppID
	b := presencetest.NewBrowser(t, n.http(""))
	b.Login("ann@example.com")
	h.puid = b.Allow(fmt.Sprint(h.app), "https://beer.example/back", "ann")
	h.otherPUID = b.Allow(fmt.Sprint(h.other), "https://game.example/back", "ann")
	h.annToken = n.token("ann@example.com")
	h.healthyTok = n.token("healthy@example.com")
	return h
}

// source is a fresh loopback address (127.0.N.M) to dial from: cases
// that send wrong keys each come from their own, so that the key guard's
// per-source limit answers what the contract says for one wrong key.
func (h *hostile) source() string {
	n := h.nextSource.Add(1)
	return fmt.Sprintf("127.0.%d.%d", 1+n/250, 1+n%250)
}

func dialerFrom(src string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
}

// ws dials a WebSocket path, from src when it is not empty.
func (h *hostile) ws(path, src string) *presencetest.WS {
	h.t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if src != "" {
		d.NetDialContext = dialerFrom(src).DialContext
	}
	c, resp, err := d.Dial(h.n.ws(path), nil)
	if err != nil {
		h.t.Fatalf("dial %s: %v (%v)", path, err, resp)
	}
	h.t.Cleanup(func() { c.Close() })
	return &presencetest.WS{T: h.t, Conn: c}
}

// answer is a JSON answer's result and errno.
type answer struct {
	Result     any `json:"result"`
	Errno      int `json:"errno"`
	RetryAfter int `json:"retry_after"`
}

func decodeAnswer(t *testing.T, frame string) answer {
	t.Helper()
	var a answer
	if err := json.Unmarshal([]byte(frame), &a); err != nil {
		t.Fatalf("answer %q is not JSON: %v", frame, err)
	}
	return a
}

// expectErrno reads the next frame and wants {"result":false,"errno":want}.
func expectErrno(t *testing.T, c *presencetest.WS, want int) answer {
	t.Helper()
	frame := c.Read()
	a := decodeAnswer(t, frame)
	if a.Result != false || a.Errno != want {
		t.Fatalf("got %s, want errno %d", frame, want)
	}
	return a
}

// healthyDevice connects a device of its own, sets a status and is
// answered: the device channel still serves.
func (h *hostile) healthyDevice(t *testing.T) {
	t.Helper()
	c := presencetest.Dial(t, h.n.ws("/presence"))
	defer c.Conn.Close()
	dev := fmt.Sprintf("healthy-%d", h.healthyDevs.Add(1))
	c.Send(fmt.Sprintf(`{"type":"connect","assertion":%q,"application_ids":[],"device_id":%q}`, h.healthyTok, dev))
	var ok struct {
		Result  bool   `json:"result"`
		Session string `json:"session_id"`
	}
	c.Decode(&ok)
	if !ok.Result || ok.Session == "" {
		t.Fatalf("healthy device: connect answered %+v", ok)
	}
	c.Send(fmt.Sprintf(`{"type":"status","session_id":%q,"status":"online"}`, ok.Session))
	c.Expect(`{"result":true}`)
}

// healthyApp opens a new app channel with the right key and probes.
func (h *hostile) healthyApp(t *testing.T) {
	t.Helper()
	c := presencetest.Dial(t, h.n.ws(fmt.Sprintf("/%d", h.app)))
	defer c.Conn.Close()
	c.Send(fmt.Sprintf(`{"key":%q}`, h.key))
	c.Expect(`{"result":true}`)
	c.Send(fmt.Sprintf(`{"type":"probe","UIDs":[%q]}`, h.puid))
	var got []struct {
		UID    string `json:"UID"`
		Status string `json:"status"`
	}
	for {
		frame := c.Read()
		if json.Unmarshal([]byte(frame), &got) == nil && len(got) == 1 && got[0].UID == h.puid {
			return // updates may come first; the probe's answer names the PUID
		}
	}
}

// healthyPost stores one notification with the right key.
func (h *hostile) healthyPost(t *testing.T) {
	t.Helper()
	status, body, _ := h.post(http.DefaultClient, fmt.Sprintf("/%d/notification", h.app), "Bearer "+h.key,
		fmt.Sprintf(`[{"UID":%q,"message":"still here"}]`, h.puid))
	if status != http.StatusOK {
		t.Fatalf("healthy POST: %d %s", status, body)
	}
}

// healthyPage loads a page of the site.
func (h *hostile) healthyPage(t *testing.T) {
	t.Helper()
	resp, err := http.Get(h.n.http("/login"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthy GET /login: %d", resp.StatusCode)
	}
}
