//go:build !race

package testbin

// raceEnabled is true when this package is built with -race.
const raceEnabled = false
