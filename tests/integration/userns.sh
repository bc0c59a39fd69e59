#!/usr/bin/env bash
# Unprivileged cage: run by uid 65534, cage builds the sandbox inside a user namespace that maps
# only the caller's own ids. A user needs a cgroup delegated to it; the test (as root) delegates
# one in each v1 hierarchy cage uses, the way an administrator or systemd (Delegate=yes) would.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

DELEG=""
DELEG_DIRS=()

# Creates nbdeleg-<agent> owned by the agent's uid under our cgroup in each v1 hierarchy.
delegate_cgroups() {
	local ctrl rel mnt
	DELEG=nbdeleg-$AGENT_NAME
	for ctrl in memory cpu pids cpuacct freezer; do
		mnt=$(awk -v c="$ctrl" '$9 == "cgroup" && (","$NF",") ~ (","c",") { print $5; exit }' \
			/proc/self/mountinfo)
		[ -n "$mnt" ] || skip "no v1 $ctrl hierarchy: this test delegates v1 cgroups only"
		rel=$(awk -F: -v c="$ctrl" '(","$2",") ~ (","c",") { print $3; exit }' /proc/self/cgroup)
		DELEG_DIRS+=("$mnt${rel%/}/$DELEG")
	done
	for d in "${DELEG_DIRS[@]}"; do
		[ -d "$d" ] || mkdir "$d"
		chown -R "$AGENT_UID:$AGENT_GID" "$d"
	done
}

undelegate_cgroups() {
	local d
	for d in "${DELEG_DIRS[@]}"; do
		[ -d "$d" ] && rmdir "$d" 2>/dev/null || true
	done
	return 0
}

# run_unpriv ARGS...: cage run as uid/gid 65534 from inside the delegated cgroups.
run_unpriv() {
	RC=0
	chmod -R a+rX "$T/agent"
	env "$HOST_MARKER_NAME=$HOST_MARKER_VALUE" bash -c '
		for d in "$@"; do [ "$d" = -- ] && break; echo $$ >"$d/cgroup.procs"; done
		while [ "$1" != -- ]; do shift; done; shift
		exec setpriv --reuid 65534 --regid 65534 --clear-groups "$@"' \
		_ "${DELEG_DIRS[@]}" -- timeout -k 5 60 "$NULLBOX_CAGE" run \
		--manifest "$T/agent/AGENT.toml" "$@" >"$OUT" 2>"$ERR" || RC=$?
	return 0
}

unpriv_attempt() {
	local want=$1
	shift
	run_unpriv -- /agent/probe "$@"
	expect_verdict "$1" "$want"
}

t_userns_id() {
	run_unpriv -- /agent/probe id
	expect_verdict id ok
	[ "$(value_of uid)" = "$AGENT_UID" ] || fail "expected uid $AGENT_UID inside"
	[ "$(value_of CapEff)" = 0000000000000000 ] || fail "expected no effective capability"
	[ "$(value_of CapBnd)" = 0000000000000000 ] || fail "expected an empty bounding set"
	[ "$(value_of NoNewPrivs)" = 1 ] || fail "expected no_new_privs"
	[ "$(value_of Seccomp)" = 2 ] || fail "expected a seccomp filter"
	expect_no_marker
}

t_userns_escape_mount() {
	unpriv_attempt EPERM mount
}

t_userns_escape_unshare_user() {
	unpriv_attempt EPERM unshare-user
}

t_userns_escape_write_usr() {
	unpriv_attempt EROFS write "/usr/nullbox-it-$AGENT_NAME"
}

t_userns_escape_read_shadow() {
	unpriv_attempt ENOENT read /etc/shadow
}

t_userns_fs_write_allowed() {
	unpriv_attempt ok write "$T/rw/written-unprivileged"
	[ -f "$T/rw/written-unprivileged" ] || fail "the write path did not get the file"
}

# The user namespace maps nothing but the caller: uid 0 does not exist inside (EINVAL: not
# mapped), so there is no root to become.
t_userns_escape_setuid0() {
	unpriv_attempt EINVAL setuid0
}

# it_main's EXIT trap calls it_cleanup: the delegated cgroups go with the temporary directory.
it_cleanup() {
	undelegate_cgroups
	[ -n "$T" ] && [ -d "$T" ] && rm -rf -- "$T"
	return 0
}

# The delegation is named after the agent, which it_setup names after the test and this shell.
[ "$(id -u)" = 0 ] || skip "integration tests build real sandboxes and need root"
AGENT_NAME="it-${1:0:40}-$$"
delegate_cgroups
it_main "$@"
