package postgres_test

import (
	"testing"

	"github.com/presence-service/presence/core/storetest"
)

// TestRegistryConformance holds the PostgreSQL registry to the Registry's
// contract, the same suite as the in-memory and SQLite registries'. Like
// every test here, it runs when PRESENCE_CLUSTER or PRESENCE_PG_URL says
// where PostgreSQL is to be had (internal/pgtest), and is skipped otherwise.
func TestRegistryConformance(t *testing.T) {
	storetest.RunRegistry(t, func(t *testing.T) storetest.RegistryUnderTest {
		db := MustOpenDB(t)
		return storetest.RegistryUnderTest{Registry: db, Now: &db.Now}
	})
}
