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
		if _, err := tx.Exec(upgradeTombstonesV3); err != nil {
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

// upgradeTombstonesV3 turns version 2's tombstones (a row per dropped
// item) into version 3's (a row per write, schema.sql): all of them become
// one row, keyed by the highest of them, which is below every seq still to
// be handed out.
const upgradeTombstonesV3 = `
CREATE TABLE notification_tombstones_v3 (
    seq   INTEGER PRIMARY KEY,
    seqs  TEXT NOT NULL,
    count INTEGER NOT NULL
);
INSERT INTO notification_tombstones_v3 (seq, seqs, count)
    SELECT MAX(seq), json_group_array(seq), COUNT(*) FROM notification_tombstones HAVING COUNT(*) > 0;
DROP TABLE notification_tombstones;
ALTER TABLE notification_tombstones_v3 RENAME TO notification_tombstones;
`
