#!/usr/bin/env bash
# overhead.sh: the latency and throughput accelgate adds over calling an
# OpenAI-compatible upstream directly, with a bare fasthttp reverse proxy
# (bench/proxy) measured in the same run as the yardstick.
#
# It builds the gateway, the mock upstream (bench/mockupstream) and the proxy
# into a temp dir, starts all three on loopback, and runs vegeta against
#   direct  - the mock itself
#   proxy   - bench/proxy -> mock
#   gateway - cmd/gateway (fleet: bench/overhead-fleet.yaml) -> mock
# first at a fixed rate (latency), then open-loop at -rate=0 with a fixed
# number of workers (maximum throughput). Everything runs on this machine: the
# load generator shares the CPUs with the servers.
#
# Usage (from anywhere):   bench/overhead.sh
# Environment:
#   RATE=2000            requests/s of the latency runs
#   DURATION=20s         latency run length per target (whole seconds), split
#                        into ROUNDS interleaved slices
#   ROUNDS=4             slices: direct, proxy, gateway, direct, proxy, ... so
#                        that a burst of foreign load hits all targets alike
#   WARMUP=2s            warm-up attack (same rate) per target before the runs
#   MAX_DURATION=10s     maximum-throughput run length per target (whole
#                        seconds), split into MAX_ROUNDS interleaved slices
#   MAX_ROUNDS=2
#   MAX_WORKERS=64       concurrent requests of the maximum-throughput runs
#   TARGETS="direct proxy gateway"   which targets to run, in order
#   SKIP_MAX=1           skip the maximum-throughput runs
#   VEGETA=/path/vegeta  vegeta binary (default: vegeta on PATH, else /tmp/bin/vegeta,
#                        installed there with `go install` if missing)
#   KEEP=1               keep the temp dir (binaries, logs, vegeta results)
set -euo pipefail

RATE=${RATE:-2000}
DURATION=${DURATION:-20s}
ROUNDS=${ROUNDS:-4}
WARMUP=${WARMUP:-2s}
MAX_DURATION=${MAX_DURATION:-10s}
MAX_ROUNDS=${MAX_ROUNDS:-2}
MAX_WORKERS=${MAX_WORKERS:-64}
TARGETS=${TARGETS:-"direct proxy gateway"}
SKIP_MAX=${SKIP_MAX:-0}
KEEP=${KEEP:-0}

secs() { local v=${1%s}; [[ $v =~ ^[0-9]+$ ]] || { echo "overhead.sh: durations are whole seconds (20s), got $1" >&2; exit 1; }; echo "$v"; }
SLICE=$(( $(secs "$DURATION") / ROUNDS ))
MAX_SLICE=$(( $(secs "$MAX_DURATION") / MAX_ROUNDS ))
(( SLICE > 0 && MAX_SLICE > 0 )) || { echo "overhead.sh: a duration is shorter than its rounds" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/accelgate-overhead.XXXXXX")
PIDS=()

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ $KEEP == 1 ]]; then
		echo "kept $TMP" >&2
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "overhead.sh: $*" >&2; exit 1; }
for tool in go jq curl awk; do
	command -v "$tool" >/dev/null || die "$tool is required"
done

# vegeta, as a tool binary (never a module dependency of accelgate).
if [[ -z ${VEGETA:-} ]]; then
	if command -v vegeta >/dev/null; then
		VEGETA=$(command -v vegeta)
	else
		VEGETA=/tmp/bin/vegeta
		if [[ ! -x $VEGETA ]]; then
			echo "installing vegeta into /tmp/bin" >&2
			(cd "$TMP" && GOBIN=/tmp/bin GOFLAGS=-mod=mod go install github.com/tsenart/vegeta/v12@v12.13.0)
		fi
	fi
fi
[[ -x $VEGETA ]] || die "vegeta not found at $VEGETA"

echo "building into $TMP" >&2
(cd "$ROOT" && go build -o "$TMP/gateway" ./cmd/gateway &&
	go build -o "$TMP/mockupstream" ./bench/mockupstream &&
	go build -o "$TMP/proxy" ./bench/proxy)

# start NAME CMD...: starts a server with its output in $TMP/NAME.log and
# waits for its "http=HOST:PORT" line; sets ADDR.
start() {
	local name=$1
	shift
	"$@" >"$TMP/$name.log" 2>&1 &
	PIDS+=($!)
	local i
	for i in $(seq 1 200); do
		ADDR=$(grep -o -m1 'http=[^ ]*' "$TMP/$name.log" 2>/dev/null | head -1 | cut -d= -f2 || true)
		[[ -n $ADDR ]] && return 0
		kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$TMP/$name.log" >&2; die "$name exited"; }
		sleep 0.05
	done
	cat "$TMP/$name.log" >&2
	die "$name printed no address"
}

BODY=$TMP/body.json
cat >"$BODY" <<'JSON'
{"model":"llama-3.1-8b-instruct","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in five words."}],"max_tokens":16}
JSON

# ready NAME URL: waits until URL answers the chat request with 200.
ready() {
	local name=$1 url=$2 i code
	for i in $(seq 1 100); do
		code=$(curl -s -o "$TMP/$name.ready.json" -w '%{http_code}' -H 'Content-Type: application/json' \
			--data-binary @"$BODY" "$url" || true)
		[[ $code == 200 ]] && return 0
		sleep 0.1
	done
	cat "$TMP/$name.ready.json" >&2 || true
	die "$name did not answer 200 at $url (last status $code)"
}

declare -A PID
start mock "$TMP/mockupstream" -http-addr 127.0.0.1:0
MOCK=$ADDR PID[direct]=${PIDS[-1]}
start proxy "$TMP/proxy" -http-addr 127.0.0.1:0 -upstream "$MOCK"
PROXY=$ADDR PID[proxy]=${PIDS[-1]}
sed "s|url: http://[^ ]*|url: http://$MOCK|" "$ROOT/bench/overhead-fleet.yaml" >"$TMP/fleet.yaml"
start gateway "$TMP/gateway" -config "$TMP/fleet.yaml" -http-addr 127.0.0.1:0
GATEWAY=$ADDR PID[gateway]=${PIDS[-1]}

declare -A URL=(
	[direct]="http://$MOCK/v1/chat/completions"
	[proxy]="http://$PROXY/v1/chat/completions"
	[gateway]="http://$GATEWAY/v1/chat/completions"
)
for t in direct proxy gateway; do
	ready "$t" "${URL[$t]}"
done
# The gateway must really route to the mock (not answer on its own).
hdrs=$(curl -s -D - -o /dev/null -H 'Content-Type: application/json' --data-binary @"$BODY" "${URL[gateway]}")
grep -qi '^x-accelgate-backend: mock-0' <<<"$hdrs" || { echo "$hdrs" >&2; die "gateway did not route to mock-0"; }

NPROC=$(nproc)
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "machine: $NPROC CPUs, $CPU; $(go version | awk '{print $3}')" >&2
echo "mock=$MOCK proxy=$PROXY gateway=$GATEWAY" >&2

# CPU accounting, in clock ticks, summed over an attack's slices:
#   FRONT[t.phase]  the target's own server (mock, proxy or gateway)
#   MOCKC[t.phase]  the mock (for proxy and gateway: the upstream's share)
#   VEG[t.phase]    vegeta (ms, from the shell's children times)
#   BUSY/ALL        the machine's busy and total ticks (all CPUs)
TCK=$(getconf CLK_TCK)
declare -A FRONT MOCKC VEG BUSY ALL
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
machine() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9; exit}' /proc/stat; }
# children_ms: sets CH to the CPU time (user + sys, ms) of this shell's
# waited-for children. No command substitution around `times`: a subshell's
# children are not ours.
children_ms() {
	times >"$TMP/times"
	CH=$(awk 'NR == 2 {
		t = 0
		for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60000 + a[2] * 1000 }
		printf "%d", t
	}' "$TMP/times")
}

# attack NAME FILE ARGS...: one vegeta attack against target NAME, results
# written to FILE (vegeta's binary format); accounts CPU under NAME.PHASE
# when PHASE is set.
attack() {
	local name=$1 out=$2
	shift 2
	printf 'POST %s\nContent-Type: application/json\n@%s\n' "${URL[$name]}" "$BODY" >"$TMP/$name.targets"
	local f0 m0 v0 mb0 ma0 f1 m1 v1 mb1 ma1
	children_ms
	v0=$CH f0=$(ticks "${PID[$name]}") m0=$(ticks "${PID[direct]}")
	read -r mb0 ma0 < <(machine)
	"$VEGETA" attack -targets="$TMP/$name.targets" -keepalive=true -timeout=10s "$@" >"$out"
	children_ms
	v1=$CH f1=$(ticks "${PID[$name]}") m1=$(ticks "${PID[direct]}")
	read -r mb1 ma1 < <(machine)
	if [[ -n ${PHASE:-} ]]; then
		local k=$name.$PHASE
		FRONT[$k]=$(( ${FRONT[$k]:-0} + f1 - f0 ))
		MOCKC[$k]=$(( ${MOCKC[$k]:-0} + m1 - m0 ))
		VEG[$k]=$(( ${VEG[$k]:-0} + v1 - v0 ))
		BUSY[$k]=$(( ${BUSY[$k]:-0} + mb1 - mb0 ))
		ALL[$k]=$(( ${ALL[$k]:-0} + ma1 - ma0 ))
	fi
}

# report NAME PHASE: the JSON report of all slices of a phase (latencies,
# success), and in $TMP/NAME.PHASE.rps the requests/s: successful requests
# over the sum of the slices' own durations (a merged report would count the
# gaps between slices, when the other targets ran).
report() {
	local f
	"$VEGETA" report -type=json "$TMP/$1.$2".*.bin >"$TMP/$1.$2.json"
	local r=1
	for ((r = 1; ; r++)); do
		f=$TMP/$1.$2.$r.bin
		[[ -f $f ]] || break
		"$VEGETA" report -type=json "$f" | jq -r '"\(.requests * .success) \(.duration + .wait) \(.latencies."99th")"'
	done | awk '{ok += $1; ns += $2; p = p sep sprintf("%.2f", $3 / 1e6); sep = " / "}
		END {printf "%.0f\n", ok / (ns / 1e9); print p > "/dev/stderr"}' >"$TMP/$1.$2.rps" 2>"$TMP/$1.$2.p99s"
	rm -f "$TMP/$1.$2".*.bin
}

# ms FILE FIELD: a latency field of a vegeta JSON report, in ms (3 decimals).
ms() { jq -r "$2 / 1e6 * 1000 | round / 1000" "$1"; }

# cpu NAME PHASE: "front µs/req | mock µs/req | vegeta µs/req | machine busy % | foreign busy %"
cpu() {
	local k=$1.$2 f=$TMP/$1.$2.json n
	n=$(jq -r '.requests' "$f")
	awk -v f="${FRONT[$k]}" -v m="${MOCKC[$k]}" -v v="${VEG[$k]}" -v b="${BUSY[$k]}" -v a="${ALL[$k]}" \
		-v n="$n" -v tck="$TCK" -v t="$1" 'BEGIN {
		us = 1e6 / tck
		mock = (t == "direct") ? "-" : sprintf("%.1f", m * us / n)
		ours = f + (t == "direct" ? 0 : m) + v * tck / 1000
		printf "%.1f | %s | %.1f | %.0f%% | %.0f%%", f * us / n, mock, v * 1000 / n, 100 * b / a, 100 * (b - ours) / a
	}'
}

echo "warm-up: $WARMUP per target at $RATE/s" >&2
for t in $TARGETS; do
	attack "$t" "$TMP/$t.warm.1.bin" -rate="$RATE/s" -duration="$WARMUP"
done
PHASE=lat
for r in $(seq 1 "$ROUNDS"); do
	for t in $TARGETS; do
		echo "latency: round $r/$ROUNDS, $t at $RATE/s for ${SLICE}s" >&2
		attack "$t" "$TMP/$t.lat.$r.bin" -rate="$RATE/s" -duration="${SLICE}s"
	done
done
for t in $TARGETS; do report "$t" lat; done
if [[ $SKIP_MAX != 1 ]]; then
	PHASE=max
	for r in $(seq 1 "$MAX_ROUNDS"); do
		for t in $TARGETS; do
			echo "max throughput: round $r/$MAX_ROUNDS, $t, $MAX_WORKERS workers for ${MAX_SLICE}s" >&2
			attack "$t" "$TMP/$t.max.$r.bin" -rate=0 -max-workers="$MAX_WORKERS" -workers="$MAX_WORKERS" -duration="${MAX_SLICE}s"
		done
	done
	for t in $TARGETS; do report "$t" max; done
fi
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# Report.
echo
echo "## accelgate overhead, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Machine: $NPROC CPUs ($CPU), loopback; vegeta, mock, proxy and gateway share the CPUs. Load average at the end: $LOAD."
echo
echo "### Latency at $RATE requests/s, $DURATION per target ($ROUNDS interleaved slices of ${SLICE}s)"
echo
echo "| target | p50 ms | p90 ms | p99 ms | max ms | success | achieved req/s | added p50 ms | added p99 ms | p99 per slice ms |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
d50= d99=
if [[ -f $TMP/direct.lat.json ]]; then
	d50=$(ms "$TMP/direct.lat.json" '.latencies."50th"')
	d99=$(ms "$TMP/direct.lat.json" '.latencies."99th"')
fi
for t in $TARGETS; do
	f=$TMP/$t.lat.json
	p50=$(ms "$f" '.latencies."50th"')
	p90=$(ms "$f" '.latencies."90th"')
	p99=$(ms "$f" '.latencies."99th"')
	pmax=$(ms "$f" '.latencies.max')
	succ=$(jq -r '.success * 10000 | round / 100 | tostring + "%"' "$f")
	rps=$(cat "$TMP/$t.lat.rps")
	a50=- a99=-
	if [[ -n $d50 && $t != direct ]]; then
		a50=$(awk -v a="$p50" -v b="$d50" 'BEGIN{printf "%+.3f", a-b}')
		a99=$(awk -v a="$p99" -v b="$d99" 'BEGIN{printf "%+.3f", a-b}')
	fi
	echo "| $t | $p50 | $p90 | $p99 | $pmax | $succ | $rps | $a50 | $a99 | $(cat "$TMP/$t.lat.p99s") |"
	[[ $(jq -r '.success' "$f") == 1 ]] ||
		echo "<!-- $t status codes: $(jq -c '.status_codes' "$f"); errors: $(jq -c '.errors[:3]' "$f") -->"
done
echo
echo "CPU during the latency runs (µs of CPU per request; busy = all CPUs; foreign = busy minus ours):"
echo
echo "| target | server µs/req | mock µs/req | vegeta µs/req | machine busy | foreign |"
echo "|---|---:|---:|---:|---:|---:|"
for t in $TARGETS; do echo "| $t | $(cpu "$t" lat) |"; done
if [[ $SKIP_MAX != 1 ]]; then
	echo
	echo "### Maximum throughput, $MAX_WORKERS concurrent requests, $MAX_DURATION per target ($MAX_ROUNDS interleaved slices)"
	echo
	echo "| target | req/s (successful) | success | p50 ms | p99 ms | vs direct | vs proxy | server µs/req | mock µs/req | vegeta µs/req | busy | foreign |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	dt= pt=
	[[ -f $TMP/direct.max.rps ]] && dt=$(cat "$TMP/direct.max.rps")
	[[ -f $TMP/proxy.max.rps ]] && pt=$(cat "$TMP/proxy.max.rps")
	for t in $TARGETS; do
		f=$TMP/$t.max.json
		thr=$(cat "$TMP/$t.max.rps")
		succ=$(jq -r '.success * 10000 | round / 100 | tostring + "%"' "$f")
		p50=$(ms "$f" '.latencies."50th"')
		p99=$(ms "$f" '.latencies."99th"')
		vd=- vp=-
		[[ -n $dt ]] && vd=$(awk -v a="$thr" -v b="$dt" 'BEGIN{printf "%.2f×", a/b}')
		[[ -n $pt ]] && vp=$(awk -v a="$thr" -v b="$pt" 'BEGIN{printf "%.2f×", a/b}')
		echo "| $t | $(printf '%.0f' "$thr") | $succ | $p50 | $p99 | $vd | $vp | $(cpu "$t" max) |"
	done
fi
