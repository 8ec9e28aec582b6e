//go:build race

package sentiment

const raceEnabled = true
