package ws

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presence-service/presence/ws/internal/netpoll"
)

// headTimeout bounds how long a new connection may take to send its
// request head, as http.Server.ReadHeaderTimeout does for the rest.
// A variable, for a test to shorten (SetHeadTimeout).
var headTimeout atomic.Int64

func init() { headTimeout.Store(int64(10 * time.Second)) }

func headWait() time.Duration { return time.Duration(headTimeout.Load()) }

// FrontDoor wraps the plain-TCP HTTP listener. It reads the request head
// of each new connection itself: a device's WebSocket upgrade (GET
// /presence, well formed) is answered here, without net/http; every
// other connection is handed to net/http, which serves the returned
// listener, with the bytes already read put back in front.
//
// This is the one place a device upgrade is answered by this package
// (netpoll.WriteAccept); net/http's are gorilla's (serveDevice).
// Anything unusual about a device's request (a query, a body, folded or
// repeated headers) goes to net/http, so the answers stay net/http's.
// Without epoll every connection goes to net/http. Do not use it for TLS
// listeners: it needs to read the request.
//
// The connections it hands to net/http get TCP keep-alive (Go's defaults,
// as net.Listen gives them). Devices need none: the server's WebSocket
// pings find dead ones. So make ln without it (net.ListenConfig with
// KeepAlive -1).
func (s *Server) FrontDoor(ln net.Listener) net.Listener {
	fd := &frontDoor{Listener: ln, s: s, conns: make(chan net.Conn), done: make(chan struct{})}
	go fd.acceptLoop()
	return fd
}

type frontDoor struct {
	net.Listener
	s     *Server
	conns chan net.Conn // to net/http
	done  chan struct{} // closed when the listener failed or was closed
	once  sync.Once
	err   error // why: set before done is closed
}

func (fd *frontDoor) acceptLoop() {
	for {
		c, err := fd.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			fd.stop(err)
			return
		}
		go fd.sniff(c)
	}
}

func (fd *frontDoor) stop(err error) {
	fd.once.Do(func() {
		fd.err = err
		close(fd.done)
	})
}

// Accept hands net/http the connections that are not device upgrades.
func (fd *frontDoor) Accept() (net.Conn, error) {
	select {
	case c := <-fd.conns:
		return c, nil
	case <-fd.done:
		return nil, fd.err
	}
}

// Close stops accepting; net/http calls it at Shutdown.
func (fd *frontDoor) Close() error {
	fd.stop(net.ErrClosed)
	return fd.Listener.Close()
}

// sniff reads the new connection's request head and sends it on its way.
func (fd *frontDoor) sniff(c net.Conn) {
	bp := fd.s.getBuf()
	buf := (*bp)[:cap(*bp)]
	c.SetReadDeadline(time.Now().Add(headWait()))
	n := 0
	for {
		m, err := c.Read(buf[n:])
		n += m
		head := buf[:n]
		if end := bytes.Index(head, []byte("\r\n\r\n")); end >= 0 {
			if key, ok := deviceUpgrade(head[:end+2]); ok && fd.s.poller != nil && !fd.s.router.ShuttingDown() {
				var k [24]byte // validKey: 24 characters; buf goes back to the pool
				copy(k[:], key)
				early := append([]byte(nil), head[end+4:]...)
				fd.s.putBuf(bp)
				fd.s.acceptDevice(c, k[:], early)
				return
			}
			break
		}
		if err != nil || n == len(buf) || !couldBeServed(head) {
			if err != nil && n == 0 {
				fd.s.putBuf(bp)
				c.Close() // nothing said: nothing to answer
				return
			}
			break
		}
	}
	prefix := append([]byte(nil), buf[:n]...)
	fd.s.putBuf(bp)
	fd.toHTTP(c, prefix)
}

// toHTTP hands c to net/http, with prefix (read from c, not consumed) put
// back in front.
func (fd *frontDoor) toHTTP(c net.Conn, prefix []byte) {
	c.SetReadDeadline(time.Time{})
	keepAlive(c)
	select {
	case fd.conns <- &prefixConn{Conn: c, prefix: prefix}:
	case <-fd.done:
		c.Close()
	}
}

// keepAlive turns TCP keep-alive on, as net.Listen would have: the
// listener is made without it, for devices (see FrontDoor).
func keepAlive(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true})
	}
}

// deviceRequestLine is the request line of a device upgrade.
const deviceRequestLine = "GET /presence HTTP/1.1\r\n"

// couldBeServed says whether head, the start of a request, may still turn
// out to be a device upgrade.
func couldBeServed(head []byte) bool {
	line := deviceRequestLine
	return len(head) < len(line) && strings.HasPrefix(line, string(head)) || bytes.HasPrefix(head, []byte(line))
}

// deviceUpgrade parses a request head (each line ending in CRLF, without
// the blank line) and returns the Sec-WebSocket-Key when it is a version
// 13 WebSocket upgrade of GET /presence that net/http would route to
// serveDevice and upgrade as it is. Anything else reports false and goes
// to net/http.
func deviceUpgrade(head []byte) (key []byte, ok bool) {
	if !bytes.HasPrefix(head, []byte(deviceRequestLine)) {
		return nil, false
	}
	var host, upgrade, connection, version, dup bool
	plain := eachHeader(head[len(deviceRequestLine):], func(name, value []byte) bool {
		switch {
		case bytes.EqualFold(name, []byte("Host")):
			host = len(value) > 0
		case bytes.EqualFold(name, []byte("Upgrade")):
			upgrade = upgrade || hasToken(value, "websocket")
		case bytes.EqualFold(name, []byte("Connection")):
			connection = connection || hasToken(value, "upgrade")
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Version")):
			dup = dup || version
			version = string(value) == "13"
			return version && !dup
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Key")):
			dup = dup || key != nil
			key = value
			return !dup
		case bytes.EqualFold(name, []byte("Content-Length")), bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return false
		}
		return true
	})
	if !plain {
		return nil, false
	}
	if !host || !upgrade || !connection || !version || key == nil || !netpoll.ValidKey(key) {
		return nil, false
	}
	return key, true
}

// eachHeader calls fn with each field of a request head's header lines
// (rest: the lines after the request line, each ending in CRLF), the
// value trimmed of spaces and tabs as net/textproto trims it, until fn
// returns false. It reports false if fn did, or at a line that net/http
// must judge (folded, malformed, a control character).
func eachHeader(rest []byte, fn func(name, value []byte) bool) bool {
	for len(rest) > 0 {
		line, after, found := bytes.Cut(rest, []byte("\r\n"))
		if !found {
			return false
		}
		rest = after
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) || !isFieldValue(line[colon+1:]) {
			return false
		}
		if !fn(line[:colon], bytes.Trim(line[colon+1:], " \t")) {
			return false
		}
	}
	return true
}

// isToken reports whether b is an HTTP token (RFC 9110 §5.6.2), as a
// header name must be.
func isToken(b []byte) bool {
	for _, c := range b {
		if !tokenChar[c] {
			return false
		}
	}
	return true
}

// isFieldValue reports whether b holds no control character but tab.
func isFieldValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7F {
			return false
		}
	}
	return true
}

// tokenChar is the byte class of isToken, as a table.
var tokenChar = func() (token [256]bool) {
	for c := range 256 {
		token[c] = c > ' ' && c < 0x7F && !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, rune(c))
	}
	return token
}()

// hasToken reports whether the comma-separated list v holds token, in any
// case.
func hasToken(v []byte, token string) bool {
	for t := range bytes.SplitSeq(v, []byte(",")) {
		if bytes.EqualFold(bytes.TrimSpace(t), []byte(token)) {
			return true
		}
	}
	return false
}

// prefixConn is a connection handed to net/http with the bytes the front
// door read from it put back in front.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
