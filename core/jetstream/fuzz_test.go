package jetstream

import (
	"cmp"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-service/presence/core"
)

// The parsers of what the streams hold: notification ids (from devices'
// acks), subjects (from the stream's subject list), and the messages
// themselves. Any NATS client of the account can write to the streams'
// subjects, and any device can send any id. These targets need no NATS
// server: they test the pure functions.

// FuzzParseID: parseID never panics, and accepts only what notificationID
// makes: the id it accepts is the one notificationID writes for its
// sequence and nonce.
func FuzzParseID(f *testing.F) {
	for _, id := range []string{
		notificationID(1, "0123456789abcdef0123456789abcdef"),
		notificationID(1<<64-1, "ffffffffffffffffffffffffffffffff"),
		"0000000000000001", "0000000000000000abc", "000000000000000Aabc", " 000000000000001abc",
		"+000000000000001abc", "1zzzzzzzzzzzzzzzabc", "0x00000000000001abc", "", "é0000000000000001",
	} {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		seq, nonce, ok := parseID(id)
		if !ok {
			return
		}
		if seq == 0 || nonce == "" {
			t.Fatalf("parseID(%q) = %d, %q, true", id, seq, nonce)
		}
		if back := notificationID(seq, nonce); back != id {
			t.Fatalf("parseID(%q) = %d, %q: notificationID makes %q of them", id, seq, nonce, back)
		}
	})
}

// FuzzNotificationID: every id notificationID makes parses back to its
// sequence and nonce, and ids compare as their sequences do (pending.go
// sorts by id to sort by sequence).
func FuzzNotificationID(f *testing.F) {
	f.Add(uint64(1), uint64(2), "0123456789abcdef0123456789abcdef")
	f.Add(uint64(15), uint64(16), "x")
	f.Add(uint64(1<<64-1), uint64(1<<63), "\xff")
	f.Fuzz(func(t *testing.T, a, b uint64, nonce string) {
		if a == 0 || nonce == "" {
			return // never made: sequences start at 1, nonces are random
		}
		id := notificationID(a, nonce)
		seq, back, ok := parseID(id)
		if !ok || seq != a || back != nonce {
			t.Fatalf("parseID(notificationID(%d, %q) = %q) = %d, %q, %v", a, nonce, id, seq, back, ok)
		}
		if b == 0 {
			return
		}
		if c := strings.Compare(id, notificationID(b, nonce)); c != cmp.Compare(a, b) {
			t.Fatalf("ids of %d and %d compare as %d", a, b, c)
		}
	})
}

// matches says whether subject matches the NATS filter.
func matches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(f) == len(s)
}

// validSubject says whether s is a subject a message can be published
// to: non-empty tokens, no wildcards, no white space.
func validSubject(s string) bool {
	for _, tok := range strings.Split(s, ".") {
		if !validToken(tok) {
			return false
		}
	}
	return true
}

// FuzzSubjects: the subject builders make valid subjects that their
// filters match, and userOfSubject reads the user back from each.
func FuzzSubjects(f *testing.F) {
	f.Add("ann@example.com", int64(7), "p1")
	f.Add("a.b.c", int64(1), "x")
	f.Add("*", int64(-1), "p")
	f.Add(">", int64(1<<63-1), "q")
	f.Add("\x00\xff é", int64(0), "-")
	f.Fuzz(func(t *testing.T, user string, app int64, puid string) {
		if user == "" || !validToken(puid) {
			return // user ids are never empty; PUIDs are checked first
		}
		a := core.AppID(app)
		tok := encodeUser(user)
		if strings.Trim(tok, "abcdefghijklmnopqrstuvwxyz234567") != "" {
			t.Fatalf("user %q encoded as %q", user, tok)
		}
		subj := notificationSubject(user, a, puid)
		if !validSubject(subj) {
			t.Fatalf("notificationSubject(%q, %d, %q) = %q: not a valid subject", user, a, puid, subj)
		}
		for _, filter := range []string{notificationRoot + ".>", userNotifications(user), userAppNotifications(user, a), appNotifications(a), puidNotifications(puid)} {
			if !matches(filter, subj) {
				t.Fatalf("%q does not match %q", filter, subj)
			}
		}
		if matches(userNotifications(user+"x"), subj) {
			t.Fatalf("another user's filter matches %q", subj)
		}
		back, err := userOfSubject(subj)
		if err != nil || back != user {
			t.Fatalf("userOfSubject(%q) = %q, %v; want %q", subj, back, err, user)
		}
		st := statusSubject(a, puid)
		if !validSubject(st) || !matches(appStatuses(a), st) || !matches(statusRoot+".>", st) {
			t.Fatalf("statusSubject(%d, %q) = %q: not a valid subject of %q", a, puid, st, appStatuses(a))
		}
	})
}

// FuzzUserOfSubject: any subject, as the stream's subject list may hold
// (any client can publish under presence.n.>), never panics
// userOfSubject, and a subject it reads a user from is the subject of
// that user's queue: one the builders make.
func FuzzUserOfSubject(f *testing.F) {
	for _, s := range []string{
		notificationSubject("ann@example.com", 7, "p1"), notificationSubject("a", 1, "x"),
		"presence.n", "presence.n.x", "presence.n.mfxg.1", "presence.n.mfxg.1.p.q", "presence.n..1.p",
		"presence.n.MFXA.1.p", "presence.n.mfxg.1.p", "presence.n.a.1.p", "presence.n.mfxa.x.p", "other.n.mfxa.1.p",
		"presence.n.mfxa.1.*", "presence.n.mfxa.-1.p", "presence.n.mfxa.01.p", "presence.n.mfxa.+1.p", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		user, err := userOfSubject(subject)
		if err != nil {
			return
		}
		if user == "" {
			t.Fatalf("userOfSubject(%q) read an empty user", subject)
		}
		parts := strings.Split(subject, ".")
		app, err := strconv.ParseInt(parts[len(parts)-2], 10, 64)
		if err != nil {
			t.Fatalf("userOfSubject(%q) = %q, but its app is %q", subject, user, parts[len(parts)-2])
		}
		if built := notificationSubject(user, core.AppID(app), parts[len(parts)-1]); built != subject {
			t.Fatalf("userOfSubject(%q) = %q, whose queue of app %d is %q", subject, user, app, built)
		}
		if !matches(userNotifications(user), subject) {
			t.Fatalf("userOfSubject(%q) = %q, whose filter %q does not match it", subject, user, userNotifications(user))
		}
	})
}

// FuzzStoredNotification: a message read from the notification stream,
// whatever its subject and bytes, either is refused or lists a
// notification its user can ack: its id parses back to the message's
// sequence and nonce, and it is what storing that notification under that
// subject writes.
func FuzzStoredNotification(f *testing.F) {
	s := stored{Nonce: "0123456789abcdef0123456789abcdef", App: 7, PUID: "p1", User: "ann@example.com",
		Message: "hi", Action: "https://a.example/", CreatedAt: 1_700_000_000_000_000_000, ExpiresAt: 1_700_000_060_000_000_000}
	good, _ := json.Marshal(&s)
	subj := notificationSubject(s.User, s.App, s.PUID)
	for _, d := range []string{
		string(good), string(good[:len(good)-1]), `{}`, `null`, `[]`, `""`, `{"nonce":""}`, `{"nonce":"n","user":"u","puid":"p","app":1}`,
		`{"nonce":"n","user":"u","puid":"a.b","app":1}`, `{"nonce":"n","user":"u","puid":"p","app":"1"}`, `{"created_at":1e400}`, "\xff",
		`{"nonce":"n","user":"ann@example.com","puid":"p1","app":7}`, `{"nonce":"n","user":"ann@example.com","puid":"p1","app":8}`,
	} {
		f.Add(subj, []byte(d), uint64(42))
	}
	f.Add("presence.n.ovzq.1.p", []byte(`{"nonce":"n","user":"u","puid":"p","app":1}`), uint64(1))
	f.Fuzz(func(t *testing.T, subject string, data []byte, seq uint64) {
		if seq == 0 {
			return // stream sequences start at 1
		}
		s, err := decodeStored(subject, data)
		if err != nil {
			return
		}
		n := s.notification(seq)
		gotSeq, nonce, ok := parseID(n.ID)
		if !ok || gotSeq != seq || nonce != s.Nonce {
			t.Fatalf("%q at %d: listed as id %q, which parses as %d, %q, %v", data, seq, n.ID, gotSeq, nonce, ok)
		}
		if user, err := userOfSubject(subject); err != nil || user != n.UserID {
			t.Fatalf("%q under %q: listed for user %q, but the subject is %q's (%v)", data, subject, n.UserID, user, err)
		}
		again, err := json.Marshal(&s)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := decodeStored(subject, again); err != nil || back != s {
			t.Fatalf("%q: decoded as %+v, which stores as %s, read back as %+v, %v", data, s, again, back, err)
		}
	})
}

// FuzzWaitingStatuses: messages read from the status stream, whatever
// their bytes, never panic updatesSince, and what it returns is what they
// hold: statuses of the contract, at or after since, oldest first.
func FuzzWaitingStatuses(f *testing.F) {
	w1, _ := json.Marshal(&waiting{App: 7, PUID: "p1", Status: core.Online, Message: "m", At: 2_000})
	w2, _ := json.Marshal(&waiting{App: 7, PUID: "p2", Status: core.Unavailable, At: 1_000})
	f.Add(w1, w2, int64(0))
	f.Add(w1, []byte(`{"app":7,"puid":"p","status":"busy","at":5}`), int64(1_500))
	f.Add([]byte(`{"status":3}`), []byte(`{}`), int64(-1))
	f.Add([]byte(`null`), []byte(`{"app":1,"status":"online","at":-9223372036854775808}`), int64(-1<<63))
	f.Fuzz(func(t *testing.T, a, b []byte, since int64) {
		msgs := []*jetstream.RawStreamMsg{{Data: a, Sequence: 1}, {Data: b, Sequence: 2}}
		byApp := updatesSince(msgs, time.Unix(0, since))
		total := 0
		for app, us := range byApp {
			for i, u := range us {
				total++
				if u.Status > core.Online {
					t.Fatalf("app %d: status %d", app, u.Status)
				}
				if u.At.UnixNano() < since {
					t.Fatalf("app %d: an update at %d, before %d", app, u.At.UnixNano(), since)
				}
				if i > 0 && u.At.Before(us[i-1].At) {
					t.Fatalf("app %d: updates out of order: %v", app, us)
				}
			}
		}
		if total > len(msgs) {
			t.Fatalf("%d updates of %d messages", total, len(msgs))
		}
	})
}
