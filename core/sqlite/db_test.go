package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/mattn/go-sqlite3"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/sqlite"
)

// t0 is the tests' "now": every MustOpenDB clock reads it.
var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// MustOpenDB opens a fresh database in a temporary folder, with its clock
// fixed at t0, and closes it when the test ends.
func MustOpenDB(tb testing.TB) *sqlite.DB {
	tb.Helper()
	return mustOpenPath(tb, filepath.Join(tb.TempDir(), "data", "presence.db"))
}

func mustOpenPath(tb testing.TB, path string) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	db.Now = func() time.Time { return t0 }
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	})
	return db
}

// MustApp registers an active app of the given owner.
func MustApp(tb testing.TB, db *sqlite.DB, owner string) *core.App {
	tb.Helper()
	a := &core.App{Domain: "example.com", Name: "app of " + owner, OwnerEmail: owner,
		State: core.AppActive, VerificationKey: "vk", KeyHash: core.HashKey("key")}
	if err := db.CreateApp(context.Background(), a); err != nil {
		tb.Fatal(err)
	}
	return a
}

// MustGrant makes sure the user exists and grants them app under a
// PUID derived from the names, returning the PUID.
func MustGrant(tb testing.TB, db *sqlite.DB, user string, app core.AppID, userString string) string {
	tb.Helper()
	ctx := context.Background()
	if err := db.UpsertUser(ctx, core.User{ID: user, Email: user}); err != nil {
		tb.Fatal(err)
	}
	g, _, err := db.Grant(ctx, user, app, userString, fmt.Sprintf("puid-%s-%d-%s", user, app, userString))
	if err != nil {
		tb.Fatal(err)
	}
	return g.PUID
}

func TestOpen_CreatesFolderAndMigrates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "presence.db")
	db := mustOpenPath(t, path)
	if err := db.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Migrate again: nothing changes, nothing fails.
	for range 2 {
		if err := db.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	raw := sqlx.MustOpen("sqlite3", path)
	defer raw.Close()
	var versions []int
	if err := raw.Select(&versions, `SELECT version FROM schema_migrations`); err != nil {
		t.Fatal(err)
	}
	if len(versions) != 1 || versions[0] != presence.SchemaVersion {
		t.Fatalf("schema_migrations = %v, want [%d]", versions, presence.SchemaVersion)
	}
	var mode string
	if err := raw.Get(&mode, `PRAGMA journal_mode`); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestOpen_OddPaths(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, p := range []string{
		"data/presence.db", // relative, as in the embedded default
		filepath.Join(dir, "my data", "100% #1?.db"),
	} {
		db := mustOpenPath(t, p)
		MustApp(t, db, "dev@example.com")
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("Open(%q) did not create that file: %v", p, err)
		}
	}
}

func TestOpen_RefusesMemory(t *testing.T) {
	for _, p := range []string{"", ":memory:"} {
		if db, err := sqlite.Open(p); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

func TestReopen_KeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "presence.db")

	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	app := MustApp(t, db, "dev@example.com")
	puid := MustGrant(t, db, "alice", app.ID, "Alice")
	if err := db.SaveWaiting(ctx, app.ID, []core.StatusUpdate{{PUID: puid, Status: core.Online, At: t0}}); err != nil {
		t.Fatal(err)
	}
	ns, _, err := db.AddNotifications(ctx, app.ID, []core.NotificationInput{{PUID: puid, Message: "hi"}}, t0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = mustOpenPath(t, path)
	if got, err := db.App(ctx, app.ID); err != nil || got.Name != app.Name {
		t.Fatalf("App after reopen = %+v, %v", got, err)
	}
	if g, err := db.GrantByPUID(ctx, puid); err != nil || g.UserID != "alice" {
		t.Fatalf("GrantByPUID after reopen = %+v, %v", g, err)
	}
	w, err := db.AllWaiting(ctx, t0.Add(-time.Hour))
	if err != nil || len(w[app.ID]) != 1 {
		t.Fatalf("AllWaiting after reopen = %v, %v", w, err)
	}
	p, err := db.PendingNotifications(ctx, "alice", nil)
	if err != nil || len(p) != 1 || p[0].ID != ns[0].ID {
		t.Fatalf("PendingNotifications after reopen = %+v, %v", p, err)
	}
}

func TestClose_ThenCallsFail(t *testing.T) {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "presence.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := db.UpsertUser(context.Background(), core.User{ID: "u"}); !errors.Is(err, sqlite.ErrClosed) {
		t.Fatalf("write after Close = %v, want ErrClosed", err)
	}
}

func TestWrite_CanceledContext(t *testing.T) {
	db := MustOpenDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.UpsertUser(ctx, core.User{ID: "u"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("UpsertUser(canceled) = %v", err)
	}
	if _, err := db.User(context.Background(), "u"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("a canceled write was stored: %v", err)
	}
}
