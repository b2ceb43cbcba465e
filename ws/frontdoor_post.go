package ws

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/presence-service/presence/core"
)

// The front door also serves the notification endpoint itself, on the
// keep-alive connections of AppServices' POSTs: a connection whose first
// request is a plain POST /{app_id}/notification stays with the front
// door, which reads each request, answers it through the same code as
// net/http (Server.notify) and writes the answer in one write.
//
// Measured with presence-bench notify (single-item POSTs, 64 clients):
// net/http's share of a POST (its request and header maps, the response
// writer, a context and a background read per request) was about a fifth
// of the server's CPU. See BENCHMARKS.md.
//
// Only the plain case stays: HTTP/1.1, a Host, one Content-Length of at
// most maxNotifyBody, at most one Authorization, no Transfer-Encoding,
// no Expect, no Upgrade, every header line well formed. At the first
// request that is anything else (another route, a chunked body, a
// malformed line) the connection goes to net/http, with every byte not
// yet consumed put back in front, so that net/http answers it and every
// request after it as it would have from the start.

// postIdleTimeout is how long a connection may wait between requests, as
// http.Server.IdleTimeout (cmd/presence sets 2 minutes).
// A variable, for a test to shorten (SetPostIdleTimeout).
var postIdleTimeout atomic.Int64

func init() { postIdleTimeout.Store(int64(2 * time.Minute)) }

func postIdle() time.Duration { return time.Duration(postIdleTimeout.Load()) }

// postHead is what the front door needs of a notification request's head.
type postHead struct {
	app    string // {app_id}, digits
	auth   []byte // the Authorization header, in the read buffer
	length int    // Content-Length
	close  bool   // Connection: close
}

const postPrefix = "POST /"

// notificationPost parses a request head (each line ending in CRLF,
// without the blank line) that net/http would route to serveNotify as it
// is; anything else reports false.
func notificationPost(head []byte) (h postHead, ok bool) {
	line, rest, found := bytes.Cut(head, []byte("\r\n"))
	if !found || !bytes.HasPrefix(line, []byte(postPrefix)) {
		return h, false
	}
	path, ok := bytes.CutSuffix(line[len(postPrefix):], []byte("/notification HTTP/1.1"))
	if !ok || len(path) == 0 || len(path) > 18 {
		return h, false
	}
	for _, c := range path {
		if c < '0' || c > '9' {
			return h, false
		}
	}
	h.app = string(path)
	var host, length, auth bool
	plain := eachHeader(rest, func(name, value []byte) bool {
		switch {
		case bytes.EqualFold(name, []byte("Host")):
			if host || !validHost(value) {
				return false
			}
			host = true
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length || len(value) == 0 || len(value) > 7 {
				return false
			}
			for _, c := range value {
				if c < '0' || c > '9' {
					return false
				}
				h.length = h.length*10 + int(c-'0')
			}
			length = true
			return h.length <= maxNotifyBody // else net/http answers 413
		case bytes.EqualFold(name, []byte("Authorization")):
			if auth {
				return false
			}
			h.auth, auth = value, true
		case bytes.EqualFold(name, []byte("Connection")):
			h.close = h.close || hasToken(value, "close")
		case bytes.EqualFold(name, []byte("Transfer-Encoding")), bytes.EqualFold(name, []byte("Expect")),
			bytes.EqualFold(name, []byte("Upgrade")):
			return false
		}
		return true
	})
	if !plain {
		return h, false
	}
	return h, host && length
}

// validHost reports whether a Host value is one net/http takes as it is:
// a name or address and an optional port, nothing to escape.
func validHost(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_':
		default:
			return false
		}
	}
	return true
}

// postConns are the connections the front door serves: at Shutdown the
// idle ones are closed and the busy ones finish their request, as
// net/http does with its own.
type postConns struct {
	deadline sharedDeadline // of their requests

	mu      sync.Mutex
	conns   map[*postConn]bool // true: busy with a request
	closed  bool
	closing chan struct{} // closed at shutdown: wakes the parked connections
	wg      sync.WaitGroup

	busy      atomic.Int64 // connections with a request in flight
	collected atomic.Int64 // requests a collector served (for the tests)
}

// closingCh is closed when the connections are to close.
func (p *postConns) closingCh() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing == nil {
		p.closing = make(chan struct{})
	}
	return p.closing
}

// busyCount is how many connections have a request in flight.
func (p *postConns) busyCount() int64 { return p.busy.Load() }

// add registers c; false once shutting down.
func (p *postConns) add(c *postConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if p.conns == nil {
		p.conns = make(map[*postConn]bool)
	}
	p.conns[c] = false
	p.wg.Add(1)
	return true
}

func (p *postConns) remove(c *postConn) {
	p.mu.Lock()
	if p.conns[c] {
		p.busy.Add(-1)
	}
	delete(p.conns, c)
	p.mu.Unlock()
	p.wg.Done()
}

// setBusy marks c busy (a request began) or idle; false when c is to go
// (shutting down) instead.
func (p *postConns) setBusy(c *postConn, busy bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if p.conns[c] != busy {
		if busy {
			p.busy.Add(1)
		} else {
			p.busy.Add(-1)
		}
	}
	p.conns[c] = busy
	return true
}

// answerOverdue answers the requests the store has kept past
// answerTimeout (the sweeper's, once a second); scratch is the sweeper's
// to reuse.
func (p *postConns) answerOverdue(now time.Time, scratch []*postConn) []*postConn {
	p.mu.Lock()
	for c, busy := range p.conns {
		if busy {
			scratch = append(scratch, c)
		}
	}
	p.mu.Unlock()
	for _, c := range scratch {
		c.answerIfOverdue(now)
	}
	clear(scratch)
	return scratch[:0]
}

// isBusy reports whether c has a request in flight.
func (p *postConns) isBusy(c *postConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns[c]
}

func (p *postConns) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// shutdown stops new requests, wakes the idle connections (which then
// close) and waits for the busy ones or ctx.
func (p *postConns) shutdown(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		if p.closing == nil {
			p.closing = make(chan struct{})
		}
		close(p.closing)
	}
	p.closed = true
	for c, busy := range p.conns {
		if !busy {
			c.nc.SetReadDeadline(time.Now())
		}
	}
	p.mu.Unlock()
	return waitCtx(ctx, &p.wg)
}

// ShutdownPosts closes the notification connections the front door serves
// once their request in progress is answered, like http.Server.Shutdown
// for its own; call it beside that, before Router.Shutdown.
func (s *Server) ShutdownPosts(ctx context.Context) error { return s.posts.shutdown(ctx) }

// postConn is one connection of notification POSTs.
type postConn struct {
	fd      *frontDoor
	nc      net.Conn
	raw     syscall.RawConn // nc's, for answers written without waiting; nil: a goroutine writes them
	buf     []byte          // buf[:n]: read, not yet answered (consume drops what was)
	n       int
	proven  provenKey
	scratch []byte // for comparing a key with the proven one

	postAnswer // the answer to the request in flight
	postPark   // while idle, the connection is a collector's (frontdoor_park.go)
}

// postBufSize is the buffer a connection keeps; a request larger than it
// gets a larger one for the time it takes.
const postBufSize = 4096

// servePosts serves c, from which first was read: a whole request head
// that notificationPost takes, and maybe more.
//
// A request handed to the store is answered by the goroutine that ends
// its commit (postAnswer.finish), while this one goes back to reading:
// it waits for that answer only before it serves the next request, which
// keeps the answers in order. Measured with presence-bench notify, single
// POSTs: waking this goroutine to write each answer left about 19 of
// them runnable at once after each sync, for 0.7 ms (median) before the
// answer went out; see BENCHMARKS.md.
func (fd *frontDoor) servePosts(c net.Conn, first []byte) {
	pc := &postConn{fd: fd, nc: c, buf: make([]byte, max(postBufSize, len(first)))}
	pc.n = copy(pc.buf, first)
	pc.answered = make(chan struct{}, 1)
	pc.resume, pc.closed = make(chan struct{}, 1), make(chan struct{}, 1)
	if tc, ok := c.(*net.TCPConn); ok {
		_, pc.raw = rawFD(tc)
	}
	if !fd.s.posts.add(pc) {
		c.Close()
		return
	}
	keepAlive(c)
	defer fd.s.posts.remove(pc)
	defer func() {
		if err := recover(); err != nil {
			fd.s.log.Error("panic serving a notification POST", "err", err, "stack", string(debug.Stack()))
			c.Close()
			if pc.inflight { // unless it was answered: the write fails, and the token comes
				pc.finish(pc.seq, notifyAnswer{status: http.StatusInternalServerError})
			}
			pc.awaitAnswer()
		}
	}()
	for {
		if !pc.park() { // idle too long, or the answer's write failed
			pc.awaitAnswer()
			c.Close()
			return
		}
		end := pc.readHead()
		pc.awaitAnswer() // a pipelined request waits for the one before
		if end == -1 {
			c.Close()
			return
		}
		h, plain := notificationPost(pc.buf[:max(end, 0)])
		if end < 0 || !plain || fd.s.router.ShuttingDown() {
			pc.handOff()
			return
		}
		if !fd.s.posts.setBusy(pc, true) {
			pc.handOff() // net/http answers that it is shutting down, or closes
			return
		}
		start := end + 2 // past the blank line
		if !pc.readBody(start + h.length) {
			c.Close()
			return
		}
		pc.dispatch(h, start)
		if h.close {
			pc.awaitAnswer()
			c.Close()
			return
		}
		pc.consume(start + h.length)
	}
}

// dispatch hands the request whose head is h and whose body starts at
// start in buf to the store; finish answers it. The body is decoded
// before notifyThen returns: the buffer is free for the next request
// once it has.
func (pc *postConn) dispatch(h postHead, start int) {
	body := pc.buf[start : start+h.length]
	auth := func(app core.AppID) error { return pc.authenticate(app, h.auth) }
	now := time.Now()
	pc.lastRequest.Store(now.UnixNano())
	seq := pc.begin(now, h.close)
	pc.fd.s.notifyThen(pc.fd.s.posts.deadline.context(now), h.app, auth, func() ([]byte, error) { return body, nil },
		func(a notifyAnswer) { pc.finish(seq, a) })
}

// provenKey is the Authorization a keep-alive connection last proved, and
// the app it proved it for: the router's cached copy, which nothing
// changes (a key rotation, a change of state, or the cache's 2 s turning
// over brings a new copy). A request that presents the same header for
// the same copy needs no new digest of its 1,024-character key (PROTOCOL
// §5); anything else is checked in full. Measured: the digest and the two
// copies of the key were a third of the bytes a single-item POST
// allocated.
type provenKey struct {
	app  *core.App
	auth []byte
}

// authenticate checks a request's Authorization header for app: against
// what the connection proved already, in constant time, or in full.
func (pc *postConn) authenticate(app core.AppID, auth []byte) error {
	r := pc.fd.s.router
	if pc.proven.app != nil {
		a, err := r.App(context.Background(), app)
		if err == nil && a == pc.proven.app {
			var same bool
			if same, pc.scratch = sameBytes(auth, pc.proven.auth, pc.scratch); same {
				return nil
			}
		}
	}
	a, err := pc.fd.s.authBearer(context.Background(), app, string(auth))
	if err != nil {
		pc.proven.app = nil
		return err
	}
	pc.proven = provenKey{app: a, auth: append(pc.proven.auth[:0], auth...)}
	return nil
}

// readHead reads until buf holds a whole request head and returns the
// index of its blank line's CRLF (the head is buf[:end], lines ending in
// CRLF). end is -1 when the peer closed or timed out (close without an
// answer, as net/http does with an idle connection) and -2 when the head
// is longer than the buffer (net/http's to answer).
func (pc *postConn) readHead() (end int) {
	for {
		if i := bytes.Index(pc.buf[:pc.n], []byte("\r\n\r\n")); i >= 0 {
			return i + 2
		}
		if pc.n == len(pc.buf) {
			return -2
		}
		timeout := headWait()
		if pc.n == 0 {
			timeout = postIdle()
		}
		pc.nc.SetReadDeadline(time.Now().Add(timeout))
		if pc.fd.s.posts.isClosed() {
			// Checked after the deadline is set: a shutdown that came
			// first is seen here, one that comes later resets it.
			return -1
		}
		m, err := pc.nc.Read(pc.buf[pc.n:])
		pc.n += m
		if m == 0 && err != nil {
			return -1
		}
	}
}

// readBody reads until buf holds need bytes, growing it for a large body.
func (pc *postConn) readBody(need int) bool {
	if need > len(pc.buf) {
		b := make([]byte, need)
		copy(b, pc.buf[:pc.n])
		pc.buf = b
	}
	for pc.n < need {
		pc.nc.SetReadDeadline(time.Now().Add(headWait()))
		m, err := pc.nc.Read(pc.buf[pc.n:])
		pc.n += m
		if err != nil && pc.n < need {
			return false
		}
	}
	return true
}

// consume drops the request just answered; what follows it (a pipelined
// request) moves to the front, and a grown buffer goes back to its size.
func (pc *postConn) consume(k int) {
	rest := pc.buf[k:pc.n]
	if len(pc.buf) > postBufSize && len(rest) <= postBufSize {
		b := make([]byte, postBufSize)
		pc.n = copy(b, rest)
		pc.buf = b
		return
	}
	pc.n = copy(pc.buf, rest)
}

// handOff gives the connection to net/http with what is not consumed.
func (pc *postConn) handOff() {
	pc.fd.toHTTP(pc.nc, append([]byte(nil), pc.buf[:pc.n]...))
}
