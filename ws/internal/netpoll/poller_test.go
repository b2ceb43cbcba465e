//go:build linux

package netpoll

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// echo is a Handler that answers each message with itself, and defers
// inline the messages that start with "wait".
type echo struct {
	c      *Conn
	mu     sync.Mutex // guards: inline
	inline []string   // the messages answered inline
	closed chan struct{}
}

func (e *echo) Message(text bool, p []byte, inline bool) bool {
	if inline && strings.HasPrefix(string(p), "wait") {
		return false
	}
	if inline {
		e.mu.Lock()
		e.inline = append(e.inline, string(p))
		e.mu.Unlock()
	}
	e.c.Reply(append([]byte(nil), p...))
	return true
}
func (e *echo) QueueFull() {}
func (e *echo) Closed()    { close(e.closed) }

// served returns a client socket whose server side a Poller serves with
// an echo handler.
func served(t *testing.T) (net.Conn, *bufio.Reader, *echo) {
	t.Helper()
	p, err := NewPoller(slog.Default(), Options{MaxMessage: 4096, MaxQueue: 256})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	client.SetDeadline(time.Now().Add(10 * time.Second))
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{c: p.NewConn(nc), closed: make(chan struct{})}
	e.c.Serve(e, nil)
	return client, bufio.NewReader(client), e
}

// readText reads one unmasked short server frame: its opcode and payload.
func readText(t *testing.T, br *bufio.Reader) (byte, string) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, h[1]&0x7F)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatal(err)
	}
	return h[0] & 0x0F, string(p)
}

// Messages written together are handled in order, those the handler
// defers and those after them included; the rest are handled inline.
func TestMessagesKeepTheirOrderAcrossDeferral(t *testing.T) {
	client, br, e := served(t)
	msgs := []string{"one", "wait two", "three", "four"}
	var burst []byte
	for _, m := range msgs {
		burst = append(burst, clientFrame(true, opText, []byte(m))...)
	}
	client.Write(burst)
	for _, want := range msgs {
		if op, got := readText(t, br); op != opText || got != want {
			t.Fatalf("got %d %q, want %q", op, got, want)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.inline) != 1 || e.inline[0] != "one" {
		t.Fatalf("answered inline: %q, want only the message before the deferred one", e.inline)
	}
}

// A ping is answered with its pong, a close is echoed, and the handler
// hears once that the connection ended.
func TestControlFramesAndClose(t *testing.T) {
	client, br, e := served(t)
	client.Write(clientFrame(true, opPing, []byte("hi")))
	if op, got := readText(t, br); op != opPong || got != "hi" {
		t.Fatalf("got %d %q, want a pong with hi", op, got)
	}
	client.Write(clientFrame(true, opClose, []byte{0x03, 0xE8}))
	if op, got := readText(t, br); op != opClose || got != "\x03\xe8" {
		t.Fatalf("got %d %q, want a close with 1000", op, got)
	}
	select {
	case <-e.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Closed not called")
	}
}
