package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The appnotify scenario: notification batches sent over the app channel
// (PROTOCOL §3), each counted when its "OK" answer comes back (stored
// durably), beside notification POSTs measured in the same run, single
// items and batches of 100. The relay has no such channel: the POSTs are
// the baseline here. Floors: single items over the channel at least twice
// the single-item POST rate, batches of 100 at least as fast as POSTed
// ones.

// appNotifyOpts shapes one run over the app channel.
type appNotifyOpts struct {
	conns     int // app channels, all of the first app
	window    int // batches in flight per channel
	batch     int // items per batch, 1 to 100
	dur, warm time.Duration
}

// appNotifyConn is one app channel sending batches with up to window in
// flight. Each batch's id carries its send time, so the answer alone
// gives the latency, in whatever order answers come.
type appNotifyConn struct {
	c       *wsConn
	bodies  [][]byte // the items arrays a channel cycles through
	out     []byte   // frames written in one go
	payload []byte   // scratch for one frame's payload
	seq     int
}

// appendBatch appends one masked text frame to out: a batch whose id is
// its seq and send time.
func (a *appNotifyConn) appendBatch(stamp int64) {
	p := append(a.payload[:0], `{"type":"notification","id":"`...)
	p = strconv.AppendInt(p, int64(a.seq), 10)
	p = append(p, '.')
	p = strconv.AppendInt(p, stamp, 10)
	p = append(p, `","items":`...)
	p = append(p, a.bodies[a.seq%len(a.bodies)]...)
	p = append(p, '}')
	a.payload = p
	a.seq++
	a.out = appendFrame(a.out, wsText, p)
}

// answerStamp reads an answer's id: the send time it carries, and whether
// the answer is an "OK". A frame that is not an answer (a status array)
// gives ok false and err nil.
func answerStamp(frame []byte) (stamp int64, ok bool, err error) {
	if !bytes.HasPrefix(frame, []byte(`{"type":"notification","id":"`)) {
		if bytes.HasPrefix(frame, []byte("[")) {
			return 0, false, nil
		}
		return 0, false, answerError(frame)
	}
	rest := frame[len(`{"type":"notification","id":"`):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return 0, false, fmt.Errorf("bad answer %.80s", frame)
	}
	_, ts, _ := bytes.Cut(rest[:end], []byte("."))
	stamp, perr := strconv.ParseInt(string(ts), 10, 64)
	if perr != nil {
		return 0, false, fmt.Errorf("bad answer id %.80s", frame)
	}
	if !bytes.HasPrefix(rest[end:], []byte(`","result":"OK"`)) {
		return stamp, false, answerError(frame)
	}
	return stamp, true, nil
}

func answerError(frame []byte) error {
	var e struct {
		Errno  int    `json:"errno"`
		Reason string `json:"reason"`
	}
	if json.Unmarshal(frame, &e) != nil || e.Errno == 0 {
		return fmt.Errorf("bad answer %.80s", frame)
	}
	return &errnoError{Errno: e.Errno, Reason: e.Reason}
}

// itemsArrays prebuilds the items arrays a channel cycles through: the
// notify scenario's bodies, which are such arrays.
func itemsArrays(t *target, app appCred, conn, batch int) [][]byte {
	return notifyBodies(t, app, 1000+conn, batch, 16)
}

// runAppNotify runs o.conns app channels closed-loop for warm+dur, each
// with o.window batches in flight, and counts items answered "OK" inside
// the window.
func runAppNotify(ctx context.Context, t *target, o appNotifyOpts, prog *progress) (notifyResult, error) {
	res := notifyResult{Target: t.name, Clients: o.conns, Batch: o.batch}
	if t.grantErr != nil {
		return res, t.grantErr
	}
	if len(t.notifyUsers) == 0 || len(t.apps) == 0 {
		return res, fmt.Errorf("appnotify needs users and an app")
	}
	app := t.apps[0]
	conns := make([]*appNotifyConn, o.conns)
	for i := range conns {
		c, err := connectApp(ctx, t.spreadDialer(i), app.ID, app.Key)
		if err != nil {
			for _, a := range conns[:i] {
				a.c.Close()
			}
			return res, err
		}
		// Answers come many at once: read them in large gulps.
		nb := make([]byte, 64<<10)
		n := copy(nb, c.rbuf[c.rpos:c.rend])
		c.rbuf, c.rpos, c.rend = nb, 0, n
		conns[i] = &appNotifyConn{c: c, bodies: itemsArrays(t, app, i, o.batch)}
	}
	begin := now()
	lo, hi := begin+int64(o.warm), begin+int64(o.warm+o.dur)
	m := startNotifyMeter(t, fmt.Sprintf("appnotify %s batch %d", t.name, o.batch), o.conns, o.warm, prog)
	var wg sync.WaitGroup
	for i, a := range conns {
		s := m.samplers[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer a.c.Close()
			a.run(ctx, o.window, lo, hi, s, &m.errs, &m.posts, &m.stored, int64(o.batch))
		}()
	}
	wg.Wait()
	m.finish(t, &res, o.dur)
	return res, ctx.Err()
}

// run keeps window batches in flight until hi, then waits for the answers
// still out. It reads every answer already buffered before it writes their
// replacements, in one write.
func (a *appNotifyConn) run(ctx context.Context, window int, lo, hi int64, s *sampler, errs *errCounts,
	frames, stored *atomic.Int64, batch int64) {
	a.out = a.out[:0]
	for range window {
		a.appendBatch(now())
	}
	inFlight := window
	for ctx.Err() == nil && (inFlight > 0) {
		if len(a.out) > 0 {
			a.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := a.c.nc.Write(a.out); err != nil {
				errs.addErr(err)
				return
			}
			a.out = a.out[:0]
		}
		a.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, frame, err := a.c.ReadMessage()
			if err != nil {
				errs.addErr(err)
				return
			}
			stamp, ok, err := answerStamp(frame)
			if err != nil {
				errs.addErr(err)
				time.Sleep(5 * time.Millisecond) // a refusing server must not be spun on
			}
			if ok || err != nil {
				inFlight--
				t := now()
				if ok && stamp >= lo && stamp < hi { // sent in the window, as a POST is counted
					frames.Add(1)
					stored.Add(batch)
					s.add(t - stamp)
				}
				if t < hi {
					a.appendBatch(t)
					inFlight++
				}
			}
			if a.c.rend == a.c.rpos { // nothing more buffered: write, then wait
				break
			}
		}
	}
}

// appNotifySpec is one appnotify round: items per batch, POST clients,
// batches in flight per channel.
type appNotifySpec struct {
	batch, postClients, window int
	what                       string
}

func appNotifySpecs(o *options) []appNotifySpec {
	return []appNotifySpec{
		{1, o.clients, o.appWindow, "single items"},
		{100, o.batchClients, max(1, o.batchClients/o.appConns), "notifications in batches of 100"},
	}
}

// appNotify measures notifications over the app channel against POSTs in
// the same run, on Presence only.
func (b *bench) appNotify(ctx context.Context) error {
	o := b.o
	t := b.pres
	if t == nil {
		b.prog.logf("appnotify: Presence is not running (-only relay): skipped")
		return nil
	}
	for _, sp := range appNotifySpecs(o) {
		post, ch, err := b.appNotifyRound(ctx, t, sp.batch, sp.postClients, sp.window)
		if err != nil {
			return err
		}
		b.rep.detail(fmt.Sprintf("appnotify_post_b%d", sp.batch), post)
		b.rep.detail(fmt.Sprintf("appnotify_channel_b%d", sp.batch), ch)
		b.rep.errs(fmt.Sprintf("appnotify POST batch %d", sp.batch), post.Errors)
		b.rep.errs(fmt.Sprintf("appnotify channel batch %d", sp.batch), ch.Errors)
		b.prog.logf("appnotify batch %d: POST %s stored/s (%d clients), channel %s stored/s (%d channels × %d in flight), p99 %.2f / %.2f ms",
			sp.batch, formatNum(post.PerSec), sp.postClients, formatNum(ch.PerSec), o.appConns, sp.window, post.Latency.P99, ch.Latency.P99)

		main := newRow("appnotify", fmt.Sprintf("%s/s over the app channel (%d × %d in flight)", sp.what, o.appConns, sp.window), "", ch.PerSec, none)
		if sp.batch == 1 {
			main = main.atLeast(ch.PerSec, 2*post.PerSec, "≥ 2 × POSTs")
		} else {
			main = main.atLeast(ch.PerSec, post.PerSec, "≥ POSTs")
		}
		b.rep.add(main,
			newRow("appnotify", fmt.Sprintf("%s/s POSTed, same run (%d clients)", sp.what, sp.postClients), "", post.PerSec, none),
			newRow("appnotify", fmt.Sprintf("answer p99 over the channel (batch %d)", sp.batch), "ms", ch.Latency.P99, none),
			newRow("appnotify", fmt.Sprintf("server CPU per notification over the channel (batch %d)", sp.batch), "µs", ch.CPUPerItem, none),
			newRow("appnotify", fmt.Sprintf("server CPU per notification POSTed (batch %d)", sp.batch), "µs", post.CPUPerItem, none),
			newRow("appnotify", fmt.Sprintf("machine taken by other work, channel (batch %d)", sp.batch), "%", 100*ch.OtherCPU, none),
			newRow("appnotify", fmt.Sprintf("machine taken by other work, POST (batch %d)", sp.batch), "%", 100*post.OtherCPU, none),
		)
	}
	return nil
}

// appNotifyRound measures POSTs then the channel, as one round, and
// repeats the round while other work took more than -max-other of the
// machine during either run, keeping the round whose worst run was the
// quietest: the floors compare the two, so both must be measured under
// the same conditions (as paired does for Presence and the relay).
func (b *bench) appNotifyRound(ctx context.Context, t *target, batch, postClients, window int) (post, ch notifyResult, err error) {
	o := b.o
	bestOther := math.Inf(1)
	for i := 0; i <= o.retries && ctx.Err() == nil; i++ {
		b.pause(ctx)
		p, err := runNotify(ctx, t, notifyOpts{clients: postClients, batch: batch, dur: o.dur, warm: o.warm}, b.prog)
		if err != nil {
			return post, ch, fmt.Errorf("POST batch %d: %w", batch, err)
		}
		b.pause(ctx)
		c, err := runAppNotify(ctx, t, appNotifyOpts{conns: o.appConns, window: window, batch: batch, dur: o.dur, warm: o.warm}, b.prog)
		if err != nil {
			return post, ch, fmt.Errorf("app channel batch %d: %w", batch, err)
		}
		worst := max(p.OtherCPU, c.OtherCPU)
		if worst < bestOther {
			post, ch, bestOther = p, c, worst
		}
		if bestOther <= o.maxOther {
			break
		}
		b.prog.logf("appnotify batch %d: other work took up to %.0f%% of the machine during the round (more than %.0f%%)", batch, 100*worst, 100*o.maxOther)
	}
	return post, ch, ctx.Err()
}
