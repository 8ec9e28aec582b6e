# kafka.mk — tier-3 test harness: a real Apache Kafka broker (single-node
# KRaft, broker+controller in one JVM) run from Maven Central jars.
# Included by the main Makefile; all kafka variables and targets live here,
# the work is done by deploy/kafka/kafka.sh.
#
#   make kafka-up        fetch the jars (once), format a fresh log dir, start, wait for metadata
#   make kafka-down      stop the broker (SIGTERM, SIGKILL after KAFKA_STOP_TIMEOUT s), remove its data
#   make test-kafka      kafka-up, run the e2e suite against it, ALWAYS kafka-down; fails if the tests fail;
#                        prints the fault-injection table (docs/RELIABILITY.md)
#   make kafka-status    is it running?          make kafka-logs   tail of the broker log
#   make kafka-fetch     only resolve the jars   make kafka-kcat   install kcat with apt if missing
#   make kafka-clean     kafka-down and delete the cached jars of KAFKA_VERSION
#
# Every variable can be overridden: make test-kafka KAFKA_PORT=29092

# Including this file must not make a kafka target the default goal.
KAFKA_SAVED_DEFAULT_GOAL := $(.DEFAULT_GOAL)

# The one place the Kafka version is pinned (passed to Maven as -Dkafka.version).
KAFKA_VERSION ?= 4.4.0
KAFKA_HOST ?= 127.0.0.1
KAFKA_PORT ?= 19092
KAFKA_CONTROLLER_PORT ?= 19093
KAFKA_HEAP_OPTS ?= -Xms256m -Xmx512m
KAFKA_START_TIMEOUT ?= 90s
# Seconds to wait after SIGTERM before SIGKILL.
KAFKA_STOP_TIMEOUT ?= 30
# Directory the broker's fresh log dir is made in (empty: $TMPDIR or /tmp).
KAFKA_DATA_PARENT ?=
# Lines of broker log printed when something fails.
KAFKA_LOG_TAIL ?= 80

KAFKA_ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
# Jars go to $(KAFKA_CACHE)/$(KAFKA_VERSION)/libs and are reused while present;
# pid file, rendered config and broker.log go to $(KAFKA_CACHE)/run.
KAFKA_CACHE ?= $(KAFKA_ROOT)/.cache/kafka
# Maven's local repository; empty means Maven's default (~/.m2/repository),
# which outlives a fresh clone, so CI on the same machine downloads once.
KAFKA_M2_REPO ?=
KAFKA_GO ?= go

KAFKA_BROKERS = $(KAFKA_HOST):$(KAFKA_PORT)
# The environment the e2e tests read the broker list from.
KAFKA_BROKERS_ENV = SPUR_KAFKA_BROKERS=$(KAFKA_BROKERS)
# e2e/faults_test.go restarts the broker with `$(SPUR_KAFKA_CTL) stop` and
# `start` (kafka.sh, in the environment `with` runs it in) and writes its table
# to KAFKA_FAULTS_REPORT, printed after the run: go test shows a passing
# package's output only with -v.
KAFKA_FAULTS_REPORT ?= $(KAFKA_CACHE)/run/faults.txt
KAFKA_E2E_ENV = SPUR_KAFKA_CTL=$(KAFKA_ROOT)/deploy/kafka/kafka.sh SPUR_FAULTS_REPORT=$(KAFKA_FAULTS_REPORT)
# Packages with e2e-tagged tests; only e2e/ has any.
KAFKA_E2E_PKGS ?= ./e2e/...
KAFKA_E2E_FLAGS ?= -count=1 -timeout=10m

KAFKA_SH = KAFKA_VERSION='$(KAFKA_VERSION)' KAFKA_HOST='$(KAFKA_HOST)' \
	KAFKA_PORT='$(KAFKA_PORT)' KAFKA_CONTROLLER_PORT='$(KAFKA_CONTROLLER_PORT)' \
	KAFKA_HEAP_OPTS='$(KAFKA_HEAP_OPTS)' KAFKA_START_TIMEOUT='$(KAFKA_START_TIMEOUT)' \
	KAFKA_STOP_TIMEOUT='$(KAFKA_STOP_TIMEOUT)' KAFKA_LOG_TAIL='$(KAFKA_LOG_TAIL)' \
	KAFKA_CACHE='$(KAFKA_CACHE)' KAFKA_DATA_PARENT='$(KAFKA_DATA_PARENT)' KAFKA_M2_REPO='$(KAFKA_M2_REPO)' KAFKA_GO='$(KAFKA_GO)' \
	bash $(KAFKA_ROOT)/deploy/kafka/kafka.sh

.PHONY: kafka-fetch kafka-up kafka-down kafka-status kafka-logs kafka-kcat kafka-clean test-kafka

kafka-fetch:
	@$(KAFKA_SH) fetch

kafka-up: kafka-fetch
	@$(KAFKA_SH) up

kafka-down:
	@$(KAFKA_SH) down

kafka-status:
	@$(KAFKA_SH) status

kafka-logs:
	@$(KAFKA_SH) logs

# kcat (librdkafka's CLI) is what the e2e suite uses to produce as a
# non-Go, non-Java client would.
kafka-kcat:
	@command -v kcat >/dev/null 2>&1 || { \
		echo "kafka: installing kcat with apt-get"; \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		out=$$( { $$sudo apt-get update -qq && \
			$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat; } 2>&1 ) || \
			{ echo "$$out" >&2; echo "kafka: could not install kcat" >&2; exit 1; }; \
	}
	@command -v kcat >/dev/null 2>&1 || { echo "kafka: kcat is not on PATH" >&2; exit 1; }

# `with` starts the broker, runs the command, and always stops the broker,
# printing the log path and tail if the command fails; it exits with the
# command's status (make then reports the failure).
test-kafka: kafka-kcat kafka-fetch
	@rm -f '$(KAFKA_FAULTS_REPORT)'
	@rc=0; $(KAFKA_SH) with $(KAFKA_BROKERS_ENV) $(KAFKA_E2E_ENV) $(KAFKA_GO) test -tags e2e $(KAFKA_E2E_FLAGS) $(KAFKA_E2E_PKGS) || rc=$$?; \
		if [ -f '$(KAFKA_FAULTS_REPORT)' ]; then cat '$(KAFKA_FAULTS_REPORT)'; fi; exit $$rc

kafka-clean: kafka-down
	rm -rf '$(KAFKA_CACHE)/$(KAFKA_VERSION)'

.DEFAULT_GOAL := $(KAFKA_SAVED_DEFAULT_GOAL)
