#!/bin/bash
# tests/integration/fs.sh: the file system the agent sees, and what it may do there.
#
# Layers, in the order the kernel consults them for a write: the read-only bind (EROFS), file
# permissions (EACCES), Landlock (EACCES). The read and agent directories are owned by the
# agent's uid on the host, so a write there is stopped by the mount alone; a test that expects
# EROFS proves the read-only bind. Unprotected, every escape here answers "ok" (measured: the
# probe as root outside any sandbox).
#
# Usage: fs.sh TEST-NAME (see meson.build).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

# Asserts the host file $1 holds exactly $2.
expect_host_content() {
	local got
	got=$(cat "$1" 2>/dev/null) || die "expected host file $1 to exist, it does not"
	[ "$got" = "$2" ] || die "host file $1: expected content '$2', got '$got'"
}

expect_host_absent() {
	[ ! -e "$1" ] && [ ! -L "$1" ] || die "expected nothing at $1 on the host, found: $(ls -ld "$1")"
}

# A host path outside $T that an escape would create: unique to this run, and removed at exit
# should the escape succeed, so a broken cage fails the test without leaving litter.
STRAY=()
stray() {
	STRAY+=("$1")
	trap 'rm -f -- "${STRAY[@]}"; it_cleanup' EXIT
}

# Every write attempt on a host path outside $T creates a new file and never opens an existing
# one for writing: were the sandbox missing, a test must not be able to damage the host.

# ---- controls: what the manifest grants must work ----

t_fs_read_allowed() {
	expect_attempt ok read "$T/ro/hello"
	grep -qx '| nullbox-read-ok' "$OUT" || fail "read $T/ro/hello: content not seen"
}

t_fs_write_allowed() {
	expect_attempt ok write "$T/rw/out.txt"
	expect_host_content "$T/rw/out.txt" "written by nullbox probe"
	local owner
	owner=$(stat -c %u:%g "$T/rw/out.txt")
	[ "$owner" = "$AGENT_UID:$AGENT_GID" ] ||
		die "file written by the agent: expected owner $AGENT_UID:$AGENT_GID, got $owner"
}

t_fs_mkdir_allowed() {
	expect_attempt ok mkdir "$T/rw/newdir"
	[ -d "$T/rw/newdir" ] || die "mkdir in the write path: $T/rw/newdir does not exist on the host"
}

# The sandbox's /tmp is private: writable inside, never the host's.
t_fs_write_tmp() {
	local f="/tmp/nullbox-it-$$-$RANDOM"
	stray "$f"
	expect_attempt ok write "$f"
	expect_host_absent "$f"
}

t_fs_exec_runtime() {
	expect_attempt ok exec /usr/bin/true
}

# ---- reading what was not granted ----

t_escape_read_shadow() {
	[ -e /etc/shadow ] || broken "the host has no /etc/shadow, the test proves nothing"
	expect_attempt ENOENT read /etc/shadow
}

t_escape_read_host_file() {
	expect_attempt ENOENT read "$T/secret/secret.txt"
}

# /dev holds null zero random urandom tty only: the disk under the host's / is not there
# (opened, never read). Unprotected root: ok.
t_escape_open_root_disk() {
	local disk
	disk=$(findmnt -no SOURCE /)
	[ -b "$disk" ] || broken "the host's / is not on a block device ($disk)"
	expect_attempt ENOENT open-r "$disk"
}

t_escape_ls_dev() {
	local allowed=" null zero random urandom tty fd stdin stdout stderr shm "
	local name extra=""
	expect_attempt ok ls /dev
	while read -r name; do
		case "$allowed" in
		*" $name "*) ;;
		*) extra="$extra $name" ;;
		esac
	done < <(sed -n 's/^| //p' "$OUT")
	[ -z "$extra" ] || fail "/dev: expected only$allowed, also found:$extra"
}

# Files of /proc that leak host state are masked by an empty mode-0 file: EACCES. Unprotected
# root: ok; uid 65534: ok for /proc/keys (0444), EACCES for /proc/timer_list (0400).
expect_proc_masked() {
	[ -e "$1" ] || broken "the host has no $1, the test proves nothing"
	expect_attempt EACCES read "$1"
}

t_escape_read_proc_timer_list() {
	expect_proc_masked /proc/timer_list
}

t_escape_read_proc_keys() {
	expect_proc_masked /proc/keys
}

# ---- writing outside the write paths ----

# A new file in a read path: the read-only bind refuses first.
t_escape_write_read_path() {
	expect_attempt EROFS write "$T/ro/new.txt"
	expect_host_absent "$T/ro/new.txt"
}

# Overwriting a file of a read path (owned by the agent's uid on the host).
t_escape_overwrite_read_path() {
	expect_attempt EROFS write "$T/ro/hello"
	expect_host_content "$T/ro/hello" "nullbox-read-ok"
}

t_escape_write_agent_dir() {
	expect_attempt EROFS write /agent/new.txt
	expect_host_absent "$T/agent/new.txt"
}

t_escape_write_usr() {
	local f="/usr/nullbox-it-$$"
	stray "$f"
	expect_attempt EROFS write "$f"
	expect_host_absent "$f"
}

# The tmpfs root is remounted read-only after setup.
t_escape_write_rootfs() {
	local f="/nullbox-it-$$"
	stray "$f"
	expect_attempt EROFS write "$f"
	expect_host_absent "$f"
}

# /etc is a directory of the read-only root with a few generated files.
t_escape_write_etc() {
	local f="/etc/nullbox-it-$$"
	stray "$f"
	expect_attempt EROFS write "$f"
	expect_host_absent "$f"
}

# The generated /etc/passwd (root 0644): opened for writing without O_TRUNC, nothing written.
# File permissions answer before the read-only mount would (EROFS comes first only with O_TRUNC
# or O_CREAT of a new file, which this test must not risk on the host's real /etc/passwd).
t_escape_write_etc_passwd() {
	local before
	before=$(sha256sum /etc/passwd)
	expect_attempt EACCES open-w /etc/passwd
	[ "$(sha256sum /etc/passwd)" = "$before" ] || die "the host's /etc/passwd changed"
}

# /proc/sys/kernel/core_pattern (root 0644; /proc/sys is also bound read-only): opened for
# writing, nothing written. Unprotected root: ok.
t_escape_write_proc_sys() {
	expect_attempt EACCES open-w /proc/sys/kernel/core_pattern
}

# No /sys in the sandbox. Unprotected root: ok (the file exists on the host).
t_escape_write_sysfs() {
	local f=/sys/kernel/mm/transparent_hugepage/enabled
	[ -e "$f" ] || broken "$f does not exist on the host, the test proves nothing"
	expect_attempt ENOENT write-sysfs "$f"
}

# Joining the host's root pids cgroup would lift the pids limit.
t_escape_cgroup_procs() {
	local f
	f=$(find /sys/fs/cgroup -maxdepth 2 -name cgroup.procs | head -n 1)
	[ -n "$f" ] || broken "no cgroup.procs on the host"
	expect_attempt ENOENT open-w "$f"
}

# ---- .. and symbolic links ----

t_escape_dotdot() {
	expect_attempt ENOENT dotdot /agent /etc/shadow
}

t_escape_dotdot_secret() {
	expect_attempt ENOENT dotdot "$T/rw" "$T/secret/secret.txt"
}

# The agent plants a link to a host file and reads through it: links resolve in the sandbox.
t_escape_symlink_probe() {
	expect_attempt ENOENT symlink-escape "$T/rw" "$T/secret/secret.txt"
}

# The host side plants the links (as a confused helper might): still resolved in the sandbox.
t_escape_symlink_host() {
	ln -s "$T/secret/secret.txt" "$T/rw/planted-secret"
	expect_attempt ENOENT read "$T/rw/planted-secret"
	ln -s /etc/shadow "$T/rw/planted-shadow"
	expect_attempt ENOENT read "$T/rw/planted-shadow"
}

# A link to a directory in a write path does not make its target writable.
t_escape_symlink_dir() {
	ln -s /etc "$T/rw/etc-link"
	stray "/etc/nullbox-it-link-$$"
	expect_attempt EROFS write "$T/rw/etc-link/nullbox-it-link-$$"
	expect_host_absent "/etc/nullbox-it-link-$$"
}

# ---- devices, exec, setuid ----

# mknod of a char device in a write path: Landlock (no MAKE_CHAR granted anywhere) answers before
# the kernel's CAP_MKNOD check would (EPERM). Unprotected root: ok.
t_escape_mknod() {
	expect_attempt EACCES mknod "$T/rw/null"
	expect_host_absent "$T/rw/null"
}

t_escape_mknod_tmp() {
	expect_attempt EACCES mknod /tmp/null
}

# Write paths are noexec: a binary dropped there cannot run.
expect_exec_copy_refused() {
	probe exec-copy "$1"
	[ "$(value_of copy)" = ok ] ||
		fail "exec-copy $1: expected the copy into $1 to succeed, got '$(value_of copy)'"
	expect_verdict exec-copy EACCES
}

t_escape_exec_write_path() {
	expect_exec_copy_refused "$T/rw"
}

t_escape_exec_tmp() {
	expect_exec_copy_refused /tmp
}

t_escape_exec_dev_shm() {
	expect_exec_copy_refused /dev/shm
}

# Without `shell = true` the runtime's shells are masked by an empty mode-0 file.
t_escape_exec_shell() {
	[ -e /bin/sh ] || broken "the host has no /bin/sh"
	expect_attempt EACCES exec /bin/sh -c true
}

# A setuid-root copy of the probe, exec'd: `id` in the copy must show the agent's uid and no
# capability (nosuid binds and no_new_privs). Unprotected (run as uid 65534): euid=0.
expect_unprivileged_id() {
	local v
	expect_verdict id ok
	for v in uid euid; do
		[ "$(value_of "$v")" = "$AGENT_UID" ] ||
			fail "$v: expected $AGENT_UID, got '$(value_of "$v")'"
	done
	for v in CapPrm CapEff CapAmb; do
		[ "$(value_of "$v")" = 0000000000000000 ] ||
			fail "$v: expected 0000000000000000, got '$(value_of "$v")'"
	done
}

t_escape_setuid_read_path() {
	install -o 0 -g 0 -m 4755 "$NULLBOX_PROBE" "$T/ro/probe-suid"
	probe setuid-exec "$T/ro/probe-suid"
	expect_unprivileged_id
}

t_escape_setuid_agent_dir() {
	install -o 0 -g 0 -m 6755 "$NULLBOX_PROBE" "$T/agent/probe-suid"
	probe setuid-exec /agent/probe-suid
	expect_unprivileged_id
}

# File capabilities instead of the setuid bit.
t_escape_file_caps() {
	command -v setcap >/dev/null || broken "setcap (Debian: libcap2-bin) is not installed"
	install -o 0 -g 0 -m 0755 "$NULLBOX_PROBE" "$T/ro/probe-caps"
	setcap 'cap_sys_admin,cap_dac_override,cap_setuid+ep' "$T/ro/probe-caps" ||
		broken "setcap failed: $T does not take file capabilities"
	probe setuid-exec "$T/ro/probe-caps"
	expect_unprivileged_id
}

# ---- processes ----

# The sandbox's PID 1 is cage's init, not the host's; with hidepid=2 and a non-dumpable init the
# agent cannot even see it. Above all, nothing of cage's environment may be read.
t_escape_proc_environ_1() {
	probe proc-environ-1
	expect_no_marker
	expect_verdict proc-environ-1 ENOENT
}

# Native code written to a memfd must not run (it would sidestep the noexec write paths):
# cage sets vm.memfd_noexec=2 for the sandbox's PID namespace. Unprotected: ok.
t_escape_memfd_exec() {
	[ -e /proc/sys/vm/memfd_noexec ] || broken "kernel older than 6.3: no vm.memfd_noexec"
	expect_attempt EACCES memfd-exec
}

# The sandbox's init is a copy of cage that never execs: its environment (cage's, with whatever
# the caller had) must be wiped from its memory, as seen from the host too.
t_init_environ_wiped() {
	local cage_pid init_pid="" p i
	env "$HOST_MARKER_NAME=$HOST_MARKER_VALUE" "$NULLBOX_CAGE" run \
		--manifest "$T/agent/AGENT.toml" -- /agent/probe sleep 5 >"$OUT" 2>"$ERR" &
	cage_pid=$!
	for i in $(seq 50); do
		for p in $(pgrep -P "$cage_pid"); do
			# init is the child in another PID namespace (the other child is the cgroup guard).
			if [ "$(readlink "/proc/$p/ns/pid")" != "$(readlink /proc/self/ns/pid)" ]; then
				init_pid=$p
			fi
		done
		[ -n "$init_pid" ] && break
		sleep 0.1
	done
	[ -n "$init_pid" ] || { kill "$cage_pid"; wait "$cage_pid"; fail "no sandbox init found"; }
	local leaked=0
	tr '\0' '\n' <"/proc/$init_pid/environ" | grep -qF -- "$HOST_MARKER_VALUE" && leaked=1
	kill "$cage_pid"
	wait "$cage_pid" || true
	[ "$leaked" = 0 ] || fail "the sandbox's init (pid $init_pid) still holds cage's environment"
}

# The host runs dozens of processes; the agent sees itself and at most its init.
t_escape_host_procs() {
	local n host procs=(/proc/[0-9]*)
	host=${#procs[@]}
	[ "$host" -gt 10 ] || broken "only $host processes on the host, the test proves nothing"
	expect_attempt ok host-procs
	n=$(value_of pids)
	[ -n "$n" ] && [ "$n" -le 2 ] ||
		fail "expected at most 2 processes visible in the sandbox (host: $host), got '$n'"
}

it_main "$@"
