package postgres

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/sqlreg"
)

// CreateApp inserts a. A zero a.ID is assigned by the database; a given
// one (an app declared in presence.toml) is kept, and core.ErrConflict
// says it is taken. A zero CreatedAt is set to now; an empty State is
// unverified.
//
// A given id also moves the id sequence past it, as SQLite's AUTOINCREMENT
// does, so that later apps never collide with a declared one. That insert
// holds a lock that excludes other inserts into apps until it commits:
// apps are declared at start, rarely, and this keeps a concurrent insert
// from taking an id the sequence is being moved past.
func (db *DB) CreateApp(ctx context.Context, a *core.App) error {
	created := a.CreatedAt
	if created.IsZero() {
		created = db.now().Round(0).UTC()
	}
	state := a.State
	if state == "" {
		state = core.AppUnverified
	}
	args := []any{a.Domain, a.Name, a.Description, a.OwnerEmail, string(state),
		a.VerificationKey, a.KeyHash, a.KeySealed, sqlreg.Nanos(created),
		sqlreg.NullNanos(a.VerifiedAt), sqlreg.NullNanos(a.ActivatedAt)}
	const columns = `domain, name, description, owner_email, state,
		verification_key, key_hash, key_sealed, created_at, verified_at, activated_at`
	var id int64
	var err error
	if a.ID == 0 {
		err = db.db.GetContext(ctx, &id, `INSERT INTO apps (`+columns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`, args...)
	} else {
		err = db.tx(ctx, func(tx *sqlx.Tx) error {
			if _, err := tx.ExecContext(ctx, `LOCK TABLE apps IN SHARE ROW EXCLUSIVE MODE`); err != nil {
				return err
			}
			if err := tx.GetContext(ctx, &id, `INSERT INTO apps (id, `+columns+`)
				VALUES ($12, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
				append(args, int64(a.ID))...); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('apps', 'id'), (SELECT MAX(id) FROM apps))`)
			return err
		})
	}
	if err != nil {
		return mapErr(err, fmt.Sprintf("postgres: create app %d", a.ID))
	}
	a.ID, a.CreatedAt, a.State = core.AppID(id), created, state
	return nil
}

// UpdateApp writes every column of a but id and created_at, or returns
// core.ErrNotFound.
func (db *DB) UpdateApp(ctx context.Context, a *core.App) error {
	res, err := db.db.ExecContext(ctx, `UPDATE apps SET domain = $1, name = $2, description = $3,
		owner_email = $4, state = $5, verification_key = $6, key_hash = $7, key_sealed = $8,
		verified_at = $9, activated_at = $10 WHERE id = $11`,
		a.Domain, a.Name, a.Description, a.OwnerEmail, string(a.State), a.VerificationKey,
		a.KeyHash, a.KeySealed, sqlreg.NullNanos(a.VerifiedAt), sqlreg.NullNanos(a.ActivatedAt), int64(a.ID))
	if err != nil {
		return mapErr(err, fmt.Sprintf("postgres: update app %d", a.ID))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("postgres: update app %d", a.ID)
	}
	return nil
}
