package netpoll

import (
	"errors"
	"time"
)

// readable runs when epoll says the socket has new bytes: it reads all
// there is, passes every whole message up and keeps a partial frame.
// The socket is edge-triggered, so two events may bring two readers: the
// second leaves a note (again) and goes, and the one at work reads once
// more before it leaves. The note is taken after the lock is released
// and the lock tried again after the note is left, so no event is lost
// between the two.
//
// inline is true on an epoll set's goroutine, which serves every
// connection of its set and so must never wait: it reads a few times at
// most, and hands the connection to a reader that may wait for a message
// the handler cannot take inline, or for bytes left unread.
func (c *Conn) readable(inline bool) {
	if !c.rmu.TryLock() {
		c.again.Store(true)
		if !c.rmu.TryLock() {
			return // the reader at work sees the note after it unlocks
		}
	}
	for {
		c.again.Store(false)
		drained := c.readAll(inline)
		c.rmu.Unlock()
		if !drained {
			c.p.dispatch(c) // more to read, or a message that may wait: after the other connections
			return
		}
		if !c.again.Load() || !c.rmu.TryLock() {
			return
		}
	}
}

// readRounds bounds the reads of one turn at a connection: then the
// other connections have the core. An epoll set's turns are shorter,
// since every connection of the set waits for it.
const (
	readRounds       = 64
	inlineReadRounds = 4
)

// readAll reads until the socket has no more, or readRounds reads. It
// reports false when a reader that may wait must go on: bytes may be
// left (edge-triggered: no event will say so), or a message was deferred
// to it. Caller holds rmu.
func (c *Conn) readAll(inline bool) (drained bool) {
	if c.closed.Load() {
		return true
	}
	if c.deferred {
		if inline {
			return true // the reader on its way reads what came too
		}
		c.deferred = false
		if c.consume(nil, false) == consumedEnd {
			return true
		}
	}
	bp := c.p.getBuf()
	defer c.p.putBuf(bp)
	buf := *bp
	rounds := readRounds
	if inline {
		rounds = inlineReadRounds
	}
	for range rounds {
		b := append(buf[:0], c.partial...)
		room := cap(b) - len(b)
		n, err := readNow(c.raw, b[len(b):cap(b)])
		if n > 0 {
			c.lastRead.Store(time.Now().UnixNano())
			switch c.consume(b[:len(b)+n], inline) {
			case consumedEnd:
				return true
			case consumedDeferred:
				c.deferred = true
				return false
			}
		}
		if err == errWouldBlock || (err == nil && n < room) {
			// Drained: a short read means the socket had no more, and
			// bytes that arrive after it bring a new event.
			return true
		}
		if err != nil {
			c.end()
			return true
		}
	}
	return false
}

// readLoop reads with a goroutine of its own, for a socket epoll did not
// take.
func (c *Conn) readLoop() {
	buf := make([]byte, c.p.bufSize())
	for {
		c.rmu.Lock()
		b := append(buf[:0], c.partial...)
		c.rmu.Unlock()
		n, err := c.nc.Read(b[len(b):cap(b)])
		if n > 0 {
			c.lastRead.Store(time.Now().UnixNano())
			c.rmu.Lock()
			ended := c.consume(b[:len(b)+n], false) == consumedEnd
			c.rmu.Unlock()
			if ended {
				return
			}
		}
		if err != nil {
			c.end()
			return
		}
	}
}

// consumed says how far consume went.
type consumed uint8

const (
	consumedAll      consumed = iota // every whole frame handled
	consumedEnd                      // the connection is ending
	consumedDeferred                 // stopped at a frame left for a reader that may wait
)

// consume handles every whole frame in b (nil: in partial) and keeps the
// rest for later: from a deferred frame on, or a frame not yet complete.
// Caller holds rmu.
func (c *Conn) consume(b []byte, inline bool) consumed {
	if b == nil {
		b = c.partial
	}
	result := consumedAll
	for {
		f, n, err := parseFrame(b, c.p.opts.MaxMessage)
		if err == errIncomplete {
			break
		}
		if err != nil {
			var pe *protocolError
			errors.As(err, &pe)
			c.Close(pe.code, pe.reason, nil)
			return consumedEnd
		}
		if result = c.frame(f, inline); result == consumedEnd {
			return consumedEnd
		}
		if result == consumedDeferred {
			markUnmasked(b, n, f) // the reader parses it again
			break
		}
		b = b[n:]
	}
	if len(b) == 0 {
		c.partial = nil
	} else {
		c.partial = append(c.partial[:0:0], b...)
	}
	return result
}

// frame handles one frame: data to the handler, control frames as RFC
// 6455 says. Inline, the pieces of a fragmented message are deferred to
// a reader, with the message they make.
func (c *Conn) frame(f frame, inline bool) consumed {
	if inline && (f.op == opContinuation || !f.fin && (f.op == opText || f.op == opBinary)) {
		return consumedDeferred
	}
	switch f.op {
	case opPing:
		c.send(encodeFrame(opPong, f.payload), true)
	case opPong:
	case opClose:
		code := closeNormal
		if len(f.payload) >= 2 {
			code = int(f.payload[0])<<8 | int(f.payload[1])
		}
		c.Close(code, "", nil)
		return consumedEnd
	case opText, opBinary:
		if c.msg != nil {
			c.Close(closeProtocolError, "new message inside a fragmented one", nil)
			return consumedEnd
		}
		if !f.fin {
			c.msg = append(make([]byte, 0, len(f.payload)), f.payload...)
			c.msgText = f.op == opText
			return consumedAll
		}
		if !c.h.Message(f.op == opText, f.payload, inline) {
			return consumedDeferred
		}
	case opContinuation:
		if c.msg == nil {
			c.Close(closeProtocolError, "continuation without a message", nil)
			return consumedEnd
		}
		if len(c.msg)+len(f.payload) > c.p.opts.MaxMessage {
			c.Close(closeTooBig, "message too large", nil)
			return consumedEnd
		}
		c.msg = append(c.msg, f.payload...)
		if f.fin {
			msg := c.msg
			c.msg = nil
			c.h.Message(c.msgText, msg, false)
		}
	}
	return consumedAll
}
