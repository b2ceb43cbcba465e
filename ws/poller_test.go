package ws_test

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	presence "github.com/presence-service/presence"
)

// A device that sends far more than one read takes, in one write, gets
// every answer: the reader that stops after its share of reads hands the
// device on (edge-triggered epoll brings no new event for bytes already
// there), and a second event while a reader is at work is not lost.
func TestPipelinedBurstIsAllAnswered(t *testing.T) {
	// A small read buffer (max frame + 1 KiB) makes 64 reads about 85 KB.
	h := newHarness(t, func(c *presence.Config) { c.Limits.MaxFrameBytes = 300 })
	h.grant("ann@example.com", h.app)
	host := strings.TrimPrefix(h.srv.URL, "http://")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	c.Write([]byte(rawUpgrade(host, "/presence")))
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	c.Write(maskedText(`{"type":"connect","assertion":"` + h.dev.Mint("ann@example.com", time.Hour) + `","application_ids":[]}`))
	if got := readFrame(t, br); !strings.HasPrefix(got, `{"result":true`) {
		t.Fatalf("connect: %s", got)
	}
	const n = 40000 // ~800 KB: well over 64 reads of the server's buffer
	ping := maskedText(`{"type":"ping"}`)
	burst := bytes.Repeat(ping, n)
	go func() {
		c.Write(burst[:len(burst)/2])
		time.Sleep(5 * time.Millisecond) // a second event, likely while a reader is at work
		c.Write(burst[len(burst)/2:])
	}()
	for i := range n {
		if got := readFrame(t, br); got != `{"result":true}` {
			t.Fatalf("answer %d: %s", i, got)
		}
	}
}
