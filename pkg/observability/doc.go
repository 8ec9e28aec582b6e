// Package observability builds spur's logger (zap, JSON by default) and
// serves its HTTP endpoints: /metrics (Prometheus, from an injected
// Gatherer), /healthz (the process is alive) and /readyz (the engine has
// joined its group and started its workers). Metrics are registered on an
// injected Registerer by each package; nothing here is global.
package observability
