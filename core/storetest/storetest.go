package storetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

// Run runs every conformance test against the services that open returns,
// fresh and empty for each test. Deps.Bus is not used.
func Run(t *testing.T, open func(t *testing.T) core.Deps) {
	tests := []struct {
		name string
		fn   func(t *testing.T, d core.Deps)
	}{
		{"Apps", testApps},
		{"Users", testUsers},
		{"Grants", testGrants},
		{"ConcurrentGrant", testConcurrentGrant},
		{"RevokeGrant", testRevokeGrant},
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

func testApps(t *testing.T, d core.Deps) {
	ctx := context.Background()
	reg := d.Registry
	a := &core.App{Domain: "a.example", Name: "A", OwnerEmail: "ann@example.com", VerificationKey: "va"}
	b := &core.App{Domain: "b.example", Name: "B", OwnerEmail: "bob@example.com", VerificationKey: "vb"}
	must(t, reg.CreateApp(ctx, a))
	must(t, reg.CreateApp(ctx, b))
	if a.ID == 0 || b.ID == 0 || a.ID == b.ID {
		t.Fatalf("CreateApp assigned ids %d and %d: want two distinct non-zero ids", a.ID, b.ID)
	}
	if a.State != core.AppUnverified || a.CreatedAt.IsZero() {
		t.Fatalf("CreateApp: state %q, created %v: want unverified, now", a.State, a.CreatedAt)
	}
	declared := &core.App{ID: 421, Domain: "c.example", Name: "C", OwnerEmail: "ann@example.com", State: core.AppActive}
	must(t, reg.CreateApp(ctx, declared))
	if declared.ID != 421 {
		t.Fatalf("CreateApp with id 421 stored it as %d", declared.ID)
	}
	wantErr(t, "CreateApp of a taken id", reg.CreateApp(ctx, &core.App{ID: 421, Domain: "d.example", Name: "D"}), core.ErrConflict)

	got, err := reg.App(ctx, a.ID)
	must(t, err)
	if got.Domain != "a.example" || got.Name != "A" || got.OwnerEmail != "ann@example.com" || got.VerificationKey != "va" {
		t.Fatalf("App: %+v", got)
	}
	_, err = reg.App(ctx, 9999)
	wantErr(t, "App of an unknown id", err, core.ErrNotFound)

	mine, err := reg.Apps(ctx, "ann@example.com")
	must(t, err)
	if ids := appIDs(mine); !slices.Equal(ids, []core.AppID{a.ID, 421}) {
		t.Fatalf("Apps of ann: %v, want [%d 421]", ids, a.ID)
	}
	all, err := reg.Apps(ctx, "")
	must(t, err)
	if ids := appIDs(all); !slices.IsSorted(ids) || len(ids) != 3 {
		t.Fatalf("Apps of everyone: %v, want 3 by id", ids)
	}
	none, err := reg.Apps(ctx, "nobody@example.com")
	must(t, err)
	if len(none) != 0 {
		t.Fatalf("Apps of nobody: %d apps", len(none))
	}

	now := time.Now().Round(0).UTC().Truncate(time.Millisecond)
	got.State, got.KeyHash, got.KeySealed, got.VerifiedAt, got.ActivatedAt = core.AppActive, []byte{1, 2}, []byte{3}, now, now
	got.Name = "A2"
	must(t, reg.UpdateApp(ctx, got))
	got.KeyHash[0] = 9 // the store must hold its own copy
	again, err := reg.App(ctx, a.ID)
	must(t, err)
	if again.Name != "A2" || again.State != core.AppActive || !slices.Equal(again.KeyHash, []byte{1, 2}) ||
		!again.VerifiedAt.Equal(now) || !again.ActivatedAt.Equal(now) || !again.CreatedAt.Equal(a.CreatedAt) {
		t.Fatalf("App after UpdateApp: %+v", again)
	}
	wantErr(t, "UpdateApp of an unknown app", reg.UpdateApp(ctx, &core.App{ID: 9999, Name: "X"}), core.ErrNotFound)
}

func appIDs(apps []*core.App) []core.AppID {
	var ids []core.AppID
	for _, a := range apps {
		ids = append(ids, a.ID)
	}
	return ids
}

func testUsers(t *testing.T, d core.Deps) {
	ctx := context.Background()
	reg := d.Registry
	must(t, reg.UpsertUser(ctx, core.User{ID: "sub-1", Email: "ann@example.com"}))
	must(t, reg.UpsertUser(ctx, core.User{ID: "sub-1", Email: ""})) // a provider that does not say the email
	u, err := reg.User(ctx, "sub-1")
	must(t, err)
	if u.Email != "ann@example.com" || u.CreatedAt.IsZero() {
		t.Fatalf("User after an upsert without email: %+v", u)
	}
	must(t, reg.UpsertUser(ctx, core.User{ID: "sub-1", Email: "ann@new.example"}))
	if u, _ := reg.User(ctx, "sub-1"); u.Email != "ann@new.example" {
		t.Fatalf("User after an email change: %+v", u)
	}
	_, err = reg.User(ctx, "sub-2")
	wantErr(t, "User of an unknown id", err, core.ErrNotFound)
	if core.ErrnoOf(reg.UpsertUser(ctx, core.User{})) != core.ErrnoInvalidField {
		t.Fatal("UpsertUser without an id: want errno 3")
	}
}

func testGrants(t *testing.T, d core.Deps) {
	ctx := context.Background()
	reg := d.Registry
	f := setUp(t, d, "a.example", "ann", "puid-a")
	g, created, err := reg.Grant(ctx, "ann", f.app, "as ann", "puid-other")
	must(t, err)
	if created || g.PUID != "puid-a" {
		t.Fatalf("Grant of an existing triple: created %v, PUID %q; want puid-a again", created, g.PUID)
	}
	g2, created, err := reg.Grant(ctx, "ann", f.app, "Ann at work", "puid-b")
	must(t, err)
	if !created || g2.UserID != "ann" || g2.AppID != f.app || g2.UserString != "Ann at work" || g2.CreatedAt.IsZero() {
		t.Fatalf("Grant of a new userstring: %+v created %v", g2, created)
	}
	_, _, err = reg.Grant(ctx, "nobody", f.app, "x", "puid-c")
	wantErr(t, "Grant for an unknown user", err, core.ErrNotFound)
	_, _, err = reg.Grant(ctx, "ann", 9999, "x", "puid-d")
	wantErr(t, "Grant for an unknown app", err, core.ErrNotFound)
	_, _, err = reg.Grant(ctx, "ann", f.app, "y", "puid-a")
	wantErr(t, "Grant under a taken PUID", err, core.ErrConflict)

	byPUID, err := reg.GrantByPUID(ctx, "puid-b")
	must(t, err)
	if byPUID.UserID != "ann" || byPUID.AppID != f.app {
		t.Fatalf("GrantByPUID: %+v", byPUID)
	}
	_, err = reg.GrantByPUID(ctx, "puid-zzz")
	wantErr(t, "GrantByPUID of an unknown PUID", err, core.ErrNotFound)

	other := &core.App{Domain: "b.example", Name: "B", OwnerEmail: "dev@b.example"}
	must(t, reg.CreateApp(ctx, other))
	_, _, err = reg.Grant(ctx, "ann", other.ID, "as ann", "puid-e")
	must(t, err)
	gs, err := reg.UserGrants(ctx, "ann")
	must(t, err)
	var apps []core.AppID
	for _, g := range gs {
		apps = append(apps, g.AppID)
	}
	if len(gs) != 3 || !slices.IsSorted(apps) {
		t.Fatalf("UserGrants: %d grants of apps %v, want 3 by app", len(gs), apps)
	}
	none, err := reg.UserGrants(ctx, "nobody")
	must(t, err)
	if len(none) != 0 {
		t.Fatalf("UserGrants of nobody: %d", len(none))
	}
}

func testConcurrentGrant(t *testing.T, d core.Deps) {
	ctx := context.Background()
	f := setUp(t, d, "a.example", "ann", "puid-a")
	const n = 8
	puids := make([]string, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, c, err := d.Registry.Grant(ctx, "ann", f.app, "same", core.NewPUID())
			if err != nil {
				t.Error(err)
				return
			}
			puids[i], created[i] = g.PUID, c
		}()
	}
	wg.Wait()
	news := 0
	for i := range n {
		if puids[i] != puids[0] {
			t.Fatalf("concurrent Grants of one triple got PUIDs %q and %q", puids[0], puids[i])
		}
		if created[i] {
			news++
		}
	}
	if news != 1 {
		t.Fatalf("%d of %d concurrent Grants say they created the grant, want 1", news, n)
	}
}

func testRevokeGrant(t *testing.T, d core.Deps) {
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
