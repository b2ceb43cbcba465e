package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "relay" {
		if err := runRelay(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "relay:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "nats-server" { // natsserver.go: for -spawn -cluster, not for people
		if err := runNATSServer(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "nats-server:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "soak" { // scen_soak.go: its own flags
		os.Exit(runSoakCommand(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// serverFlags name the server a run measures: one it spawns, or one already
// running. Every scenario, the soak included, takes these flags.
type serverFlags struct {
	spawn, keep          bool
	src, bin, addr, conf string
	xmppAddr, xmppDomain string
	extraConf            string
	pid                  int
	pprofPort            int
}

func (t *serverFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&t.spawn, "spawn", false, "build and start the server with a temp config and data dir (knows its pid)")
	fs.BoolVar(&t.keep, "keep", false, "with -spawn, keep the temp dir (config, database, server log) instead of removing it")
	fs.StringVar(&t.src, "src", ".", "module root to build ./cmd/presence from, with -spawn")
	fs.StringVar(&t.bin, "bin", "", "presence binary: used instead of building with -spawn, and for the CLI without -spawn")
	fs.StringVar(&t.addr, "addr", "", "address of a running server (without -spawn), loopback only")
	fs.StringVar(&t.conf, "config", "", "config file of the running server, for the provisioning CLI (without -spawn)")
	fs.StringVar(&t.xmppAddr, "xmpp-addr", "", "XEP-0114 listener of the running server (without -spawn); empty: no XMPP app")
	fs.StringVar(&t.xmppDomain, "xmpp-domain", "presence.localhost", "xmpp.domain of the server")
	fs.StringVar(&t.extraConf, "server-config-extra", "", "TOML appended to the spawned server's config")
	fs.IntVar(&t.pprofPort, "pprof-port", 0, "with -spawn: the server's profiler on 127.0.0.1:PORT (-cluster: node i on PORT+i, NATS server i on PORT+10+i)")
	fs.IntVar(&t.pid, "pid", 0, "pid of the running server (without -spawn), for RSS, threads and fds")
}

// options are the command-line flags.
type options struct {
	serverFlags
	xmppRun     bool
	cluster     bool // -spawn -cluster: one node against three, side by side
	replicas    int
	only        string // "", "presence" or "relay"
	jsonOut     string
	cpuProfile  string
	maxTime     time.Duration
	dur, warm   time.Duration
	between     time.Duration
	maxOther    float64
	retries     int
	perIP       int
	users       int
	notifyUsers int
	apps        int

	connN    int
	connConc int
	checkpts string
	hold     time.Duration
	settle   time.Duration

	statusDevs int
	inflight   int
	rate       float64

	clients, batchClients int

	appConns, appWindow int // appnotify: app channels, single items in flight on each

	mixedIdle, mixedDevs, mixedClients int
	mixedRate                          float64

	slowFor  time.Duration
	slowRate float64

	soakDevices                   int // soak: devices flapping
	soakFlap, soakFor, soakSample time.Duration
}

var allScenarios = []string{"connect", "status", "notify", "appnotify", "mixed", "slowapp"}

// clusterScenarios are those -cluster runs ("all" means these there).
var clusterScenarios = []string{"connect", "status", "notify", "appnotify"}

// longScenarios run only when named: "all" leaves them out.
var longScenarios = []string{"soak"}

func parseFlags(args []string, stderr io.Writer) (*options, []string, error) {
	o := &options{}
	fs := flag.NewFlagSet("presence-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: presence-bench [flags] %s|all|soak ...\n       presence-bench relay -listen 127.0.0.1:0\n\n",
			strings.Join(allScenarios, "|"))
		fs.PrintDefaults()
	}
	o.serverFlags.register(fs)
	fs.BoolVar(&o.cluster, "cluster", false, "with -spawn: also start three NATS servers, PostgreSQL and three nodes, and run each scenario\n"+
		"against one node (SQLite) and against the cluster, side by side; scenarios "+strings.Join(clusterScenarios, ", "))
	fs.IntVar(&o.replicas, "replicas", 3, "-cluster: cluster.replicas, the JetStream copies of every stream")
	fs.BoolVar(&o.xmppRun, "xmpp", true, "status: also run the open-loop load with every app on the XMPP component channel")
	fs.StringVar(&o.only, "only", "", `run one side only: "presence" or "relay" (default both)`)
	fs.StringVar(&o.jsonOut, "json", "", "write the report as JSON to this file")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write this tool's CPU profile here (to see whether the tool is the bottleneck)")
	fs.DurationVar(&o.maxTime, "max-time", 30*time.Minute, "watchdog: the tool stops whatever happens after this")
	fs.DurationVar(&o.dur, "duration", 10*time.Second, "measured window of each run")
	fs.DurationVar(&o.warm, "warmup", 2*time.Second, "unmeasured start of each run")
	fs.DurationVar(&o.between, "between", 3*time.Second, "pause between runs, so one run's disconnects do not land in the next")
	fs.Float64Var(&o.maxOther, "max-other", 0.15, "status and notify runs during which other processes took more of the machine than this are run again")
	fs.IntVar(&o.retries, "retries", 2, "how many times a run is repeated for -max-other; the quietest is kept")
	fs.IntVar(&o.perIP, "per-ip", 50, "connections per 127.0.x.y source address (few keep connect() fast)")
	fs.IntVar(&o.users, "users", 2000, "users to provision (assertion + a grant per app each); status devices are distinct users")
	fs.IntVar(&o.notifyUsers, "notify-users", 200, "users whose queues the notify scenario fills (no device of theirs connects)")
	fs.IntVar(&o.apps, "apps", 2, "K: apps receiving status updates over WebSocket")
	fs.IntVar(&o.connN, "devices", 19000, "connect: devices to connect and hold")
	fs.IntVar(&o.connConc, "conc", 64, "connect: dials at once")
	fs.StringVar(&o.checkpts, "checkpoints", "5000,10000,19000", "connect: held counts at which server memory is read")
	fs.DurationVar(&o.hold, "hold", 5*time.Second, "connect: hold all devices this long, then check they are still there")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "connect: pause before each memory reading")
	fs.IntVar(&o.statusDevs, "status-devices", 2000,
		"status: devices sending updates. Many, so that each PUID changes a few times a second\n"+
			"as real ones do: Presence coalesces a PUID's pending updates (newest wins), which a fleet of 100 would trigger")
	fs.IntVar(&o.inflight, "inflight", 128, "status: closed-loop senders, each with one update in flight, cycling over its share of devices")
	fs.Float64Var(&o.rate, "rate", 0, "status: open-loop total updates/s (0 = half the relay's closed-loop rate; 5,000 with -cluster)")
	fs.IntVar(&o.clients, "clients", 64, "notify: concurrent clients for single-item POSTs")
	fs.IntVar(&o.batchClients, "batch-clients", 16, "notify: concurrent clients for batch-100 POSTs")
	fs.IntVar(&o.appConns, "app-conns", 4, "appnotify: app channels sending notification batches")
	fs.IntVar(&o.appWindow, "app-window", 128, "appnotify: single-item batches in flight on each channel (batches of 100: -batch-clients spread over the channels)")
	fs.IntVar(&o.mixedIdle, "mixed-idle", 5000, "mixed: idle devices held during the run")
	fs.IntVar(&o.mixedDevs, "mixed-devices", 1000, "mixed: devices sending status")
	fs.Float64Var(&o.mixedRate, "mixed-rate", 5000, "mixed: status updates/s")
	fs.IntVar(&o.mixedClients, "mixed-clients", 8, "mixed: single-item notification clients")
	fs.DurationVar(&o.slowFor, "slow-for", 30*time.Second, "slowapp: how long the slow app reads nothing")
	fs.Float64Var(&o.slowRate, "slow-rate", 5000, "slowapp: status updates/s during both phases")
	fs.IntVar(&o.soakDevices, "soak-devices", 10000, "soak: devices flapping (connect, online, away, close, again)")
	fs.DurationVar(&o.soakFlap, "soak-flap", time.Minute, "soak: a device stays connected between half and one and a half of this")
	fs.DurationVar(&o.soakFor, "soak-for", 10*time.Minute, "soak: how long the steady state is watched")
	fs.DurationVar(&o.soakSample, "soak-sample", 30*time.Second, "soak: how often the server is sampled")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	scen := fs.Args()
	if len(scen) == 0 {
		fs.Usage()
		return nil, nil, fmt.Errorf("name at least one scenario")
	}
	if slices.Contains(scen, "all") {
		scen = allScenarios
		if o.cluster {
			scen = clusterScenarios
		}
	}
	for _, s := range scen {
		if !slices.Contains(allScenarios, s) && !slices.Contains(longScenarios, s) {
			return nil, nil, fmt.Errorf("unknown scenario %q", s)
		}
	}
	if o.cluster {
		if !o.spawn || o.only != "" {
			return nil, nil, fmt.Errorf("-cluster needs -spawn, and runs both set-ups (no -only)")
		}
		for _, s := range scen {
			if !slices.Contains(clusterScenarios, s) {
				return nil, nil, fmt.Errorf("-cluster runs %s, not %q", strings.Join(clusterScenarios, ", "), s)
			}
		}
		if o.rate == 0 {
			o.rate = 5000 // issue 19: cross-node status updates at 5,000/s
		}
		// connect first: its memory figures start from servers that no
		// earlier scenario has grown (a node's RSS shrinking after a status
		// run read as a negative RSS per device).
		slices.SortStableFunc(scen, func(a, b string) int {
			return slices.Index(clusterScenarios, a) - slices.Index(clusterScenarios, b)
		})
	}
	if o.only != "" && o.only != "presence" && o.only != "relay" {
		return nil, nil, fmt.Errorf(`-only must be "presence" or "relay"`)
	}
	if o.only != "relay" && !o.spawn && (o.addr == "" || o.conf == "" || o.bin == "") {
		return nil, nil, fmt.Errorf("give -spawn, or -addr, -config and -bin of a running server (and -pid for memory), or -only relay")
	}
	if o.addr != "" {
		if err := requireLoopback(o.addr); err != nil {
			return nil, nil, err
		}
	}
	return o, scen, nil
}

func parseInts(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			out = append(out, v)
		}
	}
	return out
}

func run(args []string, stdout, stderr io.Writer) int {
	o, scen, err := parseFlags(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "presence-bench:", err)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, o.maxTime)
	defer cancelT()
	prog := newProgress(stderr)
	defer prog.close()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}

	b := &bench{o: o, prog: prog, rep: &report{Started: time.Now().UTC().Format(time.RFC3339), Args: args}}
	limit, err := raiseFileLimit()
	if err != nil {
		prog.logf("cannot raise the file limit: %v", err)
	}
	b.fdLimit = limit
	b.rep.Machine = readMachine(limit)
	prog.logf("machine: %s", b.rep.Machine)
	prog.logf("this tool may hold %d open files (soft limit raised to the hard one)", limit)
	defer b.stopChildren()
	// The watchdog is for a run that hangs despite its deadlines: it stops the
	// children and exits instead of leaving a load generator behind.
	watchdog := time.AfterFunc(o.maxTime+time.Minute, func() {
		fmt.Fprintln(stderr, "presence-bench: watchdog: -max-time exceeded, exiting")
		b.stopChildren()
		os.Exit(3)
	})
	defer watchdog.Stop()

	if err := b.setup(ctx); err != nil {
		fmt.Fprintln(stderr, "presence-bench:", err)
		return 1
	}
	for _, s := range scen {
		if ctx.Err() != nil {
			break
		}
		prog.logf("=== scenario %s", s)
		var err error
		switch s {
		case "connect":
			b.connect(ctx)
		case "status":
			if o.cluster {
				err = b.clusterStatus(ctx)
			} else {
				err = b.status(ctx)
			}
		case "notify":
			err = b.notify(ctx)
		case "appnotify":
			if o.cluster {
				err = b.clusterAppNotify(ctx)
			} else {
				err = b.appNotify(ctx)
			}
		case "mixed":
			err = b.mixed(ctx)
		case "slowapp":
			err = b.slowapp(ctx)
		case "soak":
			err = b.soak(ctx)
		}
		if err != nil {
			prog.logf("scenario %s failed: %v", s, err)
			b.rep.detail(s+"_error", err.Error())
		}
	}
	prog.set("", nil)
	fmt.Fprintf(stdout, "\npresence-bench %s\nmachine: %s\n\n%s\nerrors by kind:\n%s", strings.Join(args, " "),
		b.rep.Machine, formatTable(b.rep.Rows, b.rep.Columns), b.rep.errorLines())
	if o.jsonOut != "" {
		if err := b.rep.writeJSON(o.jsonOut); err != nil {
			fmt.Fprintln(stderr, "presence-bench:", err)
			return 1
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "presence-bench: stopped early:", ctx.Err())
		return 1
	}
	return 0
}
