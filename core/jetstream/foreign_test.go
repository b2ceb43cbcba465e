package jetstream_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/jetstream"
)

// Any client of the NATS account can publish under presence.n.>. What it
// writes there is no queue of this service's, and the users listed are
// the ones Presence stored for, as if it were not there: an error would
// stop every node's start (Router.Start reads this list).
func TestForeignSubjectsHideNoUser(t *testing.T) {
	e := newEnv(t, 0)
	ctx := ctxT(t)
	pa := e.grants.add("alice@example.com", 1, "pa")
	if _, _, err := e.n.AddNotifications(ctx, 1, []core.NotificationInput{{PUID: pa, Message: "real"}}, time.Now(), 0, 0); err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{
		"presence.n.x", "presence.n.x.1.pa.b", "presence.n.not-base32!.1.pa",
		"presence.n.mfxg.1.pa", // a second spelling of "an" (mfxa)
		"presence.n.mfxa.one.pa", "presence.n.mfxa.01.pa",
	} {
		if _, err := e.js.Publish(ctx, subj, []byte("{}")); err != nil {
			t.Fatalf("publish to %s: %v", subj, err)
		}
	}
	users, err := e.n.UsersWithNotifications(ctx)
	if err != nil || !reflect.DeepEqual(users, []string{"alice@example.com"}) {
		t.Fatalf("UsersWithNotifications = %q, %v; want [alice@example.com]", users, err)
	}
}

// What another client writes under a user's queue, or a queue of that
// user's next to it, is not listed as the user's: not JSON, or not the
// notification of that queue (another user's, another PUID's, no nonce).
// The user's own items are, as if it were not there, and their acks work:
// an error would hide the user's queue for good (a purge removes only
// what it can read the age of).
func TestForeignMessagesHideNoNotification(t *testing.T) {
	e := newEnv(t, 0)
	ctx := ctxT(t)
	pa := e.grants.add("alice@example.com", 1, "pa")
	added, _, err := e.n.AddNotifications(ctx, 1, []core.NotificationInput{{PUID: pa, Message: "real"}}, time.Now(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	queue := jetstream.NotificationSubject("alice@example.com", 1, pa)
	for subj, data := range map[string][]string{
		queue: {"not JSON", `{}`, `null`, `[]`,
			`{"nonce":"n","user":"bob","puid":"pa","app":1}`,
			`{"nonce":"","user":"alice@example.com","puid":"pa","app":1}`,
			`{"nonce":"n","user":"alice@example.com","puid":"pb","app":1}`,
			`{"nonce":"n","user":"alice@example.com","puid":"pa","app":2}`},
		queue + "x": {`{"nonce":"n","user":"alice@example.com","puid":"pa","app":1}`},
		jetstream.NotificationSubject("alice@example.com", 2, "pb"): {"not JSON"},
	} {
		for _, d := range data {
			if _, err := e.js.Publish(ctx, subj, []byte(d)); err != nil {
				t.Fatalf("publish to %s: %v", subj, err)
			}
		}
	}
	for _, apps := range [][]core.AppID{nil, {1}, {1, 2}} {
		p, err := e.n.PendingNotifications(ctx, "alice@example.com", apps)
		if err != nil || !reflect.DeepEqual(ids(p), ids(added)) {
			t.Fatalf("alice's pending (apps %v) = %q %q, %v; want %q", apps, ids(p), messages(p), err, ids(added))
		}
	}
	if n, err := e.n.AckNotifications(ctx, "alice@example.com", ids(added)); err != nil || n != 1 {
		t.Fatalf("ack = %d, %v; want 1", n, err)
	}
	if p, err := e.n.PendingNotifications(ctx, "alice@example.com", nil); err != nil || len(p) != 0 {
		t.Fatalf("alice's pending after her ack = %q, %v", messages(p), err)
	}
}
