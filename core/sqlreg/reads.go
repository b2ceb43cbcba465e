package sqlreg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/presence-service/presence/core"
)

// Reads are the registry's reads on one database: a store embeds them, and
// their methods are its core.Registry reads. The zero value is not usable;
// make them with NewReads.
type Reads struct {
	db   *sqlx.DB
	name string // the store, first word of every error: "sqlite", "postgres"
	q    queries
}

// queries are the statements, rebound once to the driver's placeholders.
type queries struct {
	app, apps, ownerApps, user, grantByPUID, userGrants string
}

// NewReads reads through db, whose driver's placeholders the statements
// are rebound to; name starts the errors' text.
func NewReads(db *sqlx.DB, name string) Reads {
	return Reads{db: db, name: name, q: queries{
		app:         db.Rebind(`SELECT ` + AppColumns + ` FROM apps WHERE id = ?`),
		apps:        `SELECT ` + AppColumns + ` FROM apps ORDER BY id`,
		ownerApps:   db.Rebind(`SELECT ` + AppColumns + ` FROM apps WHERE owner_email = ? ORDER BY id`),
		user:        db.Rebind(`SELECT id, email, created_at FROM users WHERE id = ?`),
		grantByPUID: db.Rebind(`SELECT ` + GrantColumns + ` FROM grants WHERE puid = ?`),
		userGrants:  db.Rebind(`SELECT ` + GrantColumns + ` FROM grants WHERE user_id = ? ORDER BY app_id, created_at, puid`),
	}}
}

// wrap says what failed; no row is core.ErrNotFound.
func (r Reads) wrap(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %s: %w", r.name, what, core.ErrNotFound)
	}
	return fmt.Errorf("%s: %s: %w", r.name, what, err)
}

// App returns the app with this id, or core.ErrNotFound.
func (r Reads) App(ctx context.Context, id core.AppID) (*core.App, error) {
	var row AppRow
	if err := r.db.GetContext(ctx, &row, r.q.app, int64(id)); err != nil {
		return nil, r.wrap(err, fmt.Sprintf("app %d", id))
	}
	return row.App(), nil
}

// Apps lists the apps of one owner, or every app when ownerEmail is "",
// by id.
func (r Reads) Apps(ctx context.Context, ownerEmail string) ([]*core.App, error) {
	var rows []AppRow
	var err error
	if ownerEmail == "" {
		err = r.db.SelectContext(ctx, &rows, r.q.apps)
	} else {
		err = r.db.SelectContext(ctx, &rows, r.q.ownerApps, ownerEmail)
	}
	if err != nil {
		return nil, r.wrap(err, "apps")
	}
	apps := make([]*core.App, len(rows))
	for i := range rows {
		apps[i] = rows[i].App()
	}
	return apps, nil
}

// User returns the user with this id, or core.ErrNotFound.
func (r Reads) User(ctx context.Context, id string) (*core.User, error) {
	var row struct {
		ID        string        `db:"id"`
		Email     string        `db:"email"`
		CreatedAt sql.NullInt64 `db:"created_at"`
	}
	if err := r.db.GetContext(ctx, &row, r.q.user, id); err != nil {
		return nil, r.wrap(err, fmt.Sprintf("user %q", id))
	}
	return &core.User{ID: row.ID, Email: row.Email, CreatedAt: FromNanos(row.CreatedAt)}, nil
}

// GrantByPUID returns the grant with this PUID, or core.ErrNotFound.
func (r Reads) GrantByPUID(ctx context.Context, puid string) (*core.Grant, error) {
	var row GrantRow
	if err := r.db.GetContext(ctx, &row, r.q.grantByPUID, puid); err != nil {
		return nil, r.wrap(err, "grant")
	}
	return row.Grant(), nil
}

// UserGrants lists the user's grants by app, then by age.
func (r Reads) UserGrants(ctx context.Context, userID string) ([]*core.Grant, error) {
	var rows []GrantRow
	if err := r.db.SelectContext(ctx, &rows, r.q.userGrants, userID); err != nil {
		return nil, r.wrap(err, "user grants")
	}
	grants := make([]*core.Grant, len(rows))
	for i := range rows {
		grants[i] = rows[i].Grant()
	}
	return grants, nil
}
