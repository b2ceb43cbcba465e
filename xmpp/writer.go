package xmpp

import (
	"context"
	"encoding/xml"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"

	"github.com/presence-service/presence/core"
)

// jobKind says what a job asks the writer to write.
type jobKind uint8

const (
	jobProbe   jobKind = iota // answer a probe with the current presence
	jobReceipt                // a XEP-0184 receipt: the message is stored
	jobError                  // an error stanza
)

// job is a stanza for the writer other than a live status update. The
// writer alone writes outside the handlers; handlers queue jobs only
// before writing anything themselves (a handler holds the output lock
// from its first write until it returns, so a handler that wrote and
// then waited for the writer would deadlock).
type job struct {
	kind jobKind
	name string // stanza kind of a jobError: "message" or "presence"
	id   string // the id of the stanza answered
	from string // our side: the user JID the component addressed
	to   string // the component's side: its from
	puid string // jobProbe
	err  stanzaError
}

// queue hands j to the writer; it blocks while the queue is full (which
// slows the component's own reading, not the router) and gives up when
// the writer is gone.
func (c *conn) queue(j job) {
	select {
	case c.jobs <- j:
	case <-c.wdone:
	}
}

// writeLoop is the only goroutine that writes to the socket outside the
// handlers. It drains everything ready, writes it, flushes once.
func (c *conn) writeLoop() {
	defer close(c.wdone)
	var tick <-chan time.Time
	if ka := c.srv.cfg.KeepAlive; ka > 0 {
		t := time.NewTicker(ka)
		defer t.Stop()
		tick = t.C
	}
	var (
		updates []core.StatusUpdate
		jobs    []job
		wrote   bool // since the last tick
	)
	for {
		jobs = jobs[:0]
		select {
		case <-c.done:
			return
		case <-c.closing:
			c.finish()
			return
		case <-c.outbox.Ready():
		case j := <-c.jobs:
			jobs = append(jobs, j)
		case <-tick:
			if !wrote {
				if err := c.keepAlive(); err != nil {
					c.fail(err)
					return
				}
			}
			wrote = false
			continue
		}
		jobs = c.drainJobs(jobs)
		updates = c.outbox.Take(updates[:0])
		if len(updates) == 0 && len(jobs) == 0 {
			continue
		}
		if err := c.flush(updates, jobs); err != nil {
			c.fail(err)
			return
		}
		wrote = true
	}
}

func (c *conn) drainJobs(jobs []job) []job {
	for len(jobs) < jobQueue {
		select {
		case j := <-c.jobs:
			jobs = append(jobs, j)
		default:
			return jobs
		}
	}
	return jobs
}

// finish ends the stream after Close: on shutdown, what is pending is
// written first (the router counts it as delivered).
func (c *conn) finish() {
	if c.errno == core.ErrnoShuttingDown {
		updates := c.outbox.Take(nil)
		jobs := c.drainJobs(nil)
		if len(updates) > 0 || len(jobs) > 0 {
			if err := c.flush(updates, jobs); err != nil {
				c.fail(err)
				return
			}
		}
	}
	c.endStream(closeError(c.errno))
}

// fail gives up on a peer that does not read (the write deadline passed)
// or is gone: closing the socket ends Serve too.
func (c *conn) fail(err error) {
	if c.ended() {
		return // the stream was ended on purpose; Serve is on its way out
	}
	c.log.Info("component write failed; closing", "app", int64(c.app), "err", err)
	c.srv.cfg.Router.Metrics.SlowConsumerDrops.Add(1)
	c.raw.Close()
}

func (c *conn) keepAlive() error {
	w := c.session.TokenWriter()
	err := w.EncodeToken(xml.CharData(" "))
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// flush writes updates, then jobs. Probes are resolved here, after the
// updates were taken: whatever changes later reaches the outbox and is
// written after the answer, so a probe answer never overtakes a newer
// update.
//
// Presence stanzas are appended as bytes (appendPresence) and written
// in one Write under the session's output lock; the other stanzas go
// through mellium's encoder, after what was appended before them.
func (c *conn) flush(updates []core.StatusUpdate, jobs []job) error {
	probes := c.resolveProbes(jobs)
	now := time.Now()
	component := c.addr.String()
	w := c.session.TokenWriter()
	b := c.wbuf[:0]
	err := func() error {
		for _, u := range updates {
			b = c.appendPresence(b, c.srv.userJID(u.PUID), component, u, now)
		}
		for _, j := range jobs {
			if j.kind == jobProbe {
				if r, ok := probes[j.puid]; ok && r.Known {
					b = c.appendPresence(b, c.srv.userJID(j.puid), j.to, r.StatusUpdate, now)
					continue
				}
			}
			if err := c.writeRaw(b); err != nil {
				return err
			}
			b = b[:0]
			if err := c.writeJob(w, j, probes); err != nil {
				return err
			}
			if err := w.Flush(); err != nil {
				return err
			}
		}
		return c.writeRaw(b)
	}()
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if cap(b) <= maxKeptWriteBuf {
		c.wbuf = b[:0]
	}
	return err
}

// maxKeptWriteBuf bounds the buffer the writer keeps between flushes: a
// burst may need more, then gives it back.
const maxKeptWriteBuf = 64 << 10

func (c *conn) appendPresence(b []byte, from, to string, u core.StatusUpdate, now time.Time) []byte {
	c.presenceID++
	return appendPresence(b, c.presenceID, from, to, u, now)
}

// writeRaw writes bytes already encoded; the caller holds the session's
// output lock (its TokenWriter), with nothing of the encoder's buffered.
func (c *conn) writeRaw(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	_, err := c.g.Write(b)
	return err
}

// writeJob writes a job other than a probe that found its PUID (flush
// appends those).
func (c *conn) writeJob(w xmlstream.TokenWriter, j job, probes map[string]core.ProbeResult) error {
	switch j.kind {
	case jobReceipt:
		return writeReceipt(w, j.from, j.to, j.id)
	case jobProbe:
		if _, ok := probes[j.puid]; !ok {
			return writeError(w, "presence", j.id, j.from, j.to, stanzaError{stanza.Wait, stanza.InternalServerError, "probe failed; try again"})
		}
		return writeError(w, "presence", j.id, j.from, j.to, stanzaError{stanza.Cancel, stanza.ItemNotFound, "unknown UID"})
	}
	return writeError(w, j.name, j.id, j.from, j.to, j.err)
}

// resolveProbes asks the router once for every probed PUID. On failure
// the map is empty and each probe is answered with an error.
func (c *conn) resolveProbes(jobs []job) map[string]core.ProbeResult {
	var puids []string
	for _, j := range jobs {
		if j.kind == jobProbe {
			puids = append(puids, j.puid)
		}
	}
	if len(puids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.srv.cfg.WriteTimeout)
	defer cancel()
	results, err := c.srv.cfg.Router.Probe(ctx, c.app, puids)
	m := make(map[string]core.ProbeResult, len(results))
	if err != nil {
		c.log.Warn("probe failed", "app", int64(c.app), "err", err)
		return m
	}
	for _, r := range results {
		m[r.PUID] = r
	}
	return m
}
