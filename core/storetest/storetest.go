package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

// Run runs the conformance tests of the queues, and of revocation across
// the registry and the queues, against the services that open returns,
// fresh and empty for each test. Deps.Bus is not used. The registry's own
// contract is RunRegistry's.
func Run(t *testing.T, open func(t *testing.T) core.Deps) {
	tests := []struct {
		name string
		fn   func(t *testing.T, d core.Deps)
	}{
		{"RevokeGrantEmptiesQueues", testRevokeGrantEmptiesQueues},
		{"BatchWholeOrNothing", testBatchWholeOrNothing},
		{"QueueCap", testQueueCap},
		{"ConcurrentAdds", testConcurrentAdds},
		{"PendingAndAck", testPendingAndAck},
		{"Purge", testPurge},
		{"Waiting", testWaiting},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// fixture is an active app with a user who granted it one PUID.
type fixture struct {
	app  core.AppID
	user string
	puid string
}

func setUp(t *testing.T, d core.Deps, domain, user, puid string) fixture {
	t.Helper()
	ctx := context.Background()
	a := &core.App{Domain: domain, Name: domain, OwnerEmail: "dev@" + domain, State: core.AppActive, VerificationKey: "k"}
	must(t, d.Registry.CreateApp(ctx, a))
	must(t, d.Registry.UpsertUser(ctx, core.User{ID: user, Email: user}))
	g, created, err := d.Registry.Grant(ctx, user, a.ID, "as "+user, puid)
	must(t, err)
	if !created || g.PUID != puid {
		t.Fatalf("Grant: created %v, PUID %q; want a new grant %q", created, g.PUID, puid)
	}
	return fixture{app: a.ID, user: user, puid: puid}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got %v, want %v", what, err, target)
	}
}

// Revoking a grant takes its queued notifications and waiting statuses
// with it, and the PUID takes no new notification.
func testRevokeGrantEmptiesQueues(t *testing.T, d core.Deps) {
	ctx := context.Background()
	f := setUp(t, d, "a.example", "ann", "puid-a")
	now := time.Now()
	_, _, err := d.Notifications.AddNotifications(ctx, f.app, []core.NotificationInput{{PUID: f.puid, Message: "hi"}}, now, time.Minute, 100)
	must(t, err)
	must(t, d.Statuses.SaveWaiting(ctx, f.app, []core.StatusUpdate{{PUID: f.puid, Status: core.Online, At: now}}))

	must(t, d.Registry.RevokeGrant(ctx, f.puid))
	must(t, d.Notifications.DeletePUIDNotifications(ctx, f.puid)) // as the Router follows a revoke
	_, err = d.Registry.GrantByPUID(ctx, f.puid)
	wantErr(t, "GrantByPUID after RevokeGrant", err, core.ErrNotFound)
	if ns, _ := d.Notifications.PendingNotifications(ctx, "ann", nil); len(ns) != 0 {
		t.Fatalf("%d notifications outlived their grant", len(ns))
	}
	if us, _ := d.Statuses.TakeWaiting(ctx, f.app, now.Add(-time.Hour)); len(us) != 0 {
		t.Fatalf("%d waiting updates outlived their grant", len(us))
	}
	wantErr(t, "RevokeGrant of a revoked PUID", d.Registry.RevokeGrant(ctx, f.puid), core.ErrNotFound)
	must(t, d.Notifications.DeletePUIDNotifications(ctx, f.puid)) // idempotent
	_, _, err = d.Notifications.AddNotifications(ctx, f.app, []core.NotificationInput{{PUID: f.puid, Message: "hi"}}, now, time.Minute, 100)
	if core.ErrnoOf(err) != core.ErrnoUnknownUID {
		t.Fatalf("AddNotifications to a revoked PUID: %v, want errno 44", err)
	}
}
