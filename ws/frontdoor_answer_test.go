package ws_test

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/presence-service/presence/ws"
)

// The store answers a POST on its own goroutine while the connection
// reads on: pipelined requests that are refused at once (a wrong key, a
// bad body) or handed to net/http still wait for the stored ones before
// them, so every answer comes in the order of its request.
func TestFrontDoorPosts_AnswersKeepTheOrderOfRequests(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	host := strings.TrimPrefix(h.srv.URL, "http://")
	c, br := dialRaw(t, h)
	wrong := []byte(h.key)
	wrong[0] ^= 1
	reqs := rawPost(host, int64(h.app), h.key, "["+item(puid, "one")+"]") +
		rawPost(host, int64(h.app), string(wrong), "["+item(puid, "refused")+"]") +
		rawPost(host, int64(h.app), h.key, "["+item(puid, "two")+"]") +
		rawPost(host, int64(h.app), h.key, `[{"UID":`) +
		rawPost(host, int64(h.app), h.key, "["+item(puid, "three")+"]") +
		"GET /healthz HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
	if _, err := io.WriteString(c, reqs); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		status int
		body   string
	}{
		{200, `"queue_size":1,`},
		{401, `"errno":40`},
		{200, `"queue_size":2,`},
		{400, `"errno":3`},
		{200, `"queue_size":3,`},
		{200, "ok"},
	}
	for i, w := range want {
		status, body, _ := readAnswer(t, br)
		if status != w.status || !strings.Contains(body, w.body) {
			t.Fatalf("answer %d: %d %s, want %d with %s", i, status, body, w.status, w.body)
		}
	}
}

// A client may send its request and close its side at once: the answer
// still comes, and then the end of the connection.
func TestFrontDoorPosts_AnsweredAfterTheClientClosesItsSide(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	host := strings.TrimPrefix(h.srv.URL, "http://")
	c, br := dialRaw(t, h)
	io.WriteString(c, rawPost(host, int64(h.app), h.key, "["+item(puid, "x")+"]"))
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if status, body, _ := readAnswer(t, br); status != 200 || !strings.Contains(body, `"queue_size":1,`) {
		t.Fatalf("got %d %s, want 200", status, body)
	}
	wantEOF(t, br, "after the answer")
}

// A store that does not answer in time (here another process holds the
// database's write lock) gets the request an error answer instead of
// none. The write it was given may still land, as with any answer that
// is lost; its late outcome is not written over the next request's.
func TestFrontDoorPosts_StoreThatDoesNotAnswerInTime(t *testing.T) {
	h := newHarness(t, nil)
	ws.SetAnswerTimeout(t, 300*time.Millisecond)
	puid := h.grant("ann@example.com", h.app)
	host := strings.TrimPrefix(h.srv.URL, "http://")

	release := holdWriteLock(t, h)

	c, br := dialRaw(t, h)
	io.WriteString(c, rawPost(host, int64(h.app), h.key, "["+item(puid, "late")+"]"))
	status, body, _ := readAnswer(t, br)
	if status != 500 || !strings.Contains(body, `"errno":50`) {
		t.Fatalf("while the store is locked: %d %s, want 500 errno 50", status, body)
	}
	release()

	// The late write lands before or with this one; either way this
	// answer is this request's own.
	io.WriteString(c, rawPost(host, int64(h.app), h.key, "["+item(puid, "next")+"]"))
	status, body, _ = readAnswer(t, br)
	if status != 200 || !strings.Contains(body, `"queue_size":2,`) {
		t.Fatalf("after the lock: %d %s, want 200 with queue size 2", status, body)
	}
}
