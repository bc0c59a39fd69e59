#!/bin/bash
# tests/integration/lifecycle.sh: who the agent is, what it inherits, how cage reports its end,
# and that nothing outlives it.
#
# Usage: lifecycle.sh TEST-NAME (see meson.build).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

# Starts cage in the background on `probe sleep 60`, waits until the probe runs; sets CAGE_PID
# and PROBE_PID.
start_sleeping_cage() {
	RC=0
	env "$HOST_MARKER_NAME=$HOST_MARKER_VALUE" \
		"$NULLBOX_CAGE" run --manifest "$T/agent/AGENT.toml" -- /agent/probe sleep 60 \
		>"$OUT" 2>"$ERR" &
	CAGE_PID=$!
	PROBE_PID=$(wait_for_probe) || {
		kill -KILL "$CAGE_PID" 2>/dev/null || true
		fail "the probe did not start within 10 s"
	}
}

# Waits up to 10 s for cage to end; sets RC.
wait_cage() {

	for _ in $(seq 1 100); do
		kill -0 "$CAGE_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$CAGE_PID" 2>/dev/null; then
		kill -KILL "$CAGE_PID" 2>/dev/null || true
		wait "$CAGE_PID" 2>/dev/null || true
		fail "cage did not end within 10 s of the signal"
	fi
	RC=0
	wait "$CAGE_PID" || RC=$?
}

# ---- identity and environment ----

# uid/gid 65534, no capability at all, no_new_privs, a seccomp filter. Unprotected root: uid 0,
# CapEff 000001ffffffffff, NoNewPrivs 0, Seccomp 0.
t_id_unprivileged() {
	local k want
	expect_attempt ok id
	for k in uid=65534 gid=65534 euid=65534 egid=65534 groups= CapInh=0000000000000000 \
		CapPrm=0000000000000000 CapEff=0000000000000000 CapBnd=0000000000000000 \
		CapAmb=0000000000000000 NoNewPrivs=1 Seccomp=2; do
		want=${k#*=}
		[ "$(value_of "${k%%=*}")" = "$want" ] ||
			fail "id: expected ${k%%=*}=$want, got '${k%%=*}=$(value_of "${k%%=*}")'"
	done
}

# Only what cage sets itself: PATH, HOME=/tmp, LANG, NULLBOX_AGENT, and the constants
# TMPDIR=/tmp and USER=agent. Nothing of cage's own environment (the marker, an exported
# variable) comes through.
t_env_clean() {
	local name extra=""
	export NULLBOX_IT_EXPORTED="exported-$$"
	expect_attempt ok env
	expect_no_marker
	grep -q "exported-$$" "$OUT" && fail "env: a variable exported before cage is visible inside"
	grep -qx 'HOME=/tmp' "$OUT" || fail "env: expected HOME=/tmp"
	grep -qx "NULLBOX_AGENT=$AGENT_NAME" "$OUT" || fail "env: expected NULLBOX_AGENT=$AGENT_NAME"
	grep -q '^PATH=' "$OUT" || fail "env: expected a PATH"
	while read -r name; do
		case "$name" in
		PATH | HOME | LANG | NULLBOX_AGENT) ;;
		TMPDIR) grep -qx 'TMPDIR=/tmp' "$OUT" || fail "env: expected TMPDIR=/tmp" ;;
		USER) grep -qx 'USER=agent' "$OUT" || fail "env: expected USER=agent" ;;
		*) extra="$extra $name" ;;
		esac
	done < <(grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "$OUT" | cut -d= -f1)
	[ -z "$extra" ] || fail "env: expected only PATH HOME LANG NULLBOX_AGENT TMPDIR USER, also got:$extra"
}

# ---- exit status ----

t_exit_status() {
	probe exit 3
	expect_rc 3 "the agent's own exit code"
}

t_exit_zero() {
	probe exit 0
	expect_rc 0 "the agent's own exit code"
}

# SIGTERM to cage is forwarded; the agent dies of it, cage exits 128 + 15.
t_exit_sigterm() {
	start_sleeping_cage
	kill -TERM "$CAGE_PID"
	wait_cage
	expect_rc 143 "the agent killed by the forwarded SIGTERM"
}

t_exit_notfound() {
	run_cage -- /agent/nonexistent-command
	expect_rc 127 "command not found"
	grep -q 'nonexistent-command' "$ERR" || fail "expected an error naming the command on stderr"
	run_cage -- nonexistent-command-in-path
	expect_rc 127 "command not found in PATH"
	grep -q 'nonexistent-command-in-path' "$ERR" ||
		fail "expected an error naming the command on stderr"
}

# A file that is not executable: 126.
t_exit_cannot_exec() {
	run_cage -- /agent/AGENT.toml
	expect_rc 126 "command cannot be executed"
	grep -q '^cage: ' "$ERR" || fail "expected a 'cage: ' error line on stderr"
}

# A manifest error: 125 and FILE:LINE: FIELD: REASON, before any sandbox exists.
t_exit_bad_manifest() {
	local line
	sed -i 's/^max_memory_mb = .*/max_memory_mb = 0/' "$T/agent/AGENT.toml"
	line=$(grep -n '^max_memory_mb' "$T/agent/AGENT.toml" | cut -d: -f1)
	probe exit 0
	expect_rc 125 "a bad manifest"
	grep -qF "$T/agent/AGENT.toml:$line: capabilities.max_memory_mb: " "$ERR" ||
		fail "expected '$T/agent/AGENT.toml:$line: capabilities.max_memory_mb: REASON' on stderr"
}

t_exit_bad_manifest_unknown_key() {
	local line
	sed -i 's/^\[capabilities\]$/[capabilities]\nroot = true/' "$T/agent/AGENT.toml"
	line=$(grep -n '^root = true' "$T/agent/AGENT.toml" | cut -d: -f1)
	probe exit 0
	expect_rc 125 "a bad manifest"
	grep -qF "$T/agent/AGENT.toml:$line: capabilities.root: " "$ERR" ||
		fail "expected '$T/agent/AGENT.toml:$line: capabilities.root: REASON' on stderr"
}

# ---- paths cage refuses to bind ----

# expect_refused WHY: cage exits 125 before anything runs, naming the manifest and WHY.
expect_refused() {
	probe exit 0
	expect_rc 125 "a manifest path cage must refuse"
	grep -qF "$T/agent/AGENT.toml: " "$ERR" || fail "expected the manifest named on stderr"
	grep -qF -- "$1" "$ERR" || fail "expected '$1' on stderr"
	[ ! -s "$OUT" ] || fail "nothing may run, but the agent printed something"
}

# A read path that is a symlink (here to the host's /): whoever can write its directory could
# repoint it between runs. Unprotected: the host's / appears inside.
t_refuse_symlink_path() {
	ln -s / "$T/link-to-root"
	sed -i "s|^read = .*|read = [\"$T/ro\", \"$T/link-to-root\"]|" "$T/agent/AGENT.toml"
	expect_refused "resolves through a symlink to /"
}

# A symlink in the middle of the path counts too.
t_refuse_symlink_component() {
	mkdir "$T/real"
	ln -s "$T/real" "$T/alias"
	mkdir "$T/real/data"
	sed -i "s|^read = .*|read = [\"$T/alias/data\"]|" "$T/agent/AGENT.toml"
	expect_refused "resolves through a symlink to $T/real/data"
}

# The sandbox's own /proc (hidepid, masks) must not be covered by the host's.
t_refuse_reserved_proc() {
	sed -i 's|^read = .*|read = ["/proc"]|' "$T/agent/AGENT.toml"
	expect_refused "/proc belongs to the sandbox"
}

t_refuse_reserved_dev() {
	sed -i 's|^write = .*|write = ["/dev/shm"]|' "$T/agent/AGENT.toml"
	expect_refused "/dev belongs to the sandbox"
}

# A write path that holds the agent's own directory would let it rewrite its manifest.
t_refuse_write_own_manifest() {
	sed -i "s|^write = .*|write = [\"$T\"]|" "$T/agent/AGENT.toml"
	expect_refused "contains the agent's own directory"
}

# uid 0 without capabilities still owns root's files.
t_refuse_uid_zero() {
	run_cage --uid 0 -- /agent/probe exit 0
	expect_rc 2 "--uid 0"
	grep -qF "an agent never runs as root" "$ERR" || fail "expected the reason on stderr"
}

# ---- credentials and the ctxgraph socket ----

# credential_refs: the agent holds placeholders, never a secret; the one nulld passes is used,
# the others are made up; a real value only through NULLBOX_INJECT_NAME in cage's environment.
t_credentials_placeholders() {
	sed -i 's/^\[capabilities\]$/[capabilities]\ncredential_refs = ["API_KEY", "OTHER_KEY"]/' \
		"$T/agent/AGENT.toml"
	env NULLBOX_INJECT_OTHER_KEY=the-real-secret "$NULLBOX_CAGE" run \
		--manifest "$T/agent/AGENT.toml" --placeholder API_KEY=NULLBOX_PLACEHOLDER_given1 \
		-- /agent/probe env >"$OUT" 2>"$ERR" || fail "cage failed"
	grep -qx "API_KEY=NULLBOX_PLACEHOLDER_given1" "$OUT" || fail "the given placeholder is missing"
	grep -qx "OTHER_KEY=the-real-secret" "$OUT" || fail "the injected value is missing"
	RC=0
	"$NULLBOX_CAGE" run --manifest "$T/agent/AGENT.toml" -- /agent/probe env >"$OUT" 2>"$ERR" ||
		RC=$?
	grep -qE "^API_KEY=NULLBOX_PLACEHOLDER_[0-9a-f]{32}$" "$OUT" ||
		fail "expected a made-up placeholder for API_KEY"
	grep -q "the-real-secret" "$OUT" && fail "a secret reached the agent without injection"
	return 0
}

t_credentials_refused() {
	sed -i 's/^\[capabilities\]$/[capabilities]\ncredential_refs = ["API_KEY"]/' \
		"$T/agent/AGENT.toml"
	run_cage --placeholder NOT_MINE=NULLBOX_PLACEHOLDER_x -- /agent/probe exit 0
	expect_rc 125 "a placeholder for a credential the manifest does not name"
	grep -qF "not one of the manifest's credential_refs" "$ERR" || fail "expected the reason"
	run_cage --placeholder API_KEY=sk-live-secret -- /agent/probe exit 0
	expect_rc 125 "a real-looking value passed as a placeholder"
}

# --ctxgraph-socket: the socket appears at /run/nullbox/ctxgraph.sock and the agent can connect.
t_ctxgraph_socket_bound() {
	local sock=$T/ctx.sock
	python3 -c '
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666); s.listen(1)
s.settimeout(20)
c, _ = s.accept(); c.sendall(b"hello from the host side\n"); time.sleep(0.2)' "$sock" &
	local srv=$!
	for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
	run_cage --ctxgraph-socket "$sock" -- /usr/bin/python3 -c '
import socket
s = socket.socket(socket.AF_UNIX)
s.connect("/run/nullbox/ctxgraph.sock")
print(s.makefile().readline().strip())'
	wait "$srv" || true
	expect_rc 0
	grep -qx "hello from the host side" "$OUT" || fail "the agent could not talk over its socket"
}

# ---- --json ----

# --json-fd: the result goes where only cage writes; a look-alike line the agent prints on stdout
# changes nothing.
t_json_fd() {
	local res=$T/result.json
	RC=0
	"$NULLBOX_CAGE" run --json-fd 3 --manifest "$T/agent/AGENT.toml" -- /agent/probe exit 7 \
		3>"$res" >"$OUT" 2>"$ERR" || RC=$?
	expect_rc 7
	python3 - "$res" <<'PY' || fail "the result on fd 3 is not the agent's real outcome: $(cat "$res")"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1, lines
r = json.loads(lines[0])
assert r["status"] == "exited" and r["exit_code"] == 7, r
PY
	grep -q '"status"' "$OUT" && fail "the result was printed on stdout too"
	return 0
}

t_json_result() {
	local f
	run_cage --json -- /agent/probe exit 3
	expect_rc 3
	tail -n 1 "$OUT" | python3 -c '
import json, sys
o = json.loads(sys.stdin.read())
need = {"agent": str, "status": str, "exit_code": int, "signal": int, "oom_kills": int,
        "cpu_usec": int, "wall_usec": int, "cgroup": str, "landlock_abi": int}
bad = [k for k, t in need.items() if not isinstance(o.get(k), t)]
sys.exit("missing or mistyped: " + ", ".join(bad) if bad else 0)' ||
		fail "--json: the last line is not the result object with every field"
	[ "$(json_field agent)" = "$AGENT_NAME" ] || fail "--json agent: got '$(json_field agent)'"
	[ "$(json_field status)" = exited ] || fail "--json status: expected exited, got '$(json_field status)'"
	[ "$(json_field exit_code)" = 3 ] || fail "--json exit_code: expected 3, got '$(json_field exit_code)'"
	f=$(json_field cgroup)
	case "$f" in v1 | v2 | mixed) ;; *) fail "--json cgroup: expected v1|v2|mixed, got '$f'" ;; esac
	f=$(json_field landlock_abi)
	[ "$f" -ge 1 ] || fail "--json landlock_abi: expected >= 1 on this kernel, got '$f'"
}

# ---- nothing left behind ----

# cage itself is SIGKILLed mid-run: its init dies of PR_SET_PDEATHSIG, the kernel kills the rest
# of the PID namespace. it_check_clean then insists that no process, mount or cgroup is left.
t_cleanup_cage_sigkill() {
	start_sleeping_cage
	kill -KILL "$CAGE_PID"
	wait_cage
	expect_rc 137 "cage itself was SIGKILLed"
	for _ in $(seq 1 50); do
		kill -0 "$PROBE_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [ -d "/proc/$PROBE_PID" ] &&
		[ "$(stat -L -c %d:%i "/proc/$PROBE_PID/exe" 2>/dev/null)" = "$PROBE_ID" ]; then
		die "the agent (host pid $PROBE_PID) still runs 5 s after cage was SIGKILLed"
	fi
}

it_main "$@"
