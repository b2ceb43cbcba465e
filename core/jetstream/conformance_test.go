package jetstream_test

import (
	"context"
	"os"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/jetstream"
	"github.com/presence-service/presence/core/postgres"
	"github.com/presence-service/presence/core/storetest"
	"github.com/presence-service/presence/internal/natstest"
	"github.com/presence-service/presence/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// TestClusterConformance holds a cluster's stores, together as a cluster
// wires them (the registry on a real PostgreSQL, the queues on three
// embedded NATS servers with R3, checking grants against that registry),
// to the contracts every implementation of core's services shares
// (core/storetest): the same suite as SQLite's and the in-memory store's.
func TestClusterConformance(t *testing.T) {
	pgtest.Database(t) // skips, or fails, here when PostgreSQL is not to be had
	c := natstest.Start(t, 3)
	js, err := natsjs.New(c.Connect())
	if err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, func(t *testing.T) core.Deps {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		reg, err := postgres.Open(ctx, pgtest.Database(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		n, err := jetstream.OpenNotifications(ctx, js, reg, jetstream.NotificationConfig{Replicas: 3})
		if err != nil {
			t.Fatal(err)
		}
		s, err := jetstream.OpenStatuses(ctx, js, reg, jetstream.StatusConfig{Replicas: 3})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			// The next test's streams start empty.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, name := range []string{jetstream.NotificationStream, jetstream.StatusStream} {
				if err := js.DeleteStream(ctx, name); err != nil {
					t.Errorf("delete stream %s: %v", name, err)
				}
			}
		})
		return core.Deps{Registry: reg, Notifications: n, Statuses: s}
	})
}
