package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestMain lets this test binary stand in for presence-bench as the
// cluster's NATS servers: -cluster runs os.Executable() nats-server.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "nats-server" {
		if err := runNATSServer(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "nats-server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestClusterRunSmall runs `-spawn -cluster` with tiny numbers: one node
// and a cluster of three nodes, three NATS servers and PostgreSQL. What an
// operator reads must hold: every figure has both columns, nothing failed,
// every status update sent reached the apps on both set-ups, the cluster's
// CPU is split by role, and no process the tool started outlives it.
//
// An app channel keeps only the newest update per PUID while its writer
// is behind (PROTOCOL §3), so "every update reached the apps" holds only
// while no PUID changes twice within a stall: one update per PUID per
// second (100 devices at 100/s), since under the whole suite's load this
// machine stalls a process for hundreds of milliseconds.
func TestClusterRunSmall(t *testing.T) {
	if os.Getenv("PRESENCE_CLUSTER") == "" {
		t.Skip("starts PostgreSQL and a cluster: run with PRESENCE_CLUSTER=1 (scripts/test.sh sets it)")
	}
	if testing.Short() {
		t.Skip("builds and runs real server processes")
	}
	jsonOut := filepath.Join(t.TempDir(), "report.json")
	args := []string{"-spawn", "-cluster", "-src", "../..", "-json", jsonOut, "-max-time", "3m",
		"-users", "100", "-notify-users", "20", "-status-devices", "100", "-rate", "100",
		"-devices", "300", "-checkpoints", "150", "-hold", "500ms", "-settle", "200ms",
		"-clients", "4", "-batch-clients", "2", "-duration", "2s", "-warmup", "500ms",
		"-between", "300ms", "-retries", "0", "connect", "status", "notify"}
	if code := run(args, io.Discard, testLog{t}); code != 0 {
		t.Fatalf("presence-bench %s exited %d", strings.Join(args, " "), code)
	}
	b, err := os.ReadFile(jsonOut)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Columns [2]string                   `json:"columns"`
		Rows    []row                       `json:"rows"`
		Errors  map[string]map[string]int64 `json:"errors"`
		Details struct {
			Pids struct {
				Nodes    []int `json:"nodes"`
				NATS     []int `json:"nats"`
				Postgres int   `json:"postgres"`
			} `json:"cluster_pids"`
		} `json:"details"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Columns != [2]string{"cluster", "one node"} {
		t.Errorf("columns %q", rep.Columns)
	}
	for run, errs := range rep.Errors {
		if len(errs) > 0 {
			t.Errorf("%s: errors %s", run, formatErrs(errs))
		}
	}
	find := func(scenario, prefix string) row {
		for _, r := range rep.Rows {
			if r.Scenario == scenario && strings.HasPrefix(strings.TrimSpace(r.Metric), prefix) {
				return r
			}
		}
		t.Fatalf("no %s row %q", scenario, prefix)
		return row{}
	}
	both := func(r row, min float64) {
		t.Helper()
		if r.Presence == nil || r.Relay == nil || *r.Presence < min || *r.Relay < min {
			t.Errorf("%s %q: cluster %v, one node %v; want both ≥ %v", r.Scenario, r.Metric, r.Presence, r.Relay, min)
		}
	}
	both(find("connect", "devices held"), 300)
	both(find("connect", "RSS/conn at 300"), -1e9) // both measured; the figure itself is the machine's
	both(find("status", "delivered ÷ (sent × apps)"), 0.999)
	both(find("status", "CPU per update"), 1)
	both(find("notify", "single-item POSTs/s"), 1)
	both(find("notify", "notifications/s in batches of 100"), 1)
	if r := find("status", "of which NATS"); r.Presence == nil || *r.Presence <= 0 {
		t.Errorf("the NATS servers' CPU per routed update: %v, want > 0", r.Presence)
	}

	pids := append(append([]int{rep.Details.Pids.Postgres}, rep.Details.Pids.Nodes...), rep.Details.Pids.NATS...)
	if len(pids) != 7 {
		t.Fatalf("cluster pids %v, want 3 nodes, 3 NATS servers and PostgreSQL", pids)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still there after the run (kill 0: %v)", pid, err)
		}
	}
}
