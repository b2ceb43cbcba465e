package ws_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // for holdWriteLock's own connection

	"github.com/presence-service/presence/ws"
)

// These tests speak HTTP/1.1 by hand on one connection, as a client
// library with keep-alive and pipelining does, and check what it reads.

// rawPost is a notification POST by hand, with extra header lines.
func rawPost(host string, app int64, key, body string, extra ...string) string {
	return fmt.Sprintf("POST /%d/notification HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s", app, host, key, strings.Join(extra, ""), len(body), body)
}

// readAnswer reads one HTTP answer and returns its status, body and header.
func readAnswer(t *testing.T, br *bufio.Reader) (int, string, http.Header) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(b)), resp.Header
}

// wantEOF fails the test unless the server closes the connection next,
// with nothing more to read; what says after what.
func wantEOF(t *testing.T, br *bufio.Reader, what string) {
	t.Helper()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("%s: %v, want EOF", what, err)
	}
}

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 5 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// holdWriteLock takes the database's write lock from another connection,
// as another process would, until release: the store's writes wait.
func holdWriteLock(t *testing.T, h *harness) (release func()) {
	t.Helper()
	other, err := sql.Open("sqlite3", h.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	ctx := context.Background()
	lock, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	if _, err := lock.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if _, err := lock.ExecContext(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
	}
}

func dialRaw(t *testing.T, h *harness) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(h.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// One keep-alive connection: pipelined POSTs answered in order, a body
// that comes in pieces, then a request of another route and a POST after
// it, on the same connection.
func TestPosts_KeepAlive(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	host := strings.TrimPrefix(h.srv.URL, "http://")
	c, br := dialRaw(t, h)
	one := "[" + item(puid, "one") + "]"
	two := "[" + item(puid, "two") + "," + item(puid, "three") + "]"
	if _, err := io.WriteString(c, rawPost(host, int64(h.app), h.key, one)+rawPost(host, int64(h.app), h.key, two)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"result":"OK","queue_size":1,"results":[{"UID":"` + puid + `","queue_size":1}]}`,
		`{"result":"OK","queue_size":3,"results":[{"UID":"` + puid + `","queue_size":3},{"UID":"` + puid + `","queue_size":3}]}`,
	}
	for _, w := range want {
		status, body, hdr := readAnswer(t, br)
		if status != 200 || body != w || hdr.Get("Content-Type") != "application/json" || hdr.Get("Date") == "" {
			t.Fatalf("got %d %s %v\nwant 200 %s", status, body, hdr, w)
		}
	}

	req := rawPost(host, int64(h.app), h.key, "["+item(puid, "four")+"]")
	for i := 0; i < len(req); i += 9 {
		if _, err := io.WriteString(c, req[i:min(i+9, len(req))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // in pieces, so the server reads them apart
	}
	if status, body, _ := readAnswer(t, br); status != 200 || !strings.Contains(body, `"queue_size":4`) {
		t.Fatalf("in pieces: %d %s", status, body)
	}

	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	if status, body, _ := readAnswer(t, br); status != 200 || body != "ok" {
		t.Fatalf("GET /healthz on the same connection: %d %q", status, body)
	}
	io.WriteString(c, rawPost(host, int64(h.app), h.key, "["+item(puid, "five")+"]"))
	if status, body, _ := readAnswer(t, br); status != 200 || !strings.Contains(body, `"queue_size":5`) {
		t.Fatalf("POST after the hand-off: %d %s", status, body)
	}
	pending, err := h.db.PendingNotifications(t.Context(), "ann@example.com", nil)
	if err != nil || len(pending) != 5 {
		t.Fatalf("stored %d (%v), want 5", len(pending), err)
	}
	for i, m := range []string{"one", "two", "three", "four", "five"} {
		if pending[i].Message != m {
			t.Fatalf("item %d is %q, want %q", i, pending[i].Message, m)
		}
	}
}

// Unusual but valid requests are served, and broken ones refused, whether
// they come first on their connection or after a POST.
func TestPosts_UnusualRequests(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	host := strings.TrimPrefix(h.srv.URL, "http://")
	body := "[" + item(puid, "x") + "]"
	chunked := fmt.Sprintf("POST /%d/notification HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n",
		h.app, host, h.key, len(body), body)
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"chunked body", chunked, 200},
		{"two Content-Lengths", strings.Replace(rawPost(host, int64(h.app), h.key, body), "Content-Length:", "Content-Length: 1\r\nContent-Length:", 1), 400},
		{"folded header (net/http unfolds it)", strings.Replace(rawPost(host, int64(h.app), h.key, body), "Content-Type: application/json\r\n", "Content-Type: application/\r\n  json\r\n", 1), 200},
		{"bare LF", strings.Replace(rawPost(host, int64(h.app), h.key, body), "Content-Type: application/json\r\n", "Content-Type: application/json\n", 1), 200},
		{"Expect: 100-continue", rawPost(host, int64(h.app), h.key, body, "Expect: 100-continue\r\n"), 200},
		{"HTTP/1.0", strings.Replace(rawPost(host, int64(h.app), h.key, body), "HTTP/1.1", "HTTP/1.0", 1), 200},
		{"no Host", strings.Replace(rawPost(host, int64(h.app), h.key, body), "Host: "+host+"\r\n", "", 1), 400},
		{"query string", strings.Replace(rawPost(host, int64(h.app), h.key, body), "/notification ", "/notification?x=1 ", 1), 200},
		{"over 512 KiB", rawPost(host, int64(h.app), h.key, "["+strings.Repeat(" ", 600<<10)+"]"), 413},
	} {
		for _, afterPost := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/after a POST %v", tc.name, afterPost), func(t *testing.T) {
				c, br := dialRaw(t, h)
				if afterPost {
					io.WriteString(c, rawPost(host, int64(h.app), h.key, body))
					if status, _, _ := readAnswer(t, br); status != 200 {
						t.Fatalf("first POST: %d", status)
					}
				}
				go io.WriteString(c, tc.req) // a large body is read while it is written
				status, got, _ := readAnswer(t, br)
				if status == http.StatusContinue {
					status, got, _ = readAnswer(t, br)
				}
				if status != tc.status {
					t.Fatalf("got %d %s, want %d", status, got, tc.status)
				}
			})
		}
	}
}

// Connection: close is answered with Connection: close, and the
// connection then ends.
func TestPosts_ConnectionClose(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	host := strings.TrimPrefix(h.srv.URL, "http://")
	c, br := dialRaw(t, h)
	io.WriteString(c, rawPost(host, int64(h.app), h.key, "["+item(puid, "x")+"]", "Connection: close\r\n"))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("got %d, close %v: want 200 and Connection: close", resp.StatusCode, resp.Close)
	}
	wantEOF(t, br, "after the answer")
}

// A server shutting down waits for the POST whose batch is in the store:
// it is answered, and then its connection closes.
func TestPosts_ShutdownWaitsForTheRequestInTheStore(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	host := strings.TrimPrefix(h.srv.URL, "http://")
	c, br := dialRaw(t, h)
	io.WriteString(c, rawPost(host, int64(h.app), h.key, "["+item(puid, "first")+"]"))
	if status, _, _ := readAnswer(t, br); status != 200 {
		t.Fatalf("first POST: %d", status)
	}
	release := holdWriteLock(t, h) // the next batch waits in the store
	io.WriteString(c, rawPost(host, int64(h.app), h.key, "["+item(puid, "held")+"]"))
	waitFor(t, "the request in its handler", func() bool { return h.inHandler.Load() == 1 })

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- h.srv.Config.Shutdown(ctx)
	}()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request in the store", err)
	case <-time.After(200 * time.Millisecond):
	}
	release()
	status, body, _ := readAnswer(t, br)
	if status != 200 || !strings.Contains(body, `"queue_size":2,`) {
		t.Fatalf("the request in the store: %d %s, want 200 with queue size 2", status, body)
	}
	wantEOF(t, br, "after the answer")
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// Every request of a keep-alive connection has its key checked: a wrong
// key, another app's id, a rotated key and a deactivated app are each
// refused on the same connection, and the new key is taken.
func TestPosts_KeyCheckedOnEveryRequest(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	puid := h.grant("ann@example.com", h.app)
	other, otherKey := h.newApp("wine.example")
	host := strings.TrimPrefix(h.srv.URL, "http://")
	c, br := dialRaw(t, h)
	body := "[" + item(puid, "hi") + "]"
	post := func(app int64, key string) (int, string) {
		t.Helper()
		if _, err := io.WriteString(c, rawPost(host, app, key, body)); err != nil {
			t.Fatal(err)
		}
		status, b, _ := readAnswer(t, br)
		return status, b
	}
	wrong := []byte(h.key)
	wrong[len(wrong)/2] ^= 1 // same length, one bit off
	steps := []struct {
		name   string
		app    int64
		key    string
		before func()
		status int
		errno  string
	}{
		{name: "good key", app: int64(h.app), key: h.key, status: 200},
		{name: "good key again", app: int64(h.app), key: h.key, status: 200},
		{name: "one bit off", app: int64(h.app), key: string(wrong), status: 401, errno: `"errno":40`},
		{name: "good key after a wrong one", app: int64(h.app), key: h.key, status: 200},
		{name: "the other app's id with this app's key", app: int64(other), key: h.key, status: 401, errno: `"errno":40`},
		{name: "the other app's own key", app: int64(other), key: otherKey, status: 404, errno: `"errno":44`},
		{name: "old key after rotation", app: int64(h.app), key: h.key, status: 401, errno: `"errno":40`,
			before: func() {
				_, key, err := h.router.RotateKey(ctx, h.app)
				if err != nil {
					t.Fatal(err)
				}
				h.key = key
			}},
		{name: "new key", app: int64(h.app), status: 200},
		{name: "deactivated", app: int64(h.app), status: 403, errno: `"errno":41`,
			before: func() {
				if _, err := h.router.DeactivateApp(ctx, h.app); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		key := s.key
		if key == "" {
			key = h.key
		}
		status, b := post(s.app, key)
		if status != s.status || !strings.Contains(b, s.errno) {
			t.Fatalf("%s: %d %s, want %d %s", s.name, status, b, s.status, s.errno)
		}
	}
}

// Pipelined requests are answered in the order they came, those refused
// at once (a wrong key, a bad body) and those of other routes included.
func TestPosts_AnswersKeepTheOrderOfRequests(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	host := strings.TrimPrefix(h.srv.URL, "http://")
	c, br := dialRaw(t, h)
	wrong := []byte(h.key)
	wrong[0] ^= 1
	var big []string // 60 items: a body of about 9 KiB
	for i := range 60 {
		big = append(big, item(puid, fmt.Sprintf("big %d %s", i, strings.Repeat("x", 100))))
	}
	reqs := rawPost(host, int64(h.app), h.key, "["+item(puid, "one")+"]") +
		rawPost(host, int64(h.app), string(wrong), "["+item(puid, "refused")+"]") +
		rawPost(host, int64(h.app), h.key, "["+item(puid, "two")+"]") +
		rawPost(host, int64(h.app), h.key, `[{"UID":`) +
		rawPost(host, int64(h.app), h.key, "["+strings.Join(big, ",")+"]") +
		"GET /healthz HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
	go io.WriteString(c, reqs)
	want := []struct {
		status int
		body   string
	}{
		{200, `"queue_size":1,`},
		{401, `"errno":40`},
		{200, `"queue_size":2,`},
		{400, `"errno":3`},
		{200, `"queue_size":62,`},
		{200, "ok"},
	}
	for i, w := range want {
		status, body, _ := readAnswer(t, br)
		if status != w.status || !strings.Contains(body, w.body) {
			t.Fatalf("answer %d: %d %.200s, want %d with %s", i, status, body, w.status, w.body)
		}
	}
}

// A client may send its request and close its side at once: the answer
// still comes, and then the end of the connection.
func TestPosts_AnsweredAfterTheClientClosesItsSide(t *testing.T) {
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
// none. The write it was given may still land or not, as with any answer
// that is lost; the next request gets its own answer.
func TestPosts_StoreThatDoesNotAnswerInTime(t *testing.T) {
	h := newHarness(t, nil)
	ws.SetNotifyTimeout(t, 300*time.Millisecond)
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
	io.WriteString(c, rawPost(host, int64(h.app), h.key, "["+item(puid, "next")+"]"))
	status, body, _ = readAnswer(t, br)
	if status != 200 || !strings.Contains(body, `"queue_size":1,`) && !strings.Contains(body, `"queue_size":2,`) {
		t.Fatalf("after the lock: %d %s, want 200 with queue size 1 or 2", status, body)
	}
}
