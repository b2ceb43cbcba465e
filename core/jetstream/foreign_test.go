package jetstream_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
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
