package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procSample is what /proc says about a server process at one moment.
type procSample struct {
	RSSKiB     int64   `json:"rss_kib"`
	Threads    int     `json:"threads"`
	FDs        int     `json:"fds"`
	FDLimit    int64   `json:"fd_limit"`
	Goroutines int     `json:"goroutines"` // from /metrics; -1 when not exported
	Devices    int     `json:"devices"`    // presence_devices_connected: the server's own count
	CPU        float64 `json:"cpu_s"`      // user+system CPU seconds since the process started
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux this runs on (glibc's sysconf reads the same constant).
const clockTicks = 100

// readCPU returns utime+stime of pid in seconds. CPU per operation is the
// figure that stays meaningful on a machine other work is also using: wall
// rates fall with the noise, CPU per update does not.
func readCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	return parseStatCPU(string(b))
}

func parseStatCPU(stat string) float64 {
	// The command name may hold spaces and parentheses: fields count from
	// the last ')'. utime and stime are fields 14 and 15 (1-based).
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / clockTicks
}

// sampleProc reads VmRSS and Threads from /proc/<pid>/status, the open file
// count from /proc/<pid>/fd and the soft file limit from /proc/<pid>/limits.
// metricsURL, when set, is asked for a goroutine gauge.
func sampleProc(pid int, metricsURL string) (procSample, error) {
	s := procSample{Goroutines: -1}
	if pid <= 0 {
		return s, fmt.Errorf("no pid")
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	s.RSSKiB, s.Threads = parseStatus(status)
	s.CPU = readCPU(pid)
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.FDs = len(ents)
	}
	if lim, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid)); err == nil {
		s.FDLimit = parseFDLimit(lim)
	}
	if metricsURL != "" {
		m := scrapeMetrics(metricsURL)
		for name, v := range m {
			if strings.HasSuffix(name, "goroutines") {
				s.Goroutines = int(v)
			}
		}
		if v, ok := m["presence_devices_connected"]; ok {
			s.Devices = int(v)
		}
	}
	return s, nil
}

// sampleLight reads only /proc/<pid>/status (RSS, threads), for progress
// lines during a measured window: listing /proc/<pid>/fd walks every
// socket (19,000 while devices connect) and scraping /metrics costs the
// server, both on the cores being measured.
func sampleLight(pid int) procSample {
	s := procSample{Goroutines: -1}
	if pid <= 0 {
		return s
	}
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		s.RSSKiB, s.Threads = parseStatus(status)
	}
	return s
}

func parseStatus(b []byte) (rssKiB int64, threads int) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rssKiB, _ = strconv.ParseInt(f[1], 10, 64)
		case "Threads:":
			threads, _ = strconv.Atoi(f[1])
		}
	}
	return rssKiB, threads
}

func parseFDLimit(b []byte) int64 {
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Max open files") {
			f := strings.Fields(strings.TrimPrefix(line, "Max open files"))
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

// scrapeMetrics sums the server's Prometheus text by metric name (labels
// dropped). The goroutine gauge is looked for by suffix, as the contract
// promises /metrics but not that name.
func scrapeMetrics(url string) map[string]float64 {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return parseMetrics(string(b))
}

func parseMetrics(text string) map[string]float64 {
	m := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := f[0]
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			m[name] += v
		}
	}
	return m
}

// raiseFileLimit lifts this process's soft RLIMIT_NOFILE to the hard limit
// (Go does it at start too, but saying so is part of the report) and returns
// the limit now in force.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return lim.Cur, err
		}
	}
	return lim.Cur, nil
}

// openFiles counts this process's open descriptors.
func openFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

func readMachine(fdLimit uint64) machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), GoVer: runtime.Version(), FDLimit: fdLimit}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if i := strings.Index(line, ":"); i >= 0 {
					m.CPUModel = strings.TrimSpace(line[i+1:])
				}
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kib, _ := strconv.ParseInt(f[1], 10, 64)
				m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kib)/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		m.Ports = strings.Join(strings.Fields(string(b)), "-")
	}
	return m
}

// procStat is what the CPU accounting reads of one /proc/<pid>/stat.
type procStat struct {
	ppid int
	// cpu is utime+stime+cutime+cstime in seconds: its own CPU and that
	// of its children it has reaped (a PostgreSQL backend that ended).
	cpu float64
}

func parseStatTree(stat string) (procStat, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 15 { // state ppid … utime stime cutime cstime: fields 3 to 17
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	var cpu float64
	for _, v := range f[11:15] {
		x, _ := strconv.ParseFloat(v, 64)
		cpu += x
	}
	return procStat{ppid: ppid, cpu: cpu / clockTicks}, true
}

// treeCPU is the CPU seconds used by the processes pids and all their
// descendants, living or reaped: a PostgreSQL serves each connection from
// a child of its postmaster. It reads every /proc/<pid>/stat once, so it
// is for the edges of a window, not for a hot loop.
func treeCPU(pids []int) float64 {
	var total float64
	for _, v := range treeCPUEach(pids) {
		total += v
	}
	return total
}

// treeCPUEach is treeCPU of each of pids apart, in their order.
func treeCPUEach(pids []int) []float64 {
	if len(pids) == 0 {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	stats := map[int]procStat{}
	kids := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if s, ok := parseStatTree(string(b)); ok {
			stats[pid] = s
			kids[s.ppid] = append(kids[s.ppid], pid)
		}
	}
	each := make([]float64, len(pids))
	for i, pid := range pids {
		each[i] = sumTree([]int{pid}, stats, kids)
	}
	return each
}

// sumTree adds up the cpu of roots and their descendants, each once.
func sumTree(roots []int, stats map[int]procStat, kids map[int][]int) float64 {
	seen := map[int]bool{}
	var total float64
	queue := append([]int(nil), roots...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		total += stats[pid].cpu
		queue = append(queue, kids[pid]...)
	}
	return total
}

// cpuMeter measures, over a window, the CPU the server and this tool used
// and the share of the machine that other work took: a run measured while
// other processes held half the machine is not the same measurement. The
// server is every process of pids (and their children): one, or a
// cluster's nodes, NATS servers and PostgreSQL.
type cpuMeter struct {
	pids          []int
	server        []float64 // of each of pids
	tool, machine float64
	at            time.Time
}

func startCPU(pids []int) cpuMeter {
	return cpuMeter{pids: pids, server: treeCPUEach(pids), tool: readCPU(os.Getpid()), machine: machineBusy(), at: time.Now()}
}

// cpuUse is what a cpuMeter read: server and tool CPU seconds, and the share
// (0–1) of all CPUs that other processes used. Each is the server's CPU
// seconds by process, in the order of the meter's pids.
type cpuUse struct {
	Server, Tool, Other float64
	Each                []float64
}

func (m cpuMeter) read() cpuUse {
	u := cpuUse{Tool: readCPU(os.Getpid()) - m.tool}
	if len(m.pids) > 0 {
		now := treeCPUEach(m.pids)
		u.Each = make([]float64, len(now))
		for i := range now {
			u.Each[i] = now[i] - m.server[i]
			u.Server += u.Each[i]
		}
	}
	wall := time.Since(m.at).Seconds() * float64(runtime.NumCPU())
	if wall > 0 {
		u.Other = max(0, (machineBusy()-m.machine-u.Server-u.Tool)/wall)
	}
	return u
}

// machineBusy is the busy time of all CPUs, in seconds, from /proc/stat:
// user, nice, system and steal (other VMs on the host took it). irq and
// softirq are left out: on loopback they are mostly our own packets, which
// the kernel charges to neither process (a 64-client POST run showed 83%
// "other work" on an otherwise idle machine before they were left out).
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseProcStatBusy(line)
}

func parseProcStatBusy(line string) float64 {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy float64
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		if i >= 3 && i <= 6 {
			continue
		}
		x, _ := strconv.ParseFloat(v, 64)
		busy += x
	}
	return busy / clockTicks
}
