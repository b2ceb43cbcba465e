package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// The soak's apps: each holds its channel (WebSocket §3 or XMPP component
// §7) for the whole run, counts the status updates it receives, and sends
// notifications to its users at -notify-rate, recording each in the
// ledger as sent, then stored (answer "OK" or XEP-0184 receipt) or refused.
// A channel the server drops is counted and opened again.

// appFlight pairs an app's answers with the notifications of its requests.
type appFlight struct {
	mu  sync.Mutex // guards: out
	out map[string][]int64
}

func (f *appFlight) put(id string, seqs []int64) {
	f.mu.Lock()
	if f.out == nil {
		f.out = map[string][]int64{}
	}
	f.out[id] = seqs
	f.mu.Unlock()
}

func (f *appFlight) take(id string) ([]int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	seqs, ok := f.out[id]
	delete(f.out, id)
	return seqs, ok
}

func (f *appFlight) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.out)
}

// forget drops what a lost connection left unanswered: those notifications
// may or may not be stored (the ledger calls them "without answer" if a
// device gets them).
func (f *appFlight) forget() {
	f.mu.Lock()
	f.out = nil
	f.mu.Unlock()
}

// maxAppInFlight bounds an app's unanswered requests: past it the app
// skips a tick instead of queueing without end on a slow server.
const maxAppInFlight = 256

// runApp holds app a's channel until appCtx ends, sending notifications
// until the load stops. stopped is closed when this app has sent its last
// request and had its answers (or waited 10 s for them).
func (r *soakRun) runApp(appCtx context.Context, a appCred, xmpp bool, stopped chan<- struct{}) {
	var once sync.Once
	done := func() { once.Do(func() { close(stopped) }) }
	defer done()
	for appCtx.Err() == nil {
		if now() >= r.stopAt {
			return // the load is over: no channel to open again
		}
		var err error
		if xmpp {
			err = r.xmppAppSession(appCtx, a, done)
		} else {
			err = r.wsAppSession(appCtx, a, done)
		}
		if err == nil || appCtx.Err() != nil {
			return
		}
		sleepCtx(appCtx, time.Second)
	}
}

// sendLoop sends a request every 1/-notify-rate until the load stops, then
// waits for the answers still out, and calls done.
func (r *soakRun) sendLoop(ctx context.Context, f *appFlight, send func() error, done func()) error {
	defer done()
	if r.o.notifyRate > 0 {
		tick := time.NewTicker(time.Duration(float64(time.Second) / r.o.notifyRate))
		defer tick.Stop()
		for now() < r.stopAt {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
			if f.len() >= maxAppInFlight {
				r.appErrs.add("app skipped a send: 256 requests unanswered")
				continue
			}
			if err := send(); err != nil {
				return err
			}
		}
	}
	for deadline := time.Now().Add(10 * time.Second); f.len() > 0 && time.Now().Before(deadline); {
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return nil
		}
	}
	return nil
}

// pickSeqs takes n new notification numbers and the PUIDs (of app) they
// go to, users at random.
func (r *soakRun) pickSeqs(app int, n int) ([]int64, []string) {
	seqs, puids := make([]int64, n), make([]string, n)
	for i := range n {
		seqs[i] = r.nseq.Add(1)
		puids[i] = r.t.users[rand.N(len(r.t.users))].PUIDs[app]
	}
	return seqs, puids
}

// wsAppSession is one app channel: a reader counting updates and pairing
// answers, and the sending loop. It returns nil when appCtx ended it.
func (r *soakRun) wsAppSession(appCtx context.Context, a appCred, done func()) error {
	c, err := connectApp(appCtx, r.t.d, a.ID, a.Key)
	if err != nil {
		r.appErrs.add("app connect: " + errKind(err))
		return err
	}
	var f appFlight
	defer f.forget()
	ctx, cancel := context.WithCancel(appCtx)
	defer cancel()
	go func() { <-ctx.Done(); c.Close() }()
	readErr := make(chan error, 1)
	go func() {
		defer cancel()
		for {
			_, frame, err := c.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			r.appFrame(frame, &f)
		}
	}()
	var batch int
	var buf []byte
	send := func() error {
		n := 1 + rand.N(r.o.batchMax)
		seqs, puids := r.pickSeqs(a.ID, n)
		batch++
		id := "b" + strconv.Itoa(batch)
		buf = append(buf[:0], `{"type":"notification","id":"`...)
		buf = append(buf, id...)
		buf = append(buf, `","items":[`...)
		for i := range n {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"UID":`...)
			buf = appendJSONString(buf, puids[i])
			buf = append(buf, `,"message":"`+soakMarker...)
			buf = strconv.AppendInt(buf, seqs[i], 10)
			buf = append(buf, `","action":"https://`...)
			buf = append(buf, a.Domain...)
			buf = append(buf, `/r","ttl":3600}`...)
		}
		buf = append(buf, "]}"...)
		f.put(id, seqs)
		r.ledger.mark(seqs, nSent)
		r.batches.Add(1)
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return c.WriteText(buf)
	}
	if err := r.sendLoop(ctx, &f, send, done); err != nil && appCtx.Err() == nil {
		r.appErrs.add("app write: " + errKind(err))
		return err
	}
	<-ctx.Done()
	err = <-readErr
	if appCtx.Err() != nil {
		return nil
	}
	r.appErrs.add("app channel closed by server: " + errKind(err))
	return err
}

// appFrame reads one frame of a WebSocket app: a status array (its entries
// counted) or the answer to a notification batch.
func (r *soakRun) appFrame(frame []byte, f *appFlight) {
	if bytes.HasPrefix(frame, []byte("[")) {
		r.updates.Add(int64(bytes.Count(frame, []byte(`"status":`))))
		return
	}
	var ans struct {
		Type   string `json:"type"`
		ID     string `json:"id"`
		Result any    `json:"result"`
		Errno  int    `json:"errno"`
	}
	if err := json.Unmarshal(frame, &ans); err != nil || ans.Type != "notification" {
		r.appErrs.add("app: unexpected frame")
		return
	}
	seqs, ok := f.take(ans.ID)
	if !ok {
		r.appErrs.add("app: answer to no request")
		return
	}
	if ans.Result == "OK" {
		r.ledger.mark(seqs, nStored)
		return
	}
	r.ledger.mark(seqs, nRefused)
	r.appErrs.add(fmt.Sprintf("app batch: errno %d", ans.Errno))
}

var (
	receiptID   = regexp.MustCompile(`<received[^>]*\sid=['"]([^'"]+)['"]`)
	messageTag  = regexp.MustCompile(`<message\s[^>]*>`)
	attrID      = regexp.MustCompile(`\sid=['"]([^'"]+)['"]`)
	errorType   = regexp.MustCompile(`\stype=['"]error['"]`)
	errorCond   = regexp.MustCompile(`<([a-z-]+) xmlns=['"]urn:ietf:params:xml:ns:xmpp-stanzas['"]`)
	stanzaStart = []byte("<presence")
)

// xmppAppSession is one component stream: the same as wsAppSession, with
// one <message> per notification asking for a receipt.
func (r *soakRun) xmppAppSession(appCtx context.Context, a appCred, done func()) error {
	x, err := connectXMPPApp(appCtx, r.t.d, r.t.xmpp.addr, a.ID, r.t.xmpp.domain, a.Key)
	if err != nil {
		r.appErrs.add("xmpp connect: " + errKind(err))
		return err
	}
	var f appFlight
	defer f.forget()
	ctx, cancel := context.WithCancel(appCtx)
	defer cancel()
	go func() { <-ctx.Done(); x.close() }()
	readErr := make(chan error, 1)
	go func() {
		defer cancel()
		buf := append(make([]byte, 0, 64<<10), x.rest...)
		for {
			if len(buf) == cap(buf) { // one stanza larger than the buffer: its tail only
				buf = append(buf[:0], buf[len(buf)-256:]...)
			}
			n, err := x.conn.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if cut := bytes.LastIndexByte(buf, '>'); cut >= 0 {
				r.xmppStanzas(buf[:cut+1], &f)
				buf = append(buf[:0], buf[cut+1:]...)
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	from := fmt.Sprintf("%d.%s", a.ID, r.t.xmpp.domain)
	var buf []byte
	var msgs int
	send := func() error {
		seqs, puids := r.pickSeqs(a.ID, 1)
		msgs++
		id := "x" + strconv.Itoa(msgs)
		buf = fmt.Appendf(buf[:0], `<message from='%s' to='%s@%s' id='%s'><body>%s%d</body>`+
			`<x xmlns='jabber:x:oob'><url>https://%s/r</url></x><request xmlns='urn:xmpp:receipts'/></message>`,
			from, puids[0], r.t.xmpp.domain, id, soakMarker, seqs[0], a.Domain)
		f.put(id, seqs)
		r.ledger.mark(seqs, nSent)
		r.batches.Add(1)
		x.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := x.conn.Write(buf)
		return err
	}
	if err := r.sendLoop(ctx, &f, send, done); err != nil && appCtx.Err() == nil {
		r.appErrs.add("xmpp write: " + errKind(err))
		return err
	}
	<-ctx.Done()
	err = <-readErr
	if appCtx.Err() != nil {
		return nil
	}
	r.appErrs.add("xmpp stream closed by server: " + errKind(err))
	return err
}

// xmppStanzas reads whole stanzas of a component stream: presence counted
// as updates, receipts and error messages paired with their requests.
func (r *soakRun) xmppStanzas(b []byte, f *appFlight) {
	n := int64(bytes.Count(b, stanzaStart))
	r.updates.Add(n)
	r.xmppUpdates.Add(n)
	for _, m := range receiptID.FindAllSubmatch(b, -1) {
		if seqs, ok := f.take(string(m[1])); ok {
			r.ledger.mark(seqs, nStored)
			r.xmppReceipts.Add(1)
		} else {
			r.appErrs.add("xmpp: receipt for no request")
		}
	}
	for _, loc := range messageTag.FindAllIndex(b, -1) {
		tag := b[loc[0]:loc[1]]
		if !errorType.Match(tag) {
			continue
		}
		cond := "error"
		if m := errorCond.FindSubmatch(b[loc[1]:]); m != nil {
			cond = string(m[1])
		}
		r.appErrs.add("xmpp message error: " + cond)
		if m := attrID.FindSubmatch(tag); m != nil {
			if seqs, ok := f.take(string(m[1])); ok {
				r.ledger.mark(seqs, nRefused)
			}
		}
	}
	if bytes.Contains(b, []byte("<stream:error")) {
		r.appErrs.add("xmpp stream error")
	}
}
