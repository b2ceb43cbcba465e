package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// The soak: `presence-bench soak` holds a fleet of devices that flap
// (connect, set statuses, take and ack notifications, leave cleanly or
// abruptly, come back within the disconnect grace or after it) and a set of
// apps (WebSocket channels and XMPP components) that receive the status
// updates and send notifications, for -duration. It samples the server's
// memory, goroutines and open files after the warm-up, during the load, and
// once the load has stopped and the grace has passed, and judges whether
// they stayed flat. It is not part of CI (the test runs it with tiny
// numbers); README.md "Soak" has the command.

// soakOpts are the soak's flags.
type soakOpts struct {
	serverFlags
	jsonOut string
	perIP   int

	devices, perUser  int
	conc              int // connects in flight at once
	apps, xmppApps    int
	dur, warm, sample time.Duration
	maxTime           time.Duration

	sessionMin, sessionMax time.Duration // how long a device stays connected
	statusEvery            time.Duration // mean time between a device's status updates
	grace                  time.Duration // the server's device.disconnect_grace
	longOffline            time.Duration // the longest a device stays away after the grace
	withinGrace, abrupt    float64       // shares of reconnects inside the grace, of abrupt leaves
	notifyRate             float64       // notifications each app sends a second
	batchMax               int           // items in one app-channel batch, 1 to batchMax

	rssTol, goTol float64 // flatness tolerances, as shares of the warm-up figure
}

// soakFlags registers the soak's flags on a new set, their defaults in o.
func soakFlags(o *soakOpts, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("presence-bench soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: presence-bench soak -spawn [flags]\n       presence-bench soak -addr host:port -config presence.toml -bin presence -pid N [flags]")
		fs.PrintDefaults()
	}
	o.serverFlags.register(fs)
	fs.StringVar(&o.jsonOut, "json", "", "write the report as JSON to this file")
	fs.IntVar(&o.perIP, "per-ip", 50, "connections per 127.0.x.y source address")
	fs.IntVar(&o.devices, "devices", 10000, "devices that flap")
	fs.IntVar(&o.perUser, "devices-per-user", 5, "devices of one user (each user is provisioned once, with a grant per app)")
	fs.IntVar(&o.conc, "conc", 64, "connects in flight at once, all devices together")
	fs.IntVar(&o.apps, "apps", 10, "apps receiving updates and sending notifications")
	fs.IntVar(&o.xmppApps, "xmpp-apps", -1, "how many of the apps use the XMPP component channel (default: half)")
	fs.DurationVar(&o.dur, "duration", 10*time.Minute, "how long the load runs, warm-up included")
	fs.DurationVar(&o.warm, "warmup", 0, "start of the load, over which the devices' first connects are spread, before the first reading\n(default: a tenth of -duration, at least 30s and at most 1m, and at most a third of -duration)")
	fs.DurationVar(&o.sample, "sample-every", 10*time.Second, "server readings during the load")
	fs.DurationVar(&o.maxTime, "max-time", 0, "watchdog: the tool stops whatever happens after this (default: -duration + 20m)")
	fs.DurationVar(&o.sessionMin, "session-min", 5*time.Second, "shortest time a device stays connected")
	fs.DurationVar(&o.sessionMax, "session-max", 60*time.Second, "longest time a device stays connected")
	fs.DurationVar(&o.statusEvery, "status-every", 10*time.Second, "mean time between a connected device's status updates")
	fs.DurationVar(&o.grace, "grace", time.Second, "the server's device.disconnect_grace (a spawned server has 1s)")
	fs.DurationVar(&o.longOffline, "long-offline", 20*time.Second, "longest time a device stays away after the grace")
	fs.Float64Var(&o.withinGrace, "within-grace", 0.5, "share of reconnects that come back inside the grace")
	fs.Float64Var(&o.abrupt, "abrupt", 0.5, "share of leaves that drop the TCP connection (RST) instead of closing the WebSocket")
	fs.Float64Var(&o.notifyRate, "notify-rate", 10, "notifications each app sends a second")
	fs.IntVar(&o.batchMax, "batch-max", 5, "items in one app-channel batch, 1 to this")
	fs.Float64Var(&o.rssTol, "rss-tolerance", 0.25, "RSS is flat when the median of the last third of the readings is within this share (+16 MiB) of the first third's")
	fs.Float64Var(&o.goTol, "goroutine-tolerance", 0.15, "goroutines are flat when the median of the last third of the readings is within this share (+100) of the first third's")
	return fs
}

func parseSoakFlags(args []string, stderr io.Writer) (*soakOpts, error) {
	o := &soakOpts{}
	fs := soakFlags(o, stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("soak takes flags only, not %q", fs.Args())
	}
	if !o.spawn && (o.addr == "" || o.conf == "" || o.bin == "") {
		return nil, fmt.Errorf("give -spawn, or -addr, -config and -bin of a running server")
	}
	if o.addr != "" {
		if err := requireLoopback(o.addr); err != nil {
			return nil, err
		}
	}
	return o, o.check()
}

// check validates the shape of the load and fills the defaults that depend
// on other flags.
func (o *soakOpts) check() error {
	if o.devices < 1 || o.perUser < 1 || o.apps < 1 || o.batchMax < 1 || o.batchMax > 100 {
		return fmt.Errorf("-devices, -devices-per-user and -apps must be at least 1, -batch-max 1 to 100")
	}
	if o.sessionMin <= 0 || o.sessionMax < o.sessionMin || o.statusEvery <= 0 || o.sample <= 0 {
		return fmt.Errorf("-session-min ≤ -session-max, -status-every and -sample-every must be positive")
	}
	if o.xmppApps < 0 {
		o.xmppApps = o.apps / 2
	}
	o.xmppApps = min(o.xmppApps, o.apps)
	if o.warm <= 0 {
		o.warm = min(max(o.dur/10, 30*time.Second), time.Minute, o.dur/3)
	}
	if o.warm >= o.dur {
		return fmt.Errorf("-warmup (%s) must be shorter than -duration (%s)", o.warm, o.dur)
	}
	if o.maxTime <= 0 {
		o.maxTime = o.dur + 20*time.Minute
	}
	return nil
}

// runSoakCommand is `presence-bench soak`: flags, the watchdog, the run,
// the table on stdout and the JSON file.
func runSoakCommand(args []string, stdout, stderr io.Writer) int {
	o, err := parseSoakFlags(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "presence-bench soak:", err)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, o.maxTime)
	defer cancelT()
	prog := newProgress(stderr)
	defer prog.close()
	// The watchdog is for a run that hangs despite its deadlines.
	watchdog := time.AfterFunc(o.maxTime+time.Minute, func() {
		fmt.Fprintln(stderr, "presence-bench soak: watchdog: -max-time exceeded, exiting")
		os.Exit(3)
	})
	defer watchdog.Stop()
	rep := &report{Started: time.Now().UTC().Format(time.RFC3339), Args: append([]string{"soak"}, args...)}
	res, err := runSoak(ctx, o, rep, prog)
	prog.set("", nil)
	if err != nil {
		fmt.Fprintln(stderr, "presence-bench soak:", err)
		rep.detail("soak_error", err.Error())
	}
	fmt.Fprintf(stdout, "\npresence-bench soak %s\nmachine: %s\n\n%s\nerrors seen by clients:\n%s", strings.Join(args, " "),
		rep.Machine, formatTable(rep.Rows, rep.Columns), rep.errorLines())
	if res != nil {
		fmt.Fprintf(stdout, "\nserver readings (s since the load began: RSS MiB, goroutines, fds, devices by its count):\n%s", res.readingLines())
	}
	if o.jsonOut != "" {
		if werr := rep.writeJSON(o.jsonOut); werr != nil {
			fmt.Fprintln(stderr, "presence-bench soak:", werr)
			return 1
		}
	}
	if err != nil || ctx.Err() != nil {
		return 1
	}
	return 0
}

// runSoak starts (or finds) the server, provisions users and apps, runs the
// load and fills rep. The result is returned for tests, even on error.
func runSoak(ctx context.Context, o *soakOpts, rep *report, prog *progress) (*soakResult, error) {
	limit, err := raiseFileLimit()
	if err != nil {
		prog.logf("cannot raise the file limit: %v", err)
	}
	rep.Machine = readMachine(limit)
	prog.logf("machine: %s", rep.Machine)
	if err := o.fitFileLimit(limit, rep, prog); err != nil {
		return nil, err
	}
	users := (o.devices + o.perUser - 1) / o.perUser

	c, addr, pid, xaddr := cli{bin: o.bin, config: o.conf}, o.addr, o.pid, o.xmppAddr
	if o.spawn {
		extra := o.extraConf
		if !strings.Contains(extra, "[notifications]") {
			// Notifications outlive the run, so that one never delivered is
			// a loss and not an expiry.
			extra += "\n[notifications]\ndefault_ttl = \"1h\"\n"
		}
		srv, sc, dir, err := spawnServer(ctx, o.src, o.bin, extra, o.pprofPort, prog)
		if srv != nil {
			defer func() {
				srv.stop()
				if dir != "" && !o.keep {
					os.RemoveAll(dir)
				} else if dir != "" {
					prog.logf("server data and log kept in %s", dir)
				}
			}()
		} else if dir != "" {
			defer os.RemoveAll(dir)
		}
		if err != nil {
			return nil, err
		}
		c, addr, pid, xaddr = sc, srv.addr, srv.pid(), srv.xmppAddr
	}
	prog.logf("provisioning %d apps and %d users (%d devices each) on %s", o.apps, users, o.perUser, addr)
	began := time.Now()
	t, err := provision(ctx, c, addr, o.apps, users, 0, o.perIP, prog)
	if err != nil {
		return nil, err
	}
	if t.grantErr != nil {
		return nil, t.grantErr
	}
	prog.logf("provisioned in %.0f s", time.Since(began).Seconds())
	t.pid = pid
	t.xmpp = xmppTarget{addr: xaddr, domain: o.xmppDomain}
	if xaddr == "" && o.xmppApps > 0 {
		prog.logf("no XMPP listener given: all %d apps on WebSocket", o.apps)
		o.xmppApps = 0
	}
	r := newSoakRun(t, o, prog)
	res, err := r.run(ctx)
	res.addRows(rep, o)
	rep.detail("soak", res)
	rep.errs("soak devices", res.DeviceErrors)
	rep.errs("soak apps", res.AppErrors)
	return res, err
}

// fitFileLimit lowers -devices to what this process's file limit allows
// and says so: one socket per device, plus the apps, the drain's devices
// and what Go and the HTTP clients hold. Past it, connects would fail with
// EMFILE.
func (o *soakOpts) fitFileLimit(limit uint64, rep *report, prog *progress) error {
	need := o.devices + o.apps + soakDrainConc + 64
	budget := fdBudget(limit)
	if need <= budget {
		return nil
	}
	n := budget - o.apps - soakDrainConc - 64
	if n < 1 {
		return fmt.Errorf("this tool may hold %d open files: too few for any device (raise ulimit -n)", limit)
	}
	prog.logf("this tool may hold %d open files (the machine's hard limit): %d devices fit, not %d; running %d", limit, n, o.devices, n)
	rep.detail("soak_devices_capped", fmt.Sprintf("%d asked, %d run: tool file limit %d", o.devices, n, limit))
	o.devices = n
	return nil
}

// soak is the soak as a scenario of the main command (`presence-bench
// -spawn -apps 10 -users 1000 -soak-devices 10000 -soak-for 10m soak`): the
// same load on the target setup already provisioned, its devices spread
// over those users, sessions of -soak-flap/2 to 3/2·-soak-flap, -soak-for
// watched after a warm-up; the other knobs are the soak subcommand's
// defaults.
func (b *bench) soak(ctx context.Context) error {
	t := b.pres
	if t == nil {
		b.prog.logf("soak: needs Presence, skipped")
		return nil
	}
	if t.grantErr != nil {
		return fmt.Errorf("soak needs granted users: %w", t.grantErr)
	}
	if len(t.users) == 0 {
		return fmt.Errorf("soak needs -users > 0")
	}
	so := &soakOpts{}
	soakFlags(so, io.Discard).Parse(nil)
	so.devices, so.apps, so.perIP, so.sample, so.conc = b.o.soakDevices, len(t.apps), b.o.perIP, b.o.soakSample, b.o.connConc
	so.sessionMin, so.sessionMax = max(b.o.soakFlap/2, time.Second), max(3*b.o.soakFlap/2, time.Second)
	so.warm = min(max(b.o.soakFor/10, 30*time.Second), time.Minute)
	so.dur = b.o.soakFor + so.warm
	if t.xmpp.addr == "" {
		so.xmppApps = 0
	}
	if err := so.check(); err != nil {
		return err
	}
	if err := so.fitFileLimit(b.fdLimit, b.rep, b.prog); err != nil {
		return err
	}
	so.perUser = (so.devices + len(t.users) - 1) / len(t.users)
	res, err := newSoakRun(t, so, b.prog).run(ctx)
	res.addRows(b.rep, so)
	b.rep.detail("soak", res)
	b.rep.errs("soak devices", res.DeviceErrors)
	b.rep.errs("soak apps", res.AppErrors)
	return err
}
