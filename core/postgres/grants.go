package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/sqlreg"
)

// UpsertUser inserts u, or updates the email of the user with u.ID (the
// identity provider may change a user's email without losing grants).
// An empty email keeps the stored one, as in core/sqlite. A zero
// CreatedAt is set to now.
func (db *DB) UpsertUser(ctx context.Context, u core.User) error {
	if u.ID == "" {
		return core.Errorf(core.ErrnoInvalidField, "user id: missing")
	}
	created := u.CreatedAt
	if created.IsZero() {
		created = db.now()
	}
	_, err := db.db.ExecContext(ctx, `INSERT INTO users (id, email, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET email = COALESCE(NULLIF(excluded.email, ''), users.email)`,
		u.ID, u.Email, sqlreg.Nanos(created))
	return mapErr(err, "postgres: upsert user")
}

// grantTries bounds Grant's insert-then-read loop (see Grant).
const grantTries = 3

// Grant returns the grant of (userID, app, userString), creating it under
// newPUID when there is none. Concurrent calls for the same triple, on
// any nodes, get the same grant: the UNIQUE (user_id, app_id, userstring)
// constraint lets one insert win (the others wait for it to commit, then
// insert nothing), and each caller then reads the committed row, in a
// statement of its own so that READ COMMITTED shows it. A grant revoked
// between the two statements is inserted again, a few times at most.
// The user and the app must exist (else core.ErrNotFound); a newPUID that
// is already another grant's is core.ErrConflict.
func (db *DB) Grant(ctx context.Context, userID string, app core.AppID, userString string, newPUID string) (*core.Grant, bool, error) {
	if newPUID == "" {
		return nil, false, core.Errorf(core.ErrnoInvalidField, "puid: missing")
	}
	what := fmt.Sprintf("postgres: grant app %d to user %q", app, userID)
	now := db.now()
	for range grantTries {
		res, err := db.db.ExecContext(ctx, `INSERT INTO grants (puid, user_id, app_id, userstring, created_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, app_id, userstring) DO NOTHING`,
			newPUID, userID, int64(app), userString, sqlreg.Nanos(now))
		if err != nil {
			return nil, false, mapErr(err, what)
		}
		n, _ := res.RowsAffected()
		var r sqlreg.GrantRow
		err = db.db.GetContext(ctx, &r, `SELECT `+sqlreg.GrantColumns+` FROM grants
			WHERE user_id = $1 AND app_id = $2 AND userstring = $3`, userID, int64(app), userString)
		if errors.Is(err, sql.ErrNoRows) {
			continue // revoked since the insert: insert again
		}
		if err != nil {
			return nil, false, mapErr(err, what)
		}
		return r.Grant(), n == 1, nil
	}
	return nil, false, fmt.Errorf("%s: revoked as often as it was granted, %d times", what, grantTries)
}

// RevokeGrant deletes the grant; an unknown PUID is core.ErrNotFound. The
// PUID's queues are not in this database (see the package doc): the caller
// empties them in the cluster's queues after this returns.
func (db *DB) RevokeGrant(ctx context.Context, puid string) error {
	res, err := db.db.ExecContext(ctx, `DELETE FROM grants WHERE puid = $1`, puid)
	if err != nil {
		return mapErr(err, "postgres: revoke grant")
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("postgres: revoke grant %q", puid)
	}
	return nil
}
