package ws_test

import (
	"bytes"
	"fmt"
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
	d := h.dialRaw("ann@example.com")
	const n = 40000 // ~800 KB: well over 64 reads of the server's buffer
	ping := maskedText(`{"type":"ping"}`)
	burst := bytes.Repeat(ping, n)
	go func() {
		d.c.Write(burst[:len(burst)/2])
		time.Sleep(5 * time.Millisecond) // a second event, likely while a reader is at work
		d.c.Write(burst[len(burst)/2:])
	}()
	for i := range n {
		if got := readFrame(t, d.br); got != `{"result":true}` {
			t.Fatalf("answer %d: %s", i, got)
		}
	}
}

// Requests that may wait (visibility, ack) are left by the poller's
// collector to a reader, and those around them, which the collector
// answers itself, wait their turn: answers come in the order of the
// requests, even when they all arrive in one write.
func TestRequestsThatMayWaitKeepTheirPlace(t *testing.T) {
	h := newHarness(t, nil)
	h.grant("ann@example.com", h.app)
	d := h.dialRaw("ann@example.com")
	session := `"session_id":"` + d.session + `"`
	var burst []byte
	for _, req := range []string{
		`{"type":"ping"}`,
		`{"type":"visibility",` + session + `,"application_ids":[` + itoa(int64(h.app)) + `,999999]}`,
		`{"type":"status",` + session + `,"status":"online"}`,
		`{"type":"ack",` + session + `,"ids":[]}`,
		`{"type":"status",` + session + `,"status":"unavailable"}`,
		`{"type":"nonsense"}`,
		`{"type":"ping"}`,
	} {
		burst = append(burst, maskedText(req)...)
	}
	d.c.Write(burst)
	for i, want := range []string{
		`{"result":true}`,
		`{"result":true,"ignored_application_ids":[999999]}`,
		`{"result":true}`,
		`{"result":false,"errno":3,"reason":"ids: want a non-empty array of notification ids"}`,
		`{"result":true}`,
		`{"result":false,"errno":2,"reason":"unknown type \"nonsense\""}`,
		`{"result":true}`,
	} {
		if got := readFrame(t, d.br); got != want {
			t.Fatalf("answer %d: %s, want %s", i, got, want)
		}
	}
}

// A device that reads none of its answers fills its socket; the server
// must not wait on it. Other devices are answered meanwhile, the device
// is dropped once its outbox overflows (errno -6), and what it was sent
// before that arrives whole and in order: an answer the full socket took
// only part of is finished before the next.
func TestDeviceThatReadsNothingHoldsUpNoOther(t *testing.T) {
	h := newHarness(t, nil)
	h.grant("ann@example.com", h.app)
	stuck := h.dialRaw("ann@example.com")
	var others []*client
	for i := range 4 { // on either epoll set
		email := fmt.Sprintf("other%d@example.com", i)
		h.grant(email, h.app)
		c, _ := h.connect(email, "d")
		others = append(others, c)
	}

	// Pings with a full 125-byte payload, numbered: their pongs are as
	// large, and 80,000 of them far outgrow the socket's buffers.
	const pings = 80000
	payload := func(i int) string { return fmt.Sprintf("%-125d", i) }
	go func() {
		var burst []byte
		for i := range pings {
			burst = append(burst, masked(true, 0x9, payload(i))...)
		}
		stuck.c.Write(burst) // the server reads it all, whatever it answers
	}()
	deadline := time.Now().Add(20 * time.Second)
	for h.router.Metrics.SlowConsumerDrops.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the device that reads nothing was never dropped as a slow consumer")
		}
		time.Sleep(time.Millisecond)
	}
	// Its writer now waits on the full socket; everyone else is answered.
	for range 5 {
		for _, c := range others {
			c.Send(`{"type":"ping"}`)
			c.Expect(`{"result":true}`)
		}
	}

	for i := 0; ; i++ {
		op, got := readServerFrame(t, stuck.br)
		if op == 0xA {
			if got != payload(i) {
				t.Fatalf("pong %d: %q", i, got)
			}
			continue
		}
		if i == 0 {
			t.Fatal("no pong before the drop")
		}
		if want := `{"result":false,"errno":-6,"reason":"` + "your device read too slowly; reconnect" + `"}`; op != 0x1 || !strings.HasPrefix(got, `{"result":false,"errno":-6,`) {
			t.Fatalf("after %d pongs: opcode %d %s, want %s", i, op, got, want)
		}
		if op, _ := readServerFrame(t, stuck.br); op != 0x8 {
			t.Fatalf("after the errno: opcode %d, want close", op)
		}
		return
	}
}
