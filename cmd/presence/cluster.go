package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	presence "github.com/presence-service/presence"
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
	nc, err := connectNATS(cfg, log, &b.link)
	if err != nil {
		return err
	}
	b.close = append(b.close, func() error { nc.Close(); return nil })
	b.nats = nc

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
	waiting := func(err error) {
		log.Info("waiting for JetStream (servers starting or electing a leader)", "nats_url", cfg.Cluster.NATSURL, "err", err)
	}
	// Each notification's PUID is checked in the registry, with a
	// fallback on what it said last while PostgreSQL is away.
	grants := core.NewPUIDGrants(reg)
	notes, err := pjs.OpenNotifications(pctx, js, grants, pjs.NotificationConfig{
		Replicas:  cfg.Cluster.Replicas,
		QueueSize: cfg.Notifications.QueueSize,
		Waiting:   waiting,
	})
	if errors.Is(err, pjs.ErrNotReady) {
		return jetStreamNotReady(cfg.Cluster.NATSURL, cfg.Cluster.Replicas, err)
	}
	if err != nil {
		return fmt.Errorf("cluster.nats_url: %w (does NATS run JetStream, with at least cluster.replicas = %d servers?)", err, cfg.Cluster.Replicas)
	}
	statuses, err := pjs.OpenStatuses(pctx, js, reg, pjs.StatusConfig{
		Replicas: cfg.Cluster.Replicas,
		TTL:      cfg.Apps.StatusQueueTTL.Duration,
		Waiting:  waiting,
	})
	if errors.Is(err, pjs.ErrNotReady) {
		return jetStreamNotReady(cfg.Cluster.NATSURL, cfg.Cluster.Replicas, err)
	}
	if err != nil {
		return fmt.Errorf("cluster.nats_url: %w", err)
	}
	b.deps = core.Deps{Registry: reg, Notifications: notes, Statuses: statuses, Bus: bus, PUIDGrants: grants}
	return nil
}

// connectNATS connects to cluster.nats_url, as the user of
// cluster.nats_creds when set, verifying tls:// servers against
// cluster.nats_ca when set. The connection tries every server of the list
// and reconnects for ever; link hears its losses and returns.
func connectNATS(cfg *presence.Config, log *slog.Logger, link *linkWatch) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("presence " + cfg.NodeName()),
		nats.Timeout(5 * time.Second),
		nats.MaxReconnects(-1), // a node waits for NATS to come back (and says 503 meanwhile)
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				return // closed on purpose, at shutdown
			}
			log.Warn("lost NATS: trying the other servers", "err", err)
			link.disconnected()
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("NATS is back", "server", c.ConnectedUrlRedacted())
			link.reconnected()
		}),
	}
	// The files are read by the client at each (re)connect; a start
	// without them must say which key names which path, not "no such file".
	if path := cfg.Cluster.NATSCreds; path != "" {
		if err := readable(path); err != nil {
			return nil, fmt.Errorf("cluster.nats_creds: cannot read the NATS credentials file %s: %w", path, err)
		}
		opts = append(opts, nats.UserCredentials(path))
	}
	if path := cfg.Cluster.NATSCA; path != "" {
		// The client would read it at connect and fail as a connection
		// error; a file that holds no certificate is the key's fault.
		pem, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("cluster.nats_ca: cannot read the NATS CA file %s: %w", path, err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster.nats_ca: %s holds no PEM certificate: give the certificate of the CA that signed the NATS servers' certificates, in PEM (-----BEGIN CERTIFICATE-----)", path)
		}
		opts = append(opts, nats.RootCAs(path))
	}
	nc, err := nats.Connect(cfg.Cluster.NATSURL, opts...)
	if err != nil {
		var untrusted *tls.CertificateVerificationError
		if errors.As(err, &untrusted) {
			return nil, fmt.Errorf("cluster.nats_url: cannot reach NATS at %s: %s: %w", cfg.Cluster.NATSURL, untrustedHint(cfg.Cluster.NATSCA), err)
		}
		return nil, fmt.Errorf("cluster.nats_url: cannot reach NATS at %s: %w", cfg.Cluster.NATSURL, err)
	}
	return nc, nil
}

// untrustedHint says what to do when the NATS servers' TLS certificate
// did not verify, against the system's roots or cluster.nats_ca.
func untrustedHint(ca string) string {
	if ca == "" {
		return "the servers' TLS certificate is not trusted by this system's CA roots: " +
			"if a private CA signed it, set cluster.nats_ca to that CA's PEM file"
	}
	return "the servers' TLS certificate does not verify against cluster.nats_ca " + ca +
		": give the CA that signed it, and a certificate that names the host of each URL"
}

// readable returns nil when path is a file this process can open.
func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// jetStreamNotReady is the start's error when the NATS servers answered
// but JetStream did not become ready within the start limit.
func jetStreamNotReady(urls string, replicas int, err error) error {
	return fmt.Errorf("cluster.nats_url: JetStream did not become ready within %v at %s: "+
		"check that every server runs with JetStream enabled, that they are routed to each other "+
		"(same cluster name) and have elected a meta leader (their /healthz answers ok), "+
		"and that at least cluster.replicas = %d of them are up (%w)", clusterOpenTimeout, urls, replicas, err)
}

// redactURL is a connection URL with its password hidden, for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// linkLossDelay is how long a node may be without NATS before it stops
// serving: long enough for the client to fail over to another server of
// the cluster (one server lost is no outage), short enough that devices
// are not left on a node that cannot route their updates.
const linkLossDelay = 3 * time.Second

// linkWatch turns the NATS connection's state into the router's
// (PROTOCOL §10): NATS gone for linkLossDelay, the router ends every
// session and channel with errno -4 and refuses new ones; NATS back, it
// serves again.
type linkWatch struct {
	mu     sync.Mutex // guards: router, timer, down
	router *core.Router
	timer  *time.Timer // runs from a disconnect until linkLossDelay or a reconnect
	down   bool        // NATS is unreachable now
}

// watch hands the router over once it is built; down says whether NATS
// was unreachable then already.
func (w *linkWatch) watch(r *core.Router, down bool) {
	w.mu.Lock()
	w.router = r
	w.mu.Unlock()
	if down {
		w.disconnected()
	}
}

func (w *linkWatch) disconnected() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.down {
		return
	}
	w.down = true
	w.timer = time.AfterFunc(linkLossDelay, func() {
		w.mu.Lock() // held across LinkLost, so that a reconnect's LinkRestored comes after it
		defer w.mu.Unlock()
		if w.down && w.router != nil {
			w.router.LinkLost()
		}
	})
}

func (w *linkWatch) reconnected() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.down = false
	if w.timer != nil {
		w.timer.Stop()
	}
	if w.router != nil {
		w.router.LinkRestored()
	}
}
