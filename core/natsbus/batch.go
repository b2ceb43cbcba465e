package natsbus

import (
	"encoding/binary"
	"errors"
	"sync"
)

// A frame is one NATS message on the bus: every message its node queued
// since that node's previous publish, in the order queued.
//
//	origin  8 bytes   the publishing Bus's random id
//	kind    1 byte    kindBatch
//	then, to the end: length u32, one message (wire.go)
//
// Frames batch without a timer: a node's publisher hands NATS whatever is
// queued, and what its node publishes meanwhile waits for the next turn.
// An idle node's message goes out at once; a busy node's go out many to a
// NATS message, which is what saves NATS and the receivers their
// per-message work. Every kind rides in the frames, on one subject, so a
// node's messages reach every node in the one order it published them.
const kindBatch byte = 9

const (
	frameHeaderLen = originLen + 1
	entryLenLen    = 4
	// keptFrameCap bounds the buffer an outbox keeps for its next frame:
	// one that a large notifications message grew is let go.
	keptFrameCap = 64 << 10
)

var errNotFrame = errors.New("natsbus: not a frame")

// outbox is a node's queue of messages not yet handed to NATS.
type outbox struct {
	header [frameHeaderLen]byte
	limit  int // a frame's greatest size: NATS's max payload

	mu     sync.Mutex // guards: open, full, spare, queued, closed
	open   []byte     // the frame being filled; header only when nothing is queued
	full   [][]byte   // frames closed at limit, oldest first, all before open
	spare  []byte     // a sent frame's buffer, reused for the next
	queued int        // messages in open and full
	closed bool       // the bus is closed: messages are dropped

	wake chan struct{} // a value when the publisher has frames to send
}

func newOutbox(origin [originLen]byte, limit int) *outbox {
	o := &outbox{limit: limit, wake: make(chan struct{}, 1)}
	copy(o.header[:], origin[:])
	o.header[originLen] = kindBatch
	o.open = append(make([]byte, 0, 512), o.header[:]...)
	return o
}

// begin locks the outbox and returns the open frame with room for one
// more message's length; append the message to it and pass it to end.
func (o *outbox) begin() (w writer, start int) {
	o.mu.Lock()
	start = len(o.open)
	return append(o.open, 0, 0, 0, 0), start
}

// end stores the message begin made room for, unlocks the outbox and
// wakes the publisher. A message that would take the frame past limit
// starts a new frame.
func (o *outbox) end(w writer, start int) {
	if o.closed {
		o.open = w[:start]
		o.mu.Unlock()
		return
	}
	binary.BigEndian.PutUint32(w[start:], uint32(len(w)-start-entryLenLen))
	if len(w) > o.limit && start > frameHeaderLen {
		o.full = append(o.full, w[:start])
		w = append(append(make([]byte, 0, len(w)-start+frameHeaderLen), o.header[:]...), w[start:]...)
	}
	o.open = w
	o.queued++
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// take returns the frames queued, oldest first, and leaves an empty open
// frame. queued is how many messages they hold.
func (o *outbox) take() (full [][]byte, last []byte, queued int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	full, queued = o.full, o.queued
	o.full, o.queued = nil, 0
	if len(o.open) > frameHeaderLen {
		last = o.open
		o.open = append(o.spare[:0], o.header[:]...)
		o.spare = nil
	}
	return full, last, queued
}

// close drops what is queued later: nobody sends it.
func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
}

// recycle keeps a sent frame's buffer for a later one (NATS copied it).
func (o *outbox) recycle(f []byte) {
	if f == nil || cap(f) > keptFrameCap {
		return
	}
	o.mu.Lock()
	if o.spare == nil {
		o.spare = f
	}
	o.mu.Unlock()
}

// frameReader reads the messages of one frame, in order.
type frameReader struct {
	b   []byte
	err error // errShort once the framing is broken: nothing more is read
}

// readFrame checks data's header and returns its origin and a reader of
// its messages.
func readFrame(data []byte) (origin [originLen]byte, fr frameReader, err error) {
	if len(data) < frameHeaderLen {
		return origin, fr, errShort
	}
	if data[originLen] != kindBatch {
		return origin, fr, errNotFrame
	}
	copy(origin[:], data)
	return origin, frameReader{b: data[frameHeaderLen:]}, nil
}

// next returns the next message's bytes, or false at the frame's end or
// when the framing is broken (then err is set).
func (f *frameReader) next() ([]byte, bool) {
	if f.err != nil || len(f.b) == 0 {
		return nil, false
	}
	if len(f.b) < entryLenLen {
		f.err = errShort
		return nil, false
	}
	n := binary.BigEndian.Uint32(f.b)
	if uint64(n) > uint64(len(f.b)-entryLenLen) {
		f.err = errShort
		return nil, false
	}
	m := f.b[entryLenLen : entryLenLen+int(n)]
	f.b = f.b[entryLenLen+int(n):]
	return m, true
}
