package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadLedger is what the test's users were promised and given.
type loadLedger struct {
	phase atomic.Int32 // 0 before the loss the test causes, 1 after

	mu       sync.Mutex           // guards: posted, okAfter, refused, pushed, ackedAt, acks, problems
	posted   map[string]*loadUser // message → its user, answered 200
	okAfter  map[int]int          // writer → 200s of POSTs sent in phase 1
	refused  []string             // every answer to a POST but 200, or its error
	pushed   map[string]bool      // message → pushed to a device of its user
	ackedAt  map[string]time.Time // message → when an ack of it was answered true
	acks     int                  // ack frames answered true
	problems []string
}

func newLedger() *loadLedger {
	return &loadLedger{posted: map[string]*loadUser{}, okAfter: map[int]int{}, pushed: map[string]bool{}, ackedAt: map[string]time.Time{}}
}

func (l *loadLedger) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

// problemsFrom returns the problems reported so far, from the i-th on.
func (l *loadLedger) problemsFrom(i int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.problems[min(i, len(l.problems)):]...)
}

// push records a notification pushed to a device of u on a connection
// whose connect was sent at opened. One whose ack was answered before
// that connect is delivered again after its ack: the contract says never.
func (l *loadLedger) push(u *loadUser, opened time.Time, id, uid, message string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if uid != u.puid || !strings.HasPrefix(message, fmt.Sprintf("u%d ", u.n)) {
		l.problems = append(l.problems, fmt.Sprintf("%s was pushed %q for %s: not theirs", u.email, message, uid))
	}
	if at, ok := l.ackedAt[message]; ok && at.Before(opened) {
		l.problems = append(l.problems, fmt.Sprintf("%s was pushed %q (id %s) again on a connect %v after its ack was answered",
			u.email, message, id, opened.Sub(at).Round(time.Millisecond)))
	}
	l.pushed[message] = true
}

func (l *loadLedger) acked(messages []string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range messages {
		l.ackedAt[m] = at
	}
	l.acks++
}

// write POSTs, every `every` until stop is closed, a batch of perPost
// notifications, each for the next user, to the nodes at addrs in turn
// (host:port), and records each answer.
func (l *loadLedger) write(stop <-chan struct{}, every time.Duration, writer int, addrs []string, app int64, key string, users []*loadUser, perPost int) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; ; i++ {
		var to []*loadUser
		var items []map[string]any
		for j := range perPost {
			u := users[(perPost*i+j)%len(users)]
			m := fmt.Sprintf("u%d w%d-%d", u.n, writer, perPost*i+j)
			to = append(to, u)
			items = append(items, map[string]any{"UID": u.puid, "message": m, "ttl": 3600})
		}
		after := l.phase.Load() == 1
		addr := addrs[i%len(addrs)]
		code, answer, err := postBatch(addr, app, key, items)
		l.mu.Lock()
		switch {
		case err != nil:
			l.refused = append(l.refused, fmt.Sprintf("writer %d: POST to %s: %v", writer, addr, err))
		case code == http.StatusOK:
			for j, u := range to {
				l.posted[items[j]["message"].(string)] = u
			}
			if after {
				l.okAfter[writer]++
			}
		default:
			l.refused = append(l.refused, fmt.Sprintf("writer %d: POST to %s: %d %s", writer, addr, code, strings.TrimSpace(answer)))
		}
		l.mu.Unlock()
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// postBatch POSTs items to the app's notification endpoint on addr.
func postBatch(addr string, app int64, key string, items []map[string]any) (int, string, error) {
	body, _ := json.Marshal(items)
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://%s/%d/notification", addr, app), strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := noteClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	answer, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res.StatusCode, string(answer), nil
}

// counts is how many notifications were answered 200, and how many acks
// answered true, so far.
func (l *loadLedger) counts() (posted, acks int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.posted), l.acks
}

// perUser is how many notifications of each user were answered 200.
func (l *loadLedger) perUser() map[*loadUser]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	count := map[*loadUser]int{}
	for _, u := range l.posted {
		count[u]++
	}
	return count
}

// okAfterCounts is each writer's count of 200s in phase 1, for messages.
func (l *loadLedger) okAfterCounts() map[int]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.okAfter)
}

// okAfterLoss reports whether each of writers writers had at least n
// POSTs sent in phase 1 answered 200.
func (l *loadLedger) okAfterLoss(writers, n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for w := range writers {
		if l.okAfter[w] < n {
			return false
		}
	}
	return true
}

// missing lists, sorted, the notifications of the users answered 200
// and never pushed to a device of their user.
func (l *loadLedger) missing(users ...*loadUser) []string {
	of := map[*loadUser]bool{}
	for _, u := range users {
		of[u] = true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for m, to := range l.posted {
		if of[to] && !l.pushed[m] {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out
}

// refusals is every answer to a POST that was not a 200.
func (l *loadLedger) refusals() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.refused...)
}
