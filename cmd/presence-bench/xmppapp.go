package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"regexp"
	"sync/atomic"
	"time"
)

// xmppApp is an AppService on the XEP-0114 component channel (PROTOCOL §7).
// It speaks the protocol at the byte level: the handshake is three lines,
// and after it the tool only needs the send stamps inside <status>, which a
// byte scan finds at a fraction of an XML decoder's cost. The tool shares two
// cores with the server; a decoder here would measure the tool.
type xmppApp struct {
	conn net.Conn
	rest []byte // bytes read past the handshake
}

var streamID = regexp.MustCompile(`<stream:stream[^>]*\sid=['"]([^'"]+)['"]`)

// connectXMPPApp opens a component stream as <appID>.<domain> with the
// app's API key as the handshake secret.
func connectXMPPApp(ctx context.Context, d *sourceDialer, addr string, appID int, domain, key string) (*xmppApp, error) {
	c, err := d.dialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	header := fmt.Sprintf(`<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' `+
		`xmlns:stream='http://etherx.jabber.org/streams' to='%d.%s'>`, appID, domain)
	if _, err := c.Write([]byte(header)); err != nil {
		c.Close()
		return nil, err
	}
	buf, err := readUntil(c, nil, func(b []byte) bool { return streamID.Match(b) || bytes.Contains(b, []byte("<stream:error")) })
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("xmpp app %d: stream header: %w", appID, err)
	}
	m := streamID.FindSubmatchIndex(buf)
	if m == nil {
		c.Close()
		return nil, fmt.Errorf("xmpp app %d: refused: %s", appID, tail(string(buf), 300))
	}
	sum := sha1.Sum([]byte(string(buf[m[2]:m[3]]) + key))
	if _, err := c.Write([]byte("<handshake>" + hex.EncodeToString(sum[:]) + "</handshake>")); err != nil {
		c.Close()
		return nil, err
	}
	buf = buf[m[1]:]
	ok := func(b []byte) bool {
		return bytes.Contains(b, []byte("<handshake/>")) || bytes.Contains(b, []byte("<handshake></handshake>")) ||
			bytes.Contains(b, []byte("<stream:error"))
	}
	buf, err = readUntil(c, buf, ok)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("xmpp app %d: handshake: %w", appID, err)
	}
	if bytes.Contains(buf, []byte("<stream:error")) {
		c.Close()
		return nil, fmt.Errorf("xmpp app %d: refused: %s", appID, tail(string(buf), 300))
	}
	i := bytes.Index(buf, []byte("<handshake"))
	j := bytes.IndexByte(buf[i:], '>')
	rest := buf[i+j+1:]
	if bytes.HasPrefix(rest, []byte("</handshake>")) {
		rest = rest[len("</handshake>"):]
	}
	c.SetDeadline(time.Time{})
	return &xmppApp{conn: c, rest: append([]byte(nil), rest...)}, nil
}

func readUntil(c net.Conn, buf []byte, done func([]byte) bool) ([]byte, error) {
	chunk := make([]byte, 4096)
	for len(buf) < 64<<10 {
		if done(buf) {
			return buf, nil
		}
		n, err := c.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if err != nil {
			if done(buf) {
				return buf, nil
			}
			return buf, err
		}
	}
	return buf, fmt.Errorf("no answer in 64 KiB")
}

// read is readApp for the component channel: stanzas are cut at the last
// '>' of each read, so a stamp split across two reads is scanned once whole.
func (x *xmppApp) read(warmStart, end *atomic.Int64, drain time.Duration, fn func(stamp, at int64)) {
	x.conn.SetReadDeadline(time.Now().Add(time.Duration(end.Load()-now()) + drain))
	lo, hi := warmStart.Load(), end.Load()
	buf := append(make([]byte, 0, 64<<10), x.rest...)
	for {
		if len(buf) == cap(buf) { // one stanza larger than the buffer: keep its tail only
			buf = append(buf[:0], buf[len(buf)-64:]...)
		}
		n, err := x.conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		at := now()
		if cut := bytes.LastIndexByte(buf, '>'); cut >= 0 {
			scanStamps(buf[:cut+1], func(stamp int64) {
				if stamp >= lo && stamp < hi {
					fn(stamp, at)
				}
			})
			buf = append(buf[:0], buf[cut+1:]...)
		}
		if err != nil {
			return
		}
	}
}

func (x *xmppApp) close() {
	x.conn.Write([]byte("</stream:stream>"))
	x.conn.Close()
}

// xmppTarget is where a target's component listener is; empty when the
// target has none (the relay).
type xmppTarget struct {
	addr, domain string
}

func (x xmppTarget) String() string {
	if x.addr == "" {
		return "none"
	}
	return x.addr + " (" + x.domain + ")"
}
