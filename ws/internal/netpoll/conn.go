package netpoll

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// WriteWait bounds every write that has to wait for the socket; a peer
// that takes longer is dropped.
const WriteWait = 10 * time.Second

// lingerTime bounds how long a connection the server closed first waits
// for its peer to close too.
const lingerTime = 2 * time.Second

// Handler is what a Conn calls up with: the protocol above it.
type Handler interface {
	// Message handles one whole data message. With inline true the
	// caller serves other connections too and Message must not block:
	// it returns false, having done nothing, for a message that may,
	// and that message comes again with inline false on a goroutine
	// that may block, before any later message. One call at a time.
	Message(text bool, payload []byte, inline bool) (handled bool)
	// QueueFull is called once when a frame did not fit in the write
	// queue: the peer reads too slowly. Only Close is taken after it.
	QueueFull()
	// Closed is called once, when the connection has ended.
	Closed()
}

// Conn is one WebSocket connection on a plain TCP socket, after its
// opening handshake. Its methods may be called from any goroutine.
type Conn struct {
	p   *Poller
	h   Handler
	nc  net.Conn
	raw syscall.RawConn // nc's, for reads and writes that never wait
	fd  int             // under mu: in the poller's table while ≥ 0

	// The read side: one reader at a time (read.go).
	rmu      sync.Mutex  // guards: partial, deferred, msg, msgText
	again    atomic.Bool // a reader found rmu taken: read once more before leaving
	partial  []byte      // the start of a frame not yet complete, or deferred frames
	deferred bool        // partial starts with whole frames left for a reader that may block
	msg      []byte      // a fragmented message being put together
	msgText  bool        // msg's first frame was text
	lastRead atomic.Int64
	closed   atomic.Bool // end has run

	mu        sync.Mutex // guards: fd, queue, writing, full, closing, dead, closeSent
	queue     [][]byte   // whole frames
	writing   bool       // a writer is at work
	full      bool       // the queue overflowed: only the close is taken
	closing   bool       // a close frame is queued: after the queue drains, the connection ends
	dead      bool
	closeSent bool // the queue drained through the close frame: end with a lingering close

	ended sync.Once
}

// LastRead is when bytes last came from the peer.
func (c *Conn) LastRead() time.Time { return time.Unix(0, c.lastRead.Load()) }

// Reply queues a text frame and, when no writer is at work, writes what
// the socket takes at once, without waiting; the rest goes to a writer
// goroutine. For answers, written by the goroutine that read the
// request. False if the connection is closing or the queue is full.
func (c *Conn) Reply(payload []byte) bool { return c.send(encodeFrame(opText, payload), true) }

// Push queues a text frame for a writer goroutine. False if the
// connection is closing or the queue is full.
func (c *Conn) Push(payload []byte) bool { return c.send(encodeFrame(opText, payload), false) }

// Ping queues a ping frame.
func (c *Conn) Ping() { c.send(pingFrame, false) }

var pingFrame = encodeFrame(opPing, nil)

func (c *Conn) send(frame []byte, now bool) bool {
	c.mu.Lock()
	if c.closing || c.dead || c.full {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= c.p.opts.MaxQueue {
		c.full = true
		c.mu.Unlock()
		c.h.QueueFull()
		return false
	}
	c.queue = append(c.queue, frame)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		if now {
			c.writeNowOrLater()
		} else {
			go c.flush()
		}
	}
	return true
}

// writeNowOrLater is the start of a writer that never waits for the
// socket: the caller may serve every connection of an epoll set. The
// one frame queued (the answer) is written if the socket takes it at
// once, the usual case; anything else (frames queued meanwhile, what a
// full socket did not take) goes to a writer goroutine, which may wait.
func (c *Conn) writeNowOrLater() {
	c.mu.Lock()
	if len(c.queue) == 1 {
		b := c.queue[0]
		c.mu.Unlock()
		n, err := writeNow(c.raw, b)
		if err != nil && err != errWouldBlock {
			c.kill()
			return
		}
		c.mu.Lock()
		if c.dead { // End ran meanwhile: the queue is gone
			c.mu.Unlock()
			return
		}
		if n == len(b) {
			last := len(c.queue) - 1
			copy(c.queue, c.queue[1:])
			c.queue[last] = nil
			c.queue = c.queue[:last]
		} else {
			c.queue[0] = b[n:]
		}
	}
	if len(c.queue) == 0 && !c.closing {
		c.writing = false
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	go c.flush()
}

// Close queues last (a text frame; nil for none) and a close frame with
// code and reason after what is queued; the connection ends once they
// are written. Later sends are refused.
func (c *Conn) Close(code int, reason string, last []byte) {
	c.mu.Lock()
	if c.closing || c.dead {
		c.mu.Unlock()
		return
	}
	if last != nil {
		c.queue = append(c.queue, encodeFrame(opText, last))
	}
	c.queue = append(c.queue, encodeClose(code, reason))
	c.closing = true
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.flush()
	}
}

// flush is the writer: it writes everything queued, in one writev, until
// the queue is empty, then ends the connection if a close was queued.
func (c *Conn) flush() {
	var batch [][]byte
	for {
		c.mu.Lock()
		batch, c.queue = c.queue, batch[:0]
		if len(batch) == 0 {
			ending := c.closing && !c.dead
			if ending {
				c.dead, c.closeSent = true, true
			}
			c.writing = false
			c.mu.Unlock()
			if ending {
				c.end()
			}
			return
		}
		c.mu.Unlock()
		var err error
		if len(batch) == 1 {
			err = c.writeOne(batch[0])
		} else {
			c.nc.SetWriteDeadline(time.Now().Add(c.p.writeWait()))
			bufs := net.Buffers(batch)
			_, err = bufs.WriteTo(c.nc)
			if err == nil {
				err = c.clearWriteDeadline()
			}
		}
		if err != nil {
			c.kill()
			return
		}
		clear(batch)
	}
}

// writeOne writes one frame, the usual batch (an answer). The socket
// almost always takes it at once, and then no deadline is set: setting
// one moves a runtime timer, twice per answer. Only when the socket is
// full does it wait, with the deadline.
func (c *Conn) writeOne(b []byte) error {
	n, err := writeNow(c.raw, b)
	if err == nil && n == len(b) {
		return nil
	}
	if err != nil && err != errWouldBlock {
		return err
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.p.writeWait()))
	if _, err = c.nc.Write(b[n:]); err != nil {
		return err
	}
	return c.clearWriteDeadline()
}

// clearWriteDeadline lifts the deadline of a write that had to wait, once
// it is done. The writes that never wait (writeNow) go through the same
// socket, and the runtime fails them too once a deadline left behind has
// passed: the connection would end at its next frame, seconds later,
// without a close frame, though its peer reads everything.
func (c *Conn) clearWriteDeadline() error {
	return c.nc.SetWriteDeadline(time.Time{})
}

// kill ends the connection now (a write failed).
func (c *Conn) kill() {
	c.mu.Lock()
	c.dead, c.writing, c.closing = true, false, true
	c.queue = nil
	c.mu.Unlock()
	c.end()
}

// End ends the connection now, without a close frame.
func (c *Conn) End() { c.kill() }

// Drop ends the connection now, for a peer presumed gone (it answers
// nothing, not even pings): a close frame with code and reason goes out
// only if no writer is at work (a frame of its may be half written) and
// the socket takes it at once. Nothing waits for the peer and nothing
// lingers, but a peer that is there after all learns why.
func (c *Conn) Drop(code int, reason string) {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	idle := !c.writing
	c.dead, c.writing, c.closing = true, false, true
	c.queue = nil
	c.mu.Unlock()
	if idle { // dead: no writer starts after this
		writeNow(c.raw, encodeClose(code, reason))
	}
	c.end()
}

// end releases the connection once: out of epoll, socket closed, the
// handler told. Any goroutine may call it; it never waits for a reader.
func (c *Conn) end() {
	c.ended.Do(func() {
		c.mu.Lock()
		linger, fd := c.closeSent, c.fd
		c.mu.Unlock()
		if fd >= 0 {
			c.p.remove(fd, c)
		}
		if linger {
			go lingerClose(c.nc)
		} else {
			c.nc.Close()
		}
		c.closed.Store(true)
		c.h.Closed()
	})
}

// lingerClose ends a connection whose close frame is out: it sends FIN,
// then reads and drops what the peer still sends until the peer closes
// too, or for lingerTime. Closing at once with bytes unread would send a
// reset instead, and the peer's TCP would throw away whatever it had not
// read yet: the last frames, and the close.
func lingerClose(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok && tc.CloseWrite() == nil {
		tc.SetReadDeadline(time.Now().Add(lingerTime))
		io.Copy(io.Discard, tc)
	}
	nc.Close()
}
