package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// sourceDialer opens TCP connections from 127.0.0.2, 127.0.0.3, … so that
// more connections than one address's ephemeral port range can be held.
type sourceDialer struct {
	addr   string         // server host:port, loopback only
	raddr  netip.AddrPort // addr, parsed once: no resolver per dial
	perIP  int64
	dialer net.Dialer
}

func newSourceDialer(addr string, perIP int) *sourceDialer {
	d := &sourceDialer{addr: addr, perIP: int64(max(perIP, 1))}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		d.raddr = ap
	} else if ta, err := net.ResolveTCPAddr("tcp4", addr); err == nil { // a host name such as localhost
		d.raddr = ta.AddrPort()
	}
	// No TCP keepalive: it is four setsockopt calls per dial, and on
	// loopback the WebSocket pings do its job.
	d.dialer = net.Dialer{Timeout: handshakeTimeout, Control: bindNoPort, KeepAlive: -1}
	return d
}

// sourceIP walks 127.0.0.2 … 127.0.0.254, then 127.0.1.2 …: all of 127/8
// is loopback. Few connections per address keep connect() fast: the
// kernel's search for a free ephemeral port slows down as an address fills
// (measured: 2,600 connects/s at 4,000 per address, 5,400 at 50).
func (d *sourceDialer) sourceIP() net.IP {
	idx := dialSeq.Add(1) - 1
	idx /= d.perIP
	return net.IPv4(127, 0, byte((idx/253)%256), byte(2+idx%253))
}

// dialSeq is shared by every dialer in the process, so a later run starts
// on addresses an earlier run did not use.
var dialSeq atomic.Int64

// dialTCP opens a TCP connection to the server from the next source
// address.
func (d *sourceDialer) dialTCP(ctx context.Context) (*net.TCPConn, error) {
	if !d.raddr.IsValid() {
		return nil, fmt.Errorf("cannot resolve %q", d.addr)
	}
	src, _ := netip.AddrFromSlice(d.sourceIP().To4())
	return d.dialer.DialTCP(ctx, "tcp4", netip.AddrPortFrom(src, 0), d.raddr)
}

// dialContext dials addr (the server's, or its XMPP listener) from the next
// source address, in net.Dialer's shape for the HTTP and XMPP clients.
func (d *sourceDialer) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: d.sourceIP()}, Timeout: handshakeTimeout, Control: bindNoPort, KeepAlive: -1}
	return nd.DialContext(ctx, network, addr)
}

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (Linux 4.2+), not in package
// syscall. With it, bind() to a source address leaves the port to connect(),
// which picks one unique for the whole 4-tuple. Without it, bind() searches
// for a port free on that address alone: slow once thousands are taken (it
// capped connects at ~2,700/s), and blocked by earlier runs' TIME_WAIT.
const ipBindAddressNoPort = 24

func bindNoPort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// answer is the part of a {"result": …} frame the tool reads.
type answer struct {
	Result  json.RawMessage `json:"result"`
	Type    string          `json:"type"`
	Session string          `json:"session_id"`
	Errno   int             `json:"errno"`
	Reason  string          `json:"reason"`
}

func (a *answer) err() error {
	if string(a.Result) == "true" {
		return nil
	}
	return &errnoError{Errno: a.Errno, Reason: a.Reason}
}

// readAnswer reads frames until one that answers a request (pushed frames
// carry "type" instead of "result" and are skipped).
func readAnswer(c *wsConn) (*answer, error) {
	for range 1000 {
		_, b, err := c.ReadMessage()
		if err != nil {
			return nil, err
		}
		if id, ok := sessionAnswer(b); ok {
			return &answer{Result: json.RawMessage("true"), Session: id}, nil
		}
		var a answer
		if err := json.Unmarshal(b, &a); err != nil {
			return nil, fmt.Errorf("bad frame %q: %w", b, err)
		}
		if a.Result != nil {
			return &a, a.err()
		}
	}
	return nil, fmt.Errorf("no answer in 1000 frames")
}

// sessionAnswer reads the usual connect answer, {"result":true,
// "session_id":"…"} with maybe more keys after, without decoding JSON.
// Anything else (an escape in the id, another order) is left to
// encoding/json.
func sessionAnswer(b []byte) (string, bool) {
	const prefix = `{"result":true,"session_id":"`
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return "", false
	}
	rest := b[len(prefix):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || end+1 >= len(rest) || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return "", false
	}
	if c := rest[end+1]; c != ',' && c != '}' {
		return "", false
	}
	return string(rest[:end]), true
}

// classify reads a frame a device got: an answer (nil or its errno error),
// or a pushed frame (isAnswer false). The common {"result":true} is matched
// without decoding JSON.
func classify(b []byte) (isAnswer bool, err error) {
	if bytes.Equal(b, resultTrue) {
		return true, nil
	}
	var a answer
	if err := json.Unmarshal(b, &a); err != nil {
		return true, fmt.Errorf("bad frame %q: %w", b, err)
	}
	if a.Result == nil {
		return false, nil
	}
	return true, a.err()
}

// device is one device channel after a successful connect.
type device struct {
	conn    *wsConn
	session string
}

// connectDevice dials /presence and sends the connect frame (§2): the
// upgrade request, then the frame once the 101 is in (a server may not
// take frames pipelined behind the request: gorilla's refuses them).
func connectDevice(ctx context.Context, d *sourceDialer, assertion string, appIDs []int, deviceID string) (*device, error) {
	c, err := d.dialWS(ctx, "/presence") // sets the handshake deadline
	if err != nil {
		return nil, err
	}
	if err := c.WriteText(appendConnect(make([]byte, 0, 128+len(assertion)), assertion, appIDs, deviceID)); err != nil {
		c.Close()
		return nil, err
	}
	a, err := readAnswer(c)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return &device{conn: c, session: a.Session}, nil
}

// appendConnect builds the connect frame by hand: the tool makes
// thousands a second on the cores the server uses.
func appendConnect(b []byte, assertion string, appIDs []int, deviceID string) []byte {
	b = append(b, `{"type":"connect","assertion":`...)
	b = appendJSONString(b, assertion)
	b = append(b, `,"application_ids":[`...)
	for i, id := range appIDs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(id), 10)
	}
	b = append(b, `],"device_id":`...)
	b = appendJSONString(b, deviceID)
	return append(b, '}')
}

// appendJSONString quotes s as JSON; plain ASCII (tokens, ids) is copied,
// anything else goes through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// stampMarker starts the send stamp inside a status message: the message is
// "bench@<ns since t0>", well under the 140-character limit.
const stampMarker = "bench@"

// appendStatus builds a status frame carrying the send stamp. Statuses
// alternate so that every update is a real change of the aggregate.
func appendStatus(buf []byte, session string, seq int64, stamp int64) []byte {
	status := "online"
	if seq%2 == 1 {
		status = "unavailable"
	}
	buf = append(buf, `{"type":"status","session_id":"`...)
	buf = append(buf, session...)
	buf = append(buf, `","status":"`...)
	buf = append(buf, status...)
	buf = append(buf, `","message":"`+stampMarker...)
	buf = strconv.AppendInt(buf, stamp, 10)
	return append(buf, `"}`...)
}

// scanStamps calls fn with every send stamp found in an app frame and
// returns how many it found. It scans bytes instead of decoding JSON: the
// tool shares two cores with the server and must spend little per update,
// and the same scan serves Presence's arrays and the relay's.
func scanStamps(frame []byte, fn func(int64)) int {
	n := 0
	for {
		i := bytes.Index(frame, []byte(stampMarker))
		if i < 0 {
			return n
		}
		frame = frame[i+len(stampMarker):]
		var v int64
		j := 0
		for j < len(frame) && frame[j] >= '0' && frame[j] <= '9' {
			v = v*10 + int64(frame[j]-'0')
			j++
		}
		if j > 0 {
			fn(v)
			n++
		}
		frame = frame[j:]
	}
}

// connectApp opens the app status channel (§3) and authenticates with key.
func connectApp(ctx context.Context, d *sourceDialer, appID int, key string) (*wsConn, error) {
	c, err := d.dialWS(ctx, "/"+strconv.Itoa(appID)) // sets the handshake deadline
	if err != nil {
		return nil, err
	}
	hello, _ := json.Marshal(map[string]string{"key": key})
	if err := c.WriteText(hello); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := readAnswer(c); err != nil {
		c.Close()
		return nil, fmt.Errorf("app %d: %w", appID, err)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
