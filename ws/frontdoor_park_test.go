package ws_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // for holdWriteLock's own connection

	"github.com/presence-service/presence/ws"
)

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

// parkedConn dials the front door and makes one POST for puid; after its
// answer the connection waits in the poller.
func parkedConn(t *testing.T, h *harness, puid string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, br := dialRaw(t, h)
	io.WriteString(c, rawPost(strings.TrimPrefix(h.srv.URL, "http://"), int64(h.app), h.key, "["+item(puid, "first")+"]"))
	if status, _, _ := readAnswer(t, br); status != 200 {
		t.Fatalf("first POST: %d", status)
	}
	return c, br
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

// After its first request a keep-alive connection waits in the poller,
// whose collector serves the requests that follow: each is answered in
// turn, stored, and counted as the collector's (on Linux, where the
// poller is).
func TestFrontDoorPosts_ParkedConnectionServesRequests(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	host := strings.TrimPrefix(h.srv.URL, "http://")
	c, br := dialRaw(t, h)
	const n = 20
	for i := 1; i <= n; i++ {
		io.WriteString(c, rawPost(host, int64(h.app), h.key, "["+item(puid, fmt.Sprint(i))+"]"))
		status, body, _ := readAnswer(t, br)
		if status != 200 || !strings.Contains(body, fmt.Sprintf(`"queue_size":%d,`, i)) {
			t.Fatalf("POST %d: %d %s", i, status, body)
		}
		// The answer's writer gives its token just after the write: a
		// request that came before it would go back to the loop.
		waitFor(t, "the answer given", func() bool { return h.edge.PostsBusy() == 0 })
	}
	got := h.edge.PostsCollected()
	if runtime.GOOS == "linux" && got != n-1 {
		t.Fatalf("the collectors served %d of the %d requests after the first", got, n-1)
	}
	// A batch larger than the read buffer: the collector grows it.
	var batch []string
	for i := range 60 {
		batch = append(batch, item(puid, fmt.Sprintf("batch %d %s", i, strings.Repeat("x", 100))))
	}
	io.WriteString(c, rawPost(host, int64(h.app), h.key, "["+strings.Join(batch, ",")+"]"))
	if status, body, _ := readAnswer(t, br); status != 200 || !strings.Contains(body, fmt.Sprintf(`"queue_size":%d,`, n+60)) {
		t.Fatalf("batch of 60: %d %.200s", status, body)
	}
	if got := h.edge.PostsCollected(); runtime.GOOS == "linux" && got != n {
		t.Fatalf("the collectors served %d requests, want %d with the batch", got, n)
	}
	pending, err := h.router.Store().PendingNotifications(t.Context(), "ann@example.com", nil)
	if err != nil || len(pending) != n+60 {
		t.Fatalf("stored %d (%v), want %d", len(pending), err, n+60)
	}
}

// A parked connection is read by its collector however long ago the
// loop last set a read deadline: here the one of the first request's
// head, which passes while the connection waits.
func TestFrontDoorPosts_ParkedConnectionOutlivesTheLoopsDeadline(t *testing.T) {
	h := newHarness(t, nil)
	ws.SetHeadTimeout(t, 200*time.Millisecond)
	puid := h.grant("ann@example.com", h.app)
	host := strings.TrimPrefix(h.srv.URL, "http://")
	c, br := parkedConn(t, h, puid)
	waitFor(t, "the answer given", func() bool { return h.edge.PostsBusy() == 0 })
	time.Sleep(400 * time.Millisecond) // past the head's deadline, well within the idle timeout
	collected := h.edge.PostsCollected()
	io.WriteString(c, rawPost(host, int64(h.app), h.key, "["+item(puid, "later")+"]"))
	if status, body, _ := readAnswer(t, br); status != 200 || !strings.Contains(body, `"queue_size":2,`) {
		t.Fatalf("POST after the deadline passed: %d %s", status, body)
	}
	if got := h.edge.PostsCollected() - collected; runtime.GOOS == "linux" && got != 1 {
		t.Fatalf("the collector served %d requests, want 1 (the request went back to the loop)", got)
	}
}

// What a collector cannot serve without waiting goes back to the
// connection's goroutine, which answers it as it would have: requests
// written together (each waits for the answer before it), a refused key,
// a bad body, a body larger than the read buffer, another route, and a
// last request with Connection: close.
func TestFrontDoorPosts_ParkedConnectionHandsBackWhatNeedsAWait(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	host := strings.TrimPrefix(h.srv.URL, "http://")
	c, br := parkedConn(t, h, puid)
	wrong := []byte(h.key)
	wrong[0] ^= 1
	var big []string // 60 items: a body of about 9 KiB, more than the buffer
	for i := range 60 {
		big = append(big, item(puid, fmt.Sprintf("big %d %s", i, strings.Repeat("x", 100))))
	}
	reqs := rawPost(host, int64(h.app), h.key, "["+item(puid, "one")+"]") +
		rawPost(host, int64(h.app), string(wrong), "["+item(puid, "refused")+"]") +
		rawPost(host, int64(h.app), h.key, `[{"UID":`) +
		rawPost(host, int64(h.app), h.key, "["+strings.Join(big, ",")+"]") +
		"GET /healthz HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
	if _, err := io.WriteString(c, reqs); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		status int
		body   string
	}{
		{200, `"queue_size":2,`},
		{401, `"errno":40`},
		{400, `"errno":3`},
		{200, `"queue_size":62,`},
		{200, "ok"},
	}
	for i, w := range want {
		status, body, _ := readAnswer(t, br)
		if status != w.status || !strings.Contains(body, w.body) {
			t.Fatalf("answer %d: %d %s, want %d with %s", i, status, body, w.status, w.body)
		}
	}

	// A new connection, parked after its first request, then told to close.
	c2, br2 := parkedConn(t, h, puid)
	io.WriteString(c2, rawPost(host, int64(h.app), h.key, "["+item(puid, "last")+"]", "Connection: close\r\n"))
	resp, err := http.ReadResponse(br2, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"queue_size":64,`) || !resp.Close {
		t.Fatalf("Connection: close on a parked connection: %d %s, close %v", resp.StatusCode, b, resp.Close)
	}
	wantEOF(t, br2, "after the last answer")
}

// A parked connection idle for the idle timeout is closed; one whose
// requests keep coming within it is not. A connection its client closes
// while parked is let go.
func TestFrontDoorPosts_ParkedConnectionIdlesOut(t *testing.T) {
	h := newHarness(t, nil)
	ws.SetPostIdleTimeout(t, 400*time.Millisecond)
	puid := h.grant("ann@example.com", h.app)
	host := strings.TrimPrefix(h.srv.URL, "http://")

	busy, busyR := dialRaw(t, h)
	began := time.Now()
	for i := 1; time.Since(began) < time.Second; i++ {
		io.WriteString(busy, rawPost(host, int64(h.app), h.key, "["+item(puid, "busy")+"]"))
		if status, _, _ := readAnswer(t, busyR); status != 200 {
			t.Fatalf("POST %d, %v after the first: %d", i, time.Since(began), status)
		}
		time.Sleep(100 * time.Millisecond)
	}

	_, idleR := parkedConn(t, h, puid)
	answered := time.Now()
	wantEOF(t, idleR, "idle connection")
	if waited := time.Since(answered); waited < 300*time.Millisecond {
		t.Fatalf("closed %v after its answer, before the idle timeout", waited)
	}

	busy.Close()
	waitFor(t, "every connection let go", func() bool { return h.edge.PostConns() == 0 })
}

// ShutdownPosts waits for the request a collector handed to the store,
// which is answered, and then closes its connection.
func TestFrontDoorPosts_ShutdownWaitsForTheParkedRequest(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	host := strings.TrimPrefix(h.srv.URL, "http://")
	c, br := parkedConn(t, h, puid)

	// Another process holds the write lock: the next request waits in
	// the store.
	release := holdWriteLock(t, h)
	collected := h.edge.PostsCollected()
	waitFor(t, "the answer given", func() bool { return h.edge.PostsBusy() == 0 })
	io.WriteString(c, rawPost(host, int64(h.app), h.key, "["+item(puid, "held")+"]"))
	if runtime.GOOS == "linux" {
		waitFor(t, "collected", func() bool { return h.edge.PostsCollected() > collected })
	}

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- h.edge.ShutdownPosts(ctx)
	}()
	select {
	case err := <-shut:
		t.Fatalf("ShutdownPosts returned (%v) with a request in the store", err)
	case <-time.After(200 * time.Millisecond):
	}
	release()
	status, body, _ := readAnswer(t, br)
	if status != 200 || !strings.Contains(body, `"queue_size":2,`) {
		t.Fatalf("the request in the store: %d %s, want 200 with queue size 2", status, body)
	}
	wantEOF(t, br, "after the answer")
	if err := <-shut; err != nil {
		t.Fatalf("ShutdownPosts: %v", err)
	}
	if err := h.edge.ShutdownPosts(t.Context()); err != nil {
		t.Fatalf("ShutdownPosts again: %v", err)
	}
}
