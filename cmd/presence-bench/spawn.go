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
	return spawnSelf(ctx, os.Stderr, 10*time.Second, "relay", "-listen", "127.0.0.1:0", "-watch-stdin", "-lifetime", "2h")
}

// spawnSelf starts this binary with a subcommand (args[0]) that prints
// "listening ADDR" once it serves and exits when its stdin closes, and
// returns it with that address.
func spawnSelf(ctx context.Context, stderr io.Writer, timeout time.Duration, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.SysProcAttr = dieWithParent()
	cmd.Stderr = stderr
	stdin, _ := cmd.StdinPipe()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, stdin: stdin}
	line, err := readLine(ctx, out, timeout)
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("%s did not say where it listens: %w", args[0], err)
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

// serverConfig is the config a spawned server runs with: loopback ports,
// a temp database, and abuse limits raised so the limits measured are the
// server's, not its rate limiter's. A short disconnect grace lets the
// offline updates of one run's devices end before the next run starts
// (with the default 10 s, 19,000 offlines would land in the middle of
// it). With natsURL set it is a cluster node: the registry in PostgreSQL
// at pgURL, the live plane on NATS with replicas JetStream copies, the
// node key and the other secrets in dataDir, shared by every node.
type serverConfig struct {
	dataDir            string
	httpPort, xmppPort int
	node               string // server.node; empty on one node
	pgURL, natsURL     string
	replicas           int
	pprof              string // not a config key: `serve -pprof` takes it
	extra              string // appended verbatim (-server-config-extra)
}

func (c serverConfig) toml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by presence-bench -spawn\n[server]\nlisten = \"127.0.0.1:%d\"\npublic_url = \"http://127.0.0.1:%d\"\n",
		c.httpPort, c.httpPort)
	if c.node != "" {
		fmt.Fprintf(&b, "node = %q\n", c.node)
	}
	fmt.Fprintf(&b, "\n[database]\npath = %q\n", filepath.Join(c.dataDir, "presence.db"))
	if c.natsURL != "" {
		fmt.Fprintf(&b, "driver = \"postgres\"\nurl = %q\n", c.pgURL)
	}
	fmt.Fprintf(&b, `
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
`, c.xmppPort)
	if c.natsURL != "" {
		fmt.Fprintf(&b, "\n[cluster]\nnats_url = %q\nreplicas = %d\n", c.natsURL, c.replicas)
	}
	if c.extra != "" {
		b.WriteString(c.extra + "\n")
	}
	return b.String()
}

// spawnServer builds (unless bin is given) and starts `presence serve` with a
// temp config and data dir, and waits for /healthz.
func spawnServer(ctx context.Context, src, bin, extra string, pprofPort int, prog *progress) (*child, cli, string, error) {
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
	sc := serverConfig{dataDir: dir, extra: extra}
	if pprofPort > 0 {
		sc.pprof = fmt.Sprintf("127.0.0.1:%d", pprofPort)
	}
	c, cfg, err := startPresence(ctx, bin, dir, "server", sc, prog)
	if err != nil {
		return nil, cli{}, dir, err
	}
	return c, cli{bin: bin, config: cfg}, dir, nil
}

// startPresence writes cfg (with free ports) to dir/NAME.toml, starts
// `presence serve` on it with its log in dir/NAME.log, and waits for
// /healthz. It returns the child and its config file.
func startPresence(ctx context.Context, bin, dir, name string, cfg serverConfig, prog *progress) (*child, string, error) {
	var err error
	if cfg.httpPort, err = freePort(); err != nil {
		return nil, "", err
	}
	if cfg.xmppPort, err = freePort(); err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(path, []byte(cfg.toml()), 0o600); err != nil {
		return nil, "", err
	}
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	defer logf.Close()
	args := []string{"serve", "-config", path}
	if cfg.pprof != "" {
		args = append(args, "-pprof", cfg.pprof)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	c := &child{cmd: cmd, addr: fmt.Sprintf("127.0.0.1:%d", cfg.httpPort), xmppAddr: fmt.Sprintf("127.0.0.1:%d", cfg.xmppPort)}
	prog.logf("%s pid %d on %s, config and log in %s", name, c.pid(), c.addr, dir)
	if err := waitHealthy(ctx, c.addr, 60*time.Second); err != nil {
		c.stop()
		log, _ := os.ReadFile(logPath)
		return nil, "", fmt.Errorf("%s did not become healthy: %w\n%s", name, err, tail(string(log), 2000))
	}
	return c, path, nil
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
