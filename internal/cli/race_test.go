//go:build race

package cli

// raceDetector is whether the tests run under the race detector, which makes the demo
// (generating and ranking a sample week) take a minute instead of seconds.
const raceDetector = true
