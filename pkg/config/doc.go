// Package config holds spur's configuration: one struct whose fields are
// settable by command-line flag, by SPUR_* environment variable and by a
// YAML file (keys are the flag names), with defaults and Validate.
package config
