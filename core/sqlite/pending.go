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
	if err := db.rdb.SelectContext(ctx, &ids, `SELECT DISTINCT user_id FROM notifications`); err != nil {
		return nil, fmt.Errorf("sqlite: users with notifications: %w", err)
	}
	return ids, nil
}
