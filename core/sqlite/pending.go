package sqlite

import (
	"context"
	"fmt"
)

// UsersWithNotifications lists the users that have at least one queued
// notification, so that the router can skip the pending-notification
// query on the connects of everyone else.
func (db *DB) UsersWithNotifications(ctx context.Context) ([]string, error) {
	var ids []string
	// Through grants and notifications_puid, not by scanning the table
	// (there is no index on notifications(user_id), see userQueues): a
	// queued item's user is its grant's.
	if err := db.rdb.SelectContext(ctx, &ids, `SELECT DISTINCT user_id FROM grants g
		WHERE EXISTS (SELECT 1 FROM notifications n WHERE n.puid = g.puid)`); err != nil {
		return nil, fmt.Errorf("sqlite: users with notifications: %w", err)
	}
	return ids, nil
}
