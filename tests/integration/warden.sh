#!/usr/bin/env bash
# warden, for real: the built warden as a standalone process (key from NULLBOX_VAULT_KEY or a key
# file) or as a service of a real nulld, driven through nullctl and through raw JSON-RPC calls
# (python3), as root and as uid 65534 (setpriv). One meson test per function t_NAME.
#
#   NULLBOX_WARDEN, NULLBOX_NULLCTL, NULLBOX_NULLD   the binaries under test
# Exit status: 0 pass, 1 fail, 77 skip (not root), 99 broken test.
set -euo pipefail

W=""      # work dir
S=""      # state dir (the vault is $S/warden/vault, the socket $S/warden.sock)
WD_PID="" # a standalone warden
NULLD_PID=""
KEY="it-master-key-$$"
VALUE="sk-it-VALUE-$$-$RANDOM"

die() {
	echo "FAIL: $*" >&2
	for log in warden.log nulld.log; do
		if [ -n "$W" ] && [ -s "$W/$log" ]; then
			echo "---- $log (last 30 lines):" >&2
			tail -30 "$W/$log" >&2
		fi
	done
	exit 1
}

skip() {
	echo "SKIP: $*" >&2
	exit 77
}

ctl() {
	"$NULLBOX_NULLCTL" --state-dir "$S" "$@"
}

# rpc METHOD PARAMS_JSON [SOCKET]: one JSON-RPC call; prints the reply line. Exit 3 when the
# socket cannot be reached (e.g. EACCES).
rpc() {
	python3 - "${3:-$S/warden.sock}" "$1" "$2" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect: %s" % e)
    sys.exit(3)
req = {"jsonrpc": "2.0", "id": 1, "method": sys.argv[2], "params": json.loads(sys.argv[3])}
s.sendall((json.dumps(req) + "\n").encode())
print(s.makefile().readline().strip())
PY
}

# rpc_as_nobody: rpc as uid/gid 65534 without supplementary groups.
rpc_as_nobody() {
	setpriv --reuid 65534 --regid 65534 --clear-groups bash -c "$(declare -f rpc); S='$S'; rpc \"\$@\"" \
		rpc "$@"
}

# wd_start [ARGS]: a standalone warden on $S with NULLBOX_VAULT_KEY=$KEY (unless KEY is empty);
# waits until its socket answers.
wd_start() {
	local envs=(-u NULLBOX_SOCKET -u NULLBOX_VAULT_KEY)
	[ -n "$KEY" ] && envs+=("NULLBOX_VAULT_KEY=$KEY")
	env "${envs[@]}" "$NULLBOX_WARDEN" --state-dir "$S" "$@" </dev/null >>"$W/warden.log" 2>&1 &
	WD_PID=$!
	for _ in $(seq 200); do
		if [ -S "$S/warden.sock" ] && rpc vault.list '{}' >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$WD_PID" 2>/dev/null || die "warden exited at start"
		sleep 0.05
	done
	die "warden did not answer within 10 s"
}

# wd_stop: SIGTERM; warden must exit 0 and remove its socket.
wd_stop() {
	[ -n "$WD_PID" ] || return 0
	kill -TERM "$WD_PID"
	local rc=0
	wait "$WD_PID" || rc=$?
	WD_PID=""
	[ "$rc" = 0 ] || die "warden exited $rc on SIGTERM"
	[ ! -e "$S/warden.sock" ] || die "warden left its socket behind"
}

# wd_run_fails ARGS: runs warden expecting it to refuse to start; its stderr in $W/err.
wd_run_fails() {
	local rc=0
	env -u NULLBOX_SOCKET NULLBOX_VAULT_KEY="$KEY" timeout 20 "$NULLBOX_WARDEN" --state-dir "$S" \
		"$@" </dev/null >"$W/err" 2>&1 || rc=$?
	[ "$rc" != 0 ] || die "warden started where it should have refused: $(cat "$W/err")"
	[ "$rc" != 124 ] || die "warden hung instead of refusing"
}

cleanup() {
	for p in "$WD_PID" "$NULLD_PID"; do
		if [ -n "$p" ]; then
			kill -KILL "$p" 2>/dev/null || true
			wait "$p" 2>/dev/null || true
		fi
	done
	[ -n "$W" ] && rm -rf -- "$W"
	return 0
}

# ---- tests ----

# nullctl vault set/list/bind/delete against a standalone warden; list never shows a value; the
# files and the socket have the modes they must.
t_warden_vault_cli() {
	wd_start
	[ "$(stat -c %a "$S/warden")" = 700 ] || die "vault dir is $(stat -c %a "$S/warden")"
	[ "$(stat -c %a "$S/warden/vault")" = 600 ] || die "vault is $(stat -c %a "$S/warden/vault")"
	[ "$(stat -c %a "$S/warden.sock")" = 600 ] || die "socket is $(stat -c %a "$S/warden.sock")"

	printf '%s\n' "$VALUE" | ctl vault set OPENAI_API_KEY >"$W/out" 2>"$W/err" ||
		die "vault set from stdin failed: $(cat "$W/err")"
	grep -q 'stored OPENAI_API_KEY (new, inject placeholder)' "$W/out" ||
		die "vault set printed: $(cat "$W/out")"
	[ ! -s "$W/err" ] || die "vault set from stdin warned: $(cat "$W/err")"
	ctl vault set DB_PASSWORD --value "db-$VALUE" --inject env >"$W/out" 2>"$W/err" ||
		die "vault set --value failed: $(cat "$W/err")"
	grep -q 'warning: --value puts the secret on the command line' "$W/err" ||
		die "no warning for --value: $(cat "$W/err")"
	ctl vault bind OPENAI_API_KEY api.openai.com '*.Example.com' >"$W/out" ||
		die "vault bind failed"
	grep -q 'bound OPENAI_API_KEY to \*.example.com, api.openai.com' "$W/out" ||
		die "vault bind printed: $(cat "$W/out")"
	local rc=0
	ctl vault bind OPENAI_API_KEY 10.0.0.1 >"$W/out" 2>&1 || rc=$?
	[ "$rc" = 1 ] && grep -q 'IP addresses are not allowed' "$W/out" ||
		die "an IP address was bound (exit $rc): $(cat "$W/out")"

	ctl vault list >"$W/list" || die "vault list failed"
	ctl --json vault list >"$W/list.json" || die "vault list --json failed"
	grep -q "^OPENAI_API_KEY  *placeholder  *\*.example.com, api.openai.com$" "$W/list" ||
		die "vault list: $(cat "$W/list")"
	grep -q "^DB_PASSWORD  *env  *-$" "$W/list" || die "vault list: $(cat "$W/list")"
	if grep -qF -- "$VALUE" "$W/list" "$W/list.json" "$W/warden.log" "$S/warden/vault"; then
		die "a value shows in vault list, the log or the vault file"
	fi
	python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
names = [s["name"] for s in d["secrets"]]
assert names == ["DB_PASSWORD", "OPENAI_API_KEY"], names
assert all(set(s) == {"name", "inject", "hosts"} for s in d["secrets"])' "$W/list.json" ||
		die "vault list --json: $(cat "$W/list.json")"

	ctl vault delete DB_PASSWORD >"$W/out" || die "vault delete failed"
	grep -q '^deleted DB_PASSWORD$' "$W/out" || die "vault delete printed: $(cat "$W/out")"
	rc=0
	ctl vault delete DB_PASSWORD >"$W/out" 2>&1 || rc=$?
	[ "$rc" = 1 ] && grep -q 'no secret named DB_PASSWORD' "$W/out" ||
		die "deleting a missing secret: exit $rc, $(cat "$W/out")"
	ctl vault list | grep -q DB_PASSWORD && die "deleted secret still listed"
	rc=0
	ctl vault set '1BAD' --value x >"$W/out" 2>&1 || rc=$?
	[ "$rc" = 1 ] || die "an invalid name was stored (exit $rc)"
	rc=0
	ctl vault set X --inject file >"$W/out" 2>&1 </dev/null || rc=$?
	[ "$rc" = 2 ] || die "--inject file: expected a usage error, got exit $rc"
	grep -q 'audit: secret.set OPENAI_API_KEY allowed' "$W/warden.log" ||
		die "standalone warden did not log the audit record"
	wd_stop
	rc=0
	ctl vault list >"$W/out" 2>&1 || rc=$?
	[ "$rc" = 1 ] && grep -q 'warden is not running' "$W/out" ||
		die "nullctl with no warden: exit $rc, $(cat "$W/out")"
}

# vault.get as root hands out the value for a bound host, and only then.
t_warden_get_root() {
	wd_start
	ctl vault set K --value "$VALUE" >/dev/null 2>&1 || die "vault set failed"
	ctl vault bind K api.example.com >/dev/null || die "vault bind failed"
	rpc vault.get '{"name":"K","host":"api.example.com","agent":"it"}' >"$W/out"
	python3 -c 'import json, sys
r = json.loads(open(sys.argv[1]).read())["result"]
assert r["value"] == sys.argv[2] and r["name"] == "K", r' "$W/out" "$VALUE" ||
		die "vault.get: $(cat "$W/out")"
	rpc vault.get '{"name":"K","host":"evil.example.org"}' >"$W/out"
	grep -q '"code": *3' "$W/out" && ! grep -qF -- "$VALUE" "$W/out" ||
		die "vault.get for an unbound host: $(cat "$W/out")"
	rpc vault.get '{"name":"K"}' >"$W/out"
	grep -q 'injected as a placeholder' "$W/out" ||
		die "vault.get without a host for a placeholder secret: $(cat "$W/out")"
	grep -q 'audit: secret.read K allowed: for api.example.com by it' "$W/warden.log" ||
		die "the read was not logged as an audit record"
	grep -q 'audit: secret.read K denied: for evil.example.org' "$W/warden.log" ||
		die "the refused read was not logged as an audit record"
	! grep -qF -- "$VALUE" "$W/warden.log" || die "the value is in warden's log"
	wd_stop
}

# uid 65534: refused by the socket's mode, and when the mode is opened up, by SO_PEERCRED.
t_warden_non_root_refused() {
	wd_start
	ctl vault set K --value "$VALUE" >/dev/null 2>&1 || die "vault set failed"
	ctl vault bind K api.example.com >/dev/null || die "vault bind failed"
	chmod 0711 "$S"
	local rc=0
	rpc_as_nobody vault.get '{"name":"K","host":"api.example.com"}' >"$W/out" 2>&1 || rc=$?
	[ "$rc" = 3 ] && grep -q 'Permission denied' "$W/out" ||
		die "uid 65534 reached the 0600 socket (exit $rc): $(cat "$W/out")"
	rc=0
	setpriv --reuid 65534 --regid 65534 --clear-groups "$NULLBOX_NULLCTL" --state-dir "$S" \
		vault list >"$W/out" 2>&1 || rc=$?
	[ "$rc" = 1 ] && grep -q 'only root may use the vault' "$W/out" ||
		die "nullctl as uid 65534: exit $rc, $(cat "$W/out")"

	# The second gate: the socket opened to everyone, the peer's uid still decides.
	chmod 0666 "$S/warden.sock"
	rpc_as_nobody vault.get '{"name":"K","host":"api.example.com"}' >"$W/out" 2>&1 || true
	grep -q '"code": *3' "$W/out" && grep -q 'uid 65534' "$W/out" ||
		die "vault.get from uid 65534: $(cat "$W/out")"
	! grep -qF -- "$VALUE" "$W/out" || die "uid 65534 got the value"
	rpc_as_nobody vault.set '{"name":"K","value":"mine"}' >"$W/out" 2>&1 || true
	grep -q '"code": *3' "$W/out" || die "vault.set from uid 65534: $(cat "$W/out")"
	rpc_as_nobody vault.set '{"name":"NEW","value":"mine"}' >"$W/out" 2>&1 || true
	grep -q '"code": *3' "$W/out" || die "vault.set of a new secret from uid 65534: $(cat "$W/out")"
	rpc_as_nobody vault.delete '{"name":"K"}' >"$W/out" 2>&1 || true
	grep -q '"code": *3' "$W/out" || die "vault.delete from uid 65534: $(cat "$W/out")"
	rpc_as_nobody vault.bind '{"name":"K","hosts":["evil.org"]}' >"$W/out" 2>&1 || true
	grep -q '"code": *3' "$W/out" || die "vault.bind from uid 65534: $(cat "$W/out")"
	grep -q 'audit: secret.read K denied: for api.example.com: uid 65534' "$W/warden.log" ||
		die "the refused read was not audited"
	rpc vault.get '{"name":"K","host":"api.example.com"}' | grep -qF -- "$VALUE" ||
		die "the secret changed after the refused calls"
	ctl vault list | grep -q NEW && die "uid 65534 created a secret"
	wd_stop
}

# A restarted warden has the same secrets, hosts and modes.
t_warden_restart_keeps() {
	wd_start
	ctl vault set A --value "a-$VALUE" >/dev/null 2>&1 || die "vault set A failed"
	ctl vault set B --value "b-$VALUE" --inject env >/dev/null 2>&1 || die "vault set B failed"
	ctl vault bind A a.example.com b.example.com >/dev/null || die "vault bind failed"
	ctl --json vault list >"$W/before"
	wd_stop
	wd_start
	ctl --json vault list >"$W/after"
	cmp -s "$W/before" "$W/after" || die "vault list changed: $(cat "$W/before") -> $(cat "$W/after")"
	rpc vault.get '{"name":"A","host":"b.example.com"}' | grep -qF -- "a-$VALUE" ||
		die "A's value after restart"
	rpc vault.get '{"name":"B"}' | grep -qF -- "b-$VALUE" || die "B's value after restart"
	grep -q "unlocked $S/warden/vault (2 secrets" "$W/warden.log" ||
		die "the restart did not unlock the existing vault"
	wd_stop
}

# A wrong key at restart: warden refuses with the file and the reason, and the file is unchanged.
# So are a truncated file and one from a newer format version.
t_warden_wrong_key() {
	wd_start
	ctl vault set A --value "$VALUE" >/dev/null 2>&1 || die "vault set failed"
	wd_stop
	local sum
	sum=$(sha256sum <"$S/warden/vault")
	KEY="not-the-key" wd_run_fails
	grep -q "cannot unlock the vault: $S/warden/vault: wrong master key" "$W/err" ||
		die "unclear error for a wrong key: $(cat "$W/err")"
	[ "$(sha256sum <"$S/warden/vault")" = "$sum" ] || die "the vault changed after a wrong key"
	[ ! -e "$S/warden.sock" ] || die "a socket was created for a locked vault"

	cp "$S/warden/vault" "$W/good"
	head -c 40 "$W/good" >"$S/warden/vault"
	wd_run_fails
	grep -q "$S/warden/vault: truncated" "$W/err" || die "truncated file: $(cat "$W/err")"
	[ "$(stat -c %s "$S/warden/vault")" = 40 ] || die "the truncated vault was overwritten"
	python3 -c 'import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[9] = 9
open(sys.argv[2], "wb").write(b)' "$W/good" "$S/warden/vault"
	wd_run_fails
	grep -q "format version 9 is newer" "$W/err" || die "newer version: $(cat "$W/err")"
	cp "$W/good" "$S/warden/vault"
	wd_start
	rpc vault.list '{}' | grep -q '"A"' || die "the vault no longer opens with the right key"
	wd_stop
}

# --key-file: a 0600 file works (and wins over NULLBOX_VAULT_KEY); 0644 is refused.
t_warden_key_file() {
	printf '%s\n' "$KEY" >"$W/key"
	chmod 0644 "$W/key"
	wd_run_fails --key-file "$W/key"
	grep -q "$W/key: mode 0644 lets other users at the master key" "$W/err" ||
		die "a 0644 key file: $(cat "$W/err")"
	[ ! -e "$S/warden/vault" ] || die "a vault was created with a refused key file"
	chmod 0600 "$W/key"
	KEY="" wd_start --key-file "$W/key"
	ctl vault set A --value "$VALUE" >/dev/null 2>&1 || die "vault set failed"
	wd_stop
	# The same key from the environment (the file's trailing newline is not part of it).
	wd_start
	rpc vault.list '{}' | grep -q '"A"' || die "the key file's key differs from the same text"
	wd_stop
}

# The console: without a key file or NULLBOX_VAULT_KEY, warden asks on its terminal (here a pty)
# without echo, twice for a new vault; a wrong key typed later is refused.
t_warden_console_key() {
	python3 - "$NULLBOX_WARDEN" "$S" "$KEY" >"$W/out" 2>&1 <<'PY' || die "console: $(cat "$W/out")"
import os, pty, select, signal, sys, time
warden, state, key = sys.argv[1], sys.argv[2], sys.argv[3].encode()
env = {k: v for k, v in os.environ.items() if k not in ("NULLBOX_VAULT_KEY", "NULLBOX_SOCKET")}

def run(answers, want_exit):
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(warden, [warden, "--state-dir", state], env)
    seen = b""
    for prompt, answer in answers:
        end = time.time() + 20
        while prompt not in seen:
            if time.time() > end:
                sys.exit("no prompt %r; got %r" % (prompt, seen))
            if select.select([fd], [], [], 0.5)[0]:
                seen += os.read(fd, 4096)
        seen = seen[seen.index(prompt) + len(prompt):]
        os.write(fd, answer + b"\n")
    end = time.time() + 20
    while want_exit is None and not os.path.exists(state + "/warden.sock"):
        if time.time() > end:
            sys.exit("no socket; output %r" % seen)
        time.sleep(0.05)
    if want_exit is None:
        os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    try:
        while select.select([fd], [], [], 0.2)[0]:
            seen += os.read(fd, 4096)
    except OSError:
        pass
    if key in seen or b"wrong-typed" in seen:
        sys.exit("the key was echoed: %r" % seen)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
    if want_exit is not None and code != want_exit:
        sys.exit("exit %d, expected %d: %r" % (code, want_exit, seen))
    return seen

run([(b"new vault: choose a master key", key), (b"the same key again", key)], None)
out = run([(b"vault master key for", b"wrong-typed")], 1)
if b"wrong master key" not in out:
    sys.exit("no clear error for a wrong typed key: %r" % out)
run([(b"vault master key for", key)], None)
print("ok")
PY
	[ -f "$S/warden/vault" ] || die "no vault was created from the console key"
}

# Under nulld: [service.warden] with a key file; a vault.get is audited by nulld as secret.read
# with actor "warden".
t_warden_under_nulld() {
	printf '%s\n' "$KEY" >"$W/key"
	chmod 0600 "$W/key"
	printf '[service.warden]\nbinary = "%s"\nargs = ["--key-file", "%s"]\n' \
		"$NULLBOX_WARDEN" "$W/key" >"$W/nulld.toml"
	"$NULLBOX_NULLD" --state-dir "$S" --config "$W/nulld.toml" >>"$W/nulld.log" 2>&1 &
	NULLD_PID=$!
	local up=""
	for _ in $(seq 200); do
		if ctl --json status 2>/dev/null | python3 -c 'import json, sys
d = json.load(sys.stdin)
sys.exit(0 if any(s["name"] == "warden" and s["state"] == "up" for s in d["services"]) else 1)'; then
			up=1
			break
		fi
		kill -0 "$NULLD_PID" 2>/dev/null || die "nulld exited"
		sleep 0.05
	done
	[ -n "$up" ] || die "warden did not come up under nulld: $(ctl status 2>&1)"
	[ -S "$S/warden.sock" ] || die "no warden.sock next to nulld.sock"
	ctl vault set K --value "$VALUE" >/dev/null 2>&1 || die "vault set failed"
	ctl vault bind K api.example.com >/dev/null || die "vault bind failed"
	rpc vault.get '{"name":"K","host":"api.example.com","agent":"it-agent"}' >"$W/out"
	grep -qF -- "$VALUE" "$W/out" || die "vault.get under nulld: $(cat "$W/out")"
	rpc vault.get '{"name":"K","host":"evil.example.org","agent":"it-agent"}' >/dev/null
	# nulld appends the record when its loop gets to warden's request.
	local found=""
	for _ in $(seq 50); do
		ctl --json audit >"$W/audit" 2>&1 || die "nullctl audit failed: $(cat "$W/audit")"
		if python3 - "$W/audit" <<'PY'; then
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
recs = [r for rec in recs for r in (rec.get("records") or [rec])]
ok = any(r.get("actor") == "warden" and r.get("action") == "secret.read" and
         r.get("object") == "K" and r.get("verdict") == "allowed" and
         r.get("reason") == "for api.example.com by it-agent" for r in recs)
bad = any(r.get("actor") == "warden" and r.get("action") == "secret.read" and
          r.get("verdict") == "denied" and "evil.example.org" in r.get("reason", "") for r in recs)
sys.exit(0 if ok and bad else 1)
PY
			found=1
			break
		fi
		sleep 0.1
	done
	[ -n "$found" ] || die "no secret.read records by warden in the audit log: $(cat "$W/audit")"
	! grep -qF -- "$VALUE" "$W/audit" "$W/nulld.log" "$S/audit"/* 2>/dev/null ||
		die "the value is in the audit log or nulld's log"
	grep -q 'secret.set' "$W/audit" || die "vault set was not audited"
	ctl audit verify >/dev/null || die "the audit log does not verify"
	ctl shutdown >/dev/null 2>&1 || kill -TERM "$NULLD_PID"
	wait "$NULLD_PID" || true
	NULLD_PID=""
	[ ! -e "$S/warden.sock" ] || die "warden left its socket behind after nulld's shutdown"
}

main() {
	local name=${1:-} fn b
	fn="t_${name//-/_}"
	if ! declare -F "$fn" >/dev/null; then
		echo "BROKEN TEST: no $fn" >&2
		exit 99
	fi
	[ "$(id -u)" = 0 ] || skip "warden tests run warden as root and switch to uid 65534"
	for b in NULLBOX_WARDEN NULLBOX_NULLCTL NULLBOX_NULLD; do
		if [ ! -x "${!b:-}" ]; then
			echo "BROKEN TEST: $b not set or not executable" >&2
			exit 99
		fi
	done
	command -v setpriv >/dev/null || skip "setpriv (util-linux) is missing"
	trap cleanup EXIT
	W=$(mktemp -d /var/tmp/nullbox-wd.XXXXXX)
	chmod 0755 "$W"
	S=$W/state
	mkdir -m 0700 "$S"
	"$fn"
	echo "PASS: $name"
}

main "$@"
