package ws_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"

	presence "github.com/presence-service/presence"
)

// BenchmarkFrontDoorPostsConcurrent is single-item notification POSTs
// through the whole front door: 64 keep-alive connections over loopback,
// the store's group commit and sync, and the answer written by the
// goroutine that ends the commit. One op is one POST answered 200; the
// rate limit is the bench's own, as presence-bench gives its server.
func BenchmarkFrontDoorPostsConcurrent(b *testing.B) {
	h := newHarness(b, func(c *presence.Config) { c.Limits.NotificationsPerMinute = 1 << 30 })
	host := strings.TrimPrefix(h.srv.URL, "http://")
	const clients = 64
	type client struct {
		c   net.Conn
		br  *bufio.Reader
		req []byte
	}
	conns := make(chan *client, clients)
	for i := range clients {
		puid := h.grant(fmt.Sprintf("user%d@example.com", i), h.app)
		c, err := net.Dial("tcp", host)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		conns <- &client{c: c, br: bufio.NewReader(c), req: []byte(rawPost(host, int64(h.app), h.key, "["+item(puid, "hi")+"]"))}
	}
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		cl := <-conns
		for pb.Next() {
			if _, err := cl.c.Write(cl.req); err != nil {
				b.Error(err)
				return
			}
			resp, err := http.ReadResponse(cl.br, nil)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
