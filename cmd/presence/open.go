package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/sqlite"
)

// nodeKeyFile and devSecretFile live in the data folder, beside the
// database but never in it: a copy of the database alone reveals no key.
const (
	nodeKeyFile   = "presence.key"
	devSecretFile = "dev_secret"
)

// backend is what every command that touches data needs.
type backend struct {
	cfg    *presence.Config
	db     *sqlite.DB
	router *core.Router
}

// openBackend opens the database (applying the schema), the node key and a
// router over them, and makes the [[app]]s of the file exist.
func openBackend(ctx context.Context, cfg *presence.Config, log *slog.Logger) (*backend, error) {
	db, err := sqlite.Open(cfg.Database.Path)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", cfg.Database.Path, err)
	}
	keys, err := core.LoadKeyring(filepath.Join(cfg.DataDir(), nodeKeyFile))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("node key: %w", err)
	}
	r := core.NewRouter(db, core.Options{
		DisconnectGrace:        cfg.Device.DisconnectGrace.Duration,
		StatusQueueTTL:         cfg.Apps.StatusQueueTTL.Duration,
		NotificationDefaultTTL: cfg.Notifications.DefaultTTL.Duration,
		NotificationQueueSize:  cfg.Notifications.QueueSize,
		NotificationsPerMinute: cfg.Limits.NotificationsPerMinute,
		Keys:                   keys,
		Logger:                 log,
	})
	for _, a := range cfg.App {
		spec := core.DeclaredAppSpec{ID: core.AppID(a.ID), Name: a.Name, Domain: a.Domain, Email: a.Email, APIKey: a.APIKey}
		if err := r.DeclareApp(ctx, spec); err != nil {
			db.Close()
			return nil, fmt.Errorf("[[app]] id %d: %w", a.ID, err)
		}
	}
	return &backend{cfg: cfg, db: db, router: r}, nil
}

func (b *backend) Close() error { return b.db.Close() }

// devSecret is auth.dev_secret, or the one generated into the data folder.
func devSecret(cfg *presence.Config) ([]byte, error) {
	if cfg.Auth.DevSecret != "" {
		return []byte(cfg.Auth.DevSecret), nil
	}
	return core.LoadOrCreateSecret(filepath.Join(cfg.DataDir(), devSecretFile), 32)
}
