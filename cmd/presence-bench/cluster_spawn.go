package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/presence-service/presence/internal/pgserver"
)

// clusterSet is what -spawn -cluster starts: three NATS servers with
// JetStream joined by routes (this binary's hidden nats-server
// subcommand, one process each), one PostgreSQL, and three `presence
// serve` nodes of the same -bin, sharing one data folder for the node key
// and the other secrets (docs/cluster.md, "Three nodes on one machine").
type clusterSet struct {
	dir   string
	nats  []*child
	pg    *pgserver.Server
	nodes []*child
	cli   cli // the CLI on node 1's config: the registry is shared
}

// clusterSize is the number of nodes and of NATS servers.
const clusterSize = 3

// natsRoutes is every server's route URL, as each server is given them
// all (it skips its own).
func natsRoutes(routePorts []int) string {
	urls := make([]string, len(routePorts))
	for i, p := range routePorts {
		urls[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	return strings.Join(urls, ",")
}

// natsClientURL is cluster.nats_url: every server's client URL.
func natsClientURL(clientPorts []int) string {
	urls := make([]string, len(clientPorts))
	for i, p := range clientPorts {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", p)
	}
	return strings.Join(urls, ",")
}

// spawnCluster starts the engines, then node 1 (which creates the
// streams and the tables), then nodes 2 and 3. pprofPort, when set, gives
// node i (1-3) the profiler on pprofPort+i, and NATS server i on
// pprofPort+10+i.
func spawnCluster(ctx context.Context, bin string, replicas, pprofPort int, extra string, prog *progress) (*clusterSet, error) {
	dir, err := os.MkdirTemp("", "presence-bench-cluster-")
	if err != nil {
		return nil, err
	}
	cs := &clusterSet{dir: dir}
	ok := false
	defer func() {
		if !ok {
			cs.stop()
		}
	}()
	clientPorts, routePorts := make([]int, clusterSize), make([]int, clusterSize)
	for i := range clusterSize {
		if clientPorts[i], err = freePort(); err != nil {
			return nil, err
		}
		if routePorts[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	for i := range clusterSize {
		profPort := 0
		if pprofPort > 0 {
			profPort = pprofPort + 11 + i
		}
		c, err := spawnNATS(ctx, dir, i, clientPorts[i], routePorts[i], profPort, natsRoutes(routePorts))
		if err != nil {
			return nil, err
		}
		cs.nats = append(cs.nats, c)
		prog.logf("nats%d pid %d on %s", i+1, c.pid(), c.addr)
	}
	prog.logf("starting PostgreSQL (initdb, then postgres on a Unix socket)")
	if cs.pg, err = pgserver.Start(); err != nil {
		return nil, err
	}
	prog.logf("PostgreSQL pid %d", cs.pg.PID())
	data := filepath.Join(dir, "data")
	if err := writeNodeKey(data); err != nil {
		return nil, err
	}
	base := serverConfig{dataDir: data, pgURL: cs.pg.URL(), natsURL: natsClientURL(clientPorts), replicas: replicas, extra: extra}
	nodeConfig := func(i int) serverConfig {
		c := base
		c.node = fmt.Sprintf("node%d", i+1)
		if pprofPort > 0 {
			c.pprof = fmt.Sprintf("127.0.0.1:%d", pprofPort+i+1)
		}
		return c
	}
	first, cfg, err := startPresence(ctx, bin, dir, "node1", nodeConfig(0), prog)
	if err != nil {
		return nil, err
	}
	cs.nodes, cs.cli = []*child{first}, cli{bin: bin, config: cfg}
	rest := make([]*child, clusterSize-1)
	errs := make([]error, clusterSize-1)
	var wg sync.WaitGroup
	for i := range rest {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rest[i], _, errs[i] = startPresence(ctx, bin, dir, fmt.Sprintf("node%d", i+2), nodeConfig(i+1), prog)
		}()
	}
	wg.Wait()
	for i, c := range rest {
		if c != nil {
			cs.nodes = append(cs.nodes, c)
		}
		if errs[i] != nil {
			return nil, errs[i]
		}
	}
	ok = true
	return cs, nil
}

// writeNodeKey makes the node key every node shares: a cluster node never
// makes its own (docs/cluster.md).
func writeNodeKey(dataDir string) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	key := make([]byte, 32)
	rand.Read(key)
	return os.WriteFile(filepath.Join(dataDir, "presence.key"), key, 0o600)
}

// spawnNATS starts server i from this binary and waits until it accepts
// clients.
func spawnNATS(ctx context.Context, dir string, i, port, routePort, profPort int, routes string) (*child, error) {
	logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("nats%d.log", i+1)))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	name := fmt.Sprintf("nats%d", i+1)
	c, err := spawnSelf(ctx, logf, 30*time.Second, "nats-server", "-name", name,
		"-port", fmt.Sprint(port), "-cluster-port", fmt.Sprint(routePort), "-routes", routes,
		"-store", filepath.Join(dir, name), "-prof-port", fmt.Sprint(profPort), "-watch-stdin")
	if err != nil {
		return nil, err
	}
	c.addr = strings.TrimPrefix(c.addr, "nats://")
	return c, nil
}

// pids lists every process of the set, for CPU, with its role: the
// nodes, the NATS servers and the postmaster (its backends are its
// children).
func (cs *clusterSet) pids() (pids []int, roles []string) {
	for _, c := range cs.nodes {
		pids, roles = append(pids, c.pid()), append(roles, "nodes")
	}
	for _, c := range cs.nats {
		pids, roles = append(pids, c.pid()), append(roles, "NATS")
	}
	if pid := cs.pg.PID(); pid > 0 {
		pids, roles = append(pids, pid), append(roles, "PostgreSQL")
	}
	return pids, roles
}

// stop ends the nodes first (they write back what they hold), then the
// NATS servers and PostgreSQL (its folder goes with it); cs.dir is the
// caller's to keep or remove.
func (cs *clusterSet) stop() {
	if cs == nil {
		return
	}
	var wg sync.WaitGroup
	for _, c := range cs.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); c.stop() }()
	}
	wg.Wait()
	for _, c := range cs.nats {
		wg.Add(1)
		go func() { defer wg.Done(); c.stop() }()
	}
	wg.Wait()
	if cs.pg != nil {
		cs.pg.Stop()
	}
}
