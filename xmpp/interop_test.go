package xmpp_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

// The interop tests run two independent component libraries against a
// real listener: Debian's python3-slixmpp (ComponentXMPP) and npm's
// @xmpp/component (xmpp.js). They run when PRESENCE_INTEROP is set (the
// README's test command sets it after xmpp/interop/install.sh); then a
// missing peer fails the test instead of skipping it.

func TestInterop_Slixmpp(t *testing.T) {
	requireInterop(t)
	python := "/usr/bin/python3" // Debian's, where python3-slixmpp lives; not a pyenv shim
	if out, err := exec.Command(python, "-c", "import slixmpp").CombinedOutput(); err != nil {
		t.Fatalf("python3-slixmpp is missing (run xmpp/interop/install.sh): %v\n%s", err, out)
	}
	runInterop(t, func(host, port, component, key string) *exec.Cmd {
		return exec.Command(python, filepath.Join("interop", "slixmpp_peer.py"), host, port, component, key)
	})
}

func TestInterop_XMPPjs(t *testing.T) {
	requireInterop(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is missing: %v", err)
	}
	dir := filepath.Join("interop", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@xmpp", "component")); err != nil {
		t.Fatalf("@xmpp/component is missing (run xmpp/interop/install.sh): %v", err)
	}
	runInterop(t, func(host, port, component, key string) *exec.Cmd {
		cmd := exec.Command(node, "peer.js", host, port, component, key)
		cmd.Dir = dir
		return cmd
	})
}

func requireInterop(t *testing.T) {
	if os.Getenv("PRESENCE_INTEROP") == "" {
		t.Skip("PRESENCE_INTEROP not set: interop peers not installed (see xmpp/interop/install.sh)")
	}
}

// event is one line a peer prints.
type event map[string]string

// peer is a running interop script.
type peer struct {
	t      *testing.T
	stdin  io.WriteCloser
	events chan event
	stderr *lockedBuffer
}

func runInterop(t *testing.T, command func(host, port, component, key string) *exec.Cmd) {
	e := newEnv(t)
	host, port, _ := strings.Cut(e.addr, ":")
	cmd := command(host, port, e.componentJID(e.app).String(), e.key)
	p := startPeer(t, cmd)

	p.expect("ready", nil)
	d := e.connect("alice@example.com", e.app)
	alice := userJID(e.alice)
	for _, step := range []struct {
		st                core.Status
		msg               string
		typ, show, status string
	}{
		{core.Online, "In a meeting", "", "", "In a meeting"},
		{core.Unavailable, "", "", "away", ""},
		{core.Unavailable, "lunch", "", "away", "lunch"},
		{core.Offline, "", "unavailable", "", ""},
		{core.Online, "", "", "", ""},
	} {
		e.setStatus(d, step.st, step.msg)
		p.expect("presence", event{"frm": alice, "type": step.typ, "show": step.show, "status": step.status})
	}

	p.send("probe " + alice)
	p.expect("presence", event{"frm": alice, "type": "", "show": "", "status": ""})
	p.send("probe " + userJID("nosuchpuid"))
	p.expect("error", event{"stanza": "presence", "cond": "item-not-found"})

	p.send(fmt.Sprintf("message %s m1 https://beerchat.example/r/beer Fred mentioned you", alice))
	p.expect("receipt", event{"id": "m1", "frm": alice})
	select {
	case n := <-d.notes:
		if n.Message != "Fred mentioned you" || n.Action != "https://beerchat.example/r/beer" || n.PUID != e.alice {
			t.Fatalf("device got %+v", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the device got no notification")
	}
	p.send(fmt.Sprintf("message %s m2 https://beerchat.example/ hi", userJID("nosuchpuid")))
	p.expect("error", event{"stanza": "message", "id": "m2", "cond": "item-not-found"})

	p.send("quit")
	p.expect("closed", nil)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("peer exited with %v\n%s", err, p.stderr)
	}
}

func startPeer(t *testing.T, cmd *exec.Cmd) *peer {
	t.Helper()
	p := &peer{t: t, events: make(chan event, 100), stderr: &lockedBuffer{}}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", cmd.Args, err)
	}
	t.Cleanup(func() {
		p.stdin.Close()
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("peer stderr:\n%s", p.stderr)
		}
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var raw map[string]any
			if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
				p.events <- event{"event": "garbage", "line": sc.Text()}
				continue
			}
			ev := event{}
			for k, v := range raw {
				ev[k] = fmt.Sprint(v)
			}
			p.events <- ev
		}
		close(p.events)
	}()
	return p
}

func (p *peer) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatal(err)
	}
}

// expect waits for the next event, which must be of kind and carry the
// fields of want.
func (p *peer) expect(kind string, want event) {
	p.t.Helper()
	select {
	case ev, ok := <-p.events:
		if !ok {
			p.t.Fatalf("peer ended while waiting for %s %v", kind, want)
		}
		if ev["event"] != kind {
			p.t.Fatalf("got %v, want %s %v", ev, kind, want)
		}
		for k, v := range want {
			if ev[k] != v {
				p.t.Fatalf("got %v, want %s with %s=%q", ev, kind, k, v)
			}
		}
	case <-time.After(10 * time.Second):
		p.t.Fatalf("no %s within 10 s", kind)
	}
}

// lockedBuffer collects a child's stderr while the test may read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
