#!/usr/bin/env bash
# nulld and nullctl, for real: a nulld in a temporary state dir, services that are small shell
# scripts, agents in real cages, driven through nullctl. One meson test per function t_NAME.
#
#   NULLBOX_NULLD, NULLBOX_NULLCTL, NULLBOX_CAGE  the binaries under test
# Exit status: 0 pass, 1 fail, 77 skip (not root), 99 broken test.
set -euo pipefail

S=""       # state dir
W=""       # work dir (service scripts, agent dirs, marks)
NULLD_PID=""
NAME_TAG="it$$"

die() {
	echo "FAIL: $*" >&2
	if [ -n "$W" ] && [ -f "$W/nulld.log" ]; then
		echo "---- nulld log (last 40 lines):" >&2
		tail -40 "$W/nulld.log" >&2
	fi
	exit 1
}

skip() {
	echo "SKIP: $*" >&2
	exit 77
}

ctl() {
	"$NULLBOX_NULLCTL" --state-dir "$S" "$@"
}

# nd_start [CONFIG]: starts nulld on $S and waits until it answers. Without CONFIG, an empty
# nulld.toml: no services (the built-in ones would be found in the build tree).
nd_start() {
	local args=(--state-dir "$S")
	if [ -n "${1:-}" ]; then
		args+=(--config "$1")
	else
		: >"$W/empty.toml"
		args+=(--config "$W/empty.toml")
	fi
	"$NULLBOX_NULLD" "${args[@]}" >>"$W/nulld.log" 2>&1 &
	NULLD_PID=$!
	for _ in $(seq 100); do
		[ -S "$S/nulld.sock" ] && ctl status >/dev/null 2>&1 && return 0
		kill -0 "$NULLD_PID" 2>/dev/null || die "nulld exited at start"
		sleep 0.05
	done
	die "nulld did not answer within 5 s"
}

# nd_stop: asks nulld to shut down and waits for it.
nd_stop() {
	[ -n "$NULLD_PID" ] || return 0
	ctl shutdown >/dev/null 2>&1 || kill -TERM "$NULLD_PID" 2>/dev/null || true
	for _ in $(seq 200); do
		kill -0 "$NULLD_PID" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$NULLD_PID" 2>/dev/null; then
		kill -KILL "$NULLD_PID"
		die "nulld did not stop within 10 s of shutdown"
	fi
	wait "$NULLD_PID" 2>/dev/null || true
	NULLD_PID=""
}

cleanup() {
	if [ -n "$NULLD_PID" ]; then
		kill -KILL "$NULLD_PID" 2>/dev/null || true
		wait "$NULLD_PID" 2>/dev/null || true
	fi
	[ -n "$W" ] && rm -rf -- "$W"
	return 0
}

# Nothing of this test may remain: processes running from $W, cgroups of its agents, mounts.
check_clean() {
	local left=""
	for _ in $(seq 40); do
		left=$(
			for p in /proc/[0-9]*; do
				[ "${p#/proc/}" = "$$" ] && continue
				if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$W"; then
					echo "${p#/proc/}"
				fi
			done
			find /sys/fs/cgroup -mindepth 1 -maxdepth 6 -type d -name "nullbox-*$NAME_TAG*" 2>/dev/null
		)
		[ -z "$left" ] && break
		sleep 0.1
	done
	[ -z "$left" ] || die "left on the host: $left"
	cat /proc/self/mountinfo >"$W/mountinfo.after"
	cmp -s "$W/mountinfo.before" "$W/mountinfo.after" ||
		die "mounts changed on the host: $(diff "$W/mountinfo.before" "$W/mountinfo.after")"
}

# service_script NAME [DELAY] [BODY]: records "NAME START_TIME" in $W/marks, announces readiness
# after DELAY seconds, then runs BODY (default: sleeps).
service_script() {
	local name=$1 delay=${2:-0} body=${3:-'exec sleep 1000'}
	{
		echo '#!/bin/sh'
		echo "echo \"$name \$(date +%s.%N)\" >>\"$W/marks\""
		echo "sleep $delay"
		echo 'echo ready >&3'
		echo "$body"
	} >"$W/$name.sh"
	chmod +x "$W/$name.sh"
}

# agent_dir NAME [EXTRA_TOML] [PYTHON_CODE]
agent_dir() {
	local name=$1 extra=${2:-} code=${3:-}
	mkdir -p "$W/$name"
	printf '[agent]\nname = "%s"\nversion = "1"\nruntime = "python"\nentry = "agent.py"\n%s\n' \
		"$name" "$extra" >"$W/$name/AGENT.toml"
	if [ -n "$code" ]; then
		printf '%s\n' "$code" >"$W/$name/agent.py"
	else
		printf '%s\n' 'import time' 'i = 0' 'while True:' \
			'    print(f"tick {i}", flush=True)' '    i += 1' '    time.sleep(0.2)' \
			>"$W/$name/agent.py"
	fi
}

json_get() {
	python3 -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$1"
}

# wait_for SECONDS CMD...: until CMD succeeds.
wait_for() {
	local t=$1
	shift
	for _ in $(seq $((t * 10))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

agent_state() {
	ctl --json agent status "$1" | json_get state
}

service_field() {
	ctl --json status | json_get "services.$1.$2"
}

marks() {
	[ -f "$W/marks" ] && wc -l <"$W/marks" || echo 0
}

# Predicates for wait_for (evaluated again on every try).
marks_at_least() { [ "$(marks)" -ge "$1" ]; }
marks_are() { [ "$(marks)" = "$1" ]; }
service_is() { [ "$(service_field "$1" state)" = "$2" ]; }
agent_is() { [ "$(agent_state "$1")" = "$2" ]; }
agent_restarts_at_least() { [ "$(ctl --json agent status "$1" | json_get restarts)" -ge "$2" ]; }

# audit_match KEY=VALUE...: some record of the last audit_has output has all these fields.
audit_match() {
	python3 - "$W/audit.out" "$@" <<'PY'
import json, sys
want = dict(a.split("=", 1) for a in sys.argv[2:])
for line in open(sys.argv[1]):
    r = json.loads(line)
    if all(str(r.get(k)) == v for k, v in want.items()):
        sys.exit(0)
sys.exit(1)
PY
}

audit_has() {
	ctl --json audit "$@" >"$W/audit.out" 2>&1 || return 1
	return 0
}

# ---- services ----

t_nulld_dependency_order() {
	service_script c
	service_script a 0.3
	service_script b 0.3
	printf '[service.c]\nbinary = "%s"\ndepends_on = ["b"]\n[service.a]\nbinary = "%s"\n[service.b]\nbinary = "%s"\ndepends_on = ["a"]\n' \
		"$W/c.sh" "$W/a.sh" "$W/b.sh" >"$W/nulld.toml"
	nd_start "$W/nulld.toml"
	wait_for 10 grep -q '^c ' "$W/marks" || die "c never started"
	local order
	order=$(cut -d' ' -f1 "$W/marks" | tr '\n' ' ')
	[ "$order" = "a b c " ] || die "expected start order 'a b c', got '$order'"
	# Readiness, not a guess: b starts only after a announced it (0.3 s after a started).
	python3 - "$W/marks" <<'PY' || die "a dependent started before its dependency was ready"
import sys
t = {l.split()[0]: float(l.split()[1]) for l in open(sys.argv[1])}
assert t["b"] - t["a"] >= 0.29 and t["c"] - t["b"] >= 0.29, t
PY
	wait_for 5 service_is 2 up || die "c is not up"
	nd_stop
	check_clean
}

t_nulld_cycle_error() {
	service_script a
	service_script b
	service_script c
	printf '[service.a]\nbinary = "%s"\ndepends_on = ["c"]\n[service.b]\nbinary = "%s"\ndepends_on = ["a"]\n[service.c]\nbinary = "%s"\ndepends_on = ["b"]\n' \
		"$W/a.sh" "$W/b.sh" "$W/c.sh" >"$W/nulld.toml"
	local rc=0
	"$NULLBOX_NULLD" --state-dir "$S" --config "$W/nulld.toml" >"$W/out" 2>&1 || rc=$?
	[ "$rc" = 1 ] || die "expected nulld to exit 1 on a cycle, got $rc"
	grep -qF "dependency cycle: a -> c -> b -> a" "$W/out" ||
		die "expected the cycle named, got: $(cat "$W/out")"
	[ ! -e "$W/marks" ] || die "a service started despite the cycle"
}

t_nulld_missing_dependency() {
	service_script a
	printf '[service.a]\nbinary = "%s"\ndepends_on = ["ghost"]\n' "$W/a.sh" >"$W/nulld.toml"
	local rc=0
	"$NULLBOX_NULLD" --state-dir "$S" --config "$W/nulld.toml" >"$W/out" 2>&1 || rc=$?
	[ "$rc" = 1 ] || die "expected exit 1, got $rc"
	grep -qF "$W/nulld.toml:1: service.a.depends_on: unknown service \"ghost\"" "$W/out" ||
		die "expected the missing dependency named, got: $(cat "$W/out")"
}

t_nulld_bad_config() {
	printf '[service.a]\nbinary = "relative/path"\n' >"$W/nulld.toml"
	local rc=0
	"$NULLBOX_NULLD" --state-dir "$S" --config "$W/nulld.toml" >"$W/out" 2>&1 || rc=$?
	[ "$rc" = 1 ] || die "expected exit 1, got $rc"
	grep -qF "$W/nulld.toml:2: service.a.binary: must be an absolute path" "$W/out" ||
		die "expected FILE:LINE: FIELD: REASON, got: $(cat "$W/out")"
}

# kill -9 of a service: restarted after 1 s, then after 2 s (timed from its start marks).
t_nulld_restart_backoff() {
	service_script s
	printf '[service.s]\nbinary = "%s"\n' "$W/s.sh" >"$W/nulld.toml"
	nd_start "$W/nulld.toml"
	wait_for 5 service_is 0 up || die "s not up"
	local pid k
	for k in 1 2; do
		pid=$(service_field 0 pid)
		date +%s.%N >>"$W/kills"
		kill -9 "$pid"
		wait_for 10 marks_at_least $((k + 1)) || die "s not restarted after kill $k"
		wait_for 5 service_is 0 up || die "s not up again"
	done
	python3 - "$W/marks" "$W/kills" <<'PY' || die "backoff was not 1 s then 2 s"
import sys
starts = [float(l.split()[1]) for l in open(sys.argv[1])]
kills = [float(l) for l in open(sys.argv[2])]
d1, d2 = starts[1] - kills[0], starts[2] - kills[1]
print(f"restart delays: {d1:.2f} s, {d2:.2f} s")
assert 0.9 <= d1 < 1.8, d1
assert 1.9 <= d2 < 2.8, d2
PY
	grep -q "restarting in 1000 ms (failure 1)" "$W/nulld.log" || die "no backoff log line"
	nd_stop
	check_clean
}

# A service that keeps failing is held after 6 failures (1+2+4+8+16 s of backoff), audited.
t_nulld_hold() {
	service_script f 0 'exit 3'
	printf '[service.f]\nbinary = "%s"\n' "$W/f.sh" >"$W/nulld.toml"
	nd_start "$W/nulld.toml"
	wait_for 45 service_is 0 held || die "f not held after repeated failures"
	[ "$(marks)" = 6 ] || die "expected 6 starts before the hold, got $(marks)"
	sleep 2
	[ "$(marks)" = 6 ] || die "a held service was started again"
	audit_has && grep -q '"action":"service.hold"' "$W/audit.out" || die "the hold was not audited"
	# An operator asks for it again.
	ctl service restart f >/dev/null || die "service restart refused"
	wait_for 5 marks_are 7 || die "f not started after service restart"
	nd_stop
	check_clean
}

# ---- agents ----

t_agent_lifecycle() {
	local a="a-$NAME_TAG"
	agent_dir "$a"
	nd_start
	ctl agent start "$W/$a" >/dev/null || die "agent start failed"
	wait_for 10 sh -c "\"$NULLBOX_NULLCTL\" --state-dir \"$S\" agent logs $a | grep -q 'tick 2'" ||
		die "no output from the agent"
	[ "$(agent_state "$a")" = up ] || die "agent not up"
	ctl agent pause "$a" >/dev/null || die "pause refused"
	[ "$(agent_state "$a")" = paused ] || die "agent not paused"
	local n1 n2
	n1=$(ctl agent logs "$a" --lines 100000 | wc -l)
	sleep 1
	n2=$(ctl agent logs "$a" --lines 100000 | wc -l)
	[ "$n1" = "$n2" ] || die "a paused agent kept writing ($n1 -> $n2 lines)"
	ctl agent resume "$a" >/dev/null || die "resume refused"
	sleep 1
	n2=$(ctl agent logs "$a" --lines 100000 | wc -l)
	[ "$n2" -gt "$n1" ] || die "a resumed agent did not go on"
	local pid1
	pid1=$(ctl --json agent status "$a" | json_get pid)
	ctl agent restart "$a" >/dev/null || die "restart refused"
	wait_for 10 sh -c "[ \"\$(\"$NULLBOX_NULLCTL\" --state-dir \"$S\" --json agent status $a | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"pid\"])')\" -ne $pid1 ] && [ \"\$(\"$NULLBOX_NULLCTL\" --state-dir \"$S\" --json agent status $a | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"pid\"])')\" -ne 0 ]" ||
		die "restart did not start a new cage"
	ctl agent stop "$a" >/dev/null || die "stop refused"
	wait_for 10 sh -c "! \"$NULLBOX_NULLCTL\" --state-dir \"$S\" agent status $a" ||
		die "a stopped agent is still listed"
	audit_has && grep -q '"action":"agent.pause"' "$W/audit.out" || die "pause not audited"
	grep -q '"action":"agent.stop"' "$W/audit.out" || die "stop not audited"
	nd_stop
	check_clean
}

# A sandbox cage refuses to build is an audited denial, with cage's own reason.
t_agent_refused_audited() {
	local a="r-$NAME_TAG"
	agent_dir "$a" "$(printf '[capabilities.filesystem]\nread = ["/proc"]')"
	nd_start
	ctl agent start "$W/$a" >/dev/null || die "agent start failed"
	wait_for 10 sh -c "\"$NULLBOX_NULLCTL\" --state-dir \"$S\" --json audit --verdict denied | grep -q sandbox.create" ||
		die "the refused sandbox was not audited"
	ctl --json audit --verdict denied | grep -F sandbox.create | grep -qF "/proc belongs to the sandbox" ||
		die "the audit record does not carry cage's reason"
	nd_stop
	check_clean
}

t_agent_bad_manifest_refused() {
	mkdir -p "$W/bad"
	printf '[agent]\nname = "x y"\n' >"$W/bad/AGENT.toml"
	nd_start
	local rc=0
	ctl agent start "$W/bad" >"$W/out" 2>&1 || rc=$?
	[ "$rc" = 1 ] || die "expected exit 1 for a bad manifest, got $rc"
	grep -qF "$W/bad/AGENT.toml:2: agent.name: " "$W/out" ||
		die "expected FILE:LINE: FIELD: REASON, got $(cat "$W/out")"
	nd_stop
}

t_agent_health_restart() {
	local a="h-$NAME_TAG"
	agent_dir "$a" "$(printf '[capabilities.health_check]\nport = 8080\npath = "/health"\ninterval_secs = 1\nmax_failures = 2')" '
import http.server
n = [0]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        n[0] += 1
        self.send_response(200 if n[0] <= 2 else 500)
        self.end_headers()
    def log_message(self, *a):
        print("health request", n[0], flush=True)
http.server.HTTPServer(("127.0.0.1", 8080), H).serve_forever()'
	nd_start
	ctl agent start "$W/$a" >/dev/null || die "agent start failed"
	wait_for 20 sh -c "\"$NULLBOX_NULLCTL\" --state-dir \"$S\" --json audit | grep -q 'health check'" ||
		die "the failing health check did not restart the agent"
	wait_for 10 agent_restarts_at_least "$a" 1 ||
		die "no restart counted"
	ctl agent logs "$a" | grep -q "health request" || die "the agent never saw a health request"
	nd_stop
	check_clean
}

t_nulld_restores_agents() {
	local a="p-$NAME_TAG"
	agent_dir "$a"
	nd_start
	ctl agent start "$W/$a" >/dev/null || die "agent start failed"
	wait_for 10 agent_is "$a" up || die "agent not up"
	nd_stop
	check_clean
	nd_start
	wait_for 10 agent_is "$a" up || die "the agent did not come back with nulld"
	nd_stop
	check_clean
}

# nulld killed outright: its units die with it (no orphan cage), and a new nulld restores them.
t_nulld_sigkill_no_orphans() {
	local a="k-$NAME_TAG"
	agent_dir "$a"
	nd_start
	ctl agent start "$W/$a" >/dev/null || die "agent start failed"
	wait_for 10 agent_is "$a" up || die "agent not up"
	kill -KILL "$NULLD_PID"
	wait "$NULLD_PID" 2>/dev/null || true
	NULLD_PID=""
	check_clean
	nd_start
	wait_for 10 agent_is "$a" up || die "the agent did not come back"
	nd_stop
	check_clean
}

# nulld killed while an agent is paused: the frozen sandbox must not stay behind (cage's guard
# thaws and removes it once cage is gone).
t_nulld_sigkill_while_paused() {
	local a="z-$NAME_TAG"
	agent_dir "$a"
	nd_start
	ctl agent start "$W/$a" >/dev/null || die "agent start failed"
	wait_for 10 agent_is "$a" up || die "agent not up"
	ctl agent pause "$a" >/dev/null || die "pause refused"
	kill -KILL "$NULLD_PID"
	wait "$NULLD_PID" 2>/dev/null || true
	NULLD_PID=""
	check_clean
}

# Under nulld with a ctxgraph service: the agent finds its own socket at
# /run/nullbox/ctxgraph.sock, writes and reads within its prefixes, is refused outside them, and
# the operator sees the entry written by that agent (identity from the socket, not the request).
t_agent_ctxgraph_memory() {
	[ -x "${NULLBOX_CTXGRAPH:-}" ] || { echo "BROKEN TEST: NULLBOX_CTXGRAPH not set" >&2; exit 99; }
	local a="m-$NAME_TAG"
	printf '[service.ctxgraph]\nbinary = "%s"\n' "$NULLBOX_CTXGRAPH" >"$W/nulld.toml"
	agent_dir "$a" "$(printf '[capabilities.ctxgraph]\nread = ["notes/"]\nwrite = ["notes/"]')" '
import json, socket, time
s = socket.socket(socket.AF_UNIX)
s.connect("/run/nullbox/ctxgraph.sock")
f = s.makefile()
def call(i, method, params):
    s.sendall((json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params}) + "\n").encode())
    return json.loads(f.readline())
print("write:", json.dumps(call(1, "ctx.write", {"key": "notes/a", "value": {"x": 1}})), flush=True)
print("read:", json.dumps(call(2, "ctx.read", {"key": "notes/a"})), flush=True)
print("outside:", json.dumps(call(3, "ctx.write", {"key": "secrets/a", "value": 1})), flush=True)
time.sleep(1000)'
	nd_start "$W/nulld.toml"
	wait_for 10 service_is 0 up || die "ctxgraph did not get ready"
	ctl agent start "$W/$a" >/dev/null || die "agent start failed"
	wait_for 15 sh -c "\"$NULLBOX_NULLCTL\" --state-dir \"$S\" agent logs $a | grep -q '^outside:'" ||
		die "the agent did not finish its calls: $(ctl agent logs "$a" | tail -5)"
	ctl agent logs "$a" >"$W/out"
	grep '^write:' "$W/out" | grep -q '"result"' || die "the write failed: $(cat "$W/out")"
	grep '^read:' "$W/out" | grep -q '"x": 1' || die "the read did not return the value: $(cat "$W/out")"
	grep '^outside:' "$W/out" | grep -q '"error"' || die "a write outside the prefixes was accepted"
	ctl --json ctx read notes/a >"$W/ctx.out" 2>&1 || die "nullctl ctx read failed: $(cat "$W/ctx.out")"
	grep -q "\"agent\": *\"$a\"" "$W/ctx.out" || die "the entry is not attributed to $a: $(cat "$W/ctx.out")"
	nd_stop
	check_clean
}

# ctxgraph killed under a running agent: nulld restarts ctxgraph, then the agent (its bound
# socket died with ctxgraph), and the agent's memory works again and still holds its first write.
t_agent_ctxgraph_restart() {
	[ -x "${NULLBOX_CTXGRAPH:-}" ] || { echo "BROKEN TEST: NULLBOX_CTXGRAPH not set" >&2; exit 99; }
	local a="g-$NAME_TAG" pid
	printf '[service.ctxgraph]\nbinary = "%s"\n' "$NULLBOX_CTXGRAPH" >"$W/nulld.toml"
	agent_dir "$a" "$(printf '[capabilities.ctxgraph]\nread = ["notes/"]\nwrite = ["notes/"]')" '
import json, socket, time
s = socket.socket(socket.AF_UNIX)
s.connect("/run/nullbox/ctxgraph.sock")
f = s.makefile()
def call(i, method, params):
    s.sendall((json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params}) + "\n").encode())
    return json.loads(f.readline())
r = call(1, "ctx.history", {"key": "notes/starts"})
n = len(r.get("result", {}).get("entries", []))
w = call(2, "ctx.write", {"key": "notes/starts", "value": {"n": n}})
print("start", n, "write ok" if "result" in w else "write failed", flush=True)
time.sleep(1000)'
	nd_start "$W/nulld.toml"
	wait_for 10 service_is 0 up || die "ctxgraph did not get ready"
	ctl agent start "$W/$a" >/dev/null || die "agent start failed"
	wait_for 10 sh -c "\"$NULLBOX_NULLCTL\" --state-dir \"$S\" agent logs $a | grep -q '^start 0 write ok'" ||
		die "the first start did not write: $(ctl agent logs "$a")"
	pid=$(service_field 0 pid)
	kill -9 "$pid"
	wait_for 15 sh -c "\"$NULLBOX_NULLCTL\" --state-dir \"$S\" agent logs $a | grep -q '^start 1 write ok'" ||
		die "after ctxgraph's restart the agent did not get its memory back: $(ctl agent logs "$a")"
	audit_has && audit_match action=agent.restart object="$a" || die "the restart was not audited"
	nd_stop
	check_clean
}

# ---- audit and control ----

t_audit_tamper_verify() {
	local a="t-$NAME_TAG"
	agent_dir "$a"
	nd_start
	ctl agent start "$W/$a" >/dev/null || die "agent start failed"
	ctl agent stop "$a" >/dev/null || die "agent stop failed"
	ctl audit verify >"$W/out" || die "a fresh log does not verify: $(cat "$W/out")"
	# Edit record 2's reason, keeping the line valid JSON: verify must name record 2.
	python3 - "$S/audit/audit.log" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
r = json.loads(lines[1])
r["reason"] = "edited"
lines[1] = json.dumps(r, separators=(",", ":"))
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PY
	local rc=0
	ctl audit verify >"$W/out" 2>&1 || rc=$?
	[ "$rc" = 1 ] || die "verify accepted an edited log"
	grep -q "record 2" "$W/out" || die "verify did not name record 2: $(cat "$W/out")"
	kill -KILL "$NULLD_PID"
	wait "$NULLD_PID" 2>/dev/null || true
	NULLD_PID=""
}

t_nullctl_not_running() {
	local rc=0
	ctl status >"$W/out" 2>&1 || rc=$?
	[ "$rc" = 1 ] || die "expected exit 1 with no nulld, got $rc"
	grep -qF "nulld is not running" "$W/out" || die "no helpful message: $(cat "$W/out")"
	grep -qF "nulld --state-dir" "$W/out" || die "the message does not say how to start it"
}

t_nullctl_non_root_refused() {
	nd_start
	local rc=0
	setpriv --reuid 65534 --regid 65534 --clear-groups \
		"$NULLBOX_NULLCTL" --socket "$S/nulld.sock" status >"$W/out" 2>&1 || rc=$?
	[ "$rc" = 1 ] || die "a non-root user controlled nulld (exit $rc)"
	nd_stop
}

# --control-group: a member (uid 65534 in nogroup) may control nulld, through a socket outside
# the state dir (which stays 0700); a socket inside it is refused with the reason.
t_nullctl_control_group() {
	local rc=0
	: >"$W/empty.toml"
	"$NULLBOX_NULLD" --state-dir "$S" --config "$W/empty.toml" --control-group nogroup >"$W/out" 2>&1 || rc=$?
	[ "$rc" = 1 ] && grep -qF "is inside the state dir" "$W/out" ||
		die "a group socket inside the state dir was not refused: $(cat "$W/out")"
	mkdir -p "$W/run"
	"$NULLBOX_NULLD" --state-dir "$S" --config "$W/empty.toml" --socket "$W/run/ctl/nulld.sock" --control-group nogroup \
		>>"$W/nulld.log" 2>&1 &
	NULLD_PID=$!
	wait_for 5 "$NULLBOX_NULLCTL" --socket "$W/run/ctl/nulld.sock" status ||
		die "nulld did not start"
	[ "$(stat -c %a:%G "$W/run/ctl/nulld.sock")" = "660:nogroup" ] ||
		die "socket is $(stat -c %a:%G "$W/run/ctl/nulld.sock"), expected 660:nogroup"
	[ "$(stat -c %a:%G "$W/run/ctl")" = "750:nogroup" ] || die "socket dir not 750:nogroup"
	[ "$(stat -c %a "$S")" = 700 ] || die "the state dir was opened up"
	setpriv --reuid 65534 --regid 65534 --clear-groups \
		"$NULLBOX_NULLCTL" --socket "$W/run/ctl/nulld.sock" status >"$W/out" 2>&1 ||
		die "a member of the control group was refused: $(cat "$W/out")"
	"$NULLBOX_NULLCTL" --socket "$W/run/ctl/nulld.sock" shutdown >/dev/null
	wait "$NULLD_PID" || true
	NULLD_PID=""
}

# A service appends its own audit records; the actor is the service nulld knows by its pid, not
# a name from the request. A process that is no service of nulld is refused, and that is audited.
t_audit_append_from_service() {
	cat >"$W/svc.py" <<'PY'
import json, os, socket, time
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["NULLBOX_SOCKET"])
req = {"jsonrpc": "2.0", "id": 1, "method": "audit.append", "params": {
    "action": "secret.read", "object": "OPENAI_API_KEY", "verdict": "allowed",
    "reason": "for api.openai.com", "detail": {"host": "api.openai.com"}}}
s.sendall((json.dumps(req) + "\n").encode())
print(s.makefile().readline(), flush=True)
os.write(int(os.environ["NULLBOX_READY_FD"]), b"ready\n")
time.sleep(1000)
PY
	printf '[service.warden]\nbinary = "/usr/bin/python3"\nargs = ["%s"]\n' "$W/svc.py" >"$W/nulld.toml"
	nd_start "$W/nulld.toml"
	wait_for 5 service_is 0 up || die "the service never got ready"
	audit_has --agent warden || die "audit query failed"
	audit_match actor=warden action=secret.read object=OPENAI_API_KEY ||
		die "the service's record is missing or has another actor: $(cat "$W/audit.out")"
	python3 - "$S/nulld.sock" <<'PY' >"$W/out"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"audit.append","params":{"action":"x","object":"y","verdict":"allowed","reason":"forged"}}\n')
print(s.makefile().readline())
PY
	grep -q '"error"' "$W/out" || die "a non-service appended an audit record: $(cat "$W/out")"
	audit_has --verdict denied && audit_match action=audit.append ||
		die "the refused append was not audited"
	nd_stop
	check_clean
}

# Stopping an agent that is not running (here: in backoff after a refused sandbox) is audited,
# and a name full of terminal escapes is recorded escaped, not dropped.
t_audit_stop_and_escapes() {
	local a="b-$NAME_TAG"
	agent_dir "$a" "$(printf '[capabilities.filesystem]\nread = ["/proc"]')"
	nd_start
	ctl agent start "$W/$a" >/dev/null || die "agent start failed"
	wait_for 10 sh -c "\"$NULLBOX_NULLCTL\" --state-dir \"$S\" --json agent status $a | grep -q backoff" ||
		die "the agent never went to backoff"
	ctl agent stop "$a" >/dev/null || die "stop refused"
	audit_has && audit_match action=agent.stop object="$a" ||
		die "stopping an agent in backoff was not audited"
	local rc=0
	ctl agent start "$W/$a" --name "$(printf 'ev\033[31mil')" >/dev/null 2>&1 || rc=$?
	[ "$rc" = 1 ] || die "a name with an escape was accepted"
	audit_has --verdict denied && audit_match action=agent.start object='ev\x1b[31mil' ||
		die "the refused start with an escaped name was not audited: $(tail -3 "$W/audit.out")"
	ctl audit verify >/dev/null || die "the log does not verify"
	nd_stop
	check_clean
}

# Streams: `agent logs --follow` prints what the agent writes as it writes it, and
# `audit --follow` prints records as nulld appends them.
t_nullctl_follow_streams() {
	local a="f-$NAME_TAG" lp ap
	agent_dir "$a"
	nd_start
	ctl agent start "$W/$a" >/dev/null || die "agent start failed"
	"$NULLBOX_NULLCTL" --state-dir "$S" agent logs "$a" --follow >"$W/follow.log" 2>&1 &
	lp=$!
	"$NULLBOX_NULLCTL" --state-dir "$S" --json audit --follow >"$W/follow.audit" 2>&1 &
	ap=$!
	sleep 0.5
	ctl agent pause "$a" >/dev/null || die "pause refused"
	ctl agent resume "$a" >/dev/null || die "resume refused"
	sleep 1.5
	kill -TERM "$lp" "$ap"
	wait "$lp" || die "logs --follow did not end cleanly on SIGTERM"
	wait "$ap" || die "audit --follow did not end cleanly on SIGTERM"
	[ "$(grep -c '^tick ' "$W/follow.log")" -ge 5 ] ||
		die "logs --follow printed too little: $(head -c 300 "$W/follow.log")"
	grep -q '"action":"agent.pause"' "$W/follow.audit" ||
		die "audit --follow did not stream the pause record: $(cat "$W/follow.audit")"
	grep -q '"action":"agent.resume"' "$W/follow.audit" ||
		die "audit --follow did not stream the resume record"
	nd_stop
	check_clean
}

# An agent's credentials are placeholders, new at every start; a service (egress, later) learns
# which agent and credential a placeholder stands for; nobody else may ask.
t_credentials_placeholders_resolved() {
	local a="c-$NAME_TAG"
	cat >"$W/egress.py" <<'PY'
import json, os, socket, sys, time
os.write(int(os.environ["NULLBOX_READY_FD"]), b"ready\n")
work = sys.argv[1]
while not os.path.exists(work + "/ph"):
    time.sleep(0.05)
ph = open(work + "/ph").read().strip()
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["NULLBOX_SOCKET"])
s.sendall((json.dumps({"jsonrpc": "2.0", "id": 1, "method": "credentials.resolve",
                       "params": {"placeholder": ph}}) + "\n").encode())
open(work + "/resolved.tmp", "w").write(s.makefile().readline())
os.rename(work + "/resolved.tmp", work + "/resolved")
time.sleep(1000)
PY
	printf '[service.egress]\nbinary = "/usr/bin/python3"\nargs = ["%s", "%s"]\n' "$W/egress.py" "$W" >"$W/nulld.toml"
	agent_dir "$a" "$(printf '[capabilities]\ncredential_refs = ["API_KEY"]')" '
import os, time
print("key:", os.environ.get("API_KEY"), flush=True)
time.sleep(1000)'
	nd_start "$W/nulld.toml"
	ctl agent start "$W/$a" >/dev/null || die "agent start failed"
	wait_for 10 sh -c "\"$NULLBOX_NULLCTL\" --state-dir \"$S\" agent logs $a | grep -q '^key: '" ||
		die "the agent printed no key"
	local ph
	ph=$(ctl agent logs "$a" | sed -n 's/^key: //p' | tail -1)
	[[ "$ph" =~ ^NULLBOX_PLACEHOLDER_[0-9a-f]{32}$ ]] || die "the agent holds '$ph', not a placeholder"
	echo "$ph" >"$W/ph"
	wait_for 10 test -f "$W/resolved" || die "the service got no answer"
	python3 - "$W/resolved" "$a" <<'PY' || die "resolve gave: $(cat "$W/resolved")"
import json, sys
r = json.load(open(sys.argv[1]))["result"]
assert r == {"agent": sys.argv[2], "name": "API_KEY"}, r
PY
	python3 - "$S/nulld.sock" "$ph" <<'PY' >"$W/out"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall((json.dumps({"jsonrpc": "2.0", "id": 1, "method": "credentials.resolve",
                       "params": {"placeholder": sys.argv[2]}}) + "\n").encode())
print(s.makefile().readline())
PY
	grep -q '"error"' "$W/out" || die "a non-service resolved a placeholder: $(cat "$W/out")"
	# A restart gives a new placeholder.
	ctl agent restart "$a" >/dev/null
	wait_for 10 sh -c "[ \$(\"$NULLBOX_NULLCTL\" --state-dir \"$S\" agent logs $a | grep -c '^key: ') -ge 2 ]" ||
		die "no second start"
	[ "$(ctl agent logs "$a" | sed -n 's/^key: //p' | sort -u | wc -l)" = 2 ] ||
		die "the placeholder did not change with the restart"
	nd_stop
	check_clean
}

# A service leaves a child behind that holds its output pipe, then fails: nulld stays responsive
# (it once spun on the pipe), restarts it by policy, and at shutdown kills the leftovers, even
# ones that left the unit's session.
t_nulld_leftovers() {
	service_script o 0 "setsid python3 -c 'import time; time.sleep(300)' \"$W\" &
sleep 0.3
exit 1"
	printf '[service.o]\nbinary = "%s"\n' "$W/o.sh" >"$W/nulld.toml"
	nd_start "$W/nulld.toml"
	wait_for 5 marks_at_least 2 || die "o was not restarted"
	timeout 3 "$NULLBOX_NULLCTL" --state-dir "$S" status >/dev/null ||
		die "nulld stopped answering while a leftover held a unit's pipe"
	nd_stop
	check_clean
}

# More audit records than one 64 KiB message holds: `nullctl audit` still answers, with the
# newest records, and says the rest was left out.
t_audit_large_log() {
	cat >"$W/svc.py" <<'PY'
import json, os, socket
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["NULLBOX_SOCKET"])
f = s.makefile()
for i in range(600):
    req = {"jsonrpc": "2.0", "id": i, "method": "audit.append", "params": {
        "action": "secret.read", "object": "KEY_%d" % i, "verdict": "allowed",
        "reason": "bulk record %d for the size test" % i}}
    s.sendall((json.dumps(req) + "\n").encode())
    f.readline()
os.write(int(os.environ["NULLBOX_READY_FD"]), b"ready\n")
import time
time.sleep(1000)
PY
	printf '[service.bulk]\nbinary = "/usr/bin/python3"\nargs = ["%s"]\n' "$W/svc.py" >"$W/nulld.toml"
	nd_start "$W/nulld.toml"
	wait_for 30 service_is 0 up || die "the bulk service never finished"
	[ "$(stat -c %s "$S/audit/audit.log")" -gt 70000 ] || die "the log is too small for this test"
	ctl audit >"$W/out" 2>&1 || die "nullctl audit failed on a large log: $(tail -2 "$W/out")"
	ctl --json audit >"$W/out" 2>&1 || die "nullctl --json audit failed"
	grep -q '"object":"KEY_599"' "$W/out" || die "the newest record is missing"
	ctl audit verify >/dev/null || die "the large log does not verify"
	nd_stop
	check_clean
}

# An agent writes a 64 KiB line of control bytes with a marker behind it: `agent logs` still
# answers, and `--follow` shows the marker (a stream never drops output).
t_agent_log_flood() {
	local a="l-$NAME_TAG" lp
	agent_dir "$a" "" '
import sys, time
time.sleep(1)
sys.stdout.write("\x01" * 65536 + "MARKER-AFTER-FLOOD\n")
sys.stdout.flush()
time.sleep(1000)'
	nd_start
	ctl agent start "$W/$a" >/dev/null || die "agent start failed"
	"$NULLBOX_NULLCTL" --state-dir "$S" agent logs "$a" --follow --raw >"$W/follow.log" 2>&1 &
	lp=$!
	wait_for 10 grep -q MARKER-AFTER-FLOOD "$W/follow.log" || {
		kill "$lp"
		die "the follow stream lost the output behind the flood"
	}
	kill -TERM "$lp"
	wait "$lp" || true
	ctl agent logs "$a" --raw >"$W/out" 2>&1 || die "agent logs failed after the flood: $(tail -c 300 "$W/out")"
	grep -q MARKER-AFTER-FLOOD "$W/out" || die "agent logs lost the marker"
	nd_stop
	check_clean
}

t_nullctl_usage() {
	local rc=0
	ctl frobnicate >"$W/out" 2>&1 || rc=$?
	[ "$rc" = 2 ] || die "expected exit 2 for an unknown command, got $rc"
}

main() {
	local name=${1:-} fn b
	fn="t_${name//-/_}"
	if ! declare -F "$fn" >/dev/null; then
		echo "BROKEN TEST: no $fn" >&2
		exit 99
	fi
	[ "$(id -u)" = 0 ] || skip "nulld tests start real agents in cages and need root"
	for b in NULLBOX_NULLD NULLBOX_NULLCTL NULLBOX_CAGE; do
		if [ ! -x "${!b:-}" ]; then
			echo "BROKEN TEST: $b not set or not executable" >&2
			exit 99
		fi
	done
	export NULLBOX_CAGE
	trap cleanup EXIT
	W=$(mktemp -d /var/tmp/nullbox-nd.XXXXXX)
	chmod 0755 "$W"
	S=$W/state
	mkdir -m 0700 "$S"
	cat /proc/self/mountinfo >"$W/mountinfo.before"
	"$fn"
	echo "PASS: $name"
}

main "$@"
