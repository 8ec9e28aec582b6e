// Package benchutil holds what the in-process benchmarks of the engine
// share (pkg/engine's BenchmarkRules and pkg/bench's BenchmarkWorker): an
// engine whose producer acknowledges at once, and generated storefront
// traffic cut into batches as fetches deliver it. It is for benchmarks and
// tests only; nothing in spur itself imports it.
package benchutil
