//go:build race

package main

// raceEnabled: tests that build keel build it with -race too, reusing the
// packages already compiled for the test.
const raceEnabled = true
