package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/presence-service/presence/core"
)

// waitingRow is a row of waiting_status as sqlx scans it.
type waitingRow struct {
	AppID   int64  `db:"app_id"`
	PUID    string `db:"puid"`
	Status  string `db:"status"`
	Message string `db:"message"`
	At      int64  `db:"at"`
}

func (r *waitingRow) update() (core.StatusUpdate, error) {
	s, err := core.ParseStatus(r.Status)
	if err != nil {
		return core.StatusUpdate{}, fmt.Errorf("sqlite: waiting status of %s: %w", r.PUID, err)
	}
	return core.StatusUpdate{PUID: r.PUID, Status: s, Message: r.Message, At: time.Unix(0, r.At).UTC()}, nil
}

// SaveWaiting keeps, per (app, PUID), the newest of the updates: an
// update older than the one already waiting is ignored (presence is state;
// a late write must not bring back an older status). An update whose
// PUID is not a grant of app is skipped: its grant was revoked, and the
// row could not outlive it anyway.
func (db *DB) SaveWaiting(ctx context.Context, app core.AppID, updates []core.StatusUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	err := db.write(ctx, func(tx *writeTx) error {
		for _, u := range updates {
			// The WHERE on the SELECT is the grant check; the WHERE on
			// the upsert keeps the newest. (The SELECT's WHERE makes the
			// ON CONFLICT parse unambiguously, see the SQLite upsert
			// docs.)
			if _, err := tx.Exec(`INSERT INTO waiting_status (app_id, puid, status, message, at)
				SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM grants WHERE puid = ? AND app_id = ?)
				ON CONFLICT (app_id, puid) DO UPDATE SET
					status = excluded.status, message = excluded.message, at = excluded.at
				WHERE excluded.at >= waiting_status.at`,
				int64(app), u.PUID, u.Status.String(), u.Message, nanos(u.At),
				u.PUID, int64(app)); err != nil {
				return err
			}
		}
		return nil
	})
	return mapErr(err, fmt.Sprintf("sqlite: save waiting statuses of app %d", app))
}

// TakeWaiting returns the app's waiting updates at or after since, oldest
// first, and deletes all of the app's waiting updates (the older ones are
// past their TTL), in one transaction: an update is handed out once.
func (db *DB) TakeWaiting(ctx context.Context, app core.AppID, since time.Time) ([]core.StatusUpdate, error) {
	var rows []waitingRow
	err := db.write(ctx, func(tx *writeTx) error {
		rows = rows[:0]
		if err := tx.Select(&rows, `SELECT app_id, puid, status, message, at FROM waiting_status
			WHERE app_id = ? AND at >= ? ORDER BY at, puid`, int64(app), nanos(since)); err != nil {
			return err
		}
		_, err := tx.Exec(`DELETE FROM waiting_status WHERE app_id = ?`, int64(app))
		return err
	})
	if err != nil {
		return nil, mapErr(err, fmt.Sprintf("sqlite: take waiting statuses of app %d", app))
	}
	updates := make([]core.StatusUpdate, 0, len(rows))
	for i := range rows {
		u, err := rows[i].update()
		if err != nil {
			return nil, err
		}
		updates = append(updates, u)
	}
	return updates, nil
}

// AllWaiting returns every waiting update at or after since, per app,
// oldest first, for the router to load at start. It deletes nothing.
func (db *DB) AllWaiting(ctx context.Context, since time.Time) (map[core.AppID][]core.StatusUpdate, error) {
	var rows []waitingRow
	if err := db.rdb.SelectContext(ctx, &rows, `SELECT app_id, puid, status, message, at FROM waiting_status
		WHERE at >= ? ORDER BY app_id, at, puid`, nanos(since)); err != nil {
		return nil, fmt.Errorf("sqlite: all waiting statuses: %w", err)
	}
	all := make(map[core.AppID][]core.StatusUpdate)
	for i := range rows {
		u, err := rows[i].update()
		if err != nil {
			return nil, err
		}
		id := core.AppID(rows[i].AppID)
		all[id] = append(all[id], u)
	}
	return all, nil
}
