package sqlite

import (
	"fmt"

	"github.com/presence-service/presence/core"
)

// ItemError is how AddNotifications rejects a batch because of one item.
// It is core.ItemError itself (an alias, so that the edges match one type
// whichever layer refused the item): Index (from 0) is what the HTTP
// error body reports as "index"; Err's Reason starts with "item N: " for
// edges that only print reasons. It unwraps to the *core.Error, so
// core.ErrnoOf and core.ReasonOf see through it:
//
//	var ie *core.ItemError // or *sqlite.ItemError, the same type
//	if errors.As(err, &ie) { body.Index = &ie.Index }
type ItemError = core.ItemError

// itemError builds the ItemError of item i with errno and a reason that
// names the item.
func itemError(i int, errno core.Errno, reason string) *ItemError {
	return &ItemError{Index: i, Err: &core.Error{Errno: errno, Reason: fmt.Sprintf("item %d: %s", i, reason)}}
}
