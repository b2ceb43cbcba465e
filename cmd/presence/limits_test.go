package main

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/presence-service/presence/core"
)

// emfileListener fails Accept with EMFILE a few times, as a process at
// its open-file limit does, then accepts.
type emfileListener struct {
	net.Listener
	fails int
	conn  net.Conn
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.conn, nil
}

func TestFileLimitIsSaidClearlyAndCounted(t *testing.T) {
	var logs bytes.Buffer
	metrics := core.NewMetrics()
	server, client := net.Pipe()
	defer client.Close()
	l := &limitListener{
		Listener: &emfileListener{fails: 3, conn: server},
		log:      slog.New(slog.NewTextHandler(&logs, nil)),
		what:     "HTTP",
		metrics:  metrics,
	}
	c, err := l.Accept()
	if err != nil || c != server {
		t.Fatalf("Accept: %v, %v; want the connection after the limit eased", c, err)
	}
	if n := metrics.FileLimitRefusals.Load(); n != 3 {
		t.Fatalf("refusals counted: %d, want 3", n)
	}
	if !strings.Contains(logs.String(), "open-file limit reached") || strings.Count(logs.String(), "open-file limit reached") != 1 {
		t.Fatalf("log says %q; want one clear line, not one per refusal", logs.String())
	}
}
