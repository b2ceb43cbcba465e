package main

import (
	"io"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// A cluster node's config is one node's plus its name, PostgreSQL and
// NATS; one node's has none of them, so it runs on SQLite as
// `presence serve` does by default.
func TestServerConfigClusterAndOneNode(t *testing.T) {
	type conf struct {
		Server struct {
			Listen, Node string
		}
		Database struct {
			Path, Driver, URL string
		}
		Cluster struct {
			NatsURL  string `toml:"nats_url"`
			Replicas int
		}
		Limits map[string]int64
	}
	node := serverConfig{dataDir: "/d/data", httpPort: 1001, xmppPort: 1002, node: "node2",
		pgURL: "postgres://postgres@/postgres?host=%2Ftmp%2Fpg", natsURL: natsClientURL([]int{4001, 4002, 4003}), replicas: 3,
		extra: "[notifications]\nqueue_size = 50"}
	var c conf
	md, err := toml.Decode(node.toml(), &c)
	if err != nil {
		t.Fatalf("cluster config does not parse: %v\n%s", err, node.toml())
	}
	if c.Server.Listen != "127.0.0.1:1001" || c.Server.Node != "node2" || c.Database.Driver != "postgres" ||
		c.Database.URL != node.pgURL || c.Database.Path != "/d/data/presence.db" || c.Cluster.Replicas != 3 ||
		c.Cluster.NatsURL != "nats://127.0.0.1:4001,nats://127.0.0.1:4002,nats://127.0.0.1:4003" {
		t.Errorf("cluster config read back as %+v", c)
	}
	if c.Limits["status_per_minute"] < 1e6 || !md.IsDefined("notifications", "queue_size") {
		t.Errorf("limits or the extra TOML missing: %+v", c)
	}

	one := serverConfig{dataDir: "/d", httpPort: 1001, xmppPort: 1002}
	c = conf{}
	md, err = toml.Decode(one.toml(), &c)
	if err != nil {
		t.Fatalf("one node's config does not parse: %v", err)
	}
	for _, key := range [][]string{{"server", "node"}, {"database", "driver"}, {"database", "url"}, {"cluster"}} {
		if md.IsDefined(key...) {
			t.Errorf("one node's config sets %s", strings.Join(key, "."))
		}
	}
}

func TestNATSRoutesNameEveryServer(t *testing.T) {
	got := natsRoutes([]int{6001, 6002, 6003})
	want := "nats-route://127.0.0.1:6001,nats-route://127.0.0.1:6002,nats-route://127.0.0.1:6003"
	if got != want {
		t.Errorf("natsRoutes = %q, want %q", got, want)
	}
}

func TestParseFlagsCluster(t *testing.T) {
	o, scen, err := parseFlags([]string{"-spawn", "-cluster", "all"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(scen, ",") != strings.Join(clusterScenarios, ",") || o.rate != 5000 || o.replicas != 3 {
		t.Errorf("-spawn -cluster all: scenarios %v, rate %v, replicas %d", scen, o.rate, o.replicas)
	}
	if o, _, err := parseFlags([]string{"-spawn", "-cluster", "-rate", "2000", "status"}, io.Discard); err != nil || o.rate != 2000 {
		t.Errorf("-rate 2000 with -cluster: %v, %v", o, err)
	}
	if _, scen, err := parseFlags([]string{"-spawn", "-cluster", "notify", "status", "connect"}, io.Discard); err != nil ||
		strings.Join(scen, ",") != "connect,status,notify" {
		t.Errorf("-cluster runs connect first: %v, %v", scen, err)
	}
	for _, bad := range [][]string{
		{"-cluster", "status"},                                // no -spawn
		{"-spawn", "-cluster", "-only", "presence", "status"}, // both set-ups always run
		{"-spawn", "-cluster", "mixed"},                       // not a cluster scenario
	} {
		if _, _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%v) accepted", bad)
		}
	}
	if o, _, err := parseFlags([]string{"-spawn", "status"}, io.Discard); err != nil || o.rate != 0 || o.cluster {
		t.Errorf("without -cluster the rate stays half the relay's: %+v, %v", o, err)
	}
}

func TestFormatTableNamesTheColumns(t *testing.T) {
	r := newRow("status", "CPU per update", "µs", 30, 20)
	r = r.atMost(*r.Ratio, 2, "ratio ≤ 2")
	out := formatTable([]row{r}, [2]string{"cluster", "one node"})
	header := strings.Fields(strings.SplitN(out, "\n", 2)[0])
	if strings.Join(header, " ") != "scenario metric cluster one node ratio floor verdict" {
		t.Errorf("header %q", header)
	}
	if !strings.Contains(out, "1.50") || !strings.Contains(out, "ok") {
		t.Errorf("ratio 1.50 against ≤ 2 should pass:\n%s", out)
	}
	if out := formatTable([]row{r}, [2]string{}); !strings.Contains(out, "presence") || !strings.Contains(out, "relay") {
		t.Errorf("default columns:\n%s", out)
	}
}

// The CPU of a set-up counts each process and its descendants once,
// living or reaped (a PostgreSQL backend), and nothing else.
func TestTreeCPUCountsDescendantsOnce(t *testing.T) {
	st, ok := parseStatTree("42 (post gres) S 7 42 42 0 -1 4194560 100 0 0 0 150 50 30 20 20 0 1 0 100 1000 10")
	if !ok || st.ppid != 7 || st.cpu != 2.5 { // (150+50+30+20)/100
		t.Fatalf("parseStatTree = %+v, %v", st, ok)
	}
	stats := map[int]procStat{
		1: {ppid: 0, cpu: 1},  // the postmaster
		2: {ppid: 1, cpu: 2},  // a backend
		3: {ppid: 2, cpu: 4},  // its child
		4: {ppid: 0, cpu: 8},  // a node
		5: {ppid: 0, cpu: 16}, // someone else's
	}
	kids := map[int][]int{0: {1, 4, 5}, 1: {2}, 2: {3}}
	if got := sumTree([]int{1, 4, 2}, stats, kids); got != 15 {
		t.Errorf("sumTree = %v, want 15 (1+2+4+8, the backend once)", got)
	}

	c := &target{cpuProcs: []int{10, 11, 20, 30}, cpuRoles: []string{"nodes", "nodes", "NATS", "PostgreSQL"}}
	by := c.cpuByRole([]float64{0.001, 0.003, 0.002, 0.0005}, 100) // seconds over 100 operations
	if by["nodes"] != 40 || by["NATS"] != 20 || by["PostgreSQL"] != 5 {
		t.Errorf("cpuByRole = %v, want nodes 40, NATS 20, PostgreSQL 5 µs per operation", by)
	}
	if (&target{pid: 1}).cpuByRole([]float64{1}, 10) != nil {
		t.Error("one server has no split by role")
	}
}

// Status devices go to every node but the last, apps to the last: every
// update crosses nodes. Connects and POSTs spread over all nodes. One
// server takes everything.
func TestClusterDialersRouteAcrossNodes(t *testing.T) {
	one := &target{d: newSourceDialer("127.0.0.1:1", 50)}
	if one.statusDialer(5) != one.d || one.statusAppDialer() != one.d || one.spreadDialer(7) != one.d {
		t.Error("one server: every dialer should be its own")
	}
	c := &target{}
	for _, a := range []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"} {
		c.nodes = append(c.nodes, clusterNode{addr: a, d: newSourceDialer(a, 50)})
	}
	seen := map[string]int{}
	for i := range 6 {
		seen[c.statusDialer(i).addr]++
	}
	if seen["127.0.0.1:1"] != 3 || seen["127.0.0.1:2"] != 3 || seen["127.0.0.1:3"] != 0 {
		t.Errorf("status devices by node: %v", seen)
	}
	if c.statusAppDialer().addr != "127.0.0.1:3" {
		t.Errorf("apps on %s, want the last node", c.statusAppDialer().addr)
	}
	seen = map[string]int{}
	for i := range 9 {
		seen[c.spreadDialer(i).addr]++
	}
	if len(seen) != 3 || seen["127.0.0.1:3"] != 3 {
		t.Errorf("spread by node: %v", seen)
	}
}
