package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/jmoiron/sqlx"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/sqlreg"
)

var _ core.Registry = (*DB)(nil)

// migrateLock keys the advisory lock that Migrate holds: nodes starting
// together apply the schema one at a time.
const migrateLock = 0x70726573656e6365 // "presence"

// DB is the cluster's Registry on a PostgreSQL database. It is safe for
// concurrent use by any number of goroutines and of nodes: every write is
// one statement or one transaction, committed before it returns.
type DB struct {
	// Now is the clock for the times the registry sets itself (created_at
	// of apps, users and grants; applied_at of migrations). Tests may swap
	// it between calls. Default: time.Now.
	Now func() time.Time

	sqlreg.Reads // App, Apps, User, GrantByPUID, UserGrants
	db           *sqlx.DB
}

// maxConns bounds a node's connections to PostgreSQL.
const maxConns = 16

// Open connects to the database at url (postgres://user:pass@host/db?…,
// or any form pgx accepts), brings its schema up to date and returns the
// registry. It fails when the server does not answer within ctx.
func Open(ctx context.Context, url string) (*DB, error) {
	x, err := sqlx.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	// Each node keeps a few connections: the registry is read on connects
	// (behind the router's caches) and written by people, but every
	// notification item looks its PUID up, so a burst of POSTs uses them
	// all at once. They all stay open: a connection closed for want of an
	// idle slot is a new backend forked for the next burst, which cost
	// PostgreSQL more CPU than the lookups themselves (docs/decisions.md).
	x.SetMaxOpenConns(maxConns)
	x.SetMaxIdleConns(maxConns)
	// A failed-over server comes back at the same address; connections
	// to the old one are dropped by the driver on their first error, and
	// idle ones do not outlive a few minutes.
	x.SetConnMaxIdleTime(5 * time.Minute)
	db := &DB{Now: time.Now, Reads: sqlreg.NewReads(x, "postgres"), db: x}
	if err := x.PingContext(ctx); err != nil {
		x.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := db.Migrate(ctx); err != nil {
		x.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the pool.
func (db *DB) Close() error { return db.db.Close() }

// Ping checks that the database answers a read of its schema.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.db.GetContext(ctx, &one, `SELECT 1 FROM schema_migrations LIMIT 1`); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Migrate brings the schema to presence.SchemaVersion: it applies the
// registry tables of schema.sql (rendered by Schema; every statement is
// CREATE … IF NOT EXISTS) and records the version, in one transaction
// under an advisory lock, so that nodes starting together do it once.
// Running it again does nothing. A version of schema.sql that changes the
// shape of a registry table needs an upgrade step here, as core/sqlite
// has its own.
func (db *DB) Migrate(ctx context.Context) error {
	stmts, err := Schema()
	if err != nil {
		return err
	}
	now := db.now()
	err = db.tx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
			return err
		}
		var have int
		if err := tx.GetContext(ctx, &have, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`); err != nil {
			return err
		}
		if have >= presence.SchemaVersion {
			return nil
		}
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("%w\nin: %s", err, s)
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
			presence.SchemaVersion, now.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: migrate to version %d: %w", presence.SchemaVersion, err)
	}
	return nil
}

// tx runs f in a transaction, committing when it returns nil.
func (db *DB) tx(ctx context.Context, f func(*sqlx.Tx) error) error {
	tx, err := db.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (db *DB) now() time.Time {
	if db.Now != nil {
		return db.Now()
	}
	return time.Now()
}

// notFound wraps core.ErrNotFound with what was missing.
func notFound(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), core.ErrNotFound)
}

// PostgreSQL's SQLSTATEs that callers need as core sentinels.
const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)

// mapErr turns driver errors that callers need to match into the core
// sentinels: a duplicate key is core.ErrConflict, a dangling reference is
// core.ErrNotFound, no row is core.ErrNotFound.
func mapErr(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return notFound("%s", what)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case uniqueViolation:
			return fmt.Errorf("%s: %w: %v", what, core.ErrConflict, err)
		case foreignKeyViolation:
			return fmt.Errorf("%s: %w: %v", what, core.ErrNotFound, err)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}
