# spur — see README.md.
#
#   make run          build spur and start `spur dev --demo` (embedded broker + demo traffic)
#   make test         unit, integration (embedded broker, Pebble on disk), race, fuzz seeds, pipeline checks
#   make test-kafka   end-to-end suite on a real Apache Kafka broker (see kafka.mk)
#   make build        build bin/spur

GO ?= go
BIN := bin/spur
DATA_DIR ?= ./spur-data
RUN_FLAGS ?=
# Packages whose tests run with the race detector (they hold the concurrency).
RACE_PKGS := ./pkg/engine/... ./pkg/pipetest/... ./pkg/ingest/... ./pkg/emit/... ./pkg/state/... ./pkg/timer/... ./pkg/publish/...
# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report "context deadline exceeded" as a failure when the time runs out
# while a worker is mid-input (go.dev/issue/75804, fixed in Go 1.27); a
# count has no deadline to race. 200,000 inputs is about 10 s here.
FUZZTIME ?= 200000x

.PHONY: all build run test test-unit test-race fuzz check vet fmt clean deps

all: build

deps:
	$(GO) mod download

build: deps
	$(GO) build -o $(BIN) ./cmd/spur

run: build
	$(BIN) --data-dir $(DATA_DIR) --log-format console dev --demo $(RUN_FLAGS)

# `make test` is what CI runs (with `make test-kafka` after it).
test: build vet check test-unit test-race fuzz

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

check: build
	$(BIN) check pipelines
	$(BIN) test pipelines

test-unit:
	$(GO) test -count=1 ./...

test-race:
	$(GO) test -race -count=1 $(RACE_PKGS)

# Short fuzzing runs of the event decoder and of its direct path against the
# generic one (their seed corpora also run in test-unit).
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=200x ./pkg/event/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeDirect$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=200x ./pkg/event/

clean:
	rm -rf bin $(DATA_DIR)

include kafka.mk

# `make bench`: a short `spur bench` on the embedded broker (about 90 s):
# ceiling, 20 events per customer to mature the state (about 40 s, not
# measured), engine max rate, 25/50/75/90 % of it for 5 s each, oracle
# check. A CPU profile of the engine's max-rate phase goes to
# .cache/bench/, and the table splits it by owner (spur, Pebble, the Kafka
# client, Go's collector).
# The full runs and their results are in docs/BENCHMARKS.md.
BENCH_PROFILE ?= $(CURDIR)/.cache/bench/cpu.pprof
BENCH_FLAGS ?= --duration 5s --cpuprofile $(BENCH_PROFILE) --profile-seconds 4
.PHONY: bench bench-kafka
bench: build
	@mkdir -p $(dir $(BENCH_PROFILE))
	$(BIN) bench $(BENCH_FLAGS)

# `make bench-kafka`: the full `spur bench` on Apache Kafka (about 5 minutes):
# a fresh broker as in `make test-kafka`, its log dir on tmpfs, so that the
# page cache it writes back does not stall the fsyncs of the engine on the
# same disk (in production the broker has disks of its own; Kafka does not
# fsync either way), the bench's warm-up run, then the broker stopped.
BENCH_KAFKA_FLAGS ?= --duration 15s --all-rates --cpuprofile $(BENCH_PROFILE)
BENCH_KAFKA_DATA ?= /dev/shm
bench-kafka: KAFKA_DATA_PARENT = $(BENCH_KAFKA_DATA)
bench-kafka: build kafka-fetch
	@mkdir -p $(dir $(BENCH_PROFILE))
	@$(KAFKA_SH) with $(abspath $(BIN)) bench --brokers $(KAFKA_BROKERS) $(BENCH_KAFKA_FLAGS)
