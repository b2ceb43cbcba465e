package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/sqlreg"
)

// UpsertUser inserts u, or updates the email of the user with u.ID (the
// identity provider may change a user's email without losing grants).
// An empty email keeps the stored one: an identity provider may vouch for
// the subject without saying the email (an unverified address, or one kept
// only in its profile server), and that must not blank the display name.
// A zero CreatedAt is set to now.
func (db *DB) UpsertUser(ctx context.Context, u core.User) error {
	if u.ID == "" {
		return core.Errorf(core.ErrnoInvalidField, "user id: missing")
	}
	created := u.CreatedAt
	if created.IsZero() {
		created = db.now()
	}
	err := db.write(ctx, func(tx *writeTx) error {
		_, err := tx.Exec(`INSERT INTO users (id, email, created_at) VALUES (?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET email = COALESCE(NULLIF(excluded.email, ''), users.email)`,
			u.ID, u.Email, sqlreg.Nanos(created))
		return err
	})
	return mapErr(err, "sqlite: upsert user")
}

// Grant returns the grant of (userID, app, userString), creating it under
// newPUID when there is none. Two concurrent calls for the same triple get
// the same grant: the insert and the read share one write transaction,
// and the UNIQUE constraint settles it even against another process.
// The user and the app must exist (else core.ErrNotFound); a newPUID that
// is already another grant's is core.ErrConflict.
func (db *DB) Grant(ctx context.Context, userID string, app core.AppID, userString string, newPUID string) (*core.Grant, bool, error) {
	if newPUID == "" {
		return nil, false, core.Errorf(core.ErrnoInvalidField, "puid: missing")
	}
	now := db.now()
	var (
		r       sqlreg.GrantRow
		created bool
	)
	err := db.write(ctx, func(tx *writeTx) error {
		res, err := tx.Exec(`INSERT INTO grants (puid, user_id, app_id, userstring, created_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, app_id, userstring) DO NOTHING`,
			newPUID, userID, int64(app), userString, sqlreg.Nanos(now))
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		created = n == 1
		return tx.Get(&r, `SELECT `+sqlreg.GrantColumns+` FROM grants
			WHERE user_id = ? AND app_id = ? AND userstring = ?`, userID, int64(app), userString)
	})
	if err != nil {
		return nil, false, mapErr(err, fmt.Sprintf("sqlite: grant app %d to user %q", app, userID))
	}
	return r.Grant(), created, nil
}

// RevokeGrant deletes the grant, its waiting status (a foreign key) and its
// queued notifications (by the queue index: the table has no foreign key,
// see schema.sql), in one transaction. An unknown PUID is core.ErrNotFound.
func (db *DB) RevokeGrant(ctx context.Context, puid string) error {
	err := db.write(ctx, func(tx *writeTx) error {
		res, err := tx.Exec(`DELETE FROM grants WHERE puid = ?`, puid)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return sql.ErrNoRows
		}
		if q := tx.queues.queues[puid]; q != nil {
			if err := deleteSeqs(tx, q.seqs); err != nil {
				return err
			}
		}
		tx.queues.drop(puid)
		return nil
	})
	return mapErr(err, "sqlite: revoke grant")
}
