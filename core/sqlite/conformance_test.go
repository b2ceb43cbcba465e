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
		db, err := sqlite.Open(filepath.Join(t.TempDir(), "presence.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return core.Deps{Registry: db, Notifications: db, Statuses: db}
	})
}
