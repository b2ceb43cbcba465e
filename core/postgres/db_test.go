package postgres_test

import (
	"context"
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
