package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/sqlreg"
)

// CreateApp inserts a. A zero a.ID is assigned by the database; a given
// one (an app declared in presence.toml) is kept, and core.ErrConflict
// says it is taken. A zero CreatedAt is set to now; an empty State is
// unverified.
func (db *DB) CreateApp(ctx context.Context, a *core.App) error {
	created := a.CreatedAt
	if created.IsZero() {
		created = db.now().Round(0).UTC()
	}
	state := a.State
	if state == "" {
		state = core.AppUnverified
	}
	var id int64
	err := db.write(ctx, func(tx *writeTx) error {
		var explicit sql.NullInt64
		if a.ID != 0 {
			explicit = sql.NullInt64{Int64: int64(a.ID), Valid: true}
		}
		return tx.Get(&id, `INSERT INTO apps (id, domain, name, description, owner_email, state,
			verification_key, key_hash, key_sealed, created_at, verified_at, activated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			explicit, a.Domain, a.Name, a.Description, a.OwnerEmail, string(state),
			a.VerificationKey, a.KeyHash, a.KeySealed, sqlreg.Nanos(created),
			sqlreg.NullNanos(a.VerifiedAt), sqlreg.NullNanos(a.ActivatedAt))
	})
	if err != nil {
		return mapErr(err, fmt.Sprintf("sqlite: create app %d", a.ID))
	}
	a.ID, a.CreatedAt, a.State = core.AppID(id), created, state
	return nil
}

// UpdateApp writes every column of a but id and created_at, or returns
// core.ErrNotFound.
func (db *DB) UpdateApp(ctx context.Context, a *core.App) error {
	err := db.write(ctx, func(tx *writeTx) error {
		res, err := tx.Exec(`UPDATE apps SET domain = ?, name = ?, description = ?, owner_email = ?,
			state = ?, verification_key = ?, key_hash = ?, key_sealed = ?,
			verified_at = ?, activated_at = ? WHERE id = ?`,
			a.Domain, a.Name, a.Description, a.OwnerEmail, string(a.State), a.VerificationKey,
			a.KeyHash, a.KeySealed, sqlreg.NullNanos(a.VerifiedAt), sqlreg.NullNanos(a.ActivatedAt), int64(a.ID))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("app %d", a.ID)
		}
		return nil
	})
	return mapErr(err, fmt.Sprintf("sqlite: update app %d", a.ID))
}
