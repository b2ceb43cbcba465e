package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// child is a process the tool started (the server or the relay); it is
// stopped when the tool ends, and dies with the tool if the tool is killed.
type child struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	addr     string
	xmppAddr string
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop sends SIGTERM (Presence flushes its queues on it) and kills after 10 s.
func (c *child) stop() {
	if c == nil || c.cmd.Process == nil {
		return
	}
	if c.stdin != nil {
		c.stdin.Close()
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// spawnRelay starts `presence-bench relay` from this same binary and reads
// the address it listens on.
func spawnRelay(ctx context.Context) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "relay", "-listen", "127.0.0.1:0", "-watch-stdin", "-lifetime", "2h")
	cmd.SysProcAttr = dieWithParent()
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, stdin: stdin}
	line, err := readLine(ctx, out, 10*time.Second)
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("relay did not say where it listens: %w", err)
	}
	c.addr = strings.TrimSpace(strings.TrimPrefix(line, "listening "))
	go io.Copy(io.Discard, out)
	return c, nil
}

func readLine(ctx context.Context, r io.Reader, timeout time.Duration) (string, error) {
	ch := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		if err != nil {
			errc <- err
			return
		}
		ch <- line
	}()
	select {
	case l := <-ch:
		return l, nil
	case err := <-errc:
		return "", err
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(timeout):
		return "", fmt.Errorf("timeout")
	}
}

// buildServer compiles ./cmd/presence of the module at src into dir.
func buildServer(ctx context.Context, src, dir string) (string, error) {
	bin := filepath.Join(dir, "presence")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/presence")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/presence in %s: %w\n%s", src, err, out)
	}
	return bin, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// benchConfig is the server config a spawned server runs with: loopback
// ports, a temp database, and abuse limits raised so the limits measured
// are the server's, not its rate limiter's. A short disconnect grace lets
// the offline updates of one run's devices end before the next run starts
// (with the default 10 s, 19,000 offlines would land in the middle of it).
// extra is appended verbatim.
func benchConfig(dir string, httpPort, xmppPort int, extra string) string {
	return fmt.Sprintf(`# written by presence-bench -spawn
[server]
listen = "127.0.0.1:%d"
public_url = "http://127.0.0.1:%d"

[database]
path = %q

[xmpp]
listen = "127.0.0.1:%d"

[auth]
verifier = "dev"

[device]
idle_timeout = "120s"
disconnect_grace = "1s"

[limits]
status_per_minute = 100000000
notifications_per_minute = 1000000000
max_consecutive_errors = 1000000
%s
`, httpPort, httpPort, filepath.Join(dir, "presence.db"), xmppPort, extra)
}

// spawnServer builds (unless bin is given) and starts `presence serve` with a
// temp config and data dir, and waits for /healthz.
func spawnServer(ctx context.Context, src, bin, extra string, prog *progress) (*child, cli, string, error) {
	dir, err := os.MkdirTemp("", "presence-bench-")
	if err != nil {
		return nil, cli{}, "", err
	}
	if bin == "" {
		prog.logf("building ./cmd/presence in %s", src)
		if bin, err = buildServer(ctx, src, dir); err != nil {
			return nil, cli{}, dir, err
		}
	}
	hp, err := freePort()
	if err != nil {
		return nil, cli{}, dir, err
	}
	xp, err := freePort()
	if err != nil {
		return nil, cli{}, dir, err
	}
	cfg := filepath.Join(dir, "presence.toml")
	if err := os.WriteFile(cfg, []byte(benchConfig(dir, hp, xp, extra)), 0o600); err != nil {
		return nil, cli{}, dir, err
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, cli{}, dir, err
	}
	cmd := exec.Command(bin, "serve", "-config", cfg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		return nil, cli{}, dir, err
	}
	c := &child{cmd: cmd, addr: fmt.Sprintf("127.0.0.1:%d", hp), xmppAddr: fmt.Sprintf("127.0.0.1:%d", xp)}
	prog.logf("server pid %d on %s, data and log in %s", c.pid(), c.addr, dir)
	if err := waitHealthy(ctx, c.addr, 30*time.Second); err != nil {
		c.stop()
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		return nil, cli{}, dir, fmt.Errorf("server did not become healthy: %w\n%s", err, tail(string(log), 2000))
	}
	return c, cli{bin: bin, config: cfg}, dir, nil
}

func waitHealthy(ctx context.Context, addr string, timeout time.Duration) error {
	hc := http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		resp, err := hc.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("http %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return last
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
