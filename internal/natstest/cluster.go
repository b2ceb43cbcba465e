package natstest

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// readyTimeout bounds a server's start and the cluster's first leader
// election; race-built servers on a loaded 2-core machine are slow.
const readyTimeout = 60 * time.Second

// Cluster is a running set of NATS servers with JetStream, joined by
// routes. Its methods are safe for concurrent use.
type Cluster struct {
	tb   testing.TB
	opts []*server.Options // per server, kept for Restart

	mu      sync.Mutex       // guards: servers
	servers []*server.Server // nil where killed
}

// Start runs n servers (3 for replicas R3) and waits until JetStream has
// a meta leader; they are shut down when the test ends.
func Start(tb testing.TB, n int) *Cluster {
	tb.Helper()
	c := StartUnready(tb, n)
	c.WaitJetStream()
	return c
}

// StartUnready runs n servers as Start does, but returns as soon as each
// accepts clients: JetStream has no meta leader yet (it takes seconds),
// as for a node started together with its NATS servers.
func StartUnready(tb testing.TB, n int) *Cluster {
	tb.Helper()
	clientPorts, routePorts := freePorts(tb, n), freePorts(tb, n)
	c := &Cluster{tb: tb, opts: make([]*server.Options, n), servers: make([]*server.Server, n)}
	for i := range n {
		var routes []string
		for j := range n {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", routePorts[j]))
			}
		}
		c.opts[i] = &server.Options{
			ServerName:         fmt.Sprintf("n%d", i),
			Host:               "127.0.0.1",
			Port:               clientPorts[i],
			JetStream:          true,
			StoreDir:           filepath.Join(tb.TempDir(), fmt.Sprintf("n%d", i)),
			JetStreamMaxMemory: 64 << 20,
			JetStreamMaxStore:  1 << 30,
			Cluster: server.ClusterOpts{
				Name: "presence-test",
				Host: "127.0.0.1",
				Port: routePorts[i],
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
			NoLog:  true,
			NoSigs: true,
		}
	}
	tb.Cleanup(c.shutdown)
	for i := range n {
		c.start(i)
	}
	return c
}

// URL is every server's client URL, comma-separated, as nats.Connect and
// cluster.nats_url take them: a client fails over to the others.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.opts))
	for i, o := range c.opts {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", o.Port)
	}
	return strings.Join(urls, ",")
}

// ServerURL is server i's client URL alone.
func (c *Cluster) ServerURL(i int) string {
	return fmt.Sprintf("nats://127.0.0.1:%d", c.opts[i].Port)
}

// Name is server i's name, as JetStream reports leaders and replicas.
func (c *Cluster) Name(i int) string { return c.opts[i].ServerName }

// Index is the index of the server with this name, or -1.
func (c *Cluster) Index(name string) int {
	for i, o := range c.opts {
		if o.ServerName == name {
			return i
		}
	}
	return -1
}

// Connect opens a client connection to the whole cluster (reconnecting
// to another server when its own goes), closed when the test ends.
func (c *Cluster) Connect(opts ...nats.Option) *nats.Conn {
	c.tb.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(c.URL(), opts...)
	if err != nil {
		c.tb.Fatalf("natstest: connect: %v", err)
	}
	c.tb.Cleanup(nc.Close)
	return nc
}

// Kill shuts server i down: its clients and routes drop, its replicas
// are gone until Restart.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Restart starts server i again, on its ports and its store, and waits
// until it accepts clients (its streams then catch up from the others).
func (c *Cluster) Restart(i int) {
	c.tb.Helper()
	c.start(i)
}

// WaitJetStream waits until JetStream answers a client (it has a meta
// leader) and every running server is one of its current peers, so that a
// stream with as many replicas as servers can be placed; it fails the
// test after a deadline.
func (c *Cluster) WaitJetStream() {
	c.tb.Helper()
	c.waitPeers()
	nc, err := nats.Connect(c.URL())
	if err != nil {
		c.tb.Fatalf("natstest: connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.tb.Fatal(err)
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("natstest: JetStream not ready within %v: %v", readyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitPeers waits until the meta leader counts every running server as
// an online peer with stats, and each running server's meta state is
// current.
func (c *Cluster) waitPeers() {
	c.tb.Helper()
	deadline := time.Now().Add(readyTimeout)
	for !c.peersReady() {
		if time.Now().After(deadline) {
			c.tb.Fatalf("natstest: JetStream peers not all current within %v", readyTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) peersReady() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	running, peers := 0, -1
	for _, s := range c.servers {
		if s == nil {
			continue
		}
		running++
		if !s.JetStreamIsCurrent() {
			return false
		}
		if s.JetStreamIsLeader() {
			peers = len(s.JetStreamClusterPeers())
		}
	}
	return peers >= running
}

func (c *Cluster) start(i int) {
	c.tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.servers[i] != nil {
		c.tb.Fatalf("natstest: server %d is running", i)
	}
	o := *c.opts[i] // the server keeps and changes what it is given
	s, err := server.NewServer(&o)
	if err != nil {
		c.tb.Fatalf("natstest: server %d: %v", i, err)
	}
	go s.Start()
	if !s.ReadyForConnections(readyTimeout) {
		s.Shutdown()
		c.tb.Fatalf("natstest: server %d not ready within %v", i, readyTimeout)
	}
	c.servers[i] = s
}

func (c *Cluster) shutdown() {
	for i := range c.servers {
		c.Kill(i)
	}
}

// freePorts reserves n loopback ports; they are free again, for the
// servers, when it returns. A server restarted later keeps its ports, so
// its clients and peers find it again.
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports := make([]int, n)
	ls := make([]net.Listener, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		ls[i], ports[i] = l, l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}
