package core

import (
	"sync"
	"time"
)

// RateLimiter is a token bucket: perMinute tokens a minute, bursting up to
// perMinute. Edges keep one per device session (status updates) and one
// per app (notifications).
type RateLimiter struct {
	mu     sync.Mutex // guards: tokens, last
	rate   float64    // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

// NewRateLimiter allows perMinute events a minute.
func NewRateLimiter(perMinute int, now time.Time) *RateLimiter {
	b := float64(perMinute)
	return &RateLimiter{rate: b / 60, burst: b, tokens: b, last: now}
}

// Allow takes n tokens if it can; otherwise it says how long until it could.
func (l *RateLimiter) Allow(now time.Time, n int) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if dt := now.Sub(l.last).Seconds(); dt > 0 {
		l.tokens = min(l.burst, l.tokens+dt*l.rate)
		l.last = now
	}
	need := float64(n)
	if l.tokens >= need {
		l.tokens -= need
		return true, 0
	}
	wait := (need - l.tokens) / l.rate
	return false, time.Duration(wait * float64(time.Second))
}
