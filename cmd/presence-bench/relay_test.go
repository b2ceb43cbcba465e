package main

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"
)

// startRelay serves the relay in-process on a loopback port.
func startRelay(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: newRelay().handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestRelayScenariosEndToEnd runs each scenario's engine briefly against the
// relay over real sockets: the same code paths a Presence run takes, minus
// provisioning.
func TestRelayScenariosEndToEnd(t *testing.T) {
	addr := startRelay(t)
	tg := relayTarget(addr, 0, 2, 16, 4, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	closed, err := runStatus(ctx, tg, statusOpts{devices: 8, dur: time.Second, warm: 200 * time.Millisecond, drain: 300 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if closed.Acked == 0 || closed.Delivered < closed.Acked || closed.Latency.N == 0 || len(closed.Errors) != 0 {
		t.Fatalf("closed loop: %+v", closed)
	}
	// Every update reaches both apps.
	if closed.Delivered != 2*closed.Sent {
		t.Errorf("delivered %d, want 2 × sent %d", closed.Delivered, closed.Sent)
	}

	open, err := runStatus(ctx, tg, statusOpts{devices: 8, rate: 2000, dur: time.Second, warm: 200 * time.Millisecond, drain: 300 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if open.Sent < 1500 || open.Sent > 2500 {
		t.Errorf("open loop at 2,000/s sent %d in 1 s", open.Sent)
	}
	if open.Latency.P99 <= 0 || open.Latency.P50 > open.Latency.P99 {
		t.Errorf("open loop latency: %+v", open.Latency)
	}

	n, err := runNotify(ctx, tg, notifyOpts{clients: 4, batch: 100, dur: 500 * time.Millisecond, warm: 100 * time.Millisecond}, nil)
	if err != nil || n.Stored == 0 || n.Stored != 100*n.Posts || len(n.Errors) != 0 {
		t.Fatalf("notify: %+v %v", n, err)
	}

	limit, _ := raiseFileLimit()
	c := runConnect(ctx, tg, connectOpts{n: 50, conc: 8, checkpoints: []int{20}, fdLimit: limit}, nil)
	if c.Held != 50 || c.StillHeld != 50 || len(c.Checkpoints) != 2 || c.Checkpoints[0].Held != 20 {
		t.Fatalf("connect: %+v", c)
	}
}
