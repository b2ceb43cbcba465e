package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/presence-service/presence/core"
)

// appRow is a row of apps as sqlx scans it.
type appRow struct {
	ID              int64         `db:"id"`
	Domain          string        `db:"domain"`
	Name            string        `db:"name"`
	Description     string        `db:"description"`
	OwnerEmail      string        `db:"owner_email"`
	State           string        `db:"state"`
	VerificationKey string        `db:"verification_key"`
	KeyHash         []byte        `db:"key_hash"`
	KeySealed       []byte        `db:"key_sealed"`
	CreatedAt       sql.NullInt64 `db:"created_at"`
	VerifiedAt      sql.NullInt64 `db:"verified_at"`
	ActivatedAt     sql.NullInt64 `db:"activated_at"`
}

const appColumns = `id, domain, name, description, owner_email, state, verification_key,
	key_hash, key_sealed, created_at, verified_at, activated_at`

func (r *appRow) app() *core.App {
	return &core.App{
		ID:              core.AppID(r.ID),
		Domain:          r.Domain,
		Name:            r.Name,
		Description:     r.Description,
		OwnerEmail:      r.OwnerEmail,
		State:           core.AppState(r.State),
		VerificationKey: r.VerificationKey,
		KeyHash:         r.KeyHash,
		KeySealed:       r.KeySealed,
		CreatedAt:       fromNanos(r.CreatedAt),
		VerifiedAt:      fromNanos(r.VerifiedAt),
		ActivatedAt:     fromNanos(r.ActivatedAt),
	}
}

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
			a.VerificationKey, a.KeyHash, a.KeySealed, nanos(created),
			nullNanos(a.VerifiedAt), nullNanos(a.ActivatedAt))
	})
	if err != nil {
		return mapErr(err, fmt.Sprintf("sqlite: create app %d", a.ID))
	}
	a.ID, a.CreatedAt, a.State = core.AppID(id), created, state
	return nil
}

// App returns the app with this id, or core.ErrNotFound.
func (db *DB) App(ctx context.Context, id core.AppID) (*core.App, error) {
	var r appRow
	err := db.rdb.GetContext(ctx, &r, `SELECT `+appColumns+` FROM apps WHERE id = ?`, int64(id))
	if err != nil {
		return nil, mapErr(err, fmt.Sprintf("sqlite: app %d", id))
	}
	return r.app(), nil
}

// Apps lists the apps of one owner, or every app when ownerEmail is "",
// by id.
func (db *DB) Apps(ctx context.Context, ownerEmail string) ([]*core.App, error) {
	var rows []appRow
	var err error
	if ownerEmail == "" {
		err = db.rdb.SelectContext(ctx, &rows, `SELECT `+appColumns+` FROM apps ORDER BY id`)
	} else {
		err = db.rdb.SelectContext(ctx, &rows, `SELECT `+appColumns+` FROM apps WHERE owner_email = ? ORDER BY id`, ownerEmail)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: apps: %w", err)
	}
	apps := make([]*core.App, len(rows))
	for i := range rows {
		apps[i] = rows[i].app()
	}
	return apps, nil
}

// UpdateApp writes every column of a but id and created_at, or returns
// core.ErrNotFound.
func (db *DB) UpdateApp(ctx context.Context, a *core.App) error {
	err := db.write(ctx, func(tx *writeTx) error {
		res, err := tx.Exec(`UPDATE apps SET domain = ?, name = ?, description = ?, owner_email = ?,
			state = ?, verification_key = ?, key_hash = ?, key_sealed = ?,
			verified_at = ?, activated_at = ? WHERE id = ?`,
			a.Domain, a.Name, a.Description, a.OwnerEmail, string(a.State), a.VerificationKey,
			a.KeyHash, a.KeySealed, nullNanos(a.VerifiedAt), nullNanos(a.ActivatedAt), int64(a.ID))
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
