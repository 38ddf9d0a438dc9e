//go:build !race

package servers

// raceEnabled: the race detector's instrumentation changes stack sizes.
const raceEnabled = false
