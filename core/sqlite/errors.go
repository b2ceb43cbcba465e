package sqlite

import (
	"fmt"

	"github.com/presence-service/presence/core"
)

// ItemError is how AddNotifications rejects a batch because of one item:
// Index is the item's position in the batch (from 0), for the "index" key
// of the HTTP error body; Err is the domain error, whose Reason already
// starts with "item N: " for edges that only print reasons.
//
// It unwraps to Err, so core.ErrnoOf, core.ReasonOf and
// errors.As(err, new(*core.Error)) see through it:
//
//	var ie *sqlite.ItemError
//	if errors.As(err, &ie) { body.Index = &ie.Index }
type ItemError struct {
	Index int
	Err   *core.Error
}

func (e *ItemError) Error() string { return e.Err.Error() }

func (e *ItemError) Unwrap() error { return e.Err }

// itemError builds the ItemError of item i with errno and a reason that
// names the item.
func itemError(i int, errno core.Errno, reason string) *ItemError {
	return &ItemError{Index: i, Err: &core.Error{Errno: errno, Reason: fmt.Sprintf("item %d: %s", i, reason)}}
}
