package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-service/presence/core"
)

// wideReadPerQueue bounds a read of every queue of an app: it is made
// when the whole stream holds at most this many queues per queue of the
// batch (a batch to 100 users reads at most 6,400 counts at once, about
// 450 KB), so that one answer costs less than the requests it replaces.
// Past it, the batch's queues are read one request each.
const wideReadPerQueue = 64

// queueSizes returns the size of each message's queue (PROTOCOL §4: the
// items it holds, the cap being the stream's max_msgs_per_subject), read
// from the stream's leader after the batch was stored. users are the
// messages' users. A batch to one queue shares its read with the other
// one-queue batches waiting on this node (sharedSize); a batch to
// several queues reads them itself (counts).
func (n *Notifications) queueSizes(ctx context.Context, app core.AppID, users []string, msgs []*nats.Msg) ([]int, error) {
	var subjects []string
	seen := make(map[string]bool)
	oneUser := true
	for i, m := range msgs {
		if !seen[m.Subject] {
			seen[m.Subject] = true
			subjects = append(subjects, m.Subject)
		}
		oneUser = oneUser && users[i] == users[0]
	}
	var counts map[string]int
	if len(subjects) == 1 {
		size, err := n.sharedSize(ctx, app, users[0], subjects[0])
		if err != nil {
			return nil, err
		}
		counts = map[string]int{subjects[0]: size}
	} else {
		user := ""
		if oneUser {
			user = users[0]
		}
		var err error
		if counts, err = n.counts(ctx, app, subjects, user); err != nil {
			return nil, err
		}
	}
	sizes := make([]int, len(msgs))
	for i, m := range msgs {
		sizes[i] = counts[m.Subject]
	}
	return sizes, nil
}

// counts reads how many messages each subject (queues of app) holds, on
// the stream's leader. JetStream serves its API requests a few at a
// time, so it asks once whenever it can: with the queue's own subject for
// one queue, a filter on the user's queues of app when they are all of
// user (not ""), and a
// filter on every queue of app when the stream is small enough for that
// answer to be cheap. Otherwise, and for any queue a partial answer left
// out, one request per queue, all at once.
func (n *Notifications) counts(ctx context.Context, app core.AppID, subjects []string, user string) (map[string]int, error) {
	filter := ""
	switch {
	case len(subjects) == 1:
		filter = subjects[0]
	case user != "":
		filter = userAppNotifications(user, app)
	case n.streamSubjects.Load() <= int64(wideReadPerQueue*len(subjects)):
		filter = appNotifications(app)
	}
	counts := make(map[string]int, len(subjects))
	missing := subjects
	if filter != "" {
		a, err := n.subjectCounts(ctx, filter)
		if err != nil {
			return nil, err
		}
		missing = nil
		for _, subj := range subjects {
			c, ok := a.counts[subj]
			if !ok && !a.complete {
				missing = append(missing, subj)
			}
			counts[subj] = c // absent from a complete answer: acked or deleted since
		}
	}
	if err := n.readEach(ctx, missing, counts); err != nil {
		return nil, err
	}
	return counts, nil
}

// sizeReads shares one read of queue sizes among the one-queue batches
// (single POSTs, mostly) stored on this node at the same moment: while a
// read is in flight, the batches stored meanwhile wait, and the next
// read, sent once it is answered, serves them all. Each waiter's batch
// was stored before it joined, so before the read that serves it: its
// size is, as a read of its own would be, what the queue holds at a read
// after its commit.
type sizeReads struct {
	mu      sync.Mutex // guards: running, waiting
	running bool       // a goroutine is serving the waiting
	waiting []*sizeWaiter
}

type sizeWaiter struct {
	app     core.AppID
	user    string
	subject string
	size    int
	err     error
	done    chan struct{} // closed once size and err are set
}

// sharedSize returns the size of one queue (subject, user's queue of
// app), from a read sent after the call began and shared with the other
// one-queue batches waiting at that moment.
func (n *Notifications) sharedSize(ctx context.Context, app core.AppID, user, subject string) (int, error) {
	w := &sizeWaiter{app: app, user: user, subject: subject, done: make(chan struct{})}
	r := &n.sizeReads
	r.mu.Lock()
	r.waiting = append(r.waiting, w)
	if !r.running {
		r.running = true
		go n.serveSizes()
	}
	r.mu.Unlock()
	// A waiter may wait for the read in flight, then for its own: each
	// is bounded by requestTimeout.
	timeout := time.NewTimer(2 * requestTimeout)
	defer timeout.Stop()
	select {
	case <-w.done:
		return w.size, w.err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-timeout.C:
		return 0, fmt.Errorf("jetstream: queue size of %s: no answer within %v", subject, 2*requestTimeout)
	}
}

// serveSizes answers the waiting, a read (or, past wideReadPerQueue, a
// round of reads) per app at a time, until none waits.
func (n *Notifications) serveSizes() {
	r := &n.sizeReads
	for {
		r.mu.Lock()
		round := r.waiting
		r.waiting = nil
		if len(round) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()

		byApp := make(map[core.AppID][]*sizeWaiter)
		for _, w := range round {
			byApp[w.app] = append(byApp[w.app], w)
		}
		var wg sync.WaitGroup
		for app, ws := range byApp {
			wg.Go(func() {
				var subjects []string
				seen := make(map[string]bool, len(ws))
				user := ws[0].user
				for _, w := range ws {
					if !seen[w.subject] {
						seen[w.subject] = true
						subjects = append(subjects, w.subject)
					}
					if w.user != user {
						user = ""
					}
				}
				// The read serves callers whose contexts differ: it is
				// bounded by subjectCounts' requestTimeout alone.
				counts, err := n.counts(context.Background(), app, subjects, user)
				for _, w := range ws {
					w.size, w.err = counts[w.subject], err
					close(w.done)
				}
			})
		}
		wg.Wait()
	}
}

// readEach reads each subject's count into counts, one request each, all
// at once.
func (n *Notifications) readEach(ctx context.Context, subjects []string, counts map[string]int) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards: counts, first
		first error
	)
	for _, subj := range subjects {
		wg.Go(func() {
			a, err := n.subjectCounts(ctx, subj)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			counts[subj] = a.counts[subj]
		})
	}
	wg.Wait()
	return first
}

// batchSizes counts each queue's items in the batch alone, up to the cap.
func batchSizes(msgs []*nats.Msg, queueSize int) []int {
	counts := make(map[string]int)
	for _, m := range msgs {
		counts[m.Subject]++
	}
	sizes := make([]int, len(msgs))
	for i, m := range msgs {
		sizes[i] = min(counts[m.Subject], queueSize)
	}
	return sizes
}

// subjectCountsAnswer is the stream's count of each subject that matches
// a filter and holds messages.
type subjectCountsAnswer struct {
	counts   map[string]int
	complete bool // false: the server sent one page of a longer list
}

// subjectCounts asks the stream (its leader answers) how many messages
// each subject matching filter holds, and notes how many subjects the
// whole stream holds for queueSizes' next choice.
func (n *Notifications) subjectCounts(ctx context.Context, filter string) (subjectCountsAnswer, error) {
	req, _ := json.Marshal(map[string]string{"subjects_filter": filter})
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var resp *nats.Msg
	var err error
	for {
		// A read sent to a leader that is lost has no answer coming: it is
		// asked again each publishAttempt (a read is safe to repeat), so
		// that the batch it follows, stored, is answered soon after the
		// new leader is there.
		actx, acancel := context.WithTimeout(ctx, publishAttempt)
		resp, err = n.js.Conn().RequestWithContext(actx, "$JS.API.STREAM.INFO."+NotificationStream, req)
		acancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil || !(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders)) {
			return subjectCountsAnswer{}, err
		}
		if errors.Is(err, nats.ErrNoResponders) {
			select {
			case <-ctx.Done():
				return subjectCountsAnswer{}, err
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	var info struct {
		Error *jetstream.APIError `json:"error"`
		Total int                 `json:"total"` // subjects matching, over every page
		State struct {
			NumSubjects int            `json:"num_subjects"`
			Subjects    map[string]int `json:"subjects"`
		} `json:"state"`
	}
	if err := json.Unmarshal(resp.Data, &info); err != nil {
		return subjectCountsAnswer{}, fmt.Errorf("jetstream: stream info: %w", err)
	}
	if info.Error != nil {
		return subjectCountsAnswer{}, info.Error
	}
	n.streamSubjects.Store(int64(info.State.NumSubjects))
	return subjectCountsAnswer{counts: info.State.Subjects, complete: len(info.State.Subjects) >= info.Total}, nil
}
