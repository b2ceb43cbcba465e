package sqlite

import "context"

// UsersWithNotifications lists the users that have at least one queued
// notification, so that the router can skip the pending-notification
// query on the connects of everyone else. The queue index knows them.
func (db *DB) UsersWithNotifications(ctx context.Context) ([]string, error) {
	return db.queues.usersWithItems(), nil
}
