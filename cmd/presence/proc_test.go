package main

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// process is `presence serve` as a separate process, so that it can be
// killed the hard way. Its log (stderr) is kept, for waitLog and for a
// failed test's report.
type process struct {
	cmd      *exec.Cmd
	addr     string // its HTTP listener
	xmppAddr string // its XMPP listener, "" when it has none

	mu    sync.Mutex    // guards: lines, grown
	lines []string      // every line it logged so far
	grown chan struct{} // closed, and replaced, when a line is added
}

var listening = regexp.MustCompile(`msg="presence serving".* http=(\S+) xmpp=(\S+)`)

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "presence")
	out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func spawn(t *testing.T, bin, config string) *process {
	t.Helper()
	cmd := exec.Command(bin, "serve", "-config", config)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, grown: make(chan struct{})}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("log of %s:\n%s", config, strings.Join(p.lines, "\n"))
			p.mu.Unlock()
		}
	})
	lines := bufio.NewScanner(stderr)
	found := make(chan []string, 1)
	go func() {
		for lines.Scan() {
			line := lines.Text()
			if m := listening.FindStringSubmatch(line); m != nil {
				found <- m[1:]
			}
			p.mu.Lock()
			p.lines = append(p.lines, line)
			close(p.grown)
			p.grown = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	select {
	case addrs := <-found:
		p.addr, p.xmppAddr = addrs[0], strings.Trim(addrs[1], `"`)
		return p
	case <-time.After(30 * time.Second):
		t.Fatal("presence serve did not start")
	}
	return nil
}

// waitLog waits until the process has logged a line containing text,
// and returns when it saw it; it fails the test after within.
func (p *process) waitLog(t *testing.T, text string, within time.Duration) time.Time {
	t.Helper()
	deadline := time.After(within)
	for seen := 0; ; {
		p.mu.Lock()
		lines, grown := p.lines, p.grown
		p.mu.Unlock()
		for ; seen < len(lines); seen++ {
			if strings.Contains(lines[seen], text) {
				return time.Now()
			}
		}
		select {
		case <-grown:
		case <-deadline:
			t.Fatalf("the process did not log %q within %v", text, within)
		}
	}
}

// logged says whether the process has logged a line containing text.
func (p *process) logged(text string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, line := range p.lines {
		if strings.Contains(line, text) {
			return true
		}
	}
	return false
}
