//go:build race

package devices

// raceEnabled is true when the race detector is on: memory figures are
// meaningless then.
const raceEnabled = true
