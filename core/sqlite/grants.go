package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/presence-service/presence/core"
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
			u.ID, u.Email, nanos(created))
		return err
	})
	return mapErr(err, "sqlite: upsert user")
}

// User returns the user with this id, or core.ErrNotFound.
func (db *DB) User(ctx context.Context, id string) (*core.User, error) {
	var r struct {
		ID        string        `db:"id"`
		Email     string        `db:"email"`
		CreatedAt sql.NullInt64 `db:"created_at"`
	}
	if err := db.rdb.GetContext(ctx, &r, `SELECT id, email, created_at FROM users WHERE id = ?`, id); err != nil {
		return nil, mapErr(err, fmt.Sprintf("sqlite: user %q", id))
	}
	return &core.User{ID: r.ID, Email: r.Email, CreatedAt: fromNanos(r.CreatedAt)}, nil
}

// grantRow is a row of grants as sqlx scans it.
type grantRow struct {
	PUID       string        `db:"puid"`
	UserID     string        `db:"user_id"`
	AppID      int64         `db:"app_id"`
	UserString string        `db:"userstring"`
	CreatedAt  sql.NullInt64 `db:"created_at"`
}

const grantColumns = `puid, user_id, app_id, userstring, created_at`

func (r *grantRow) grant() *core.Grant {
	return &core.Grant{
		PUID:       r.PUID,
		UserID:     r.UserID,
		AppID:      core.AppID(r.AppID),
		UserString: r.UserString,
		CreatedAt:  fromNanos(r.CreatedAt),
	}
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
		r       grantRow
		created bool
	)
	err := db.write(ctx, func(tx *writeTx) error {
		res, err := tx.Exec(`INSERT INTO grants (puid, user_id, app_id, userstring, created_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, app_id, userstring) DO NOTHING`,
			newPUID, userID, int64(app), userString, nanos(now))
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		created = n == 1
		return tx.Get(&r, `SELECT `+grantColumns+` FROM grants
			WHERE user_id = ? AND app_id = ? AND userstring = ?`, userID, int64(app), userString)
	})
	if err != nil {
		return nil, false, mapErr(err, fmt.Sprintf("sqlite: grant app %d to user %q", app, userID))
	}
	return r.grant(), created, nil
}

// GrantByPUID returns the grant with this PUID, or core.ErrNotFound.
func (db *DB) GrantByPUID(ctx context.Context, puid string) (*core.Grant, error) {
	var r grantRow
	if err := db.rdb.GetContext(ctx, &r, `SELECT `+grantColumns+` FROM grants WHERE puid = ?`, puid); err != nil {
		return nil, mapErr(err, "sqlite: grant")
	}
	return r.grant(), nil
}

// UserGrants lists the user's grants by app, then by age.
func (db *DB) UserGrants(ctx context.Context, userID string) ([]*core.Grant, error) {
	var rows []grantRow
	if err := db.rdb.SelectContext(ctx, &rows, `SELECT `+grantColumns+` FROM grants
		WHERE user_id = ? ORDER BY app_id, created_at, puid`, userID); err != nil {
		return nil, fmt.Errorf("sqlite: user grants: %w", err)
	}
	grants := make([]*core.Grant, len(rows))
	for i := range rows {
		grants[i] = rows[i].grant()
	}
	return grants, nil
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
