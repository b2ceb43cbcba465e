package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/sqlite"
)

// devSecretFile lives in the data folder, beside the database but never
// in it, as the node key does (Config.NodeKeyPath): a copy of the
// database alone reveals no key.
const devSecretFile = "dev_secret"

// backend is what every command that touches data needs.
type backend struct {
	cfg    *presence.Config
	db     *sqlite.DB // one node: registry and queues; nil in a cluster
	deps   core.Deps  // what the router is built on
	router *core.Router
	close  []func() error // in reverse order by Close
	nats   *nats.Conn     // a cluster's link to the other nodes; nil on one node
	link   linkWatch      // what the router does when nats comes and goes
}

// openBackend opens the database the configuration names, for a CLI
// command: it must exist already (a command run from the wrong folder, or
// without the server's -config, would otherwise make an empty database
// and act on it), and the database opened is said on stderr.
func openBackend(ctx context.Context, cfg *presence.Config, log *slog.Logger, stderr io.Writer) (*backend, error) {
	if cfg.Clustered() {
		fmt.Fprintf(stderr, "presence: cluster database %s, NATS %s\n", redactURL(cfg.Database.URL), cfg.Cluster.NATSURL)
		return openOrCreateBackend(ctx, cfg, log)
	}
	path := absPath(cfg.Database.Path)
	if _, err := os.Stat(cfg.Database.Path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no database at %s: run `presence migrate` to create one there, or give the server's presence.toml with -config", path)
	}
	fmt.Fprintf(stderr, "presence: database %s\n", path)
	return openOrCreateBackend(ctx, cfg, log)
}

// openOrCreateBackend opens the stores (one node: the SQLite file, created
// when missing, for serve and migrate; a cluster: NATS and PostgreSQL,
// cluster.go), runs the start-up checks (PROTOCOL §9: the file's quick
// check and schema in sqlite.Open, the node key here), and builds a
// router over them, with the [[app]]s of the file made to exist.
func openOrCreateBackend(ctx context.Context, cfg *presence.Config, log *slog.Logger) (*backend, error) {
	b := &backend{cfg: cfg}
	var err error
	if cfg.Clustered() {
		err = b.openCluster(ctx, log)
	} else {
		err = b.openSQLite()
	}
	if err != nil {
		b.Close()
		return nil, err
	}
	keys, err := loadNodeKey(ctx, cfg, b.deps.Registry)
	if err != nil {
		b.Close()
		return nil, err
	}
	b.router = core.NewRouter(b.deps, core.Options{
		DisconnectGrace:        cfg.Device.DisconnectGrace.Duration,
		StatusQueueTTL:         cfg.Apps.StatusQueueTTL.Duration,
		NotificationDefaultTTL: cfg.Notifications.DefaultTTL.Duration,
		NotificationQueueSize:  cfg.Notifications.QueueSize,
		NotificationWindow:     cfg.Notifications.Window,
		NotificationsPerMinute: cfg.Limits.NotificationsPerMinute,
		Keys:                   keys,
		Logger:                 log,
	})
	if b.nats != nil {
		b.link.watch(b.router, !b.nats.IsConnected())
	}
	for _, a := range cfg.App {
		spec := core.DeclaredAppSpec{ID: core.AppID(a.ID), Name: a.Name, Domain: a.Domain, Email: a.Email, APIKey: a.APIKey}
		if err := b.router.DeclareApp(ctx, spec); err != nil {
			b.Close()
			return nil, fmt.Errorf("[[app]] id %d: %w", a.ID, err)
		}
	}
	return b, nil
}

// openSQLite opens one node's database: registry and queues in one file.
func (b *backend) openSQLite() error {
	db, err := sqlite.Open(b.cfg.Database.Path)
	if err != nil {
		var d *sqlite.DamagedError
		if errors.As(err, &d) {
			return err // it names the file and says how to restore it
		}
		return fmt.Errorf("open database %s: %w", b.cfg.Database.Path, err)
	}
	b.db = db
	b.deps = core.Deps{Registry: db, Notifications: db, Statuses: db}
	b.close = append(b.close, db.Close)
	return nil
}

// loadNodeKey reads the node key. One node makes it only while no API key
// in the database is sealed under one: a new key cannot open the old
// seals, so every component would be refused its handshake. A cluster
// node never makes it: every node must hold the same key, so a node that
// made its own would seal keys the others cannot open.
func loadNodeKey(ctx context.Context, cfg *presence.Config, reg core.Registry) (*core.Keyring, error) {
	path := cfg.NodeKeyPath()
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if cfg.Clustered() {
			return nil, fmt.Errorf("node key %s is missing: every node of a cluster needs the same one (cluster.node_key_file); copy it from another node, or for a new cluster make it once with `head -c 32 /dev/urandom > %s` (mode 0600) and copy it to every node",
				absPath(path), absPath(path))
		}
		apps, err := reg.Apps(ctx, "")
		if err != nil {
			return nil, fmt.Errorf("node key: %w", err)
		}
		sealed := 0
		for _, a := range apps {
			if a.KeySealed != nil {
				sealed++
			}
		}
		if sealed > 0 {
			return nil, fmt.Errorf("node key %s is missing, and %d API keys in %s are sealed under it: restore %s from the backup of the data folder (it is kept beside the database, never in it)",
				absPath(path), sealed, absPath(cfg.Database.Path), absPath(path))
		}
	}
	keys, err := core.LoadKeyring(path)
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	return keys, nil
}

// Close closes what the backend opened, last opened first.
func (b *backend) Close() error {
	var errs []error
	for i := len(b.close) - 1; i >= 0; i-- {
		errs = append(errs, b.close[i]())
	}
	b.close = nil
	return errors.Join(errs...)
}

// absPath is path made absolute for messages, or path itself if it
// cannot be.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// devSecret is auth.dev_secret, or the one generated into the data folder.
func devSecret(cfg *presence.Config) ([]byte, error) {
	if cfg.Auth.DevSecret != "" {
		return []byte(cfg.Auth.DevSecret), nil
	}
	return core.LoadOrCreateSecret(filepath.Join(cfg.DataDir(), devSecretFile), 32)
}

// existingDevSecret is devSecret for the CLI: a dev secret made here
// would sign tokens that the server refuses ("bad signature").
func existingDevSecret(cfg *presence.Config) ([]byte, error) {
	path := filepath.Join(cfg.DataDir(), devSecretFile)
	if cfg.Auth.DevSecret == "" {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no dev secret at %s: start `presence serve` with this configuration once, or give the server's presence.toml with -config", absPath(path))
		}
	}
	return devSecret(cfg)
}
