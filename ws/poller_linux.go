//go:build linux

package ws

import (
	"errors"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// poller parks idle device sockets in epoll sets of its own: a device
// costs a goroutine only while bytes are being read from it. Each socket
// is armed once, edge-triggered: an event comes for each arrival of
// bytes after the last read, and nothing has to be re-armed (an
// epoll_ctl per read event, before). A reader that finds another one at
// work on the same device leaves it a note instead of waiting
// (device.readable). The Go runtime keeps the same socket in its own
// netpoller for writes; the two do not interfere.
type poller struct {
	log   *slog.Logger
	sets  []epollSet               // a device's set is its fd modulo len(sets)
	conns []atomic.Pointer[device] // by fd; fds are small integers below the open-file limit
	work  chan *device             // to idle readers; their stacks are already grown
	done  chan struct{}            // closed once every set is closed: readers end
}

// epollSet is one epoll set and the collector goroutine that serves its
// devices. There is one per core (GOMAXPROCS): a collector answers
// status and ping requests itself (device.readable), so one set alone
// would serve every device from one core.
type epollSet struct {
	fd   int             // kept: file.Fd() would make the set blocking again
	file *os.File        // fd, for the runtime's netpoller; closing it ends the collector
	raw  syscall.RawConn // file's
}

// readers is how many reading goroutines wait for work. A device whose
// read takes long (a connect waiting on its identity verifier) ties one
// up; when none is idle, a fresh goroutine reads instead.
func readers() int { return 4 * runtime.GOMAXPROCS(0) }

func newPoller(log *slog.Logger) (*poller, error) {
	var lim syscall.Rlimit
	size := 1 << 16
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Max < 1<<22 {
		size = int(lim.Max) + 1
	}
	p := &poller{log: log, conns: make([]atomic.Pointer[device], size),
		work: make(chan *device), done: make(chan struct{})}
	for range runtime.GOMAXPROCS(0) {
		set, err := newEpollSet()
		if err != nil {
			for _, s := range p.sets {
				s.file.Close()
			}
			return nil, err
		}
		p.sets = append(p.sets, set)
	}
	for range readers() {
		go func() {
			for {
				select {
				case d := <-p.work:
					d.readable(false)
				case <-p.done:
					return
				}
			}
		}()
	}
	var collectors sync.WaitGroup
	for _, set := range p.sets {
		collectors.Go(func() { p.collect(set) })
	}
	go func() {
		collectors.Wait()
		close(p.done) // not p.work: readers send on it too (dispatch)
	}()
	return p, nil
}

func newEpollSet() (epollSet, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return epollSet{}, err
	}
	// The set's own fd is watched by the Go runtime's netpoller: the
	// goroutine that collects events parks there, holding no thread, and
	// asks the set with a timeout of 0. A thread blocked in epoll_wait
	// lost its P to sysmon after 20 µs and, when woken, had to get one
	// back or sleep again: a thread switch or two per batch of events.
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return epollSet{}, err
	}
	watched := os.NewFile(uintptr(fd), "epoll")
	// A file the netpoller refused would fail every wait at once, and no
	// device would be read: refuse here instead, so the server falls back
	// to a reading goroutine per device.
	if err := watched.SetReadDeadline(time.Time{}); err != nil {
		watched.Close()
		return epollSet{}, err
	}
	raw, err := watched.SyscallConn()
	if err != nil {
		watched.Close()
		return epollSet{}, err
	}
	return epollSet{fd: fd, file: watched, raw: raw}, nil
}

const armEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET

// epollET is EPOLLET; package syscall spells it as a negative int.
const epollET = 1 << 31

func (p *poller) setOf(fd int) *epollSet { return &p.sets[fd%len(p.sets)] }

// add parks d's socket; false if it cannot be (the caller then reads
// with a goroutine).
func (p *poller) add(fd int, d *device) bool {
	if fd < 0 || fd >= len(p.conns) {
		return false
	}
	p.conns[fd].Store(d)
	ev := syscall.EpollEvent{Events: armEvents, Fd: int32(fd)}
	if err := syscall.EpollCtl(p.setOf(fd).fd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.conns[fd].CompareAndSwap(d, nil)
		return false
	}
	return true
}

// remove forgets d's socket; call it before closing the socket, so that
// its fd number, once reused, is not mistaken for d.
func (p *poller) remove(fd int, d *device) {
	if fd < 0 || fd >= len(p.conns) {
		return
	}
	syscall.EpollCtl(p.setOf(fd).fd, syscall.EPOLL_CTL_DEL, fd, nil)
	p.conns[fd].CompareAndSwap(d, nil)
}

// collect is a set's collector: it serves each device with bytes to read
// in turn, on its own goroutine (device.readable), until the set closes.
func (p *poller) collect(set epollSet) {
	events := make([]syscall.EpollEvent, 256)
	var failed error // epoll_wait's own error: the set is unusable
	serve := func(fd uintptr) bool {
		n, err := syscall.EpollWait(int(fd), events, 0)
		if err != nil && !errors.Is(err, syscall.EINTR) {
			failed = err
			return true
		}
		if n <= 0 {
			return false // nothing ready: park in the netpoller until the set has events
		}
		for i := range n {
			fd := events[i].Fd
			if d := p.conns[fd].Load(); d != nil {
				d.readable(true)
			}
		}
		return true
	}
	for {
		err := set.raw.Read(serve)
		if failed != nil {
			p.log.Error("epoll set failed: parked devices are no longer read", "err", failed)
			return
		}
		if err != nil {
			return // closed
		}
	}
}

// dispatch hands d to an idle reader, or to a new one when none is idle.
func (p *poller) dispatch(d *device) {
	select {
	case p.work <- d:
	default:
		go p.extraReader(d)
	}
}

// extraIdle is how long a reader beyond readers() waits for work before
// it ends.
const extraIdle = 2 * time.Second

// extraReader reads d, then stays to take more work until it has had none
// for extraIdle. When every reader is busy (a connect waiting on a remote
// identity verifier, or both cores taken), a new one is needed; keeping
// it spares a new goroutine, and the growth of its stack, for each of the
// events that follow (8 % of the server's CPU under a status load, back
// when every event went to a reader and each got its own; now it is
// connect storms and requests that wait that bring readers work).
func (p *poller) extraReader(d *device) {
	d.readable(false)
	idle := time.NewTimer(extraIdle)
	defer idle.Stop()
	busy := false
	for {
		select {
		case d := <-p.work:
			d.readable(false)
			busy = true
		case <-p.done:
			return
		case <-idle.C:
			if !busy {
				return
			}
			busy = false
			idle.Reset(extraIdle)
		}
	}
}

// closedCh is closed once the collectors have ended.
func (p *poller) closedCh() <-chan struct{} { return p.done }

func (p *poller) close() {
	for _, s := range p.sets {
		s.file.Close()
	}
}

// rawFD returns the file descriptor of a plain TCP connection, or -1.
func rawFD(c syscall.Conn) (int, syscall.RawConn) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, nil
	}
	fd := -1
	raw.Control(func(f uintptr) { fd = int(f) })
	return fd, raw
}

// rawOp is one read or write on a raw socket. Its callbacks are built
// once and the ops pooled: a closure made per call escapes (RawConn takes
// it through an interface), three allocations per read event or answer.
type rawOp struct {
	b           []byte
	n           int
	err         error
	read, write func(fd uintptr) bool
}

var rawOps = sync.Pool{New: func() any {
	o := &rawOp{}
	// Never wait: epoll says when to come back for reads, and writers
	// that must wait do it with a deadline.
	o.read = func(fd uintptr) bool { o.n, o.err = syscall.Read(int(fd), o.b); return true }
	o.write = func(fd uintptr) bool { o.n, o.err = syscall.Write(int(fd), o.b); return true }
	return o
}}

// rawDo runs one op on raw with b.
func rawDo(raw syscall.RawConn, b []byte, write bool) (n int, opErr, err error) {
	o := rawOps.Get().(*rawOp)
	o.b = b
	if write {
		err = raw.Write(o.write)
	} else {
		err = raw.Read(o.read)
	}
	n, opErr = o.n, o.err
	o.b, o.n, o.err = nil, 0, nil
	rawOps.Put(o)
	if n < 0 {
		n = 0
	}
	return n, opErr, err
}

// readNow reads what the socket has without waiting: 0, errWouldBlock when
// it has nothing.
func readNow(raw syscall.RawConn, b []byte) (int, error) {
	n, rerr, err := rawDo(raw, b, false)
	if err != nil {
		return 0, err
	}
	if errors.Is(rerr, syscall.EAGAIN) {
		return 0, errWouldBlock
	}
	if rerr == nil && n == 0 {
		return 0, errEOF
	}
	return n, rerr
}

// writeNow writes what the socket takes of b without waiting: errWouldBlock
// when it takes nothing.
func writeNow(raw syscall.RawConn, b []byte) (int, error) {
	n, werr, err := rawDo(raw, b, true)
	if err != nil {
		return 0, err
	}
	if errors.Is(werr, syscall.EAGAIN) {
		return n, errWouldBlock
	}
	return n, werr
}
