package storetest

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

// RegistryUnderTest is a fresh, empty core.Registry and the clock it
// stamps created_at with (the implementation's Now field): the suite sets
// that clock, so that it can check the times a registry sets and the
// orders that follow from them.
type RegistryUnderTest struct {
	core.Registry
	Now *func() time.Time
}

// t0 is the suite's "now": every registry's clock reads it unless a test
// moves it.
var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// RunRegistry runs the Registry's conformance tests against the
// registries that open returns, fresh and empty for each test.
func RunRegistry(t *testing.T, open func(t *testing.T) RegistryUnderTest) {
	tests := []struct {
		name string
		fn   func(t *testing.T, r RegistryUnderTest)
	}{
		{"Apps", testApps},
		{"Users", testUsers},
		{"Grants", testGrants},
		{"UserGrantsOrder", testUserGrantsOrder},
		{"ConcurrentGrant", testConcurrentGrant},
		{"RevokeGrant", testRevokeGrant},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := open(t)
			*r.Now = func() time.Time { return t0 }
			tc.fn(t, r)
		})
	}
}

// mustApp registers an active app of the given owner.
func mustApp(t *testing.T, reg core.Registry, owner string) *core.App {
	t.Helper()
	a := &core.App{Domain: "example.com", Name: "app of " + owner, OwnerEmail: owner,
		State: core.AppActive, VerificationKey: "vk", KeyHash: core.HashKey("key")}
	must(t, reg.CreateApp(context.Background(), a))
	return a
}

// mustGrant makes sure the user exists and grants them app under a PUID
// derived from the names, returning the PUID.
func mustGrant(t *testing.T, reg core.Registry, user string, app core.AppID, userString string) string {
	t.Helper()
	ctx := context.Background()
	must(t, reg.UpsertUser(ctx, core.User{ID: user, Email: user}))
	g, _, err := reg.Grant(ctx, user, app, userString, fmt.Sprintf("puid-%s-%d-%s", user, app, userString))
	must(t, err)
	return g.PUID
}

func appIDs(apps []*core.App) []core.AppID {
	var ids []core.AppID
	for _, a := range apps {
		ids = append(ids, a.ID)
	}
	return ids
}

func testApps(t *testing.T, r RegistryUnderTest) {
	ctx := context.Background()
	reg := r.Registry
	a := &core.App{Domain: "beer.example", Name: "Beer", Description: "chat", OwnerEmail: "fred@example.com",
		VerificationKey: "k1"}
	must(t, reg.CreateApp(ctx, a))
	if a.ID == 0 || a.State != core.AppUnverified || !a.CreatedAt.Equal(t0) {
		t.Fatalf("CreateApp filled in %+v; want an id, unverified, created now", a)
	}
	b := mustApp(t, reg, "other@example.com")
	if b.ID == 0 || b.ID == a.ID {
		t.Fatalf("CreateApp assigned ids %d and %d: want two distinct non-zero ids", a.ID, b.ID)
	}
	c := &core.App{ID: 421, Domain: "declared.example", Name: "Declared", OwnerEmail: "fred@example.com", VerificationKey: "k"}
	if err := reg.CreateApp(ctx, c); err != nil || c.ID != 421 {
		t.Fatalf("CreateApp with id: %v, id %d", err, c.ID)
	}
	wantErr(t, "CreateApp with a taken id",
		reg.CreateApp(ctx, &core.App{ID: 421, Domain: "x", Name: "x", OwnerEmail: "x", VerificationKey: "x"}), core.ErrConflict)

	got, err := reg.App(ctx, a.ID)
	must(t, err)
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("App = %+v\nwant %+v", got, a)
	}
	_, err = reg.App(ctx, 9999)
	wantErr(t, "App of an unknown id", err, core.ErrNotFound)

	for _, tt := range []struct {
		owner string
		want  []core.AppID
	}{
		{"", []core.AppID{a.ID, b.ID, 421}},
		{"fred@example.com", []core.AppID{a.ID, 421}},
		{"other@example.com", []core.AppID{b.ID}},
		{"nobody@example.com", nil},
	} {
		apps, err := reg.Apps(ctx, tt.owner)
		must(t, err)
		if ids := appIDs(apps); !reflect.DeepEqual(ids, tt.want) {
			t.Errorf("Apps(%q) = %v, want %v, by id", tt.owner, ids, tt.want)
		}
	}

	// Update every column but id and created_at.
	u := *a
	u.Domain, u.Name, u.Description, u.OwnerEmail = "new.example", "New", "d2", "new@example.com"
	u.State, u.VerificationKey = core.AppActive, "k2"
	u.KeyHash, u.KeySealed = core.HashKey("secret"), []byte{1, 2, 3}
	u.VerifiedAt, u.ActivatedAt = t0.Add(1), t0.Add(2)
	u.CreatedAt = t0.Add(99) // ignored
	must(t, reg.UpdateApp(ctx, &u))
	wantHash := append([]byte(nil), u.KeyHash...)
	u.KeyHash[0]++ // the registry must hold its own copy
	got, err = reg.App(ctx, a.ID)
	must(t, err)
	u.CreatedAt, u.KeyHash = a.CreatedAt, wantHash
	if !reflect.DeepEqual(got, &u) {
		t.Fatalf("after UpdateApp: %+v\nwant %+v", got, &u)
	}
	if !got.Active() || !got.CheckKey("secret") {
		t.Fatal("updated app is not active with its key")
	}
	wantErr(t, "UpdateApp of an unknown app", reg.UpdateApp(ctx, &core.App{ID: 9999, Name: "X"}), core.ErrNotFound)
}

func testUsers(t *testing.T, r RegistryUnderTest) {
	ctx := context.Background()
	reg := r.Registry
	must(t, reg.UpsertUser(ctx, core.User{ID: "fxa-1", Email: "old@example.com"}))
	*r.Now = func() time.Time { return t0.Add(time.Hour) }
	must(t, reg.UpsertUser(ctx, core.User{ID: "fxa-1", Email: "new@example.com"}))
	u, err := reg.User(ctx, "fxa-1")
	must(t, err)
	want := &core.User{ID: "fxa-1", Email: "new@example.com", CreatedAt: t0}
	if !reflect.DeepEqual(u, want) {
		t.Fatalf("User = %+v, want %+v (email updated, created_at kept)", u, want)
	}

	// A sign-in that does not say the email keeps the stored one.
	must(t, reg.UpsertUser(ctx, core.User{ID: "fxa-1"}))
	if u, err = reg.User(ctx, "fxa-1"); err != nil || !reflect.DeepEqual(u, want) {
		t.Fatalf("after an upsert without email: User = %+v, %v, want %+v", u, err, want)
	}
	// A first sign-in without email still creates the user.
	must(t, reg.UpsertUser(ctx, core.User{ID: "fxa-2"}))
	if u, err := reg.User(ctx, "fxa-2"); err != nil || u.Email != "" {
		t.Fatalf("User(fxa-2) = %+v, %v, want no email", u, err)
	}

	_, err = reg.User(ctx, "nobody")
	wantErr(t, "User of an unknown id", err, core.ErrNotFound)
	if err := reg.UpsertUser(ctx, core.User{}); core.ErrnoOf(err) != core.ErrnoInvalidField {
		t.Fatalf("UpsertUser without an id = %v, want errno 3", err)
	}
}

func testGrants(t *testing.T, r RegistryUnderTest) {
	ctx := context.Background()
	reg := r.Registry
	app := mustApp(t, reg, "dev@example.com")
	other := mustApp(t, reg, "dev@example.com")
	for _, u := range []string{"alice", "bob"} {
		must(t, reg.UpsertUser(ctx, core.User{ID: u, Email: u}))
	}

	for _, tt := range []struct {
		name        string
		user        string
		app         core.AppID
		userString  string
		newPUID     string
		wantPUID    string
		wantCreated bool
		wantErr     error
	}{
		{"new", "alice", app.ID, "Alice", "p1", "p1", true, nil},
		{"same triple reuses", "alice", app.ID, "Alice", "p2", "p1", false, nil},
		{"other userstring", "alice", app.ID, "Al", "p3", "p3", true, nil},
		{"other app", "alice", other.ID, "Alice", "p4", "p4", true, nil},
		{"other user", "bob", app.ID, "Alice", "p5", "p5", true, nil},
		{"puid taken", "bob", app.ID, "Bob", "p1", "", false, core.ErrConflict},
		{"unknown user", "carol", app.ID, "C", "p6", "", false, core.ErrNotFound},
		{"unknown app", "alice", 9999, "A", "p7", "", false, core.ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g, created, err := reg.Grant(ctx, tt.user, tt.app, tt.userString, tt.newPUID)
			if tt.wantErr != nil {
				wantErr(t, "Grant", err, tt.wantErr)
				return
			}
			must(t, err)
			want := &core.Grant{PUID: tt.wantPUID, UserID: tt.user, AppID: tt.app, UserString: tt.userString, CreatedAt: t0}
			if created != tt.wantCreated || !reflect.DeepEqual(g, want) {
				t.Fatalf("Grant = %+v, %v; want %+v, %v", g, created, want, tt.wantCreated)
			}
		})
	}

	g, err := reg.GrantByPUID(ctx, "p3")
	if err != nil || g.UserID != "alice" || g.UserString != "Al" || g.AppID != app.ID {
		t.Fatalf("GrantByPUID = %+v, %v", g, err)
	}
	_, err = reg.GrantByPUID(ctx, "nope")
	wantErr(t, "GrantByPUID of an unknown PUID", err, core.ErrNotFound)
}

// A user's grants come by app, then by created_at.
func testUserGrantsOrder(t *testing.T, r RegistryUnderTest) {
	ctx := context.Background()
	reg := r.Registry
	a1 := mustApp(t, reg, "dev@example.com")
	a2 := mustApp(t, reg, "dev@example.com")

	// Granted out of order: a2 first, then a1 twice at later times.
	mustGrant(t, reg, "alice", a2.ID, "A")
	*r.Now = func() time.Time { return t0.Add(2 * time.Second) }
	late := mustGrant(t, reg, "alice", a1.ID, "late")
	*r.Now = func() time.Time { return t0.Add(time.Second) }
	early := mustGrant(t, reg, "alice", a1.ID, "early")
	mustGrant(t, reg, "bob", a1.ID, "B")

	gs, err := reg.UserGrants(ctx, "alice")
	must(t, err)
	var got []string
	for _, g := range gs {
		got = append(got, g.PUID)
	}
	want := []string{early, late, fmt.Sprintf("puid-alice-%d-A", a2.ID)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("UserGrants = %v, want %v (by app, then created_at)", got, want)
	}
	if gs, err := reg.UserGrants(ctx, "nobody"); err != nil || len(gs) != 0 {
		t.Fatalf("UserGrants(nobody) = %v, %v", gs, err)
	}
}

// Concurrent Grants of one (user, app, userstring) end with one PUID,
// and exactly one of them says it created the grant.
func testConcurrentGrant(t *testing.T, r RegistryUnderTest) {
	ctx := context.Background()
	reg := r.Registry
	app := mustApp(t, reg, "dev@example.com")
	must(t, reg.UpsertUser(ctx, core.User{ID: "alice"}))

	const n = 50
	var (
		wg      sync.WaitGroup
		puids   = make([]string, n)
		created = make([]bool, n)
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			var g *core.Grant
			g, created[i], errs[i] = reg.Grant(ctx, "alice", app.ID, "Alice", fmt.Sprintf("puid-%d", i))
			if g != nil {
				puids[i] = g.PUID
			}
		})
	}
	wg.Wait()
	nCreated := 0
	for i := range n {
		must(t, errs[i])
		if puids[i] != puids[0] {
			t.Fatalf("goroutine %d got %s, goroutine 0 got %s", i, puids[i], puids[0])
		}
		if created[i] {
			nCreated++
		}
	}
	if nCreated != 1 {
		t.Fatalf("%d calls say they created the grant, want 1", nCreated)
	}
}

// Revoking deletes the grant and only it; a second revoke is
// ErrNotFound, and a new grant of the same triple gets a new PUID.
func testRevokeGrant(t *testing.T, r RegistryUnderTest) {
	ctx := context.Background()
	reg := r.Registry
	app := mustApp(t, reg, "dev@example.com")
	gone := mustGrant(t, reg, "alice", app.ID, "A")
	kept := mustGrant(t, reg, "alice", app.ID, "B")

	must(t, reg.RevokeGrant(ctx, gone))
	wantErr(t, "a second RevokeGrant", reg.RevokeGrant(ctx, gone), core.ErrNotFound)
	wantErr(t, "RevokeGrant of an unknown PUID", reg.RevokeGrant(ctx, "puid-nobody"), core.ErrNotFound)
	_, err := reg.GrantByPUID(ctx, gone)
	wantErr(t, "GrantByPUID of a revoked grant", err, core.ErrNotFound)
	gs, err := reg.UserGrants(ctx, "alice")
	if err != nil || len(gs) != 1 || gs[0].PUID != kept {
		t.Fatalf("UserGrants after revoke = %+v, %v; want only %s", gs, err, kept)
	}
	g, created, err := reg.Grant(ctx, "alice", app.ID, "A", "fresh")
	if err != nil || !created || g.PUID != "fresh" {
		t.Fatalf("Grant after revoke = %+v, %v, %v; want a new grant under the new PUID", g, created, err)
	}
}

func testPing(t *testing.T, r RegistryUnderTest) {
	if err := r.Ping(context.Background()); err != nil {
		t.Fatalf("Ping of an open registry: %v", err)
	}
}
