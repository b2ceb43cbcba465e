package ws

import (
	"errors"
	"time"

	"github.com/presence-service/presence/core"
)

// readable runs when epoll says the parked socket has new bytes: it
// reads all there is, answers every whole frame and keeps a partial one.
// The socket is edge-triggered, so two events may bring two readers: the
// second leaves a note (again) and goes, and the one at work reads once
// more before it leaves. The note is taken after the lock is released
// and the lock tried again after the note is left, so no event is lost
// between the two.
//
// onCollector is true on the poller's collector goroutine, which serves
// every parked device and so must never wait: it answers only requests
// that cannot (status, ping), reads a few times at most, and hands the
// device to a reader for anything else.
func (d *device) readable(onCollector bool) {
	if !d.rmu.TryLock() {
		d.again.Store(true)
		if !d.rmu.TryLock() {
			return // the reader at work sees the note after it unlocks
		}
	}
	for {
		d.again.Store(false)
		drained := d.readAll(onCollector)
		d.rmu.Unlock()
		if !drained {
			d.srv.poller.dispatch(d) // more to read, or a request that may wait: after the other devices
			return
		}
		if !d.again.Load() || !d.rmu.TryLock() {
			return
		}
	}
}

// readRounds bounds the reads of one turn at a device: then the other
// devices have the core. The collector's turns are shorter, since every
// parked device waits for it.
const (
	readRounds          = 64
	collectorReadRounds = 4
)

// readAll reads until the socket has no more, or readRounds reads. It
// reports false when a reader must go on: bytes may be left
// (edge-triggered: no event will say so), or the collector held a frame
// for it. Caller holds rmu.
func (d *device) readAll(onCollector bool) (drained bool) {
	if d.gone.Load() {
		return true
	}
	if d.held {
		if onCollector {
			return true // the reader on its way reads what came too
		}
		d.held = false
		if d.consume(nil, false) == consumedEnd {
			return true
		}
	}
	bp := d.srv.getBuf()
	defer d.srv.putBuf(bp)
	buf := *bp
	rounds := readRounds
	if onCollector {
		rounds = collectorReadRounds
	}
	for range rounds {
		b := append(buf[:0], d.partial...)
		room := cap(b) - len(b)
		n, err := readNow(d.raw, b[len(b):cap(b)])
		if n > 0 {
			d.lastSeen.Store(time.Now().UnixNano())
			switch d.consume(b[:len(b)+n], onCollector) {
			case consumedEnd:
				return true
			case consumedHeld:
				d.held = true
				return false
			}
		}
		if err == errWouldBlock || (err == nil && n < room) {
			// Drained: a short read means the socket had no more, and
			// bytes that arrive after it bring a new event.
			return true
		}
		if err != nil {
			d.end()
			return true
		}
	}
	return false
}

// readLoop reads with a goroutine of its own, for sockets epoll cannot
// watch (TLS).
func (d *device) readLoop() {
	buf := make([]byte, d.srv.readBufSize())
	for {
		d.rmu.Lock()
		b := append(buf[:0], d.partial...)
		d.rmu.Unlock()
		n, err := d.conn.nc.Read(b[len(b):cap(b)])
		if n > 0 {
			d.lastSeen.Store(time.Now().UnixNano())
			d.rmu.Lock()
			ended := d.consume(b[:len(b)+n], false) == consumedEnd
			d.rmu.Unlock()
			if ended {
				return
			}
		}
		if err != nil {
			d.end()
			return
		}
	}
}

// consumed says how far consume went.
type consumed uint8

const (
	consumedAll  consumed = iota // every whole frame handled
	consumedEnd                  // the connection is ending
	consumedHeld                 // stopped at a frame the collector leaves for a reader
)

// consume handles every whole frame in b (nil: in partial) and keeps the
// rest for later: from a held frame on, or a frame not yet complete.
// Caller holds rmu.
func (d *device) consume(b []byte, onCollector bool) consumed {
	if b == nil {
		b = d.partial
	}
	result := consumedAll
	for {
		f, n, err := parseFrame(b, d.srv.cfg.Limits.MaxFrameBytes)
		if err == errIncomplete {
			break
		}
		if err != nil {
			var pe *protocolError
			errors.As(err, &pe)
			d.conn.close(pe.code, pe.reason, nil)
			return consumedEnd
		}
		if result = d.frame(f, onCollector); result == consumedEnd {
			return consumedEnd
		}
		if result == consumedHeld {
			markUnmasked(b, n, f) // the reader parses it again
			break
		}
		b = b[n:]
	}
	if len(b) == 0 {
		d.partial = nil
	} else {
		d.partial = append(d.partial[:0:0], b...)
	}
	return result
}

// frame handles one frame: data to requests, control frames as RFC 6455
// says. On the collector, the pieces of a fragmented message are held for
// a reader, with the request they may make.
func (d *device) frame(f frame, onCollector bool) consumed {
	max := d.srv.cfg.Limits.MaxFrameBytes
	if onCollector && (f.op == opContinuation || (!f.fin && (f.op == opText || f.op == opBinary))) {
		return consumedHeld
	}
	switch f.op {
	case opPing:
		d.conn.sendFrame(encodeFrame(opPong, f.payload), true)
	case opPong:
	case opClose:
		code := closeNormal
		if len(f.payload) >= 2 {
			code = int(f.payload[0])<<8 | int(f.payload[1])
		}
		d.conn.close(code, "", nil)
		return consumedEnd
	case opText, opBinary:
		if d.msg != nil {
			d.conn.close(closeProtocolError, "new message inside a fragmented one", nil)
			return consumedEnd
		}
		if !f.fin {
			d.msg = append(make([]byte, 0, len(f.payload)), f.payload...)
			if f.op == opBinary {
				d.msg = append(d.msg[:0:0], 0) // a binary message is refused whatever it holds
			}
			return consumedAll
		}
		if f.op == opBinary {
			d.answerError(core.Errorf(core.ErrnoNotObject, "frame is not a JSON object: binary frame"))
			return consumedAll
		}
		if !d.handle(f.payload, onCollector) {
			return consumedHeld
		}
	case opContinuation:
		if d.msg == nil {
			d.conn.close(closeProtocolError, "continuation without a message", nil)
			return consumedEnd
		}
		if len(d.msg)+len(f.payload) > max {
			d.conn.close(closeTooBig, "message larger than limits.max_frame_bytes", nil)
			return consumedEnd
		}
		d.msg = append(d.msg, f.payload...)
		if f.fin {
			msg := d.msg
			d.msg = nil
			d.handle(msg, false)
		}
	}
	return consumedAll
}
