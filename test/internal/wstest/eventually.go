package wstest

import (
	"testing"
	"time"
)

// PollStep is how often Poll and Eventually check their condition.
const PollStep = 10 * time.Millisecond

// Poll checks cond every PollStep until it holds (true) or timeout has
// passed (false, after one last check). It never calls a testing.T, so any
// goroutine may use it.
func Poll(timeout time.Duration, cond func() bool) bool {
	return PollEvery(timeout, PollStep, cond)
}

// PollEvery is Poll checking every step (for a condition that is costly to
// check, or whose checks disturb what they measure).
func PollEvery(timeout, step time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for i := 0; ; i++ {
		if cond() {
			return true
		}
		if !time.Now().Before(deadline) || i > 1<<24 {
			return false
		}
		time.Sleep(step)
	}
}

// Eventually polls cond until it holds and returns how long that took; when
// it does not hold within timeout the test fails with msg (t.Fatalf, so only
// from the test's goroutine).
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string) time.Duration {
	t.Helper()
	start := time.Now()
	if !Poll(timeout, cond) {
		t.Fatalf("not within %v: %s", timeout, msg)
	}
	return time.Since(start)
}
