package ws_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/internal/presencetest"
)

// from returns a dialer whose connections come from the loopback address
// src (any 127.0.0.0/8 address is ours on Linux): a second source.
func from(src string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return d.DialContext
}

func postFrom(t *testing.T, client *http.Client, url, key, body string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), resp.Header
}

// Guessing keys by POST: past core.KeyFailureBurstBySource wrong keys the
// source gets 429 errno 29 with Retry-After, even with the right key; an
// app server at another address is served.
func TestNotifyKeyGuessingIsMetered(t *testing.T) {
	for _, door := range doors {
		t.Run(door.name, func(t *testing.T) {
			h := newHarnessWith(t, nil, door.frontDoor)
			puid := h.grant("ann@example.com", h.app)
			url := fmt.Sprintf("%s/%d/notification", h.srv.URL, h.app)
			body := "[" + item(puid, "hi") + "]"
			guesser := &http.Client{Transport: &http.Transport{DialContext: from("127.0.0.1")}}
			for i := range core.KeyFailureBurstBySource {
				if status, got, _ := postFrom(t, guesser, url, fmt.Sprintf("guess-%d", i), body); status != http.StatusUnauthorized {
					t.Fatalf("guess %d: %d %s, want 401", i, status, got)
				}
			}
			status, got, hdr := postFrom(t, guesser, url, h.key, body)
			want := `{"result":"error","errno":29,"reason":"slow down: too many wrong API keys from this address"}`
			if status != http.StatusTooManyRequests || got != want || hdr.Get("Retry-After") != "6" {
				t.Fatalf("after %d wrong keys: %d %s Retry-After %q\nwant 429 %s Retry-After 6", core.KeyFailureBurstBySource, status, got, hdr.Get("Retry-After"), want)
			}
			other := &http.Client{Transport: &http.Transport{DialContext: from("127.0.0.2")}}
			if status, got, _ := postFrom(t, other, url, h.key, body); status != http.StatusOK {
				t.Fatalf("the app's server at another address: %d %s, want 200", status, got)
			}
			if n := h.router.Metrics.KeyChecksRefused.Load(); n != 1 {
				t.Fatalf("key checks refused: %d, want 1", n)
			}
		})
	}
}

// Guessing keys over the app WebSocket: errno 29 with retry_after, then
// the close; the app itself, elsewhere, connects.
func TestAppChannelKeyGuessingIsMetered(t *testing.T) {
	h := newHarness(t, nil)
	dialer := websocket.Dialer{NetDialContext: from("127.0.0.1")}
	dial := func() *client {
		c, resp, err := dialer.Dial(h.url(fmt.Sprintf("/%d", h.app)), nil)
		if err != nil {
			t.Fatalf("dial: %v (%v)", err, resp)
		}
		t.Cleanup(func() { c.Close() })
		return &client{T: t, Conn: c}
	}
	for range core.KeyFailureBurstBySource {
		c := dial()
		c.Send(`{"key":"not the key"}`)
		c.Expect(`{"result":false,"errno":40,"reason":"wrong API key"}`)
		c.ExpectClosed()
	}
	c := dial()
	c.Send(`{"key":"` + h.key + `"}`)
	c.Expect(`{"result":false,"errno":29,"reason":"slow down: too many wrong API keys from this address","retry_after":6}`)
	if code := c.ExpectClosed(); code != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
	other := websocket.Dialer{NetDialContext: from("127.0.0.2")}
	oc, resp, err := other.Dial(h.url(fmt.Sprintf("/%d", h.app)), nil)
	if err != nil {
		t.Fatalf("dial from 127.0.0.2: %v (%v)", err, resp)
	}
	defer oc.Close()
	app := &presencetest.WS{T: t, Conn: oc}
	app.Send(`{"key":"` + h.key + `"}`)
	app.Expect(`{"result":true}`)
}
