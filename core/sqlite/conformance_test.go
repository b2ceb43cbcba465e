package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/sqlite"
	"github.com/presence-service/presence/core/storetest"
)

// TestConformance holds the SQLite store to the contracts that every
// implementation of core's services shares (core/storetest), the
// in-memory one included.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) core.Deps {
		db := openTemp(t)
		return core.Deps{Registry: db, Notifications: db, Statuses: db}
	})
}

// TestRegistryConformance holds the SQLite registry to the Registry's
// contract, the same suite as the in-memory and PostgreSQL registries'.
func TestRegistryConformance(t *testing.T) {
	storetest.RunRegistry(t, func(t *testing.T) storetest.RegistryUnderTest {
		db := openTemp(t)
		return storetest.RegistryUnderTest{Registry: db, Now: &db.Now}
	})
}

func openTemp(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "presence.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
