package ws

import (
	"testing"
	"time"
)

// SetAnswerTimeout shortens how long the front door waits for the store
// to answer a notification POST, for the rest of t.
func SetAnswerTimeout(t testing.TB, d time.Duration) {
	old := answerTimeout.Swap(int64(d))
	t.Cleanup(func() { answerTimeout.Store(old) })
}
