package memstore_test

import (
	"testing"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/memstore"
	"github.com/presence-service/presence/core/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) core.Deps { return memstore.New().Deps() })
}

func TestRegistryConformance(t *testing.T) {
	storetest.RunRegistry(t, func(t *testing.T) storetest.RegistryUnderTest {
		s := memstore.New()
		return storetest.RegistryUnderTest{Registry: s, Now: &s.Now}
	})
}
