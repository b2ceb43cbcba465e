package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// postConn is one keep-alive HTTP/1.1 connection that POSTs notification
// batches. It writes requests and reads answers by hand (readAnswer):
// net/http's client costs two goroutines and channel hand-offs per
// request, and http.ReadResponse a header map and a dozen allocations,
// which on two shared cores would measure the client rather than the
// server.
type postConn struct {
	d    *sourceDialer
	c    net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	head []byte // request line and headers up to Content-Length's value
	body []byte // the last answer's body
}

func newPostConn(d *sourceDialer, appID int, key string) *postConn {
	head := fmt.Sprintf("POST /%d/notification HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: ", appID, d.addr, key)
	return &postConn{d: d, head: []byte(head)}
}

// post sends one request and returns the answer's status and body (valid
// until the next post).
func (p *postConn) post(ctx context.Context, body []byte) (int, []byte, error) {
	if p.c == nil {
		c, err := p.d.dialContext(ctx, "tcp", p.d.addr)
		if err != nil {
			return 0, nil, err
		}
		p.c, p.br, p.bw = c, bufio.NewReaderSize(c, 4096), bufio.NewWriterSize(c, 8192)
	}
	p.c.SetDeadline(time.Now().Add(10 * time.Second))
	p.bw.Write(p.head)
	p.bw.WriteString(strconv.Itoa(len(body)))
	p.bw.WriteString("\r\n\r\n")
	p.bw.Write(body)
	if err := p.bw.Flush(); err != nil {
		p.close()
		return 0, nil, err
	}
	status, closing, err := p.readAnswer()
	if err != nil || closing {
		p.close()
	}
	return status, p.body, err
}

// readAnswer reads an HTTP/1.1 answer, its body sized by Content-Length
// or chunked (net/http chunks bodies past 4 KiB), into p.body, and says
// whether the server will close the connection.
func (p *postConn) readAnswer() (status int, closing bool, err error) {
	line, err := p.br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	length, chunked := -1, false
	for {
		line, err := p.br.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("bad header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 || length > 64<<10 {
				return 0, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Connection")):
			closing = closing || bytes.Contains(bytes.ToLower(value), []byte("close"))
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if !bytes.EqualFold(value, []byte("chunked")) {
				return 0, false, fmt.Errorf("answer with Transfer-Encoding %q", value)
			}
			chunked = true
		}
	}
	if chunked {
		return status, closing, p.readChunks()
	}
	if length < 0 {
		return 0, false, fmt.Errorf("answer %d without Content-Length", status)
	}
	p.body = slices.Grow(p.body[:0], length)[:length]
	if _, err := io.ReadFull(p.br, p.body); err != nil {
		return 0, false, err
	}
	return status, closing, nil
}

// readChunks reads a chunked body into p.body (no trailers: net/http
// sends none unless asked).
func (p *postConn) readChunks() error {
	p.body = p.body[:0]
	for {
		line, err := p.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, err := strconv.ParseInt(string(bytes.TrimRight(line, "\r\n")), 16, 32)
		if err != nil || size < 0 || len(p.body)+int(size) > 64<<10 {
			return fmt.Errorf("bad chunk size %q", line)
		}
		n := len(p.body)
		p.body = slices.Grow(p.body, int(size)+2)[:n+int(size)+2]
		if _, err := io.ReadFull(p.br, p.body[n:]); err != nil {
			return err
		}
		if !bytes.HasSuffix(p.body, []byte("\r\n")) {
			return fmt.Errorf("chunk without its CRLF")
		}
		p.body = p.body[:n+int(size)]
		if size == 0 {
			return nil
		}
	}
}

func (p *postConn) close() {
	if p.c != nil {
		p.c.Close()
		p.c = nil
	}
}

// notifyOpts shapes one notify run.
type notifyOpts struct {
	clients   int
	batch     int // items per POST, 1 to 100
	dur, warm time.Duration
}

type notifyResult struct {
	Target      string             `json:"target"`
	Clients     int                `json:"clients"`
	Batch       int                `json:"batch"`
	Window      float64            `json:"window_s"`
	Posts       int64              `json:"posts"`
	Stored      int64              `json:"stored"`
	PostsPerSec float64            `json:"posts_per_s"`
	PerSec      float64            `json:"stored_per_s"`
	Latency     latencySummary     `json:"post_latency"`
	CPUPerItem  float64            `json:"server_cpu_us_per_item"`
	CPUByRole   map[string]float64 `json:"server_cpu_us_per_item_by_role,omitempty"`
	ToolCPU     float64            `json:"tool_cpu_us_per_post"`
	OtherCPU    float64            `json:"other_cpu_share"`
	Errors      map[string]int64   `json:"errors"`
	Server      procSample         `json:"server"`
}

// notifyBodies prebuilds the batches a client cycles through, spreading items
// over the PUIDs of app so that no single per-PUID queue is all the load.
func notifyBodies(t *target, app appCred, client, batch, count int) [][]byte {
	bodies := make([][]byte, count)
	k := client * 7919
	for i := range bodies {
		var b bytes.Buffer
		b.WriteByte('[')
		for j := range batch {
			if j > 0 {
				b.WriteByte(',')
			}
			puid := t.notifyUsers[k%len(t.notifyUsers)].PUIDs[app.ID]
			k++
			fmt.Fprintf(&b, `{"UID":%q,"message":"bench %d/%d","action":"https://%s/r/%d","ttl":60}`,
				puid, client, i, app.Domain, j)
		}
		b.WriteByte(']')
		bodies[i] = b.Bytes()
	}
	return bodies
}

// runNotify runs clients closed-loop POSTers for warm+dur against the first
// app and counts items acknowledged with 200 inside the window.
func runNotify(ctx context.Context, t *target, o notifyOpts, prog *progress) (notifyResult, error) {
	res := notifyResult{Target: t.name, Clients: o.clients, Batch: o.batch}
	if t.grantErr != nil {
		return res, t.grantErr
	}
	if len(t.notifyUsers) == 0 || len(t.apps) == 0 {
		return res, fmt.Errorf("notify needs users and an app")
	}
	app := t.apps[0]
	begin := now()
	lo, hi := begin+int64(o.warm), begin+int64(o.warm+o.dur)
	m := startNotifyMeter(t, fmt.Sprintf("notify %s batch %d", t.name, o.batch), o.clients, o.warm, prog)
	var wg sync.WaitGroup
	for c := range o.clients {
		s := m.samplers[c]
		bodies := notifyBodies(t, app, c, o.batch, 16)
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc := newPostConn(t.spreadDialer(c), app.ID, app.Key)
			defer pc.close()
			for i := 0; ctx.Err() == nil; i++ {
				start := now()
				if start >= hi {
					return
				}
				code, body, err := pc.post(ctx, bodies[i%len(bodies)])
				if err == nil && code != http.StatusOK {
					err = &httpStatusError{Code: code, Body: string(body)}
				}
				if err != nil {
					m.errs.addErr(err)
					time.Sleep(5 * time.Millisecond) // a refusing server must not be spun on
					continue
				}
				if start >= lo {
					m.posts.Add(1)
					m.stored.Add(int64(o.batch))
					s.add(now() - start)
				}
			}
		}()
	}
	wg.Wait()
	m.finish(t, &res, o.dur)
	return res, ctx.Err()
}
