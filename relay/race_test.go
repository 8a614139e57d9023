//go:build race

package relay_test

// raceEnabled scales time bounds: the race detector slows map and JSON work
// several times.
const raceEnabled = true
