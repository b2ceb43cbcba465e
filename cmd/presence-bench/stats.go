package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// t0 is the tool's clock origin. Stamps carried in status messages are
// nanoseconds since t0 on the monotonic clock: the device and the app that
// measure one update live in this same process, so no wall-clock skew enters
// the latency figures.
var t0 = time.Now()

// now returns nanoseconds since t0.
func now() int64 { return int64(time.Since(t0)) }

// latencySummary is what the report shows of a latency sample set, in ms.
type latencySummary struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted. Nearest rank, not interpolation: a reported p99 is a latency that
// some update really had.
func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	if p <= 0 {
		return sorted[0]
	}
	rank := int(float64(len(sorted))*p/100 + 0.999999999)
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return sorted[rank-1]
}

// summarize sorts samples (nanoseconds) in place and summarizes them.
func summarize(samples []int64) latencySummary {
	if len(samples) == 0 {
		return latencySummary{}
	}
	slices.Sort(samples)
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	return latencySummary{
		N:    len(samples),
		P50:  ms(percentile(samples, 50)),
		P99:  ms(percentile(samples, 99)),
		P999: ms(percentile(samples, 99.9)),
		Max:  ms(samples[len(samples)-1]),
	}
}

// slope is the least-squares slope of ys taken at x = 0, 1, 2, …: the trend
// of a series that also swings (RSS with the GC's sawtooth on it).
func slope(ys []int64) float64 {
	n := float64(len(ys))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i, y := range ys {
		x := float64(i)
		sx += x
		sy += float64(y)
		sxx += x * x
		sxy += x * float64(y)
	}
	return (n*sxy - sx*sy) / (n*sxx - sx*sx)
}

// sampler keeps up to max samples. Readers each own one and the owner merges
// them after the run, so the hot path takes no lock.
type sampler struct {
	max     int
	samples []int64
	dropped int64
}

func (s *sampler) add(v int64) {
	if len(s.samples) >= s.max {
		s.dropped++
		return
	}
	s.samples = append(s.samples, v)
}

// errCounts counts errors by kind; the report lists them, because a rate
// without its errors says nothing.
type errCounts struct {
	mu sync.Mutex // guards: m
	m  map[string]int64
}

func (e *errCounts) add(kind string) {
	e.mu.Lock()
	if e.m == nil {
		e.m = map[string]int64{}
	}
	e.m[kind]++
	e.mu.Unlock()
}

func (e *errCounts) addErr(err error) { e.add(errKind(err)) }

func (e *errCounts) snapshot() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int64, len(e.m))
	for k, v := range e.m {
		out[k] = v
	}
	return out
}

func (e *errCounts) total() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n int64
	for _, v := range e.m {
		n += v
	}
	return n
}

func (e *errCounts) String() string { return formatErrs(e.snapshot()) }

func formatErrs(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// errnoError is a {"result": false, "errno": N} answer from the server.
type errnoError struct {
	Errno  int
	Reason string
}

func (e *errnoError) Error() string { return fmt.Sprintf("errno %d: %s", e.Errno, e.Reason) }

// errKind maps an error to a short kind for the error table. The file limit
// gets its own kind so that it is never mistaken for a server failure.
func errKind(err error) string {
	var en *errnoError
	var ce *errClosed
	switch {
	case err == nil:
		return "none"
	case errors.As(err, &en):
		return fmt.Sprintf("errno %d", en.Errno)
	case errors.As(err, &ce): // the code says which path ended it (docs/decisions.md, close codes)
		return fmt.Sprintf("close %d", ce.code)
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "file limit (EMFILE)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no source port (EADDRNOTAVAIL)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	var he *httpStatusError
	if errors.As(err, &he) {
		return fmt.Sprintf("http %d", he.Code)
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "bad handshake"):
		return "ws handshake"
	case strings.Contains(s, "close"):
		return "closed"
	case strings.Contains(s, "EOF"):
		return "eof"
	}
	return "other"
}

// httpStatusError is a notification POST answered with something but 200.
type httpStatusError struct {
	Code int
	Body string
}

func (e *httpStatusError) Error() string { return fmt.Sprintf("http %d: %s", e.Code, e.Body) }
