package natsbus

import (
	"encoding/binary"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

// Every NATS client of the account can publish on presence.bus.>, so
// decode reads bytes from anyone: it must never panic, must refuse what no
// node sends (truncated, unknown kinds, values out of range), and what it
// accepts must be what the encoders would write for the same values.

// encodeMessage writes m as the node that sent it would, with the Bus's
// own encoders.
func encodeMessage(m message) []byte {
	switch m.kind {
	case kindStatus:
		return encodeStatus(m.origin, m.app, m.status)
	case kindInvalidation:
		return encodeInvalidation(m.origin, m.inv)
	case kindNotifications:
		return encodeNotifications(m.origin, m.notes)
	case kindPresence:
		return encodePresence(m.origin, m.pres)
	case kindDevice:
		return encodeDevice(m.origin, m.dev)
	case kindHeartbeat, kindSyncRequest:
		return encodeNode(m.origin, m.kind, m.node)
	case kindAppChannels:
		return encodeAppChannels(m.origin, m.channels)
	}
	panic("encodeMessage: kind " + strconv.Itoa(int(m.kind)))
}

// normal makes empty lists nil, as a sender's may be.
func normal(m message) message {
	if len(m.pres.PUIDs) == 0 {
		m.pres.PUIDs = nil
	}
	if len(m.dev.Apps) == 0 {
		m.dev.Apps = nil
	}
	if len(m.notes) == 0 {
		m.notes = nil
	}
	return m
}

func validStatus(s core.Status) bool { return s <= core.Online }

// checkAccepted fails t unless m holds only what a node sends: known
// kinds and statuses, and lists no longer than their bounds (a count
// field must not make decode allocate more than a bounded list).
func checkAccepted(t *testing.T, data []byte, m message) {
	t.Helper()
	switch m.kind {
	case kindStatus:
		if !validStatus(m.status.Status) {
			t.Fatalf("%x: accepted status %d", data, m.status.Status)
		}
	case kindInvalidation:
		switch m.inv.Kind {
		case core.GrantAdded, core.GrantRevoked, core.AppChanged:
		default: // CachesLost is raised by a node's own bus, never sent
			t.Fatalf("%x: accepted invalidation kind %d", data, m.inv.Kind)
		}
	case kindNotifications:
		if len(m.notes) == 0 || cap(m.notes) > maxBatch {
			t.Fatalf("%x: accepted %d notifications (capacity %d), bound %d", data, len(m.notes), cap(m.notes), maxBatch)
		}
	case kindPresence:
		if !validStatus(m.pres.Status) {
			t.Fatalf("%x: accepted presence status %d", data, m.pres.Status)
		}
		if cap(m.pres.PUIDs) > maxPUIDs {
			t.Fatalf("%x: %d PUIDs allocated, bound %d", data, cap(m.pres.PUIDs), maxPUIDs)
		}
	case kindDevice:
		if m.dev.Kind != core.DeviceConnected && m.dev.Kind != core.DeviceHandover {
			t.Fatalf("%x: accepted device event kind %d", data, m.dev.Kind)
		}
		if !validStatus(m.dev.Current.Status) {
			t.Fatalf("%x: accepted device status %d", data, m.dev.Current.Status)
		}
		if len(m.dev.Apps) > maxApps {
			t.Fatalf("%x: %d apps, bound %d", data, len(m.dev.Apps), maxApps)
		}
		for app, p := range m.dev.Apps {
			if !validStatus(p.Status) {
				t.Fatalf("%x: accepted status %d for app %d", data, p.Status, app)
			}
		}
	case kindHeartbeat, kindSyncRequest, kindAppChannels:
	default:
		t.Fatalf("%x: accepted kind %d", data, m.kind)
	}
}

// checkRoundTrip fails t unless enc decodes to want, and every shorter
// prefix of enc is refused as truncated.
func checkRoundTrip(t *testing.T, enc []byte, want message) {
	t.Helper()
	got, err := decode(enc)
	if err != nil {
		t.Fatalf("%x: encoded %+v, decode refused it: %v", enc, want, err)
	}
	if !reflect.DeepEqual(normal(got), normal(want)) {
		t.Fatalf("%x: encoded %+v, decoded %+v", enc, normal(want), normal(got))
	}
	for n := range len(enc) {
		// Long encodings: the prefixes near both ends, and a sample between.
		if len(enc) > 1024 && n > 64 && n < len(enc)-64 && n%61 != 0 {
			continue
		}
		if _, err := decode(enc[:n]); err == nil {
			t.Fatalf("%x: the first %d of %d bytes decoded without an error", enc, n, len(enc))
		}
	}
}

// seeds are one message of each kind, with non-empty lists.
func seeds() []message {
	origin := [originLen]byte{1, 2, 3, 4, 5, 6, 7, 8}
	at := time.Unix(0, 1_700_000_000_123_456_789)
	return []message{
		{origin: origin, kind: kindStatus, app: 7, status: core.StatusUpdate{PUID: "p1", Status: core.Online, Message: "here", At: at}},
		{origin: origin, kind: kindInvalidation, inv: core.Invalidation{Kind: core.AppChanged, App: 7, Close: 40, User: "ann@example.com", PUID: "p1"}},
		{origin: origin, kind: kindNotifications, notes: []core.Notification{
			{ID: "00000000000000010123456789abcdef0123456789abcdef", AppID: 7, PUID: "p1", UserID: "ann@example.com", Message: "hi", Action: "https://a.example/", CreatedAt: at, ExpiresAt: at.Add(time.Minute)},
			{ID: "0000000000000002fedcba9876543210fedcba9876543210", AppID: 7, PUID: "p2", UserID: "bob", Message: "é", CreatedAt: at, ExpiresAt: at.Add(time.Hour)},
		}},
		{origin: origin, kind: kindPresence, pres: core.NodePresence{Node: "n1", User: "ann@example.com", App: 7, Presence: core.Presence{Status: core.Unavailable, Message: "away"}, At: at, PUIDs: []string{"p1", "p2"}}},
		{origin: origin, kind: kindDevice, dev: core.DeviceEvent{Kind: core.DeviceHandover, Node: "n1", To: "n2", User: "ann@example.com", DeviceID: "phone", SessionID: "s1", At: at,
			Current: core.Presence{Status: core.Online, Message: "m"}, Apps: map[core.AppID]core.Presence{7: {Status: core.Online}, 8: {Status: core.Unavailable, Message: "x"}}}},
		{origin: origin, kind: kindHeartbeat, node: "n1"},
		{origin: origin, kind: kindSyncRequest, node: "n2"},
		{origin: origin, kind: kindAppChannels, channels: core.AppChannels{Node: "n1", App: 7, Held: true}},
	}
}

// FuzzDecode: arbitrary bytes never panic decode; what it accepts is valid
// and encodes back to bytes that decode to the same message.
func FuzzDecode(f *testing.F) {
	for _, m := range seeds() {
		enc := encodeMessage(m)
		f.Add(enc)
		f.Add(enc[:len(enc)-1])
		f.Add(enc[:originLen+1])
		f.Add(append(enc, 0))
	}
	origin := make([]byte, originLen)
	f.Add([]byte{})
	f.Add(origin)
	f.Add(append(origin, 0))
	f.Add(append(origin, 99))
	// Counts past their bounds, and one that overflows a uvarint.
	f.Add(binary.AppendUvarint(append(origin, kindNotifications), maxBatch+1))
	f.Add(binary.AppendUvarint(append(origin, kindNotifications), 1<<62))
	f.Add(append(append(origin, kindNotifications), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decode(data)
		if err != nil {
			return
		}
		checkAccepted(t, data, m)
		checkRoundTrip(t, encodeMessage(m), m)
	})
}

// FuzzRoundTrip: a message of each kind, built from arbitrary values,
// decodes from its encoding to an equal message, and no prefix of its
// encoding decodes.
func FuzzRoundTrip(f *testing.F) {
	for i := range seeds() {
		f.Add(uint8(i), uint64(0x0102030405060708), int64(7), uint8(2), int64(1_700_000_000_123_456_789), "p1", "hello", "ann@example.com", uint8(3))
	}
	f.Add(uint8(kindNotifications-1), uint64(0), int64(-1), uint8(255), int64(-1<<63), "", "", "", uint8(maxBatch-1))
	f.Add(uint8(kindPresence-1), ^uint64(0), int64(1<<63-1), uint8(0), int64(1<<63-1), "\x00", "\xff\xfe", "\u2028", uint8(255))
	f.Fuzz(func(t *testing.T, kind uint8, origin uint64, app int64, st uint8, at int64, a, b, c string, n uint8) {
		m := message{kind: kind%kindAppChannels + 1}
		binary.BigEndian.PutUint64(m.origin[:], origin)
		status := core.Status(st % 3)
		ts := time.Unix(0, at)
		switch m.kind {
		case kindStatus:
			m.app = core.AppID(app)
			m.status = core.StatusUpdate{PUID: a, Status: status, Message: b, At: ts}
		case kindInvalidation:
			m.inv = core.Invalidation{Kind: core.InvalidationKind(st%3 + 1), App: core.AppID(app), Close: core.Errno(at), User: c, PUID: a}
		case kindNotifications:
			for i := range int(n)%maxBatch + 1 {
				m.notes = append(m.notes, core.Notification{ID: a + strconv.Itoa(i), AppID: core.AppID(app), PUID: a, UserID: c, Message: b, Action: b + c,
					CreatedAt: ts, ExpiresAt: time.Unix(0, at+int64(i))})
			}
			m.notes = slices.Clip(m.notes) // checkAccepted bounds the capacity decode allocates
		case kindPresence:
			m.pres = core.NodePresence{Node: b, User: c, App: core.AppID(app), Presence: core.Presence{Status: status, Message: b}, At: ts}
			for i := range int(n) {
				m.pres.PUIDs = append(m.pres.PUIDs, a+strconv.Itoa(i))
			}
		case kindDevice:
			m.dev = core.DeviceEvent{Kind: core.DeviceEventKind(st%2 + 1), Node: a, To: b, User: c, DeviceID: a + b, SessionID: b + c, At: ts,
				Current: core.Presence{Status: status, Message: b}}
			for i := range int(n) {
				if m.dev.Apps == nil {
					m.dev.Apps = make(map[core.AppID]core.Presence)
				}
				m.dev.Apps[core.AppID(app+int64(i))] = core.Presence{Status: core.Status((int(st) + i) % 3), Message: a}
			}
		case kindHeartbeat, kindSyncRequest:
			m.node = a
		case kindAppChannels:
			m.channels = core.AppChannels{Node: a, App: core.AppID(app), Held: n%3 == 1, Ask: n%3 == 2}
		}
		checkAccepted(t, nil, m)
		checkRoundTrip(t, encodeMessage(m), m)
	})
}

// A count field claiming more than its bound is refused before anything
// is allocated for it, however large.
func TestDecodeRefusesLargeCounts(t *testing.T) {
	origin := make([]byte, originLen)
	presence := writer(append([]byte(nil), origin...)).u8(kindPresence).str("n").str("u").i64(1).u8(byte(core.Online)).str("").i64(0)
	device := writer(append([]byte(nil), origin...)).u8(kindDevice).u8(byte(core.DeviceHandover)).str("n").str("t").str("u").str("d").str("s").i64(0).u8(0).str("")
	for _, tc := range []struct {
		name   string
		prefix []byte
		bound  uint64
	}{
		{"notifications", append(append([]byte(nil), origin...), kindNotifications), maxBatch},
		{"presence", presence, maxPUIDs},
		{"device", device, maxApps},
	} {
		for _, count := range []uint64{tc.bound + 1, 1 << 40, 1<<64 - 1} {
			data := binary.AppendUvarint(append([]byte(nil), tc.prefix...), count)
			if _, err := decode(data); err == nil {
				t.Errorf("%s: a count of %d decoded without an error", tc.name, count)
			}
		}
		// At the bound, with nothing after the count: truncated.
		data := binary.AppendUvarint(append([]byte(nil), tc.prefix...), tc.bound)
		if _, err := decode(data); err == nil {
			t.Errorf("%s: %d items claimed, none sent, decoded without an error", tc.name, tc.bound)
		}
	}
}

// Values no node sends are refused, not handed to the router: a status
// past Online would outrank online in a user's aggregate (and still read
// "offline" on the wire), and a CachesLost from the wire would make every
// node drop its caches and reread the store.
func TestDecodeRefusesBadValues(t *testing.T) {
	origin := [originLen]byte{}
	bad := map[string][]byte{
		"invalidation kind 0":  encodeInvalidation(origin, core.Invalidation{Kind: 0, App: 1}),
		"invalidation kind 48": encodeInvalidation(origin, core.Invalidation{Kind: 48, App: 1}),
		"CachesLost":           encodeInvalidation(origin, core.Invalidation{Kind: core.CachesLost}),
		"device kind 0":        encodeDevice(origin, core.DeviceEvent{Kind: 0, Node: "n"}),
		"device kind 3":        encodeDevice(origin, core.DeviceEvent{Kind: 3, Node: "n"}),
		"device status":        encodeDevice(origin, core.DeviceEvent{Kind: core.DeviceHandover, Current: core.Presence{Status: core.Online + 1}}),
		"device app status": encodeDevice(origin, core.DeviceEvent{Kind: core.DeviceHandover,
			Apps: map[core.AppID]core.Presence{1: {Status: core.Online}, 2: {Status: 200}}}),
		"presence status": encodePresence(origin, core.NodePresence{Presence: core.Presence{Status: 3}}),
		"status":          encodeStatus(origin, 1, core.StatusUpdate{Status: 3}),
		"held flag":       writer(origin[:]).u8(kindAppChannels).str("n").i64(1).u8(3),
		"kind 0":          writer(origin[:]).u8(0),
		"kind 9":          writer(origin[:]).u8(9).str("n"),
	}
	for name, data := range bad {
		if m, err := decode(data); err == nil {
			t.Errorf("%s: %x decoded as %+v", name, data, m)
		}
	}
}
