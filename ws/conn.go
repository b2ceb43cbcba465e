package ws

import (
	"net"
	"sync"
	"syscall"
	"time"
)

// conn is the write side of a device channel: frames are queued already
// encoded, and one writer at a time drains the queue with a single
// writev for everything ready. The writer runs only while there is
// something to write, so an idle device holds no writer goroutine.
type conn struct {
	nc  net.Conn
	raw syscall.RawConn // nc's, for writes that need no deadline; nil for TLS

	mu      sync.Mutex // guards: queue, writing, closing, dead
	queue   [][]byte
	writing bool
	closing bool // after the queue drains, end the connection
	dead    bool
	// closeSent: the queue drained through the close frame, so the
	// connection ends with a lingering close (device.end).
	closeSent bool

	maxQueue int    // frames; past it the peer is too slow
	onSlow   func() // called (without mu) when the queue overflows
	onEnd    func() // called once the connection is to end (after a close frame, or a write error)
}

// send queues a text frame. inline lets the calling goroutine (the
// collector or a reader, answering a request) write it itself when no
// writer runs, which saves a goroutine per answer; it writes only what
// the socket takes at once (flushNow). It reports false if the
// connection is closing or its queue overflowed.
func (c *conn) send(payload []byte, inline bool) bool {
	return c.sendFrame(encodeFrame(opText, payload), inline)
}

func (c *conn) sendFrame(frame []byte, inline bool) bool {
	c.mu.Lock()
	if c.closing || c.dead {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= c.maxQueue {
		c.mu.Unlock()
		if c.onSlow != nil {
			c.onSlow()
		}
		return false
	}
	c.queue = append(c.queue, frame)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		if inline {
			c.flushNow()
		} else {
			go c.flush()
		}
	}
	return true
}

// flushNow is the start of a writer that never waits for the socket: the
// caller answers a request, maybe on the poller's collector, which every
// parked device waits for. The one frame queued (the answer) is written
// if the socket takes it at once, the usual case; anything else (frames
// queued meanwhile, the part of the answer a full socket did not take, a
// close to finish) goes to a writer goroutine, which may wait.
func (c *conn) flushNow() {
	if c.raw == nil {
		// TLS: the caller is the device's own reading goroutine
		// (readLoop), which serves no one else and may wait.
		c.flush()
		return
	}
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

// close queues last (a text frame, may be nil) and a close frame after
// what is queued; the connection ends once they are written.
func (c *conn) close(code int, text string, last []byte) {
	c.mu.Lock()
	if c.closing || c.dead {
		c.mu.Unlock()
		return
	}
	if last != nil {
		c.queue = append(c.queue, encodeFrame(opText, last))
	}
	c.queue = append(c.queue, encodeClose(code, text))
	c.closing = true
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.flush()
	}
}

func (c *conn) flush() {
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
				c.onEnd()
			}
			return
		}
		c.mu.Unlock()
		var err error
		if len(batch) == 1 && c.raw != nil {
			err = c.writeOne(batch[0])
		} else {
			c.nc.SetWriteDeadline(time.Now().Add(writeWait))
			bufs := net.Buffers(batch)
			_, err = bufs.WriteTo(c.nc)
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
func (c *conn) writeOne(b []byte) error {
	n, err := writeNow(c.raw, b)
	if err == nil && n == len(b) {
		return nil
	}
	if err != nil && err != errWouldBlock {
		return err
	}
	c.nc.SetWriteDeadline(time.Now().Add(writeWait))
	_, err = c.nc.Write(b[n:])
	return err
}

// sentClose says whether the close frame went out whole.
func (c *conn) sentClose() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeSent
}

// kill ends the connection now (a write failed).
func (c *conn) kill() {
	c.mu.Lock()
	already := c.dead
	c.dead, c.writing, c.closing = true, false, true
	c.queue = nil
	c.mu.Unlock()
	if !already {
		c.onEnd()
	}
}
