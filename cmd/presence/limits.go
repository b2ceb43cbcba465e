package main

import (
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/presence-service/presence/core"
)

// raiseFileLimit lifts the soft open-file limit to the hard one: every
// device is a socket, and the soft default (often 1024) would cap the
// node long before its memory does.
func raiseFileLimit(log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			log.Warn("could not raise the open-file limit", "err", err)
		}
	}
	log.Info("open-file limit", "soft", lim.Cur, "hard", lim.Max)
}

// limitListener says clearly when the process runs out of file
// descriptors, instead of the standard library's bare retry loop, and
// counts the refusals for /metrics.
type limitListener struct {
	net.Listener
	log      *slog.Logger
	what     string
	metrics  *core.Metrics
	lastWarn atomic.Int64
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err == nil || !(errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)) {
			return c, err
		}
		l.metrics.FileLimitRefusals.Add(1)
		now := time.Now().Unix()
		if last := l.lastWarn.Load(); now-last >= 10 && l.lastWarn.CompareAndSwap(last, now) {
			var lim syscall.Rlimit
			syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
			l.log.Error("open-file limit reached: new connections wait until others close",
				"listener", l.what, "limit", lim.Cur, "refused_so_far", l.metrics.FileLimitRefusals.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
