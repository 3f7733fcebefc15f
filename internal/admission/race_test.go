//go:build race

package admission

// raceEnabled is set when the tests run under the race detector, which slows
// the simulation about tenfold.
const raceEnabled = true
