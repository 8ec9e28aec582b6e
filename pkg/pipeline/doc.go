// Package pipeline loads the declarative pipelines in pipelines/*.yaml,
// checks them, and compiles them into rules the engine runs.
//
// Load errors carry file:line so that `spur check` can point a marketing
// author at the exact line, as promtool does for alerting rules.
package pipeline
