//go:build race

package loadtest

// reportRaceEnabled reports whether the race detector is on (allocation counts are
// meaningless under it).
const reportRaceEnabled = true
