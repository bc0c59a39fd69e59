#!/bin/bash
# tests/integration/syscalls.sh: system calls the agent must not make (policy/cage.seccomp).
#
# Each test runs one probe attempt in a real cage and asserts the exact errno. The comment on each
# says what an unprotected kernel answers the same call (measured: the probe as uid 65534 with no
# capabilities, outside any sandbox, or as root where noted), so each test is seen to fail when
# the protection it checks is missing.
#
# Usage: syscalls.sh TEST-NAME (see meson.build).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

# Unprotected: ok (tracing one's own parent needs no privilege).
t_escape_ptrace_traceme() {
	expect_attempt EPERM ptrace-traceme
}

# The sandbox's PID 1 (the init, same uid as the agent). Unprotected root: ok.
t_escape_ptrace_attach() {
	expect_attempt EPERM ptrace-attach 1
}

# Attach to our own child, same uid: unprotected, always ok; only seccomp refuses.
t_escape_ptrace_child() {
	expect_attempt EPERM ptrace-child
}

# Unprotected root: ok.
t_escape_mount() {
	expect_attempt EPERM mount
}

# umount2("/proc", MNT_EXPIRE). Unprotected root: EAGAIN (marked for expiry, nothing unmounted).
t_escape_umount() {
	expect_attempt EPERM umount
}

# pivot_root on a path that does not exist. Unprotected root: ENOENT.
t_escape_pivot_root() {
	expect_attempt EPERM pivot_root
}

# BPF_MAP_CREATE. Unprotected root: ok.
t_escape_bpf() {
	expect_attempt EPERM bpf
}

# Unprotected uid 65534: ok (kernel.io_uring_disabled=0 on this host).
t_escape_io_uring() {
	expect_attempt EPERM io_uring_setup
}

# KEYCTL_GET_KEYRING_ID of the session keyring. Unprotected uid 65534: ok.
t_escape_keyctl() {
	expect_attempt EPERM keyctl
}

# A key in the process keyring. Unprotected uid 65534: ok.
t_escape_add_key() {
	expect_attempt EPERM add_key
}

# Unprotected: ENOKEY (the key does not exist; no upcall is made).
t_escape_request_key() {
	expect_attempt EPERM request_key
}

# Unprotected root: ENOSYS on this kernel (no kexec), EINVAL with kexec (impossible arch).
t_escape_kexec_load() {
	expect_attempt EPERM kexec_load
}

# Unprotected root: ENOSYS on this kernel (CONFIG_MODULES=n); seccomp answers first.
t_escape_init_module() {
	expect_attempt EPERM init_module
}

t_escape_finit_module() {
	expect_attempt EPERM finit_module
}

t_escape_delete_module() {
	expect_attempt EPERM delete_module
}

# A user-space-only software counter on ourselves. Unprotected uid 65534: ok (paranoid=2).
t_escape_perf_event_open() {
	expect_attempt EPERM perf_event_open
}

# UFFD_USER_MODE_ONLY. Unprotected uid 65534: ok.
t_escape_userfaultfd() {
	expect_attempt EPERM userfaultfd
}

# Unprivileged user namespaces are open on Debian: unprotected uid 65534 gets ok.
t_escape_unshare_user() {
	expect_attempt EPERM unshare-user
}

# Unprotected root: ok.
t_escape_unshare_net() {
	expect_attempt EPERM unshare-net
}

# Unprotected root: ok.
t_escape_unshare_mount() {
	expect_attempt EPERM unshare-mount
}

# setns into our own network namespace. Unprotected root: ok.
t_escape_setns() {
	expect_attempt EPERM setns
}

# Raw clone(CLONE_NEWUSER | SIGCHLD). Unprotected uid 65534: ok.
t_escape_clone_newuser() {
	expect_attempt EPERM clone-newuser
}

# Raw clone(CLONE_NEWNS | SIGCHLD). Unprotected root: ok.
t_escape_clone_newns() {
	expect_attempt EPERM clone-newns
}

# clone3 hides its flags from seccomp, so the profile answers ENOSYS (glibc falls back to
# clone, whose flags are checked). Unprotected: ok.
t_escape_clone3() {
	expect_attempt ENOSYS clone3
}

# AF_PACKET. Unprotected root: ok.
t_escape_socket_packet() {
	expect_attempt EPERM socket-packet
}

# AF_VSOCK has no network namespaces: on a VM host it reaches the hypervisor side past the
# agent's netns and egress. The family allowlist refuses it. Unprotected (vsock kernel): ok.
t_escape_socket_vsock() {
	expect_attempt EPERM socket 40 1 0
}

# AF_ALG (38), the kernel crypto API: attack surface an agent has no use for. Unprotected: ok.
t_escape_socket_alg() {
	expect_attempt EPERM socket 38 5 0
}

# Netlink uevents (NETLINK_KOBJECT_UEVENT = 15) would show the host's device events to an agent
# whose netns belongs to the host's user namespace. Only NETLINK_ROUTE (0) stays. Unprotected: ok.
t_escape_netlink_uevent() {
	expect_attempt EPERM socket 16 3 15
}

# The control for the two above: NETLINK_ROUTE (glibc's getaddrinfo uses it) still works.
t_net_netlink_route() {
	expect_attempt ok socket 16 3 0
}

# AF_INET SOCK_RAW. Unprotected root: ok.
t_escape_socket_raw() {
	expect_attempt EPERM socket-raw
}

# PER_LINUX32. Unprotected uid 65534: ok.
t_escape_personality() {
	expect_attempt EPERM personality
}

# The agent has no controlling tty (cage calls setsid) and its stdio here are not ttys, so the
# probe issues TIOCSTI on /dev/null: unprotected, ENOTTY; seccomp refuses by request number.
t_escape_tiocsti() {
	expect_attempt EPERM tiocsti
}

# chroot("/"). Unprotected root: ok.
t_escape_chroot() {
	expect_attempt EPERM chroot
}

# The "shocker" escape. Unprotected root: ok (a real handle of "/").
t_escape_open_by_handle_at() {
	expect_attempt EPERM open_by_handle_at
}

# Unprotected root in a UTS namespace: ok. The host's name must not change either way.
t_escape_sethostname() {
	local before after
	before=$(hostname)
	expect_attempt EPERM hostname
	after=$(hostname)
	[ "$before" = "$after" ] || die "the host's hostname changed from '$before' to '$after'"
}

# setuid(0) from uid 65534 without CAP_SETUID: EPERM. Unprotected root: ok.
t_escape_setuid0() {
	expect_attempt EPERM setuid0
}

it_main "$@"
