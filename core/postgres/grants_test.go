package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/internal/pgtest"
)

func TestUsers(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)

	if err := db.UpsertUser(ctx, core.User{ID: "fxa-1", Email: "old@example.com"}); err != nil {
		t.Fatal(err)
	}
	db.Now = func() time.Time { return t0.Add(time.Hour) }
	if err := db.UpsertUser(ctx, core.User{ID: "fxa-1", Email: "new@example.com"}); err != nil {
		t.Fatal(err)
	}
	u, err := db.User(ctx, "fxa-1")
	if err != nil {
		t.Fatal(err)
	}
	want := &core.User{ID: "fxa-1", Email: "new@example.com", CreatedAt: t0}
	if !reflect.DeepEqual(u, want) {
		t.Fatalf("User = %+v, want %+v (email updated, created_at kept)", u, want)
	}

	// A sign-in that does not say the email keeps the stored one.
	if err := db.UpsertUser(ctx, core.User{ID: "fxa-1"}); err != nil {
		t.Fatal(err)
	}
	if u, err = db.User(ctx, "fxa-1"); err != nil || !reflect.DeepEqual(u, want) {
		t.Fatalf("after an upsert without email: User = %+v, %v, want %+v", u, err, want)
	}
	// A first sign-in without email still creates the user.
	if err := db.UpsertUser(ctx, core.User{ID: "fxa-2"}); err != nil {
		t.Fatal(err)
	}
	if u, err := db.User(ctx, "fxa-2"); err != nil || u.Email != "" {
		t.Fatalf("User(fxa-2) = %+v, %v, want no email", u, err)
	}

	if _, err := db.User(ctx, "nobody"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("User(unknown) = %v, want ErrNotFound", err)
	}
	if err := db.UpsertUser(ctx, core.User{}); err == nil {
		t.Fatal("UpsertUser with no id succeeded")
	}
}

func TestGrant(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := MustApp(t, db, "dev@example.com")
	other := MustApp(t, db, "dev@example.com")
	for _, u := range []string{"alice", "bob"} {
		if err := db.UpsertUser(ctx, core.User{ID: u, Email: u}); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, created, err := db.Grant(ctx, tt.user, tt.app, tt.userString, tt.newPUID)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := &core.Grant{PUID: tt.wantPUID, UserID: tt.user, AppID: tt.app, UserString: tt.userString, CreatedAt: t0}
			if created != tt.wantCreated || !reflect.DeepEqual(g, want) {
				t.Fatalf("Grant = %+v, %v; want %+v, %v", g, created, want, tt.wantCreated)
			}
		})
	}

	g, err := db.GrantByPUID(ctx, "p3")
	if err != nil || g.UserString != "Al" || g.AppID != app.ID {
		t.Fatalf("GrantByPUID = %+v, %v", g, err)
	}
	if _, err := db.GrantByPUID(ctx, "nope"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("GrantByPUID(unknown) = %v, want ErrNotFound", err)
	}
}

func TestGrant_RaceGivesOnePUID(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := MustApp(t, db, "dev@example.com")
	if err := db.UpsertUser(ctx, core.User{ID: "alice"}); err != nil {
		t.Fatal(err)
	}

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
			g, created[i], errs[i] = db.Grant(ctx, "alice", app.ID, "Alice", fmt.Sprintf("puid-%d", i))
			if g != nil {
				puids[i] = g.PUID
			}
		})
	}
	wg.Wait()
	nCreated := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
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

func TestUserGrants(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	a1 := MustApp(t, db, "dev@example.com")
	a2 := MustApp(t, db, "dev@example.com")

	// Granted out of order: a2 first, then a1 twice at later times.
	MustGrant(t, db, "alice", a2.ID, "A")
	db.Now = func() time.Time { return t0.Add(2 * time.Second) }
	late := MustGrant(t, db, "alice", a1.ID, "late")
	db.Now = func() time.Time { return t0.Add(time.Second) }
	early := MustGrant(t, db, "alice", a1.ID, "early")
	MustGrant(t, db, "bob", a1.ID, "B")

	gs, err := db.UserGrants(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range gs {
		got = append(got, g.PUID)
	}
	want := []string{early, late, "puid-alice-" + fmt.Sprint(a2.ID) + "-A"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("UserGrants = %v, want %v (by app, then created_at)", got, want)
	}
	if gs, err := db.UserGrants(ctx, "nobody"); err != nil || len(gs) != 0 {
		t.Fatalf("UserGrants(nobody) = %v, %v", gs, err)
	}
}

// Revoking deletes the grant and only it; a second revoke, or one of an
// unknown PUID, is ErrNotFound, and a new grant of the same triple gets a
// new PUID.
func TestRevokeGrant(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := MustApp(t, db, "dev@example.com")
	gone := MustGrant(t, db, "alice", app.ID, "A")
	kept := MustGrant(t, db, "alice", app.ID, "B")

	if err := db.RevokeGrant(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeGrant(ctx, gone); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("second RevokeGrant = %v, want ErrNotFound", err)
	}
	if _, err := db.GrantByPUID(ctx, gone); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("revoked grant still found: %v", err)
	}
	gs, err := db.UserGrants(ctx, "alice")
	if err != nil || len(gs) != 1 || gs[0].PUID != kept {
		t.Fatalf("UserGrants after revoke = %+v, %v; want only %s", gs, err, kept)
	}
	g, created, err := db.Grant(ctx, "alice", app.ID, "A", "fresh")
	if err != nil || !created || g.PUID != "fresh" {
		t.Fatalf("Grant after revoke = %+v, %v, %v; want a new grant under the new PUID", g, created, err)
	}
}

// Two registries on one database, as two nodes of a cluster: the grant
// one makes, the other reads; the same triple granted on both at once
// ends with one PUID.
func TestGrant_TwoNodesShareOnePUID(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t)
	a, b := mustOpenURL(t, url), mustOpenURL(t, url)
	app := MustApp(t, a, "dev@example.com")
	if err := b.UpsertUser(ctx, core.User{ID: "alice"}); err != nil {
		t.Fatal(err)
	}

	const n = 20
	var (
		wg    sync.WaitGroup
		puids = make([]string, 2*n)
		errs  = make([]error, 2*n)
	)
	for i := range 2 * n {
		node := a
		if i%2 == 1 {
			node = b
		}
		wg.Go(func() {
			g, _, err := node.Grant(ctx, "alice", app.ID, "Alice", fmt.Sprintf("puid-%d", i))
			errs[i] = err
			if g != nil {
				puids[i] = g.PUID
			}
		})
	}
	wg.Wait()
	for i := range 2 * n {
		if errs[i] != nil || puids[i] != puids[0] {
			t.Fatalf("call %d: %s, %v; call 0 got %s", i, puids[i], errs[i], puids[0])
		}
	}
	got, err := a.GrantByPUID(ctx, puids[0])
	if err != nil || got.UserID != "alice" {
		t.Fatalf("GrantByPUID on the other node = %+v, %v", got, err)
	}
}
