package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-service/presence/core"
	pjs "github.com/presence-service/presence/core/jetstream"
	"github.com/presence-service/presence/core/natsbus"
	"github.com/presence-service/presence/core/postgres"
)

// clusterOpenTimeout bounds each engine's first answer at start: a node
// that cannot reach NATS or PostgreSQL says so instead of hanging.
const clusterOpenTimeout = 30 * time.Second

// openCluster connects a cluster node (PROTOCOL §10): NATS first (the bus,
// then JetStream's queues), then PostgreSQL (the registry). NATS comes
// first because it is the cheaper to find missing, and a node that has
// no NATS must not serve.
func (b *backend) openCluster(ctx context.Context, log *slog.Logger) error {
	cfg := b.cfg
	nc, err := nats.Connect(cfg.Cluster.NATSURL,
		nats.Name("presence "+cfg.NodeName()),
		nats.Timeout(5*time.Second),
		nats.MaxReconnects(-1), // a node waits for NATS to come back (and says 503 meanwhile)
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				return // closed on purpose, at shutdown
			}
			log.Error("lost NATS: this node stops serving until it is back", "err", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Warn("NATS is back", "server", c.ConnectedUrlRedacted())
		}),
	)
	if err != nil {
		return fmt.Errorf("cluster.nats_url: cannot reach NATS at %s: %w", cfg.Cluster.NATSURL, err)
	}
	b.close = append(b.close, func() error { nc.Close(); return nil })

	bus, err := natsbus.New(nc, log)
	if err != nil {
		return fmt.Errorf("cluster.nats_url: %w", err)
	}
	b.close = append(b.close, bus.Close)

	pctx, cancel := context.WithTimeout(ctx, clusterOpenTimeout)
	defer cancel()
	reg, err := postgres.Open(pctx, cfg.Database.URL)
	if err != nil {
		return fmt.Errorf("database.url %s: %w", redactURL(cfg.Database.URL), err)
	}
	b.close = append(b.close, reg.Close)

	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("cluster.nats_url: JetStream: %w", err)
	}
	notes, err := pjs.OpenNotifications(pctx, js, reg, pjs.NotificationConfig{
		Replicas:  cfg.Cluster.Replicas,
		QueueSize: cfg.Notifications.QueueSize,
	})
	if err != nil {
		return fmt.Errorf("cluster.nats_url: %w (does NATS run JetStream, with at least cluster.replicas = %d servers?)", err, cfg.Cluster.Replicas)
	}
	statuses, err := pjs.OpenStatuses(pctx, js, reg, pjs.StatusConfig{
		Replicas: cfg.Cluster.Replicas,
		TTL:      cfg.Apps.StatusQueueTTL.Duration,
	})
	if err != nil {
		return fmt.Errorf("cluster.nats_url: %w", err)
	}
	b.deps = core.Deps{Registry: reg, Notifications: notes, Statuses: statuses, Bus: bus}
	return nil
}

// redactURL is a connection URL with its password hidden, for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
