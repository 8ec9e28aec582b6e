// Package schemas embeds the JSON Schemas of spur's v1 contracts: one file
// per input event type (<type>.json), the shared definitions
// (event.json), and the trigger record (trigger.json). They are the source of
// truth; pkg/event validates every input record against them.
package schemas

import "embed"

// FS holds every *.json schema in this directory.
//
//go:embed *.json
var FS embed.FS
