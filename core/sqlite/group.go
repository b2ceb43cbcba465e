package sqlite

import (
	"fmt"
	"slices"

	"github.com/presence-service/presence/core"
)

// addJob is an AddNotifications batch as the committer sees it: the items
// (times set; seqs, ids and user ids filled in by the write), the cap of
// their queues, and where to put each item's queue size.
type addJob struct {
	app       core.AppID
	ns        []core.Notification
	queueSize int
	sizes     []int
}

// queuePlan is one queue as the batches of a write leave it: its items
// are q.seqs[drop:] followed by added[addedDrop:].
type queuePlan struct {
	q         *queue
	drop      int     // of q.seqs, oldest first
	added     []int64 // seqs of the new items, in order
	addedDrop int     // of added, when the batches overfill the queue themselves
}

func (p *queuePlan) size() int { return len(p.q.seqs) - p.drop + len(p.added) - p.addedDrop }

// trimTo drops the oldest items beyond limit, adding their seqs to
// dropped.
func (p *queuePlan) trimTo(limit int, dropped []int64) []int64 {
	over := p.size() - limit
	if over <= 0 {
		return dropped
	}
	if old := min(over, len(p.q.seqs)-p.drop); old > 0 {
		dropped = append(dropped, p.q.seqs[p.drop:p.drop+old]...)
		p.drop += old
		over -= old
	}
	dropped = append(dropped, p.added[p.addedDrop:p.addedDrop+over]...)
	p.addedDrop += over
	return dropped
}

// storeAdds writes the AddNotifications batches adds as one write: each
// batch is checked (every PUID a grant of its app) and a bad one gets its
// *core.ItemError in errs and no row; the rows of the others go in with
// one INSERT per 100, in order, and the rows of the items that overfill a
// queue are deleted by primary key. The sizes each batch reports are those it would have seen had
// the batches run one after the other; so are the rows kept, since a queue
// only ever loses its oldest.
//
// The queue index learns the result only when every statement has
// succeeded; err (a statement failed) leaves it as it was, and the caller
// rolls the statements back.
func storeAdds(tx *writeTx, adds []*addJob) (errs []error, err error) {
	x := tx.queues
	errs = make([]error, len(adds))
	plans := make(map[*queue]*queuePlan)
	var order []*queuePlan
	var dropped []int64
	sizes := make([][]int, len(adds))
	seq := x.nextSeq
	rows := 0
	for i, a := range adds {
		for k := range a.ns {
			q, err := x.grant(tx, a.ns[k].PUID)
			if err != nil {
				return nil, err
			}
			if q == nil || q.app != a.app {
				// A PUID of another app is as unknown as one that never was.
				errs[i] = itemError(k, core.ErrnoUnknownUID, "unknown UID")
				break
			}
		}
		if errs[i] != nil {
			continue
		}
		touched := make([]*queuePlan, 0, 1)
		for k := range a.ns {
			n := &a.ns[k]
			q := x.queues[n.PUID]
			p := plans[q]
			if p == nil {
				p = &queuePlan{q: q}
				plans[q] = p
				order = append(order, p)
			}
			if !slices.Contains(touched, p) {
				touched = append(touched, p)
			}
			n.UserID = q.user
			n.ID = newID(seq)
			p.added = append(p.added, seq)
			seq++
		}
		for _, p := range touched {
			dropped = p.trimTo(a.queueSize, dropped)
		}
		sizes[i] = make([]int, len(a.ns))
		for k := range a.ns {
			sizes[i][k] = plans[x.queues[a.ns[k].PUID]].size()
		}
		rows += len(a.ns)
	}
	if rows == 0 {
		return errs, nil
	}

	if err := insertRows(tx, adds, errs, x.nextSeq); err != nil {
		return nil, err
	}
	if err := deleteSeqs(tx, dropped); err != nil {
		return nil, err
	}

	// Every statement went through: now the index may learn it.
	x.mu.Lock()
	for _, p := range order {
		seqs := append(p.q.seqs[p.drop:], p.added[p.addedDrop:]...)
		if len(seqs) == 0 {
			seqs = nil
		}
		x.setSeqs(p.q, seqs)
	}
	x.mu.Unlock()
	x.nextSeq = seq
	for i, a := range adds {
		if errs[i] == nil {
			copy(a.sizes, sizes[i])
		}
	}
	return errs, nil
}

// insertRows inserts the items of the good batches, whose seqs run from
// first in order, MaxNotificationBatch rows a statement.
func insertRows(tx *writeTx, adds []*addJob, errs []error, first int64) error {
	args := make([]any, 0, 9*core.MaxNotificationBatch)
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		_, err := tx.Exec(insertNotifications(n), args...)
		args, n = args[:0], 0
		return err
	}
	seq := first
	for i, a := range adds {
		if errs[i] != nil {
			continue
		}
		for k := range a.ns {
			r := &a.ns[k]
			args = append(args, seq, r.ID, int64(a.app), r.PUID, r.UserID, r.Message, r.Action,
				r.CreatedAt.UnixNano(), r.ExpiresAt.UnixNano())
			seq++
			if n++; n == core.MaxNotificationBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// addGroup stores the AddNotifications batches of this commit (at least
// two) as one write (storeAdds), instead of a savepoint and an INSERT per
// batch (docs/decisions.md, "SQLite").
//
// The group is the first write of its transaction (commit), so it needs
// no savepoint of its own: if a statement fails, the transaction is
// rolled back and begun again, and the batches are left to run one by one
// (handled 0). err is only for a transaction that could not be begun
// again.
func (db *DB) addGroup(tx *writeTx, batch []*job, errs []error, merged []bool) (ran, handled int, err error) {
	var group []int
	for i, j := range batch {
		if j.add != nil && errs[i] == nil {
			group = append(group, i)
		}
	}
	if len(group) < 2 {
		return 0, 0, nil
	}
	adds := make([]*addJob, len(group))
	for k, i := range group {
		adds[k] = batch[i].add
	}

	verdicts, werr := storeAdds(tx, adds)
	if werr != nil {
		if err := tx.restart(); err != nil {
			return 0, 0, fmt.Errorf("%w (after %v)", err, werr)
		}
		return 0, 0, nil
	}
	for k, i := range group {
		errs[i], merged[i] = verdicts[k], true
		if verdicts[k] == nil {
			ran++
		}
	}
	return ran, len(group), nil
}
