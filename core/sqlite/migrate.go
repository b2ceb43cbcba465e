package sqlite

// upgrade rebuilds the tables whose shape changed since version from
// (0: a new file, nothing to rebuild), inside Migrate's transaction;
// presence.Schema creates what is new afterwards.
func upgrade(tx *writeTx, from int) error {
	if from == 1 {
		if _, err := tx.Exec(upgradeNotificationsV2); err != nil {
			return err
		}
	}
	if from == 2 {
		if _, err := tx.Exec(dropTombstonesV2); err != nil {
			return err
		}
	}
	if from == 3 {
		if _, err := tx.Exec(dropTombstonesV3); err != nil {
			return err
		}
	}
	return nil
}

// upgradeNotificationsV2 turns version 1's notifications (an index on
// (puid, seq), foreign keys to apps and grants, ids that began with a
// time) into version 2's log (schema.sql): same rows, same seqs, and ids
// that begin with the row's seq, so that acks can find their row. An id
// handed out before the upgrade no longer matches: its ack is ignored and
// the device gets the item again on its next connect, as with any unacked
// item (PROTOCOL §2).
const upgradeNotificationsV2 = `
DROP INDEX IF EXISTS notifications_puid;
CREATE TABLE notifications_v2 (
    seq        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL,
    app_id     INTEGER NOT NULL,
    puid       TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    message    TEXT NOT NULL,
    action     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
INSERT INTO notifications_v2 (seq, id, app_id, puid, user_id, message, action, created_at, expires_at)
    SELECT seq, printf('%012x', seq) || substr(id, 13), app_id, puid, user_id, message, action, created_at, expires_at
    FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_v2 RENAME TO notifications;
`

// dropTombstonesV2 and dropTombstonesV3 delete the rows that full queues
// had dropped (versions 2 and 3 marked them with tombstones, a row per
// item in version 2, a row per write in version 3, and deleted them
// later), and the tombstones with them: version 4 deletes a dropped row
// in the write that drops it.
const (
	dropTombstonesV2 = `
DELETE FROM notifications WHERE seq IN (SELECT seq FROM notification_tombstones);
DROP TABLE notification_tombstones;
`
	dropTombstonesV3 = `
DELETE FROM notifications WHERE seq IN (SELECT j.value FROM notification_tombstones t, json_each(t.seqs) j);
DROP TABLE notification_tombstones;
`
)
