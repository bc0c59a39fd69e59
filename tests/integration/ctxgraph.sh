#!/usr/bin/env bash
# ctxgraph, for real: the service on its own in a temporary state and run dir (or under nulld),
# agents talking to their own sockets as uid 65534, from the host and from real cages, through
# the example client (examples/ctxgraph-client/ctx.py). One meson test per function t_NAME.
#
#   NULLBOX_CTXGRAPH, NULLBOX_CAGE, NULLBOX_NULLD, NULLBOX_NULLCTL  the binaries under test
# Exit status: 0 pass, 1 fail, 77 skip (not root), 99 broken test.
set -euo pipefail

readonly AGENT_UID=65534
# The system's Python: uid 65534 cannot run one installed under /root (pyenv and the like).
readonly PY=/usr/bin/python3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLIENT_SRC=$HERE/../../examples/ctxgraph-client/ctx.py

W=""        # work dir
RUN=""      # ctxgraph's run dir
STATE=""    # ctxgraph's state dir
CTX_PID=""  # the ctxgraph we started
NULLD_PID=""
NAME_TAG="it$$"

die() {
	echo "FAIL: $*" >&2
	for f in ctx.log nulld.log; do
		if [ -n "$W" ] && [ -f "$W/$f" ]; then
			echo "---- $f (last 30 lines):" >&2
			tail -30 "$W/$f" >&2
		fi
	done
	exit 1
}

skip() {
	echo "SKIP: $*" >&2
	exit 77
}

# ---- ctxgraph ----

# ctx_start [ARGS]: starts ctxgraph on $STATE/$RUN and waits until its control socket answers.
ctx_start() {
	"$NULLBOX_CTXGRAPH" --state-dir "$STATE" --run-dir "$RUN" "$@" >>"$W/ctx.log" 2>&1 &
	CTX_PID=$!
	for _ in $(seq 100); do
		[ -S "$RUN/ctxgraph.sock" ] && op ctx.stats '{}' >/dev/null 2>&1 && return 0
		kill -0 "$CTX_PID" 2>/dev/null || die "ctxgraph exited at start"
		sleep 0.05
	done
	die "ctxgraph did not answer within 5 s"
}

ctx_stop() {
	[ -n "$CTX_PID" ] || return 0
	kill -TERM "$CTX_PID" 2>/dev/null || true
	wait "$CTX_PID" 2>/dev/null || true
	CTX_PID=""
}

ctx_kill9() {
	kill -KILL "$CTX_PID"
	wait "$CTX_PID" 2>/dev/null || true
	CTX_PID=""
}

# op METHOD PARAMS: one call on the control socket (as root); prints the result, or fails.
op() {
	"$PY" "$W/client/ctx.py" --socket "$RUN/ctxgraph.sock" call "$1" "$2"
}

# register NAME READ_JSON WRITE_JSON [EXTRA_JSON_MEMBERS]: prints the agent's socket path.
register() {
	op agent.register "{\"name\":\"$1\",\"read\":$2,\"write\":$3${4:+,$4}}" | json_get path
}

# as_agent SOCKET ARGS...: ctx.py ARGS as uid 65534 on SOCKET; stdout, stderr in $W/err.
as_agent() {
	local sock=$1
	shift
	setpriv --reuid "$AGENT_UID" --regid "$AGENT_UID" --clear-groups \
		"$PY" "$W/client/ctx.py" --socket "$sock" "$@" 2>"$W/err"
}

json_get() {
	python3 -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(json.dumps(v) if isinstance(v, (dict, list)) else v)' "$1"
}

# lines_get KEY: field KEY of every JSON object on stdin (one per line, or a JSON array).
lines_get() {
	python3 -c 'import json, sys
text = sys.stdin.read()
try:
    items = json.loads(text)
    items = items if isinstance(items, list) else [items]
except ValueError:
    items = [json.loads(l) for l in text.splitlines() if l.strip()]
for v in items:
    for k in sys.argv[1].split("."):
        v = v[k]
    print(v)' "$1"
}

log_has() {
	grep -qF -- "$1" "$W/ctx.log"
}

count_entries() {
	op ctx.stats '{}' | json_get entries
}

cleanup() {
	if [ -n "$NULLD_PID" ]; then
		kill -KILL "$NULLD_PID" 2>/dev/null || true
		wait "$NULLD_PID" 2>/dev/null || true
	fi
	if [ -n "$CTX_PID" ]; then
		kill -KILL "$CTX_PID" 2>/dev/null || true
		wait "$CTX_PID" 2>/dev/null || true
	fi
	[ -n "$W" ] && rm -rf -- "$W"
	return 0
}

# Nothing of this test may remain: processes running from $W.
check_clean() {
	local left=""
	for _ in $(seq 40); do
		left=$(for p in /proc/[0-9]*; do
			[ "${p#/proc/}" = "$$" ] && continue
			{ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$W" && echo "${p#/proc/}"
		done || true)
		[ -z "$left" ] && break
		sleep 0.1
	done
	[ -z "$left" ] || die "processes left on the host: $left"
}

# ---- the service on its own ----

# Socket files and their modes; root only on the control socket, by SO_PEERCRED too.
t_ctxgraph_sockets() {
	ctx_start
	[ "$(stat -c %a "$RUN/ctxgraph.sock")" = 600 ] || die "control socket mode $(stat -c %a "$RUN/ctxgraph.sock")"
	[ "$(stat -c %a "$RUN/ctxgraph")" = 711 ] || die "agent socket dir mode $(stat -c %a "$RUN/ctxgraph")"
	[ "$(stat -c %a "$STATE/ctxgraph.db")" = 600 ] || die "database mode $(stat -c %a "$STATE/ctxgraph.db")"
	local sock
	sock=$(register web '["shared/"]' '["shared/"]')
	[ "$sock" = "$RUN/ctxgraph/web.sock" ] || die "agent socket at '$sock'"
	[ "$(stat -c %a "$sock")" = 666 ] || die "agent socket mode $(stat -c %a "$sock")"
	# uid 65534 cannot list the agent directory, nor use the control socket.
	setpriv --reuid "$AGENT_UID" --regid "$AGENT_UID" --clear-groups ls "$RUN/ctxgraph" \
		>/dev/null 2>&1 && die "uid $AGENT_UID could list the agent socket directory"
	if as_agent "$RUN/ctxgraph.sock" call ctx.stats '{}' >/dev/null; then
		die "uid $AGENT_UID used the control socket"
	fi
	# Even with the file opened up, SO_PEERCRED keeps it out.
	chmod 0666 "$RUN/ctxgraph.sock"
	if as_agent "$RUN/ctxgraph.sock" call ctx.stats '{}' >/dev/null; then
		die "uid $AGENT_UID used the control socket once its mode allowed it"
	fi
	grep -q "permission denied" "$W/err" || die "expected a refusal by peer uid: $(cat "$W/err")"
	# A second ctxgraph on the same run dir refuses to start and leaves the first alone.
	if "$NULLBOX_CTXGRAPH" --state-dir "$STATE" --run-dir "$RUN" >"$W/second.log" 2>&1; then
		die "a second ctxgraph started on the same run dir"
	fi
	op ctx.stats '{}' >/dev/null || die "the first ctxgraph stopped answering"
	# Unregistered: the socket goes.
	op agent.unregister '{"name":"web"}' >/dev/null
	[ -e "$sock" ] && die "the socket of an unregistered agent is still there"
	ctx_stop
	[ -e "$RUN/ctxgraph.sock" ] && die "the control socket is left after SIGTERM"
	check_clean
}

# An agent (uid 65534, as in its cage) writes, reads and queries through its own socket.
t_ctxgraph_agent_write_read() {
	ctx_start
	local sock out h1 h2
	sock=$(register alice '["shared/"]' '["shared/", "alice/"]')
	out=$(as_agent "$sock" write shared/greeting '{"text": "hello", "n": 1}') ||
		die "write failed: $(cat "$W/err")"
	h1=$(json_get hash <<<"$out")
	[ "$(json_get created <<<"$out")" = True ] || die "first write not created: $out"
	# Idempotent: the same entry (keys in another order) is the same hash, not a new entry.
	out=$(as_agent "$sock" write shared/greeting '{"n": 1, "text": "hello"}')
	h2=$(json_get hash <<<"$out")
	[ "$h1" = "$h2" ] || die "the same write gave two hashes: $h1 $h2"
	[ "$(json_get created <<<"$out")" = False ] || die "a repeat was created again: $out"
	# The hash is SHA-256(agent 0 key 0 canonical JSON).
	local want
	want=$(python3 -c 'import hashlib; print(hashlib.sha256(b"alice\0shared/greeting\0{\"n\":1,\"text\":\"hello\"}").hexdigest())')
	[ "$h1" = "$want" ] || die "hash $h1, expected $want"
	out=$(as_agent "$sock" read shared/greeting) || die "read failed: $(cat "$W/err")"
	[ "$(json_get agent <<<"$out")" = alice ] || die "the entry's agent: $out"
	[ "$(json_get value.text <<<"$out")" = hello ] || die "the entry's value: $out"
	as_agent "$sock" write alice/notes '[1, 2, 3]' >/dev/null
	as_agent "$sock" write shared/greeting '{"text": "hello again"}' >/dev/null
	out=$(as_agent "$sock" query shared/) || die "query failed: $(cat "$W/err")"
	[ "$(wc -l <<<"$out")" = 1 ] || die "query: expected the latest of one key: $out"
	[ "$(json_get value.text <<<"$out")" = "hello again" ] || die "query: not the latest: $out"
	out=$(as_agent "$sock" history shared/greeting)
	[ "$(wc -l <<<"$out")" = 2 ] || die "history: expected 2 entries: $out"
	[ "$(head -1 <<<"$out" | json_get value.text)" = hello ] || die "history: not oldest first"
	[ "$(count_entries)" = 3 ] || die "expected 3 entries, got $(count_entries)"
	ctx_stop
	check_clean
}

# A request that claims another agent's id is refused, and the attempt is on the record.
t_ctxgraph_forged_agent() {
	ctx_start
	local sock
	sock=$(register alice '["shared/"]' '["shared/"]')
	register bob '["shared/"]' '["shared/"]' >/dev/null
	if as_agent "$sock" call ctx.write '{"agent": "bob", "key": "shared/x", "value": 1}' \
		>/dev/null; then
		die "a write claiming to be bob was accepted on alice's socket"
	fi
	grep -q "error 10: permission denied: this socket belongs to agent alice" "$W/err" ||
		die "unexpected refusal: $(cat "$W/err")"
	log_has 'alice: ctx.forge "bob" (ctx.write): denied' || die "the forgery was not logged"
	if as_agent "$sock" call ctx.write_batch \
		'{"entries": [{"key": "shared/y", "value": 1, "agent": "bob"}]}' >/dev/null; then
		die "a batch entry claiming to be bob was accepted"
	fi
	[ "$(count_entries)" = 0 ] || die "a forged write was stored"
	# Claiming to be itself is no forgery.
	as_agent "$sock" call ctx.write '{"agent": "alice", "key": "shared/x", "value": 1}' \
		>/dev/null || die "a write naming its own agent was refused: $(cat "$W/err")"
	[ "$(op ctx.read '{"key": "shared/x"}' | json_get agent)" = alice ] ||
		die "the entry is not alice's"
	ctx_stop
	check_clean
}

# ACLs: reads and writes outside the agent's prefixes are refused and logged.
t_ctxgraph_acl() {
	ctx_start
	local a b
	a=$(register alice '["shared/"]' '["shared/", "alice/"]')
	b=$(register bob '["shared/"]' '["shared/", "bob/"]')
	as_agent "$b" write bob/private '"bob only"' >/dev/null || die "bob's own write failed"
	as_agent "$a" write alice/private '"alice only"' >/dev/null || die "alice's own write failed"
	if as_agent "$a" write bob/x 1 >/dev/null; then
		die "alice wrote under bob/"
	fi
	grep -q "may not write key" "$W/err" || die "unclear refusal: $(cat "$W/err")"
	if as_agent "$a" read bob/private >/dev/null; then
		die "alice read bob/private"
	fi
	grep -q "may not read key" "$W/err" || die "unclear refusal: $(cat "$W/err")"
	if as_agent "$a" query bob/ >/dev/null; then
		die "alice queried bob/"
	fi
	if as_agent "$a" history bob/private >/dev/null; then
		die "alice read bob/private's history"
	fi
	# A query over everything shows alice her own entries and shared/, never bob/private.
	local out
	out=$(as_agent "$a" query "") || die "query failed: $(cat "$W/err")"
	grep -q bob/private <<<"$out" && die "bob's private entry leaked into alice's query"
	grep -q alice/private <<<"$out" || die "alice does not see her own entry"
	out=$(as_agent "$a" by-agent bob) || die "by-agent failed: $(cat "$W/err")"
	[ -z "$out" ] || die "by-agent showed bob's private entry to alice: $out"
	log_has 'alice: ctx.write "bob/x" (ctx.write): denied' || die "the write refusal was not logged"
	log_has 'alice: ctx.read "bob/private" (ctx.read): denied' || die "the read refusal was not logged"
	[ "$(count_entries)" = 2 ] || die "expected 2 entries"
	ctx_stop
	check_clean
}

# Two agents' sockets are two identities: the same key and value are two entries, each the
# writer's, and neither socket can speak for the other.
t_ctxgraph_two_agents() {
	ctx_start
	local a b ha hb
	a=$(register alice '["shared/"]' '["shared/"]')
	b=$(register bob '["shared/"]' '["shared/"]')
	ha=$(as_agent "$a" write shared/k '"same"' | json_get hash)
	hb=$(as_agent "$b" write shared/k '"same"' | json_get hash)
	[ -n "$ha" ] && [ -n "$hb" ] && [ "$ha" != "$hb" ] || die "hashes $ha and $hb"
	local out
	out=$(as_agent "$a" history shared/k)
	[ "$(sed -n 1p <<<"$out" | json_get agent)" = alice ] || die "first entry not alice's: $out"
	[ "$(sed -n 2p <<<"$out" | json_get agent)" = bob ] || die "second entry not bob's: $out"
	[ "$(op ctx.by_agent '{"agent": "bob"}' | json_get entries.0.hash)" = "$hb" ] ||
		die "by_agent bob"
	# Many connections at once on both sockets, each write under its socket's name.
	local pids=()
	for i in $(seq 10); do
		as_agent "$a" write "shared/a$i" "$i" >/dev/null &
		pids+=($!)
		as_agent "$b" write "shared/b$i" "$i" >/dev/null &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || die "a concurrent write failed"
	done
	local keys
	keys=$(op ctx.by_agent '{"agent": "alice"}' | json_get entries | lines_get key)
	[ "$(wc -l <<<"$keys")" = 11 ] && ! grep -q '^shared/b' <<<"$keys" ||
		die "alice's entries are not all hers: $keys"
	ctx_stop
	check_clean
}

# The write rate: refused with a reason once over it.
t_ctxgraph_rate_limit() {
	ctx_start --write-rate 5 --write-burst 5
	local sock
	sock=$(register alice '[]' '["r/"]')
	python3 - "$W/client" "$sock" <<'PY' || die "rate limit not as expected"
import sys
sys.path.insert(0, sys.argv[1])
import ctx
c = ctx.Client(sys.argv[2])
for i in range(5):
    c.write("r/%d" % i, i)
try:
    c.write("r/5", 5)
    sys.exit("the 6th write went through")
except ctx.Error as e:
    assert e.code == 12 and "rate limited" in e.message, e
    assert e.data["retry_after_ms"] > 0, e.data
PY
	ctx_stop
	check_clean
}

# kill -9 during a burst of acknowledged writes: after a restart every acknowledged entry is
# there (WAL + synchronous=FULL; a process crash is the case a test can make happen).
t_ctxgraph_kill9_durability() {
	ctx_start
	local sock
	sock=$(register burst '["b/"]' '["b/"]' '"rate": 1000000, "burst": 1000000')
	cat >"$W/burst.py" <<'PY'
import sys, time
sys.path.insert(0, sys.argv[1])
import ctx
sock, n, out = sys.argv[2], sys.argv[3], sys.argv[4]
c = ctx.Client(sock)
with open(out, "w") as f:
    i = 0
    try:
        while True:
            r = c.write_batch([("b/%s/%d" % (n, i), {"i": i}), ("b/%s/%d/x" % (n, i), i)]) \
                if i % 3 == 0 else c.write("b/%s/%d" % (n, i), {"i": i, "w": n})
            hashes = r["hashes"] if "hashes" in r else [r["hash"]]
            for h in hashes:
                f.write(h + "\n")
            f.flush()
            i += 1
    except (ctx.Error, OSError) as e:
        f.write("END %s\n" % e)
PY
	chmod 0644 "$W/burst.py"
	local pids=()
	for n in 1 2 3 4; do
		: >"$W/acked.$n"
		chown "$AGENT_UID" "$W/acked.$n"
		setpriv --reuid "$AGENT_UID" --regid "$AGENT_UID" --clear-groups \
			"$PY" "$W/burst.py" "$W/client" "$sock" "$n" "$W/acked.$n" &
		pids+=($!)
	done
	# Let the burst run, then kill ctxgraph in the middle of it.
	sleep 1.5
	local before
	before=$(cat "$W"/acked.* | grep -vc '^END' || true)
	[ "$before" -gt 20 ] || die "only $before writes acknowledged before the kill"
	ctx_kill9
	for p in "${pids[@]}"; do
		wait "$p" || die "a writer failed unexpectedly"
	done
	local ended
	ended=$(cat "$W"/acked.* | grep -c '^END' || true)
	[ "$ended" = 4 ] || die "not every writer saw the kill ($ended of 4)"
	cat "$W"/acked.* | grep -v '^END' | sort -u >"$W/acked"
	# Restart: the database opens, the stale agent socket is gone until registered again.
	[ -S "$RUN/ctxgraph/burst.sock" ] || die "expected the killed ctxgraph's socket to be left"
	ctx_start
	[ -e "$RUN/ctxgraph/burst.sock" ] && die "the stale agent socket was not removed"
	python3 - "$W/client" "$RUN/ctxgraph.sock" "$W/acked" "$STATE/ctxgraph.db" <<'PY' >"$W/check" ||
import sqlite3, sys
sys.path.insert(0, sys.argv[1])
import ctx
c = ctx.Client(sys.argv[2])
stored = {e["hash"] for e in c.by_agent("burst")}
acked = {l.strip() for l in open(sys.argv[3]) if l.strip()}
missing = acked - stored
print("acknowledged %d, stored %d, missing %d" % (len(acked), len(stored), len(missing)))
if missing:
    sys.exit("acknowledged but lost: %s" % sorted(missing)[:5])
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[4], uri=True)
assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
PY
		die "acknowledged entries were lost: $(cat "$W/check")"
	echo "kill -9 durability: $(cat "$W/check")"
	# And it works again: a new registration, a new write.
	sock=$(register burst '["b/"]' '["b/"]')
	as_agent "$sock" write b/after '"restart"' >/dev/null || die "no write after the restart"
	ctx_stop
	check_clean
}

# nullctl ctx, as the operator, against ctxgraph's control socket (next to nulld's).
t_ctxgraph_nullctl() {
	ctx_start
	local sock out
	sock=$(register alice '["shared/"]' '["shared/"]')
	as_agent "$sock" write shared/a '{"v": 1}' >/dev/null
	ctl() { "$NULLBOX_NULLCTL" --socket "$RUN/nulld.sock" "$@"; }
	out=$(ctl ctx write bob shared/b '{"v": "\u001b[31mred"}') || die "ctx write failed"
	grep -q '^wrote [0-9a-f]\{64\} (seq 2)$' <<<"$out" || die "ctx write printed: $out"
	out=$(ctl ctx write bob shared/b '{"v": "\u001b[31mred"}')
	grep -q '^already there: ' <<<"$out" || die "a repeat printed: $out"
	out=$(ctl ctx read shared/b) || die "ctx read failed"
	grep -q '^agent: *bob$' <<<"$out" || die "ctx read: $out"
	grep -qiF 'u001b[31mred' <<<"$out" || die "ctx read: the value: $out"
	grep -q $'\x1b' <<<"$out" && die "ctx read printed a raw escape character"
	out=$(ctl ctx query shared/)
	grep -q 'shared/a' <<<"$out" && grep -q 'shared/b' <<<"$out" || die "ctx query: $out"
	[ "$(ctl --json ctx query shared/ --limit 1 | wc -l)" = 1 ] || die "ctx query --limit 1"
	[ "$(ctl --json ctx query | wc -l)" = 2 ] || die "ctx query without a prefix"
	ctl ctx write alice shared/a '{"v": 2}' >/dev/null
	[ "$(ctl --json ctx history shared/a | lines_get value.v | tr '\n' ' ')" = "1 2 " ] ||
		die "ctx history: $(ctl --json ctx history shared/a)"
	[ "$(ctl --json ctx by-agent alice | wc -l)" = 2 ] || die "ctx by-agent"
	local rc=0
	ctl ctx read shared/none >/dev/null 2>"$W/err" || rc=$?
	[ "$rc" = 1 ] && grep -q "no entry" "$W/err" || die "ctx read of a missing key: rc $rc $(cat "$W/err")"
	rc=0
	ctl ctx write bob shared/c '1.5' >/dev/null 2>"$W/err" || rc=$?
	[ "$rc" = 1 ] && grep -q "floating point" "$W/err" || die "a float: rc $rc $(cat "$W/err")"
	rc=0
	ctl ctx write bob shared/c 'not json' >/dev/null 2>"$W/err" || rc=$?
	[ "$rc" = 1 ] && grep -q "not JSON" "$W/err" || die "bad JSON: rc $rc $(cat "$W/err")"
	# The operator's writes are on the record as the operator's.
	log_has 'operator: ctx.write "shared/b" (ctx.write): allowed: written by the operator as agent bob' ||
		die "the operator's write was not logged"
	ctx_stop
	rc=0
	ctl ctx read shared/a >/dev/null 2>"$W/err" || rc=$?
	[ "$rc" = 1 ] && grep -q "ctxgraph is not running" "$W/err" || die "not running: $(cat "$W/err")"
	check_clean
}

# ---- in real cages ----

# cage_agent NAME: an agent dir with the example client and a manifest that reads RUN/ctxgraph.
cage_agent() {
	mkdir -p "$W/$1"
	cp "$CLIENT_SRC" "$W/$1/ctx.py"
	cat >"$W/$1/AGENT.toml" <<EOF
[agent]
name = "$1"
version = "1"
runtime = "python"
entry = "ctx.py"

[capabilities]
max_pids = 16

[capabilities.filesystem]
read = [${2:-}]
EOF
	chmod -R a+rX "$W/$1"
}

# An agent in a real cage writes and reads through its socket, found under the run dir that its
# manifest lets it read (cage binds it read-only): the caged uid-65534 process is the agent.
t_ctxgraph_cage_agent() {
	[ -x "${NULLBOX_CAGE:-}" ] || { echo "BROKEN TEST: NULLBOX_CAGE" >&2; exit 99; }
	ctx_start
	local name="cg-$NAME_TAG" sock out rc=0
	# uid 65534 only: not even root on the host may use this socket.
	sock=$(register "$name" '["shared/"]' '["shared/"]' '"uid": 65534')
	cage_agent "$name" "\"$RUN/ctxgraph\""
	timeout -k 5 60 "$NULLBOX_CAGE" run --manifest "$W/$name/AGENT.toml" -- \
		/usr/bin/python3 /agent/ctx.py --socket "$sock" write shared/from-cage '{"hi": 1}' \
		>"$W/out" 2>"$W/cage.err" || rc=$?
	[ "$rc" = 0 ] || die "write from the cage failed ($rc): $(cat "$W/cage.err")"
	timeout -k 5 60 "$NULLBOX_CAGE" run --manifest "$W/$name/AGENT.toml" -- \
		/usr/bin/python3 /agent/ctx.py --socket "$sock" read shared/from-cage \
		>"$W/out" 2>"$W/cage.err" || die "read from the cage failed: $(cat "$W/cage.err")"
	[ "$(json_get agent <"$W/out")" = "$name" ] || die "entry not the agent's: $(cat "$W/out")"
	[ "$(json_get value.hi <"$W/out")" = 1 ] || die "value: $(cat "$W/out")"
	# The caged process is uid 65534: root on the host is refused on the same socket.
	if python3 "$W/client/ctx.py" --socket "$sock" read shared/from-cage >/dev/null 2>"$W/err"; then
		die "root used a socket registered for uid 65534 only"
	fi
	# From the cage, a forged id is refused there too.
	rc=0
	timeout -k 5 60 "$NULLBOX_CAGE" run --manifest "$W/$name/AGENT.toml" -- \
		/usr/bin/python3 /agent/ctx.py --socket "$sock" call ctx.write \
		'{"agent": "someone-else", "key": "shared/x", "value": 1}' \
		>"$W/out" 2>"$W/cage.err" || rc=$?
	[ "$rc" != 0 ] && grep -q "error 10" "$W/cage.err" || die "forgery from the cage: $(cat "$W/cage.err")"
	ctx_stop
	check_clean
}

# The same through cage --ctxgraph-socket, as nulld runs agents: the client's default path.
t_ctxgraph_cage_socket() {
	[ -x "${NULLBOX_CAGE:-}" ] || { echo "BROKEN TEST: NULLBOX_CAGE" >&2; exit 99; }
	"$NULLBOX_CAGE" --help 2>&1 | grep -q -- --ctxgraph-socket || skip "cage has no --ctxgraph-socket"
	ctx_start
	local name="cs-$NAME_TAG" sock rc=0
	sock=$(register "$name" '["shared/"]' '["shared/"]')
	cage_agent "$name"
	timeout -k 5 60 "$NULLBOX_CAGE" run --manifest "$W/$name/AGENT.toml" \
		--ctxgraph-socket "$sock" -- /usr/bin/python3 -c '
import sys
sys.path.insert(0, "/agent")
import ctx
c = ctx.Client()
h = c.write("shared/bound", [1, 2])["hash"]
assert c.read("shared/bound")["hash"] == h
print(h)' >"$W/out" 2>"$W/cage.err" || rc=$?
	[ "$rc" = 0 ] || die "the caged agent failed ($rc): $(cat "$W/cage.err")"
	[ "$(op ctx.read '{"key": "shared/bound"}' | json_get agent)" = "$name" ] ||
		die "the entry is not the agent's"
	ctx_stop
	check_clean
}

# ---- under nulld ----

# ctxgraph as nulld's service: nulld registers the agent and binds its socket; a forged id is in
# nulld's audit log with ctxgraph as the actor; nullctl ctx reads what the agent wrote.
t_ctxgraph_under_nulld() {
	for b in NULLBOX_NULLD NULLBOX_NULLCTL NULLBOX_CAGE; do
		[ -x "${!b:-}" ] || { echo "BROKEN TEST: $b" >&2; exit 99; }
	done
	local S=$W/nd name="nd-$NAME_TAG"
	mkdir -m 0700 "$S"
	printf '[service.ctxgraph]\nbinary = "%s"\n' "$NULLBOX_CTXGRAPH" >"$W/nulld.toml"
	ctl() { "$NULLBOX_NULLCTL" --state-dir "$S" "$@"; }
	cage_agent "$name"
	cat >"$W/$name/agent.py" <<'PY'
import sys, time
sys.path.insert(0, "/agent")
import ctx
c = ctx.Client()
c.write("shared/from-agent", {"ok": True})
try:
    c.call("ctx.write", {"agent": "root", "key": "shared/forged", "value": 1})
    print("FORGERY ACCEPTED", flush=True)
except ctx.Error as e:
    print("forgery refused: %s" % e.message, flush=True)
time.sleep(1000)
PY
	sed -i 's/^entry = "ctx.py"$/entry = "agent.py"/' "$W/$name/AGENT.toml"
	printf '\n[capabilities.ctxgraph]\nread = ["shared/"]\nwrite = ["shared/"]\n' >>"$W/$name/AGENT.toml"
	chmod -R a+rX "$W/$name"
	"$NULLBOX_NULLD" --state-dir "$S" --config "$W/nulld.toml" >>"$W/nulld.log" 2>&1 &
	NULLD_PID=$!
	local up=""
	for _ in $(seq 100); do
		ctl --json status 2>/dev/null | python3 -c 'import json, sys
s = json.load(sys.stdin)
sys.exit(0 if any(u["name"] == "ctxgraph" and u["state"] == "up" for u in s["services"]) else 1)' \
			2>/dev/null && up=1 && break
		sleep 0.1
	done
	[ -n "$up" ] || die "ctxgraph did not come up under nulld: $(ctl status 2>&1)"
	ctl agent start "$W/$name" >/dev/null || die "agent start failed"
	for _ in $(seq 100); do
		ctl agent logs "$name" 2>/dev/null | grep -q forgery && break
		sleep 0.1
	done
	ctl agent logs "$name" | grep -q "forgery refused: permission denied" ||
		die "the agent's forgery: $(ctl agent logs "$name")"
	[ "$(ctl --json ctx read shared/from-agent | json_get agent)" = "$name" ] ||
		die "nullctl ctx read: $(ctl --json ctx read shared/from-agent 2>&1)"
	ctl --json audit --agent ctxgraph >"$W/audit.out" || die "audit query failed"
	python3 - "$W/audit.out" "$name" <<'PY' || die "no ctx.forge record: $(cat "$W/audit.out")"
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if (r["actor"], r["action"], r["object"], r["verdict"]) == ("ctxgraph", "ctx.forge", "root", "denied") \
            and r.get("detail", {}).get("agent") == sys.argv[2]:
        sys.exit(0)
sys.exit(1)
PY
	ctl shutdown >/dev/null 2>&1 || true
	for _ in $(seq 200); do
		kill -0 "$NULLD_PID" 2>/dev/null || break
		sleep 0.05
	done
	wait "$NULLD_PID" 2>/dev/null || true
	NULLD_PID=""
	check_clean
}

main() {
	local name=${1:-} fn
	fn="t_${name//-/_}"
	if ! declare -F "$fn" >/dev/null; then
		echo "BROKEN TEST: no $fn" >&2
		exit 99
	fi
	[ -x "$PY" ] || skip "$PY is not installed"
	[ "$(id -u)" = 0 ] || skip "ctxgraph tests switch to uid $AGENT_UID and run cages: they need root"
	command -v setpriv >/dev/null || skip "setpriv (util-linux) is not installed"
	if [ ! -x "${NULLBOX_CTXGRAPH:-}" ]; then
		echo "BROKEN TEST: NULLBOX_CTXGRAPH not set or not executable" >&2
		exit 99
	fi
	[ -f "$CLIENT_SRC" ] || { echo "BROKEN TEST: no $CLIENT_SRC" >&2; exit 99; }
	trap cleanup EXIT
	W=$(mktemp -d /var/tmp/nullbox-ctx.XXXXXX)
	chmod 0755 "$W"
	STATE=$W/state
	RUN=$W/run
	mkdir -m 0700 "$STATE"
	# The run dir is traversable, as a cage's view of it is: agents reach their sockets.
	mkdir -m 0755 "$RUN" "$W/client"
	install -m 0644 "$CLIENT_SRC" "$W/client/ctx.py"
	"$fn"
	echo "PASS: $name"
}

main "$@"
