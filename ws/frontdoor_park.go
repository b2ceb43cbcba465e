package ws

import (
	"bytes"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// An idle keep-alive POST connection is lent to the device poller's
// collectors (poller.go): the collector of its epoll set reads each
// request as it comes, and when the request is whole and plain, hands it
// to the store itself. The connection's goroutine meanwhile waits, and
// is woken only when the collector hands the connection back: a request
// it cannot serve without waiting (a partial head, a body larger than
// the buffer, a request before the last answer is given, one for
// net/http, Connection: close), the end of the connection, the idle
// timeout or shutdown. Everything but the common case so keeps going
// through the one blocking loop (servePosts).
//
// Why: with a goroutine reading each connection, a request waited for
// that goroutine to run after the runtime's netpoller saw its bytes:
// 0.61-0.77 ms on average at 19,000 single-item POSTs a second from 64
// clients, a fifth of the round trip (BENCHMARKS.md, eighth session). A
// collector reads every ready connection of its set in one turn.
// Measured with presence-bench notify (single items, interleaved rounds
// against the goroutine per connection): see BENCHMARKS.md.

// postPark is a connection's state as lent to a collector.
type postPark struct {
	sock int // the socket's fd while it is in an epoll set (poller.addPost)

	parkMu sync.Mutex // between the collector and whoever takes the connection back
	parked bool       // under parkMu: the collector owns the connection

	resume chan struct{} // a token when the collector hands the connection back
	closed chan struct{} // a token when an answer's write failed and closed the socket

	lastRequest atomic.Int64 // unix ns of the last request begun, for the idle timeout
}

// maxCollectedBusy bounds the POSTs in flight for which a collector
// takes another request: the store's queue holds 1024 jobs, and a
// collector must never wait for room in it (its devices would wait too).
// Past the bound a request is served by its connection's goroutine,
// which may wait.
const maxCollectedBusy = 256

// park lends the idle connection to its collector and waits until the
// collector hands it back (true: the loop goes on with what is in buf),
// the connection has been idle postIdleTimeout, or the server shuts
// down (false: the loop closes the connection). Without a poller it
// returns true at once, and the loop reads.
func (pc *postConn) park() bool {
	p := pc.fd.s.poller
	if p == nil || pc.raw == nil || pc.n != 0 {
		return true
	}
	closing := pc.fd.s.posts.closingCh()
	select {
	case <-closing:
		return true // the loop sees the shutdown
	default:
	}
	pc.lastRequest.Store(time.Now().UnixNano())
	// The collector's reads would fail once the loop's last read
	// deadline passed (the runtime checks it in RawConn.Read); the idle
	// timeout is park's own.
	pc.nc.SetReadDeadline(time.Time{})
	pc.parkMu.Lock()
	pc.parked = true
	ok := p.addPost(pc.raw, pc)
	if !ok {
		pc.parked = false
	}
	pc.parkMu.Unlock()
	if !ok {
		return true
	}
	idle := time.NewTimer(postIdle())
	defer idle.Stop()
	for {
		select {
		case <-pc.resume:
			return true
		case <-pc.closed:
			pc.takeBack()
			return false
		case <-closing:
			pc.reclaim()
			return true // the loop sees the shutdown and answers or closes
		case <-p.closedCh():
			pc.reclaim()
			return true // no collector any more: the loop reads
		case <-idle.C:
			since := time.Since(time.Unix(0, pc.lastRequest.Load()))
			if since < postIdle() {
				idle.Reset(postIdle() - since)
				continue
			}
			// Idle: close, unless a request came meanwhile (handed back).
			return !pc.reclaim()
		}
	}
}

// takeBack ends the loan if the collector still has the connection;
// false if it has handed it back already (a resume token is coming).
func (pc *postConn) takeBack() bool {
	pc.parkMu.Lock()
	defer pc.parkMu.Unlock()
	if !pc.parked {
		return false
	}
	pc.parked = false
	pc.fd.s.poller.removePost(pc.raw, pc)
	return true
}

// reclaim gets the connection back: at once if the collector still has
// it (true), or once its hand-back, already under way, arrives (false).
func (pc *postConn) reclaim() (tookBack bool) {
	if pc.takeBack() {
		return true
	}
	<-pc.resume
	return false
}

// handBack ends the loan from the collector's side (parkMu held) and
// wakes the connection's goroutine.
func (pc *postConn) handBack() {
	if !pc.parked {
		return
	}
	pc.parked = false
	pc.fd.s.poller.removePost(pc.raw, pc)
	pc.resume <- struct{}{}
}

// collected is the collector's turn at a parked connection with bytes to
// read: it reads them all (the socket is armed edge-triggered) and
// serves each whole plain request, or hands the connection back.
func (pc *postConn) collected() {
	pc.parkMu.Lock()
	defer pc.parkMu.Unlock()
	if !pc.parked {
		return // taken back while its event waited
	}
	defer func() {
		if err := recover(); err != nil {
			pc.fd.s.log.Error("panic serving a notification POST", "err", err, "stack", string(debug.Stack()))
			pc.nc.Close()
			if pc.inflight { // unless it was answered: the write fails, and the token comes
				pc.finish(pc.seq, notifyAnswer{status: http.StatusInternalServerError})
			}
			pc.handBack() // the loop reads the end of the connection
		}
	}()
	for {
		// A full buffer is made room in, to read on until the socket is
		// empty (no new event comes for bytes left in it): by serving the
		// whole request it holds, or by growing it for a large body.
		if pc.n == len(pc.buf) && !pc.serveBuffered() && !pc.growForBody() {
			pc.handBack() // a head longer than the buffer, or a request that waits
			return
		}
		room := len(pc.buf) - pc.n
		m, err := readNow(pc.raw, pc.buf[pc.n:])
		pc.n += m
		// A read short of the room emptied the socket: bytes that come
		// after it raise a new event (edge-triggered), so the read that
		// would say EAGAIN is spared, as for devices (device.readable).
		if err == errWouldBlock || (err == nil && m < room) {
			break
		}
		if err != nil {
			pc.handBack() // the loop reads the end of the connection
			return
		}
	}
	for pc.n > 0 {
		if !pc.serveBuffered() {
			pc.handBack()
			return
		}
	}
}

// growForBody grows the full buffer to hold the request at its front,
// when that is a plain notification POST whose body is larger than the
// buffer (batches of 100 are about 10 KiB); false if it is not.
// (consume gives the buffer back its size once the request is served.)
func (pc *postConn) growForBody() bool {
	i := bytes.Index(pc.buf[:pc.n], []byte("\r\n\r\n"))
	if i < 0 {
		return false
	}
	h, plain := notificationPost(pc.buf[:i+2])
	need := i + 4 + h.length
	if !plain || need <= len(pc.buf) {
		return false
	}
	b := make([]byte, need)
	copy(b, pc.buf[:pc.n])
	pc.buf = b
	return true
}

// serveBuffered serves the request at the front of buf if nothing in it
// needs a wait: its head and body are whole, it is a plain notification
// POST without Connection: close, the answer before it has been given,
// and the store is not backed up. It reports false, having done nothing,
// when the request is the blocking loop's.
func (pc *postConn) serveBuffered() bool {
	i := bytes.Index(pc.buf[:pc.n], []byte("\r\n\r\n"))
	if i < 0 {
		return false
	}
	end := i + 2
	h, plain := notificationPost(pc.buf[:end])
	start := end + 2
	if !plain || h.close || pc.n < start+h.length || pc.fd.s.router.ShuttingDown() {
		return false
	}
	posts := &pc.fd.s.posts
	if posts.busyCount() >= maxCollectedBusy || !pc.answerGiven(posts) {
		return false
	}
	if !posts.setBusy(pc, true) {
		return false // shutting down: the loop hands it to net/http
	}
	posts.collected.Add(1)
	pc.dispatch(h, start)
	pc.consume(start + h.length)
	return true
}

// answerGiven takes the token of the request in flight once it has been
// answered; false if it has not been (the loop waits for it). The
// answer's writer marks the connection idle and then gives the token
// (postAnswer.done): between the two, which a client quick to send its
// next request can fall into, the token is on its way and is waited for.
// (Measured: 0.6 % of single POSTs from presence-bench's 64 clients came
// in that gap.)
func (pc *postConn) answerGiven(posts *postConns) bool {
	if !pc.inflight {
		return true
	}
	select {
	case <-pc.answered:
	default:
		if posts.isBusy(pc) {
			return false
		}
		<-pc.answered
	}
	pc.inflight = false
	return true
}
