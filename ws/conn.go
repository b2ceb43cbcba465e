package ws

import (
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// conn is the write side shared by device and app channels: frames are
// queued, and one writer at a time drains the queue, flushing once for
// everything ready. The writer runs only while there is something to
// write, so an idle connection holds no writer goroutine.
type conn struct {
	ws *websocket.Conn

	mu        sync.Mutex // guards: queue, writing, closing, closeCode, closeText, dead
	queue     [][]byte
	writing   bool
	closing   bool // after the queue drains, send a close frame and end
	closeCode int
	closeText string
	dead      bool

	maxQueue int // frames; past it the peer is too slow
	onSlow   func()
}

// send queues a frame. inline lets the calling goroutine (the reader,
// answering a request) do the writing itself when no writer runs, which
// saves a goroutine per answer. It reports false if the connection is
// closing or its queue overflowed.
func (c *conn) send(frame []byte, inline bool) bool {
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
			c.flush()
		} else {
			go c.flush()
		}
	}
	return true
}

// close queues a close frame after what is queued; the connection ends
// once it is written.
func (c *conn) close(code int, text string, last []byte) {
	c.mu.Lock()
	if c.closing || c.dead {
		c.mu.Unlock()
		return
	}
	if last != nil {
		c.queue = append(c.queue, last)
	}
	c.closing, c.closeCode, c.closeText = true, code, text
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
			closing := c.closing && !c.dead
			if closing {
				c.dead = true
			}
			c.writing = false
			code, text := c.closeCode, c.closeText
			c.mu.Unlock()
			if closing {
				deadline := time.Now().Add(time.Second)
				c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), deadline)
				c.ws.Close()
			}
			return
		}
		c.mu.Unlock()
		c.ws.SetWriteDeadline(time.Now().Add(writeWait))
		for _, frame := range batch {
			if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
				c.kill()
				return
			}
		}
		clear(batch)
	}
}

// kill ends the connection now, without a close frame (a write failed).
func (c *conn) kill() {
	c.mu.Lock()
	c.dead, c.writing = true, false
	c.queue = nil
	c.mu.Unlock()
	c.ws.Close()
}
