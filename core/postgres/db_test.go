package postgres_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/postgres"
	"github.com/presence-service/presence/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// MustOpenDB opens the registry on a fresh database of the test's own,
// with its clock fixed at t0, and closes it when the test ends.
func MustOpenDB(tb testing.TB) *postgres.DB {
	tb.Helper()
	return mustOpenURL(tb, pgtest.Database(tb))
}

func mustOpenURL(tb testing.TB, url string) *postgres.DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, url)
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

// MustApp creates an active app owned by owner.
func MustApp(tb testing.TB, db *postgres.DB, owner string) *core.App {
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
func MustGrant(tb testing.TB, db *postgres.DB, user string, app core.AppID, userString string) string {
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
