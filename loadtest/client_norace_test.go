//go:build !race

package loadtest

// clientRaceEnabled reports whether the race detector is on (allocation
// counts are meaningless under it).
const clientRaceEnabled = false
