#!/usr/bin/env bash
# kafka.sh — a single-node Apache Kafka (KRaft) broker for spur's end-to-end
# tests, run from jars fetched from Maven Central. Driven by kafka.mk; every
# setting comes from the environment, with the defaults below.
#
#   kafka.sh fetch          resolve the broker jars into $KAFKA_CACHE/<version>/libs
#   kafka.sh up             format a fresh KRaft log dir, start the broker, wait for it
#   kafka.sh down           stop the broker (TERM, then KILL after a bound), remove its data
#   kafka.sh status         say whether it runs (exit 1 if not)
#   kafka.sh logs           print the log path and its tail
#   kafka.sh with CMD...    up, run CMD, always down; exit with CMD's status
#   kafka.sh stop           stop the broker (TERM, then KILL) but keep its data, for start
#   kafka.sh start          start the broker `stop` stopped, on the same data, and wait for it
#
# stop and start are the e2e suite's broker restart (e2e/faults_test.go runs
# them through SPUR_KAFKA_CTL, set by kafka.mk). They leave `with`'s clean-up
# intact: start writes the new pid to the pid file, and `down` also finds a
# broker by its command line, so a failing test leaves no broker behind.
#
# Files: $KAFKA_CACHE/run/{server.properties,log4j2.properties,broker.log,
# kafka.pid,datadir}. The log survives `down` so a failure can be read after.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

KAFKA_VERSION=${KAFKA_VERSION:?KAFKA_VERSION must be set (kafka.mk pins it)}
KAFKA_HOST=${KAFKA_HOST:-127.0.0.1}
KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
KAFKA_JAVA=${KAFKA_JAVA:-java}
KAFKA_MVN=${KAFKA_MVN:-mvn}
KAFKA_GO=${KAFKA_GO:-go}
KAFKA_M2_REPO=${KAFKA_M2_REPO:-}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90s}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
KAFKA_LOG_TAIL=${KAFKA_LOG_TAIL:-80}
KAFKA_CACHE=${KAFKA_CACHE:-$root/.cache/kafka}
# Where `up` makes the broker's fresh log dir.
KAFKA_DATA_PARENT=${KAFKA_DATA_PARENT:-${TMPDIR:-/tmp}}

libs=$KAFKA_CACHE/$KAFKA_VERSION/libs
run=$KAFKA_CACHE/run
log=$run/broker.log
pidfile=$run/kafka.pid
datafile=$run/datadir
conf=$run/server.properties
brokers=$KAFKA_HOST:$KAFKA_PORT

say() { echo "kafka: $*"; }
die() { echo "kafka: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

fetch() {
	if [[ -f $libs/.complete ]]; then
		say "using cached Kafka $KAFKA_VERSION jars in $libs"
		return
	fi
	command -v "$KAFKA_MVN" >/dev/null || die "$KAFKA_MVN not found: install Maven (apt-get install maven)"
	local t0 tmp
	t0=$(now)
	tmp=$libs.tmp.$$
	rm -rf "$tmp"
	mkdir -p "$(dirname "$libs")"
	say "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION from Maven Central into $libs"
	local repo=()
	[[ -n $KAFKA_M2_REPO ]] && repo=("-Dmaven.repo.local=$KAFKA_M2_REPO")
	# Maven's output goes to a log, shown only when it fails.
	local mvnlog=$KAFKA_CACHE/mvn.log
	if ! "$KAFKA_MVN" -B -ntp -Dstyle.color=never -f "$here/pom.xml" "${repo[@]}" \
		-Dkafka.version="$KAFKA_VERSION" \
		-DincludeScope=runtime -DoutputDirectory="$tmp" \
		dependency:copy-dependencies >"$mvnlog" 2>&1; then
		rm -rf "$tmp"
		grep -E '^\[(ERROR|WARNING)\]' "$mvnlog" | head -40 >&2 || tail -40 "$mvnlog" >&2
		die "Maven could not resolve Kafka $KAFKA_VERSION (full log: $mvnlog)"
	fi
	ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null || die "kafka_2.13-$KAFKA_VERSION.jar missing from $tmp"
	touch "$tmp/.complete"
	rm -rf "$libs"
	mv "$tmp" "$libs"
	say "fetched $(find "$libs" -name '*.jar' | wc -l) jars ($(du -sh "$libs" | cut -f1)) in $(since "$t0")"
}

# running prints the broker's pid and succeeds when the pid file names a live
# Kafka process (a stale pid file, or a pid reused by another program, fails).
running() {
	[[ -f $pidfile ]] || return 1
	local pid
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	is_our_broker "$pid" || return 1
	echo "$pid"
}

# is_our_broker succeeds when pid is a live (non-zombie) kafka.Kafka process
# started with our server.properties.
is_our_broker() {
	local pid=$1 cmd state
	cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
	[[ $cmd == *kafka.Kafka*"$conf"* ]] || return 1
	state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null) || return 1
	[[ $state != Z ]]
}

# orphans lists brokers started from our server.properties that the pid file
# does not name (say, after the pid file was deleted by hand).
orphans() {
	local f pid
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		is_our_broker "$pid" && echo "$pid"
	done
	return 0
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

logs() {
	if [[ -f $log ]]; then
		echo "---- kafka: last $KAFKA_LOG_TAIL lines of $log ----"
		tail -n "$KAFKA_LOG_TAIL" "$log"
		echo "---- kafka: end of $log ----"
	else
		echo "kafka: no broker log at $log"
	fi
}

render() {
	sed -e "s|@KAFKA_HOST@|$KAFKA_HOST|g" \
		-e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
		-e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
		-e "s|@KAFKA_DATA_DIR@|$1|g" \
		"$here/server.properties.in"
}

# cluster_id makes a random KRaft cluster id: 16 bytes, URL-safe base64
# without padding (what `kafka-storage.sh random-uuid` prints), without a
# JVM start. An id that starts with '-' would read as an option, so retry.
cluster_id() {
	local id
	while :; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
		[[ $id != -* ]] && break
	done
	echo "$id"
}

up() {
	local pid
	if pid=$(running); then
		say "already running (pid $pid), log $log"
		wait_ready "$pid"
		return
	fi
	[[ -f $libs/.complete ]] || fetch
	command -v "$KAFKA_JAVA" >/dev/null || die "$KAFKA_JAVA not found: Kafka $KAFKA_VERSION needs Java 17+"
	if port_open "$KAFKA_HOST" "$KAFKA_PORT" || port_open "$KAFKA_HOST" "$KAFKA_CONTROLLER_PORT"; then
		die "$KAFKA_HOST:$KAFKA_PORT or :$KAFKA_CONTROLLER_PORT is already in use by another program; set KAFKA_PORT / KAFKA_CONTROLLER_PORT"
	fi
	# Leftovers of a run that was not brought down (pid file lost, machine
	# rebooted) must not leak into this one.
	down >/dev/null

	mkdir -p "$run"
	local data t0 cp
	mkdir -p "$KAFKA_DATA_PARENT"
	data=$(mktemp -d "$KAFKA_DATA_PARENT/spur-kafka.XXXXXX")
	echo "$data" >"$datafile"
	render "$data" >"$conf"
	cp "$here/log4j2.properties" "$run/log4j2.properties"
	: >"$log"
	cp="$libs/*"
	local jvm=(-Djava.awt.headless=true "-Dlog4j2.configurationFile=$run/log4j2.properties" "-Dkafka.logs.dir=$run")

	t0=$(now)
	if ! "$KAFKA_JAVA" -Xmx256m "${jvm[@]}" -cp "$cp" kafka.tools.StorageTool \
		format --cluster-id "$(cluster_id)" --config "$conf" >>"$log" 2>&1; then
		logs
		die "formatting $data failed"
	fi
	say "formatted KRaft log dir $data in $(since "$t0")"

	launch
}

# launch starts the broker on the rendered config (whose log dir `up`
# formatted) and waits until it answers.
launch() {
	local pid t0 cp="$libs/*"
	local jvm=(-Djava.awt.headless=true "-Dlog4j2.configurationFile=$run/log4j2.properties" "-Dkafka.logs.dir=$run")
	t0=$(now)
	# setsid: the broker gets its own session, so a Ctrl-C aimed at make or
	# go test does not kill it behind `down`'s back; `down` stops it by pid.
	# shellcheck disable=SC2086 # KAFKA_HEAP_OPTS is a list of JVM flags.
	setsid "$KAFKA_JAVA" -server $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		"${jvm[@]}" -cp "$cp" kafka.Kafka "$conf" </dev/null >>"$log" 2>&1 &
	pid=$!
	echo "$pid" >"$pidfile"
	say "started Kafka $KAFKA_VERSION (pid $pid) on $brokers, log $log"
	wait_ready "$pid"
	say "broker ready in $(since "$t0")"
}

# stop_keep stops the running broker and keeps its data dir and config, so
# that start_kept brings the same broker back: same cluster id, topics,
# records and committed offsets.
stop_keep() {
	local pid t0
	t0=$(now)
	pid=$(running) || die "no broker to stop (pid file $pidfile)"
	stop_pid "$pid"
	rm -f "$pidfile"
	say "stopped in $(since "$t0"); data kept in $(<"$datafile") for start"
}

# start_kept starts the broker that stop_keep stopped, on its data dir.
start_kept() {
	local pid
	if pid=$(running); then
		die "already running (pid $pid)"
	fi
	[[ -f $datafile && -f $conf && -d $(<"$datafile") ]] || die "no stopped broker to start: run up first"
	if port_open "$KAFKA_HOST" "$KAFKA_PORT" || port_open "$KAFKA_HOST" "$KAFKA_CONTROLLER_PORT"; then
		die "$KAFKA_HOST:$KAFKA_PORT or :$KAFKA_CONTROLLER_PORT is in use by another program"
	fi
	launch
}

wait_ready() {
	# `go run` compiles in the build cache while the JVM boots.
	if ! (cd "$root" && "$KAFKA_GO" run ./deploy/kafka/waitkafka \
		-brokers "$brokers" -pid "$1" -timeout "$KAFKA_START_TIMEOUT"); then
		logs
		down
		die "broker did not come up on $brokers"
	fi
}

stop_pid() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	say "stopping broker (pid $pid)"
	for ((i = 0; i < KAFKA_STOP_TIMEOUT * 10; i++)); do
		is_our_broker "$pid" || return 0
		sleep 0.1
	done
	say "broker (pid $pid) still running after ${KAFKA_STOP_TIMEOUT}s, sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		is_our_broker "$pid" || return 0
		sleep 0.1
	done
	die "broker (pid $pid) survived SIGKILL"
}

down() {
	local pid t0
	t0=$(now)
	if pid=$(running); then
		stop_pid "$pid"
		say "stopped in $(since "$t0")"
	fi
	for pid in $(orphans); do
		say "found a broker (pid $pid) not named by $pidfile"
		stop_pid "$pid"
	done
	rm -f "$pidfile"
	if [[ -f $datafile ]]; then
		local data
		data=$(<"$datafile")
		# Only ever remove what `up` made.
		if [[ $(basename "$data") == spur-kafka.* && -d $data ]]; then
			rm -rf "$data"
		fi
		rm -f "$datafile"
	fi
}

status() {
	local pid
	if pid=$(running); then
		say "running (pid $pid) on $brokers, log $log"
	else
		say "not running"
		return 1
	fi
}

with() {
	[[ $# -gt 0 ]] || die "usage: kafka.sh with CMD [ARGS...]"
	trap 'down' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	up
	local t0 rc=0
	t0=$(now)
	say "running: $*"
	env "$@" || rc=$?
	say "command exited $rc after $(since "$t0")"
	if [[ $rc -ne 0 ]]; then
		logs
	fi
	exit "$rc"
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case $cmd in
fetch) fetch ;;
up) up ;;
down) down ;;
status) status ;;
logs) logs ;;
with) with "$@" ;;
stop) stop_keep ;;
start) start_kept ;;
*) die "usage: kafka.sh fetch|up|down|status|logs|with CMD...|stop|start" ;;
esac
