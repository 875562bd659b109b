//go:build race

package ratelimit

// raceEnabled reports whether the race detector is on; memory figures are
// meaningless and slow to gather under it.
const raceEnabled = true
