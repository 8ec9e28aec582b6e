// Package schemas embeds the JSON Schemas of spur's v1 contracts: one file
// per input event type (<type>.json), the shared definitions
// (event.json), and the trigger record (trigger.json). They are the source of
// truth; pkg/event validates every input record against them.
//
// Input events are open: fields a schema does not list are allowed, so that
// storefronts can send new attributes without their records being
// dead-lettered, and spur ignores them. Trigger records are closed, because
// spur writes them: an unlisted field there is a bug, and adding one is a
// contract change. Each file's $id (under
// https://github.com/spur-crm/spur/schemas/v1/) is an identifier that lets
// the files reference each other; it is not a download address.
package schemas

import "embed"

// FS holds every *.json schema in this directory.
//
//go:embed *.json
var FS embed.FS
