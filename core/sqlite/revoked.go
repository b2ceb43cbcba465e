package sqlite

import "context"

// DeletePUIDNotifications implements core.NotificationQueues. RevokeGrant
// deletes a PUID's notifications in its own transaction, and only a
// revoke empties a queue, so after it nothing is left here to delete.
func (db *DB) DeletePUIDNotifications(context.Context, string) error { return nil }
