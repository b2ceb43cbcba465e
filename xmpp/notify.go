package xmpp

import (
	"context"
	"errors"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/presence-service/presence/core"
)

// noteReq is a message accepted by the handler, waiting to be stored.
type noteReq struct {
	in      core.NotificationInput
	id      string // the message's id, for the receipt or the error
	from    string // our side: puid@domain as the component addressed it
	to      string // the component's side
	receipt bool   // XEP-0184 requested
}

// notifyTimeout bounds one store of a batch. It is not tied to the
// connection: a commit under way finishes even if the component leaves.
const notifyTimeout = 30 * time.Second

// notifyLoop stores messages in the order they came, in batches of what
// is waiting (up to core.MaxNotificationBatch): one transaction, shared
// with concurrent writers by the store's group commit, instead of one
// per message, while the handler goes on reading.
func (c *conn) notifyLoop() {
	defer close(c.ndone)
	batch := make([]noteReq, 0, core.MaxNotificationBatch)
	for {
		select {
		case <-c.done:
			return
		case r := <-c.notes:
			batch = append(batch[:0], r)
		}
	more:
		for len(batch) < core.MaxNotificationBatch {
			select {
			case r := <-c.notes:
				batch = append(batch, r)
			default:
				break more
			}
		}
		c.store(batch)
	}
}

// store stores a batch, then queues a receipt for each item that asked.
// The batch is all or nothing, so when it fails each item is stored
// alone: only the bad ones get an error.
func (c *conn) store(batch []noteReq) {
	items := make([]core.NotificationInput, len(batch))
	for i, r := range batch {
		items[i] = r.in
	}
	ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
	_, _, err := c.srv.cfg.Router.Notify(ctx, c.app, items)
	cancel()
	if err == nil {
		for _, r := range batch {
			if r.receipt {
				c.queue(job{kind: jobReceipt, id: r.id, from: r.from, to: r.to})
			}
		}
		return
	}
	if len(batch) > 1 {
		// The batch is refused whole for one bad item: answer that one
		// and store the rest, which share a commit again.
		var ie *core.ItemError
		if errors.As(err, &ie) && ie.Index >= 0 && ie.Index < len(batch) {
			c.store(batch[ie.Index : ie.Index+1])
			rest := append(batch[:ie.Index:ie.Index], batch[ie.Index+1:]...)
			c.store(rest)
			return
		}
		for i := range batch {
			c.store(batch[i : i+1])
		}
		return
	}
	e := notifyError(err)
	if e.cond == stanza.InternalServerError {
		c.log.Warn("storing a notification failed", "app", int64(c.app), "err", err)
	}
	c.srv.cfg.Router.Metrics.CountError(core.ErrnoOf(err))
	r := batch[0]
	c.queue(job{kind: jobError, name: "message", id: r.id, from: r.from, to: r.to, err: e})
}

// notifyError maps a Notify error to the stanza error of PROTOCOL §7.
func notifyError(err error) stanzaError {
	reason := core.ReasonOf(err)
	switch core.ErrnoOf(err) {
	case core.ErrnoInvalidField, core.ErrnoInvalidStatus:
		return stanzaError{stanza.Modify, stanza.NotAcceptable, reason}
	case core.ErrnoUnknownUID:
		return stanzaError{stanza.Cancel, stanza.ItemNotFound, "unknown UID"}
	case core.ErrnoAppInactive:
		return stanzaError{stanza.Auth, stanza.Forbidden, reason}
	case core.ErrnoRateLimited:
		return stanzaError{stanza.Wait, stanza.PolicyViolation, reason}
	case core.ErrnoShuttingDown:
		return stanzaError{stanza.Wait, stanza.ServiceUnavailable, reason}
	}
	return stanzaError{stanza.Wait, stanza.InternalServerError, "could not store the notification; try again"}
}
