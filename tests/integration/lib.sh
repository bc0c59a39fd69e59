# shellcheck shell=bash
# tests/integration/lib.sh: what every integration test shares (sourced, never run).
#
# A test is a function `t_NAME` (dashes in NAME become underscores) in one of the scripts next to
# this file; meson runs `bash SCRIPT NAME` once per test name (see meson.build), with
#   NULLBOX_CAGE   the cage binary under test
#   NULLBOX_PROBE  the static probe (tests/helpers/probe.c)
# NULLBOX_IT_CAGE, when set, replaces NULLBOX_CAGE (meson sets the latter itself): e.g. a wrapper
# without isolation, to see the tests fail when the protections are missing.
#
# it_main NAME runs the test in a fresh temporary agent directory:
#   $T/agent/            AGENT.toml and a copy of the probe; inside the sandbox: /agent (ro)
#   $T/ro/               a `read` path, owned by the agent's uid so that only the read-only
#                        bind (not file permissions) stops writes; holds `hello`
#   $T/rw/               a `write` path, owned by the agent's uid
#   $T/secret/           on the host, granted to nobody; holds `secret.txt`
# and, after the test function returns, checks that nothing is left on the host (it_check_clean).
# The temporary directory lives under /var/tmp, not /tmp: a sandbox has its own /tmp, and the
# binds must not depend on how cage orders them with it.
#
# Exit status: 0 pass, 1 fail (the reason on stderr: what was expected, what came back, and the
# full output of cage), 77 skip (not root), 99 a broken test (unknown name, missing binary).

set -euo pipefail

readonly AGENT_UID=65534
readonly AGENT_GID=65534
# Set in cage's own environment before every run: it must never be visible inside.
readonly HOST_MARKER_NAME=NULLBOX_IT_HOST_MARKER
HOST_MARKER_VALUE="host-secret-$$-$RANDOM"
readonly HOST_MARKER_VALUE

T=""
AGENT_NAME=""
OUT=""
ERR=""
RC=0

# Manifest knobs a test may set before it_write_manifest (it_main writes the defaults first).
MAX_PIDS=64
MAX_MEMORY_MB=256
MAX_CPU_PERCENT=100

die() {
	echo "FAIL: $*" >&2
	exit 1
}

broken() {
	echo "BROKEN TEST: $*" >&2
	exit 99
}

skip() {
	echo "SKIP: $*" >&2
	exit 77
}

# Prints what cage printed last, for failure messages.
show_run() {
	{
		echo "---- cage exit status: $RC"
		echo "---- stdout:"
		cat "$OUT" 2>/dev/null || true
		echo "---- stderr:"
		cat "$ERR" 2>/dev/null || true
		echo "----"
	} >&2
}

fail() {
	echo "FAIL: $*" >&2
	show_run
	exit 1
}

# ---- setup ----

it_write_manifest() {
	cat >"$T/agent/AGENT.toml" <<EOF
[agent]
name = "$AGENT_NAME"
version = "1"
runtime = "binary"
entry = "probe"

[capabilities]
max_pids = $MAX_PIDS
max_memory_mb = $MAX_MEMORY_MB
max_cpu_percent = $MAX_CPU_PERCENT

[capabilities.filesystem]
read = ["$T/ro"]
write = ["$T/rw"]
EOF
}

it_setup() {
	local name=$1

	T=$(mktemp -d /var/tmp/nullbox-it.XXXXXX)
	chmod 0755 "$T"
	OUT=$T/stdout
	ERR=$T/stderr
	# The cgroup is named nullbox-<agent>-<pid>: a per-test name finds exactly ours.
	AGENT_NAME="it-${name:0:40}-$$"
	mkdir -m 0755 "$T/agent" "$T/ro" "$T/rw" "$T/secret"
	install -m 0755 "$NULLBOX_PROBE" "$T/agent/probe"
	echo "nullbox-read-ok" >"$T/ro/hello"
	chmod 0644 "$T/ro/hello"
	chown -R "$AGENT_UID:$AGENT_GID" "$T/ro" "$T/rw"
	echo "nullbox-host-secret" >"$T/secret/secret.txt"
	chmod 0644 "$T/secret/secret.txt"
	it_write_manifest
	PROBE_ID=$(stat -c %d:%i "$T/agent/probe")
	it_snapshot "$T/before"
}

it_cleanup() {
	[ -n "$T" ] && [ -d "$T" ] && rm -rf -- "$T"
	return 0
}

# ---- what may be left on the host ----

# The cgroup directories of this test's agent, in every hierarchy.
it_cgroup_dirs() {
	find /sys/fs/cgroup -mindepth 1 -maxdepth 6 -type d -name "nullbox-${AGENT_NAME}-*" \
		2>/dev/null | sort
}

# Processes that run this test's probe (a bind mount keeps the file's device and inode, so
# /proc/PID/exe of a sandboxed probe stats like $T/agent/probe) or whose command line names $T
# (cage itself, with --manifest $T/agent/AGENT.toml).
it_our_processes() {
	local p id
	for p in /proc/[0-9]*; do
		[ "${p#/proc/}" = "$$" ] && continue
		id=$(stat -L -c %d:%i "$p/exe" 2>/dev/null) || continue
		if [ "$id" = "$PROBE_ID" ] ||
			tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$T/agent"; then
			echo "${p#/proc/} $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)"
		fi
	done
}

it_snapshot() {
	local dir=$1
	mkdir -p "$dir"
	cat /proc/self/mountinfo >"$dir/mountinfo"
	ip -o link show | awk -F': ' '{ print $2 }' | sort >"$dir/links"
	ls -1 /run/netns 2>/dev/null | sort >"$dir/netns" || true
}

# Fails when the run left a mount, a cgroup, a process, an interface or a named netns behind.
it_check_clean() {
	local left
	# cage removes its cgroup before it exits, and the kernel kills the sandbox when its init
	# dies; allow a moment for both, then insist.
	for _ in $(seq 1 30); do
		[ -z "$(it_our_processes)$(it_cgroup_dirs)" ] && break
		sleep 0.1
	done
	it_snapshot "$T/after"
	left=$(it_our_processes)
	[ -z "$left" ] || die "processes of this sandbox are still running on the host:
$left"
	left=$(it_cgroup_dirs)
	[ -z "$left" ] || die "cgroup directories left on the host:
$left"
	if ! cmp -s "$T/before/mountinfo" "$T/after/mountinfo"; then
		die "the host's mount table changed:
$(diff "$T/before/mountinfo" "$T/after/mountinfo" || true)"
	fi
	if ! cmp -s "$T/before/links" "$T/after/links"; then
		die "the host's network interfaces changed:
$(diff "$T/before/links" "$T/after/links" || true)"
	fi
	if ! cmp -s "$T/before/netns" "$T/after/netns"; then
		die "the host's named network namespaces changed:
$(diff "$T/before/netns" "$T/after/netns" || true)"
	fi
}

# ---- running cage ----

# run_cage [CAGE OPTIONS] [-- CMD ARGS]: runs cage on this test's manifest, with the host
# marker in its environment; sets RC and leaves stdout in $OUT and stderr in $ERR. Never fails.
run_cage() {
	RC=0
	env "$HOST_MARKER_NAME=$HOST_MARKER_VALUE" \
		timeout -k 5 "${CAGE_TIMEOUT:-60}" \
		"$NULLBOX_CAGE" run --manifest "$T/agent/AGENT.toml" "$@" >"$OUT" 2>"$ERR" || RC=$?
	if [ "$RC" = 124 ]; then
		fail "cage did not finish within ${CAGE_TIMEOUT:-60} s"
	fi
	return 0
}

# probe ATTEMPT [ARGS]: runs the probe inside the sandbox.
probe() {
	run_cage -- /agent/probe "$@"
}

# The verdict of ATTEMPT: the last "ATTEMPT: ..." line of stdout, without the prefix.
verdict_of() {
	local attempt=$1
	grep -E "^${attempt}: " "$OUT" | tail -n 1 | sed "s/^${attempt}: //"
}

# A "key=value" data line of the last run.
value_of() {
	grep -E "^$1=" "$OUT" | tail -n 1 | sed "s/^$1=//"
}

# expect_verdict ATTEMPT EXPECTED: the probe's verdict and cage's exit status match.
expect_verdict() {
	local attempt=$1 want=$2 got want_rc
	got=$(verdict_of "$attempt" || true)
	[ -n "$got" ] || fail "$attempt: expected '$want', got no verdict line from the probe"
	[ "$got" = "$want" ] || fail "$attempt: expected '$want', got '$got'"
	want_rc=1
	[ "$want" = ok ] && want_rc=0
	[ "$RC" = "$want_rc" ] ||
		fail "$attempt: verdict '$got' as expected, but cage exited $RC instead of $want_rc"
}

# expect_attempt EXPECTED ATTEMPT [ARGS]: probe + expect_verdict.
expect_attempt() {
	local want=$1
	shift
	probe "$@"
	expect_verdict "$1" "$want"
}

expect_rc() {
	[ "$RC" = "$1" ] || fail "expected cage to exit $1, got $RC${2:+ ($2)}"
}

expect_no_marker() {
	if grep -qF -- "$HOST_MARKER_VALUE" "$OUT"; then
		fail "the host's environment ($HOST_MARKER_NAME=$HOST_MARKER_VALUE) is visible inside"
	fi
}

# Reads field $1 of the JSON object on the last line of stdout (empty when absent).
json_field() {
	tail -n 1 "$OUT" | python3 -c '
import json, sys
o = json.loads(sys.stdin.read())
v = o.get(sys.argv[1])
print("" if v is None else (str(v).lower() if isinstance(v, bool) else v))' "$1" ||
		fail "the last line of stdout is not a JSON object"
}

# Waits (up to 10 s) until a probe of this test runs; prints its host pid.
wait_for_probe() {
	local line
	for _ in $(seq 1 100); do
		line=$(it_our_processes | while read -r pid rest; do
			[ "$(stat -L -c %d:%i "/proc/$pid/exe" 2>/dev/null)" = "$PROBE_ID" ] &&
				echo "$pid"
		done | head -n 1)
		if [ -n "$line" ]; then
			echo "$line"
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# ---- entry point ----

it_main() {
	local name=${1:-} fn
	NULLBOX_CAGE=${NULLBOX_IT_CAGE:-${NULLBOX_CAGE:-}}
	[ -n "$name" ] || broken "usage: $0 TEST-NAME"
	fn="t_${name//-/_}"
	declare -F "$fn" >/dev/null || broken "no test function $fn for test '$name' in $0"
	[ "$(id -u)" = 0 ] || skip "integration tests build real sandboxes and need root"
	[ -n "${NULLBOX_CAGE:-}" ] && [ -x "$NULLBOX_CAGE" ] ||
		broken "NULLBOX_CAGE (the cage binary) is not set or not executable"
	[ -n "${NULLBOX_PROBE:-}" ] && [ -x "$NULLBOX_PROBE" ] ||
		broken "NULLBOX_PROBE (the probe helper) is not set or not executable"
	trap it_cleanup EXIT
	it_setup "$name"
	"$fn"
	it_check_clean
	echo "PASS: $name"
}
