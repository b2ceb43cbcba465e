package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/sqlite"
)

// An app queues live notifications for the users who granted it; a batch
// with one PUID that is not its own is refused whole, naming the item.
func ExampleDB_AddNotifications() {
	dir, _ := os.MkdirTemp("", "presence-example")
	defer os.RemoveAll(dir)
	db, err := sqlite.Open(filepath.Join(dir, "presence.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	ctx := context.Background()

	app := &core.App{Domain: "beerchat.example", Name: "Beer chat", OwnerEmail: "fred@example.com", VerificationKey: "k"}
	_ = db.CreateApp(ctx, app)
	_ = db.UpsertUser(ctx, core.User{ID: "alice@example.com", Email: "alice@example.com"})
	g, _, _ := db.Grant(ctx, "alice@example.com", app.ID, "Alice", "puid-of-alice")

	now := time.Now()
	_, sizes, err := db.AddNotifications(ctx, app.ID, []core.NotificationInput{
		{PUID: g.PUID, Message: "Fred mentioned you in #beer", Action: "https://beerchat.example/r/beer"},
		{PUID: g.PUID, Message: "and again", TTL: 5 * time.Minute},
	}, now, time.Minute, 100)
	fmt.Println(sizes, err)

	_, _, err = db.AddNotifications(ctx, app.ID, []core.NotificationInput{
		{PUID: g.PUID, Message: "fine"},
		{PUID: "someone-elses", Message: "refused"},
	}, now, time.Minute, 100)
	var ie *core.ItemError
	if errors.As(err, &ie) {
		fmt.Println(ie.Index, core.ErrnoOf(err), core.ReasonOf(err))
	}

	pending, _ := db.PendingNotifications(ctx, "alice@example.com", nil)
	fmt.Println(len(pending), "pending")
	// Output:
	// [2 2] <nil>
	// 1 44 item 1: unknown UID
	// 2 pending
}
