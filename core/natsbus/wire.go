package natsbus

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/presence-service/presence/core"
)

// The wire form of a bus message: an origin id, a kind, then the fields of
// that kind. It is binary because every routed status update crosses it,
// and versioned by its kind byte: a kind a node does not know is dropped.
//
//	origin  8 bytes   the publishing Bus's random id
//	kind    1 byte    kindStatus, kindInvalidation or kindNotifications
//	status:        app i64, status u8, at unix-nanos i64, puid str, message str
//	invalidation:  inv-kind u8, app i64, close errno i64, user str, puid str
//	presence:      node str, user str, app i64, status u8, message str, at i64,
//	               puid count uvarint, then each puid str
//	device:        event u8, node str, to str, user str, device str, session str, at i64,
//	               current status u8 + message str, app count uvarint, then
//	               each: app i64, status u8, message str
//	heartbeat:     node str
//	sync request:  node str (a node that starts asks for every NodePresence)
//	app channels:  node str, app i64, held u8 (1: the node holds a channel of the app;
//	               2: the node asks every node which apps it holds)
//	notifications: count uvarint, then each: id str, app i64, puid str,
//	               user str, message str, action str, created i64, expires i64
//
// str is a uvarint length and the bytes.
const (
	kindStatus        byte = 1
	kindInvalidation  byte = 2
	kindNotifications byte = 3
	kindPresence      byte = 4
	kindDevice        byte = 5
	kindHeartbeat     byte = 6
	kindSyncRequest   byte = 7
	kindAppChannels   byte = 8
)

// maxBatch bounds the count a notifications message may claim, so that a
// malformed one cannot make a node allocate more than a batch.
const maxBatch = core.MaxNotificationBatch

const originLen = 8

var errShort = errors.New("natsbus: truncated message")

type writer []byte

func (w writer) u8(v byte) writer   { return append(w, v) }
func (w writer) i64(v int64) writer { return binary.BigEndian.AppendUint64(w, uint64(v)) }
func (w writer) str(s string) writer {
	return append(binary.AppendUvarint(w, uint64(len(s))), s...)
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) u8() byte {
	if r.err != nil || len(r.b) < 1 {
		r.err = errShort
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) i64() int64 {
	if r.err != nil || len(r.b) < 8 {
		r.err = errShort
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return int64(v)
}

func (r *reader) str() string {
	if r.err != nil {
		return ""
	}
	n, k := binary.Uvarint(r.b)
	if k <= 0 || uint64(len(r.b)-k) < n {
		r.err = errShort
		return ""
	}
	s := string(r.b[k : k+int(n)])
	r.b = r.b[k+int(n):]
	return s
}

func encodeStatus(origin [originLen]byte, app core.AppID, u core.StatusUpdate) []byte {
	w := make(writer, 0, originLen+1+8+1+8+2+len(u.PUID)+len(u.Message))
	w = append(w, origin[:]...)
	w = w.u8(kindStatus).i64(int64(app)).u8(byte(u.Status)).i64(u.At.UnixNano()).str(u.PUID).str(u.Message)
	return w
}

func encodeInvalidation(origin [originLen]byte, inv core.Invalidation) []byte {
	w := make(writer, 0, originLen+1+1+8+8+2+len(inv.User)+len(inv.PUID))
	w = append(w, origin[:]...)
	w = w.u8(kindInvalidation).u8(byte(inv.Kind)).i64(int64(inv.App)).i64(int64(inv.Close)).str(inv.User).str(inv.PUID)
	return w
}

func encodeNotifications(origin [originLen]byte, ns []core.Notification) []byte {
	size := originLen + 1 + 2
	for _, n := range ns {
		size += 8*3 + 5 + len(n.ID) + len(n.PUID) + len(n.UserID) + len(n.Message) + len(n.Action)
	}
	w := make(writer, 0, size)
	w = append(w, origin[:]...)
	w = binary.AppendUvarint(w.u8(kindNotifications), uint64(len(ns)))
	for _, n := range ns {
		w = w.str(n.ID).i64(int64(n.AppID)).str(n.PUID).str(n.UserID).str(n.Message).str(n.Action).
			i64(n.CreatedAt.UnixNano()).i64(n.ExpiresAt.UnixNano())
	}
	return w
}

// maxPUIDs bounds the PUIDs a presence message may claim (a user's
// grants of one app: one per "appear as" string).
const maxPUIDs = 4096

func encodePresence(origin [originLen]byte, p core.NodePresence) []byte {
	size := originLen + 1 + 8*2 + 1 + 8 + len(p.Node) + len(p.User) + len(p.Message)
	for _, puid := range p.PUIDs {
		size += 1 + len(puid)
	}
	w := make(writer, 0, size)
	w = append(w, origin[:]...)
	w = w.u8(kindPresence).str(p.Node).str(p.User).i64(int64(p.App)).u8(byte(p.Status)).str(p.Message).i64(p.At.UnixNano())
	w = binary.AppendUvarint(w, uint64(len(p.PUIDs)))
	for _, puid := range p.PUIDs {
		w = w.str(puid)
	}
	return w
}

// maxApps bounds the apps a device event may claim (PROTOCOL §2 bounds a
// connect's application_ids far below it).
const maxApps = 4096

// encodeNode writes a message whose one field is a node id: a heartbeat
// (kindHeartbeat) or a starting node's sync request (kindSyncRequest).
func encodeNode(origin [originLen]byte, kind byte, node string) []byte {
	w := make(writer, 0, originLen+1+2+len(node))
	w = append(w, origin[:]...)
	return w.u8(kind).str(node)
}

// encodeAppChannels writes c; held is 1 for Held, 2 for Ask, else 0.
func encodeAppChannels(origin [originLen]byte, c core.AppChannels) []byte {
	w := make(writer, 0, originLen+1+2+len(c.Node)+8+1)
	w = append(w, origin[:]...)
	held := byte(0)
	switch {
	case c.Ask:
		held = 2
	case c.Held:
		held = 1
	}
	return w.u8(kindAppChannels).str(c.Node).i64(int64(c.App)).u8(held)
}

func encodeDevice(origin [originLen]byte, e core.DeviceEvent) []byte {
	w := make(writer, 0, 128+len(e.Apps)*16)
	w = append(w, origin[:]...)
	w = w.u8(kindDevice).u8(byte(e.Kind)).str(e.Node).str(e.To).str(e.User).str(e.DeviceID).str(e.SessionID).i64(e.At.UnixNano()).
		u8(byte(e.Current.Status)).str(e.Current.Message)
	w = binary.AppendUvarint(w, uint64(len(e.Apps)))
	for app, p := range e.Apps {
		w = w.i64(int64(app)).u8(byte(p.Status)).str(p.Message)
	}
	return w
}

// message is one decoded bus message.
type message struct {
	origin   [originLen]byte
	kind     byte
	app      core.AppID
	status   core.StatusUpdate
	inv      core.Invalidation
	notes    []core.Notification
	pres     core.NodePresence
	dev      core.DeviceEvent
	node     string // heartbeat, sync request
	channels core.AppChannels
}

func decode(b []byte) (message, error) {
	var m message
	if len(b) < originLen {
		return m, errShort
	}
	copy(m.origin[:], b)
	r := &reader{b: b[originLen:]}
	m.kind = r.u8()
	switch m.kind {
	case kindStatus:
		m.app = core.AppID(r.i64())
		st := r.u8()
		at := r.i64()
		m.status = core.StatusUpdate{PUID: r.str(), Status: core.Status(st), Message: r.str(), At: time.Unix(0, at)}
		if st > byte(core.Online) && r.err == nil {
			r.err = errors.New("natsbus: unknown status")
		}
	case kindInvalidation:
		m.inv.Kind = core.InvalidationKind(r.u8())
		m.inv.App = core.AppID(r.i64())
		m.inv.Close = core.Errno(r.i64())
		m.inv.User = r.str()
		m.inv.PUID = r.str()
		switch m.inv.Kind {
		case core.GrantAdded, core.GrantRevoked, core.AppChanged:
		default: // CachesLost too: a node's own bus raises it, none sends it
			if r.err == nil {
				r.err = errors.New("natsbus: bad invalidation kind")
			}
		}
	case kindPresence:
		p := &m.pres
		p.Node, p.User, p.App = r.str(), r.str(), core.AppID(r.i64())
		st := r.u8()
		p.Status, p.Message, p.At = core.Status(st), r.str(), time.Unix(0, r.i64())
		if r.err != nil {
			break
		}
		if st > byte(core.Online) {
			return m, errors.New("natsbus: unknown status")
		}
		count, k := binary.Uvarint(r.b)
		if k <= 0 || count > maxPUIDs {
			return m, errors.New("natsbus: bad PUID count")
		}
		r.b = r.b[k:]
		p.PUIDs = make([]string, 0, count)
		for range count {
			p.PUIDs = append(p.PUIDs, r.str())
		}
	case kindDevice:
		e := &m.dev
		e.Kind = core.DeviceEventKind(r.u8())
		e.Node, e.To, e.User, e.DeviceID, e.SessionID = r.str(), r.str(), r.str(), r.str(), r.str()
		e.At = time.Unix(0, r.i64())
		e.Current = core.Presence{Status: core.Status(r.u8()), Message: r.str()}
		if r.err != nil {
			break
		}
		if e.Kind != core.DeviceConnected && e.Kind != core.DeviceHandover {
			return m, errors.New("natsbus: bad device event kind")
		}
		if e.Current.Status > core.Online {
			return m, errors.New("natsbus: unknown status")
		}
		count, k := binary.Uvarint(r.b)
		if k <= 0 || count > maxApps {
			return m, errors.New("natsbus: bad app count")
		}
		r.b = r.b[k:]
		if count > 0 {
			e.Apps = make(map[core.AppID]core.Presence, count)
		}
		for range count {
			app := core.AppID(r.i64())
			p := core.Presence{Status: core.Status(r.u8()), Message: r.str()}
			if p.Status > core.Online && r.err == nil {
				r.err = errors.New("natsbus: unknown status")
			}
			e.Apps[app] = p
		}
	case kindHeartbeat, kindSyncRequest:
		m.node = r.str()
	case kindAppChannels:
		m.channels = core.AppChannels{Node: r.str(), App: core.AppID(r.i64())}
		switch r.u8() {
		case 0:
		case 1:
			m.channels.Held = true
		case 2:
			m.channels.Ask = true
		default:
			if r.err == nil {
				r.err = errors.New("natsbus: bad held flag")
			}
		}
	case kindNotifications:
		count, k := binary.Uvarint(r.b)
		if k <= 0 || count == 0 || count > maxBatch {
			return m, errors.New("natsbus: bad notification count")
		}
		r.b = r.b[k:]
		m.notes = make([]core.Notification, 0, count)
		for range count {
			n := core.Notification{ID: r.str(), AppID: core.AppID(r.i64()), PUID: r.str(), UserID: r.str(), Message: r.str(), Action: r.str()}
			n.CreatedAt = time.Unix(0, r.i64())
			n.ExpiresAt = time.Unix(0, r.i64())
			m.notes = append(m.notes, n)
		}
	default:
		if r.err == nil {
			r.err = errors.New("natsbus: unknown message kind")
		}
	}
	return m, r.err
}
