/*
 * test_seccomp.c: the seccomp profile compiler and the kernel's verdicts under the real profile.
 *
 * Sections:
 *   parser     the real profile compiles; small good profiles compile; a corpus of bad lines,
 *              each with its exact "seccomp: FILE:LINE: REASON"
 *   verdicts   policy/cage.seccomp loaded in a forked child (no_new_privs first), then the
 *              kernel's answer to each escape attempt, and that ordinary calls still work
 *
 * Runs as root: without the filter root would succeed at most of these calls, so an EPERM here
 * is the filter's verdict and not a missing capability. Not root: exit 77 (skip), with why.
 * The arguments of every denied call are harmless no-ops or errors even without a filter, so a
 * broken filter fails the test without touching the host.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <asm/unistd.h>
#include <linux/netlink.h>
#include <netinet/in.h>

#include "cage.h"
#include "child.h"
#include "cleanup.h"

static char profile_path[PATH_MAX];
static struct cage_seccomp *filter; /* the real profile, compiled once */
static char tmpdir[] = "/tmp/nullbox-seccomp-test.XXXXXX";

/* ---- parser ---- */

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void
test_real_profile_compiles(void **state)
{
	struct nb_err e = { 0 };
	struct cage_seccomp *s = NULL;
	int r = cage_seccomp_compile(profile_path, &s, &e);
	if (r < 0)
		fail_msg("%s", e.msg);
	assert_non_null(s);
	cage_seccomp_free(s);
}

static void
test_good_profiles(void **state)
{
	static const char *const good[] = {
		/* comments, blank lines, every action, every operator */
		"# a comment\n\n   default allow   # trailing comment\n"
		"ptrace errno EPERM\n"
		"getpid kill\n"
		"ioctl log arg1 & 0xffffffff == TIOCSTI\n"
		"socket errno EAFNOSUPPORT arg0 == 17 && arg1 != 2 && arg2 < 3\n"
		"clone errno EPERM arg0 & CLONE_NEWUSER\n"
		"personality errno EINVAL arg0 >= 0x10\n"
		"setuid errno EPERM arg0 <= 5\n"
		"setgid errno EPERM arg0 > 5\n",
		/* an allowlist profile */
		"default errno ENOSYS\nread allow\nwrite allow\nexit_group allow\n",
		/* a syscall newer than libseccomp's table, by number */
		"default allow\nopen_tree_attr:467 errno EPERM\n",
		/* NAME:NR agreeing with libseccomp */
		"default allow\nptrace:101 errno EPERM\n",
		/* tabs */
		"default\tallow\nptrace\terrno\tEPERM\n",
	};
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/good.seccomp", tmpdir);
	for (size_t i = 0; i < NB_ARRAY_SIZE(good); i++) {
		struct nb_err e = { 0 };
		struct cage_seccomp *s = NULL;
		write_file(path, good[i]);
		if (cage_seccomp_compile(path, &s, &e) < 0)
			fail_msg("good profile %zu refused: %s", i, e.msg);
		cage_seccomp_free(s);
	}
}

struct bad_case {
	const char *text;
	unsigned line;
	const char *reason;
};

/* "default allow" is line 1 of every case below unless the case is about `default`. */
#define D "default allow\n"
static const struct bad_case bad[] = {
	{ D "ptracex errno EPERM\n", 2, "unknown syscall 'ptracex'" },
	{ D "vm86 errno EPERM\n", 2, "syscall 'vm86' does not exist on this architecture" },
	{ D "Ptrace errno EPERM\n", 2, "bad syscall name 'Ptrace'" },
	{ D "!!!\n", 2, "bad syscall name '!!!'" },
	{ D "ptrace:102 errno EPERM\n", 2, "syscall 'ptrace' is 101, not 102" },
	{ D "vm86:166 errno EPERM\n", 2, "syscall 'vm86' does not exist on this architecture" },
	{ D "open_tree_atr:166 errno EPERM\n", 2, "syscall 166 is 'umount2', not 'open_tree_atr'" },
	{ D "open_tree_attr:4x errno EPERM\n", 2, "bad number '4x'" },
	{ D "clone errno EPERM arg0 & CLONE_NEWFOO\n", 2, "unknown constant 'CLONE_NEWFOO'" },
	{ D "socket errno EPERM arg0 == af_inet\n", 2,
	  "bad value 'af_inet' (a number or a constant)" },
	{ D "ptrace deny\n", 2, "unknown action 'deny' (allow, errno NAME, kill, log)" },
	{ D "ptrace\n", 2, "missing action (allow, errno NAME, kill, log)" },
	{ D "ptrace errno EFOO\n", 2, "unknown errno name 'EFOO'" },
	{ D "ptrace errno 1\n", 2, "unknown errno name '1'" },
	{ D "ptrace errno\n", 2, "errno needs a name (errno EPERM)" },
	{ D "socket errno EPERM arg6 == 1\n", 2, "bad argument 'arg6' (arg0..arg5)" },
	{ D "socket errno EPERM a0 == 1\n", 2, "bad argument 'a0' (arg0..arg5)" },
	{ D "socket errno EPERM arg0 =~ 1\n", 2, "bad operator '=~' (==, !=, <, <=, >, >=, &)" },
	{ D "socket errno EPERM arg0\n", 2, "missing operator after 'arg0'" },
	{ D "socket errno EPERM arg0 ==\n", 2, "missing value after '=='" },
	{ D "socket errno EPERM arg0 &\n", 2, "missing mask after '&'" },
	{ D "socket errno EPERM arg0 == 1 arg1 == 2\n", 2, "expected '&&' before 'arg1'" },
	{ D "socket errno EPERM arg0 == 1 &&\n", 2, "missing condition after '&&'" },
	{ D "socket errno EPERM arg0 == 010\n", 2,
	  "bad number '010' (a leading 0 is refused: write 0x for hex)" },
	{ D "socket errno EPERM arg0 == 0x\n", 2, "bad number '0x'" },
	{ D "socket errno EPERM arg0 == 12ab\n", 2, "bad number '12ab'" },
	{ D "socket errno EPERM arg0 == 0x10000000000000000\n", 2,
	  "number '0x10000000000000000' does not fit in 64 bits" },
	{ D "socket errno EPERM arg0 & 0\n", 2, "mask is 0: the condition would always hold" },
	{ D "socket errno EPERM arg1 & 0xf == 0x10\n", 2,
	  "value 0x10 has bits outside mask 0xf: the condition never holds" },
	{ D "personality errno EPERM arg0 != 0 && arg0 != 0xffffffff\n", 2,
	  "arg0 compared twice in one rule (libseccomp allows one comparison per argument: split "
	  "the rule)" },
	{ D "ptrace allow\n", 2, "the rule repeats the default action (line 1)" },
	{ D "ptrace errno EPERM\nptrace errno EACCES\n", 3,
	  "duplicate rule for 'ptrace' (first at line 2)" },
	{ D "socket errno EPERM arg0 == 2 && arg1 == 3\nsocket kill arg1 == 3 && arg0 == 2\n", 3,
	  "duplicate rule for 'socket' (first at line 2)" },
	{ D "clone errno EPERM arg0 & CLONE_NEWNS\nclone errno EPERM\n", 3,
	  "conflicting rules for 'clone' (line 2): an unconditional rule must be the only rule of "
	  "its syscall" },
	{ D "ptrace errno EPERM \xc3\xa9\n", 2, "unexpected byte 0xc3" },
	{ "default allow\ndefault kill\n", 2, "'default' given twice (first at line 1)" },
	{ "ptrace errno EPERM\ndefault allow\n", 1, "a rule before the 'default' line" },
	{ "# only a comment\n", 1, "no 'default' line" },
	{ "", 1, "no 'default' line" },
	{ "default\n", 1, "missing action (allow, errno NAME, kill, log)" },
	{ "default allow please\n", 1, "unexpected 'please' after the default action" },
};
#undef D

static void
test_bad_profiles(void **state)
{
	char path[256];
	unsigned failures = 0;
	snprintf(path, sizeof(path), "%s/bad.seccomp", tmpdir);
	for (size_t i = 0; i < NB_ARRAY_SIZE(bad); i++) {
		struct nb_err e = { 0 };
		struct cage_seccomp *s = NULL;
		char want[1024];
		write_file(path, bad[i].text);
		snprintf(want, sizeof(want), "seccomp: %s:%u: %s", path, bad[i].line,
			 bad[i].reason);
		int r = cage_seccomp_compile(path, &s, &e);
		if (r >= 0) {
			print_error("case %zu compiled, want: %s\n", i, want);
			cage_seccomp_free(s);
			failures++;
		} else if (strcmp(e.msg, want) != 0 || r != -e.code) {
			print_error("case %zu:\n  got:  %s\n  want: %s\n", i, e.msg, want);
			failures++;
		} else if (s) {
			print_error("case %zu: filter returned along with an error\n", i);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

static void
test_long_line(void **state)
{
	char path[256], want[1024];
	char text[2048] = "default allow\nptrace errno EPERM #";
	size_t n = strlen(text);
	memset(text + n, 'x', 1100);
	text[n + 1100] = '\n';
	text[n + 1101] = '\0';
	snprintf(path, sizeof(path), "%s/long.seccomp", tmpdir);
	write_file(path, text);
	struct nb_err e = { 0 };
	struct cage_seccomp *s = NULL;
	assert_int_equal(cage_seccomp_compile(path, &s, &e), -EINVAL);
	snprintf(want, sizeof(want), "seccomp: %s:2: line longer than 1024 characters", path);
	assert_string_equal(e.msg, want);
}

static void
test_missing_file(void **state)
{
	struct nb_err e = { 0 };
	struct cage_seccomp *s = NULL;
	assert_int_equal(cage_seccomp_compile("/nonexistent/cage.seccomp", &s, &e), -ENOENT);
	assert_string_equal(e.msg, "seccomp: /nonexistent/cage.seccomp: No such file or directory");
	assert_null(s);
}

/* ---- verdicts ---- */

/* In the child: no_new_privs, then the real filter. */
static void
load_filter(void)
{
	struct nb_err e = { 0 };
	CHILD_CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "no_new_privs: %s",
		    strerror(errno));
	CHILD_CHECK(cage_seccomp_apply(filter, &e) == 0, "apply: %s", e.msg);
}

static void
run_in_child(void (*fn)(void *))
{
	struct child_result res;
	child_run(fn, NULL, &res);
	assert_child_ok(&res);
}

static void
child_apply_without_nnp(void *arg)
{
	struct nb_err e = { 0 };
	CHILD_CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 0, "no_new_privs already set");
	int r = cage_seccomp_apply(filter, &e);
	CHILD_CHECK(r == -EPERM, "apply without no_new_privs returned %d (%s)", r, e.msg);
	CHILD_CHECK(strcmp(e.msg, "seccomp: no_new_privs is not set: refusing to load") == 0,
		    "message: %s", e.msg);
	/* and nothing was loaded */
	CHILD_CHECK(prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 0, "a filter was loaded");
}

static void
test_apply_requires_nnp(void **state)
{
	run_in_child(child_apply_without_nnp);
}

struct denied {
	const char *name;
	long nr;
	long a[6];
};

/* Every unconditional EPERM of the profile, with arguments that are harmless unfiltered. */
static const struct denied denied[] = {
	{ "ptrace", __NR_ptrace, { PTRACE_ATTACH, 0, 0, 0 } },
	{ "process_vm_readv", __NR_process_vm_readv, { 0, 0, 0, 0, 0, 0 } },
	{ "process_vm_writev", __NR_process_vm_writev, { 0, 0, 0, 0, 0, 0 } },
	{ "pidfd_getfd", __NR_pidfd_getfd, { -1, -1, 0 } },
	{ "kcmp", __NR_kcmp, { 0, 0, -1, 0, 0 } },
	{ "process_madvise", __NR_process_madvise, { -1, 0, 0, 0, 0 } },
	{ "unshare", __NR_unshare, { 0 } },
	{ "setns", __NR_setns, { -1, 0 } },
	{ "mount", __NR_mount, { 0, 0, 0, 0, 0 } },
	{ "umount2", __NR_umount2, { 0, 0 } },
	{ "pivot_root", __NR_pivot_root, { 0, 0 } },
	{ "chroot", __NR_chroot, { 0 } },
	{ "move_mount", __NR_move_mount, { -1, 0, -1, 0, 0 } },
	{ "open_tree", __NR_open_tree, { -1, 0, 0 } },
	{ "open_tree_attr", 467, { -1, 0, 0, 0, 0 } },
	{ "fsopen", __NR_fsopen, { 0, 0 } },
	{ "fsmount", __NR_fsmount, { -1, 0, 0 } },
	{ "fsconfig", __NR_fsconfig, { -1, 0, 0, 0, 0 } },
	{ "fspick", __NR_fspick, { -1, 0, 0 } },
	{ "mount_setattr", __NR_mount_setattr, { -1, 0, 0, 0, 0 } },
	{ "open_by_handle_at", __NR_open_by_handle_at, { -1, 0, 0 } },
	{ "name_to_handle_at", __NR_name_to_handle_at, { -1, 0, 0, 0, 0 } },
	{ "bpf", __NR_bpf, { -1, 0, 0 } },
	{ "io_uring_setup", __NR_io_uring_setup, { 0, 0 } },
	{ "io_uring_enter", __NR_io_uring_enter, { -1, 0, 0, 0, 0, 0 } },
	{ "io_uring_register", __NR_io_uring_register, { -1, 0, 0, 0 } },
	{ "perf_event_open", __NR_perf_event_open, { 0, 0, -1, -1, 0 } },
	{ "userfaultfd", __NR_userfaultfd, { -1 } },
	{ "keyctl", __NR_keyctl, { -1, 0, 0, 0, 0 } },
	{ "add_key", __NR_add_key, { 0, 0, 0, 0, 0 } },
	{ "request_key", __NR_request_key, { 0, 0, 0, 0 } },
	{ "fanotify_init", __NR_fanotify_init, { -1, -1 } },
	{ "memfd_secret", __NR_memfd_secret, { -1 } },
	{ "modify_ldt", __NR_modify_ldt, { 0, 0, 0 } },
	{ "kexec_load", __NR_kexec_load, { 0, 0, 0, -1 } },
	{ "kexec_file_load", __NR_kexec_file_load, { -1, -1, 0, 0, -1 } },
	{ "init_module", __NR_init_module, { 0, 0, 0 } },
	{ "finit_module", __NR_finit_module, { -1, 0, 0 } },
	{ "delete_module", __NR_delete_module, { 0, 0 } },
	{ "reboot", __NR_reboot, { 0, 0, 0, 0 } },
	{ "swapon", __NR_swapon, { 0, 0 } },
	{ "swapoff", __NR_swapoff, { 0 } },
	{ "acct", __NR_acct, { (long)"" } },
	{ "quotactl", __NR_quotactl, { 0, 0, 0, 0 } },
	{ "quotactl_fd", __NR_quotactl_fd, { -1, 0, 0, 0 } },
	{ "lookup_dcookie", __NR_lookup_dcookie, { 0, 0, 0 } },
	{ "syslog", __NR_syslog, { 0xffff, 0, 0 } },
	{ "vhangup", __NR_vhangup, { 0 } }, /* after setsid(): no terminal to hang up */
	{ "iopl", __NR_iopl, { 0 } },
	{ "ioperm", __NR_ioperm, { 0, 0, 0 } },
	{ "settimeofday", __NR_settimeofday, { 0, 0 } },
	{ "clock_settime", __NR_clock_settime, { -1, 0 } },
	{ "clock_adjtime", __NR_clock_adjtime, { -1, 0 } },
	{ "adjtimex", __NR_adjtimex, { 0 } },
	{ "sethostname", __NR_sethostname, { 0, -1 } },
	{ "setdomainname", __NR_setdomainname, { 0, -1 } },
	{ "uselib", __NR_uselib, { 0 } },
	{ "nfsservctl", __NR_nfsservctl, { 0, 0, 0 } },
};

static void
child_denied_syscalls(void *arg)
{
	(void)setsid();
	load_filter();
	for (size_t i = 0; i < NB_ARRAY_SIZE(denied); i++) {
		const struct denied *d = &denied[i];
		errno = 0;
		long r = syscall(d->nr, d->a[0], d->a[1], d->a[2], d->a[3], d->a[4], d->a[5]);
		int e = errno;
		CHILD_CHECK(r == -1 && e == EPERM, "%s: returned %ld, errno %d (%s); want EPERM",
			    d->name, r, e, strerror(e));
	}
}

static void
test_denied_syscalls(void **state)
{
	run_in_child(child_denied_syscalls);
}

static void
child_ptrace(void *arg)
{
	load_filter();
	CHILD_EXPECT_ERRNO(ptrace(PTRACE_TRACEME, 0, NULL, NULL), EPERM);
}

static void
test_ptrace_traceme(void **state)
{
	run_in_child(child_ptrace);
}

static void
child_unshare(void *arg)
{
	load_filter();
	CHILD_EXPECT_ERRNO(unshare(CLONE_NEWUSER), EPERM);
	CHILD_EXPECT_ERRNO(unshare(CLONE_NEWNS), EPERM);
	CHILD_EXPECT_ERRNO(unshare(CLONE_NEWNET), EPERM);
}

static void
test_unshare(void **state)
{
	run_in_child(child_unshare);
}

/* clone() through the raw syscall; a child that got through exits at once. */
static long
raw_clone(unsigned long flags)
{
	long r = syscall(__NR_clone, flags, 0L, 0L, 0L, 0L);
	if (r == 0)
		_exit(0);
	if (r > 0)
		waitpid((pid_t)r, NULL, 0);
	return r;
}

static void
child_clone_namespaces(void *arg)
{
	static const struct {
		const char *name;
		unsigned long flag;
	} ns[] = {
		{ "CLONE_NEWNS", CLONE_NEWNS },		{ "CLONE_NEWUTS", CLONE_NEWUTS },
		{ "CLONE_NEWIPC", CLONE_NEWIPC },	{ "CLONE_NEWUSER", CLONE_NEWUSER },
		{ "CLONE_NEWPID", CLONE_NEWPID },	{ "CLONE_NEWNET", CLONE_NEWNET },
		{ "CLONE_NEWCGROUP", CLONE_NEWCGROUP },
	};
	load_filter();
	for (size_t i = 0; i < NB_ARRAY_SIZE(ns); i++) {
		errno = 0;
		long r = raw_clone(ns[i].flag | SIGCHLD);
		CHILD_CHECK(r == -1 && errno == EPERM, "clone(%s): returned %ld, errno %s",
			    ns[i].name, r, strerror(errno));
	}
	/* The kernel ignores the high half of clone()'s flags; the filter must too. */
	CHILD_EXPECT_ERRNO(raw_clone((1UL << 40) | CLONE_NEWNS | SIGCHLD), EPERM);
	CHILD_EXPECT_ERRNO(raw_clone(CLONE_NEWUSER | CLONE_NEWNS | CLONE_FILES | SIGCHLD), EPERM);
}

static void
test_clone_namespaces(void **state)
{
	run_in_child(child_clone_namespaces);
}

static void *
thread_fn(void *arg)
{
	*(int *)arg = 42;
	return NULL;
}

static void
child_fork_and_threads(void *arg)
{
	load_filter();
	pid_t pid = fork();
	CHILD_CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(7);
	int ws;
	CHILD_CHECK(waitpid(pid, &ws, 0) == pid && WIFEXITED(ws) && WEXITSTATUS(ws) == 7,
		    "forked child did not exit 7");
	/* glibc tries clone3 first, gets ENOSYS, falls back to clone. */
	pthread_t t;
	int v = 0;
	int r = pthread_create(&t, NULL, thread_fn, &v);
	CHILD_CHECK(r == 0, "pthread_create: %s", strerror(r));
	CHILD_CHECK(pthread_join(t, NULL) == 0 && v == 42, "thread did not run");
}

static void
test_fork_and_threads_work(void **state)
{
	run_in_child(child_fork_and_threads);
}

static void
child_clone3(void *arg)
{
	load_filter();
	struct clone_args ca = { .exit_signal = SIGCHLD };
	errno = 0;
	long r = syscall(__NR_clone3, &ca, sizeof(ca));
	if (r == 0)
		_exit(0);
	CHILD_CHECK(r == -1 && errno == ENOSYS, "clone3: returned %ld, errno %s; want ENOSYS", r,
		    strerror(errno));
}

static void
test_clone3_enosys(void **state)
{
	run_in_child(child_clone3);
}

static void
child_sockets(void *arg)
{
	load_filter();
	CHILD_EXPECT_ERRNO(socket(AF_PACKET, SOCK_RAW, htons(0x0003)), EPERM);
	CHILD_EXPECT_ERRNO(socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0), EPERM);
	CHILD_EXPECT_ERRNO(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP), EPERM);
	CHILD_EXPECT_ERRNO(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW), EPERM);
	CHILD_EXPECT_ERRNO(socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP),
			   EPERM);
	CHILD_EXPECT_ERRNO(socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_ICMPV6), EPERM);
	CHILD_EXPECT_ERRNO(socket(AF_INET, SOCK_PACKET, 0), EPERM);
	/* The family is an int: a high bit must not carry AF_PACKET past the rule. */
	CHILD_EXPECT_ERRNO(syscall(__NR_socket, (1UL << 32) | AF_PACKET, SOCK_RAW, 0), EPERM);
	CHILD_EXPECT_ERRNO(syscall(__NR_socket, (1UL << 63) | AF_INET, (1UL << 33) | SOCK_RAW, 1),
			   EPERM);

	int fd;
	CHILD_EXPECT_OK(fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
	close(fd);
	CHILD_EXPECT_OK(fd = socket(AF_INET, SOCK_DGRAM, 0));
	close(fd);
	CHILD_EXPECT_OK(fd = socket(AF_UNIX, SOCK_STREAM, 0));
	close(fd);
	/* glibc's getaddrinfo() needs raw netlink */
	CHILD_EXPECT_OK(fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
	close(fd);
	errno = 0;
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	CHILD_CHECK(fd >= 0 || errno == EAFNOSUPPORT, "socket(AF_INET6, SOCK_STREAM): %s",
		    strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void
test_sockets(void **state)
{
	run_in_child(child_sockets);
}

static void
child_personality(void *arg)
{
	load_filter();
	CHILD_EXPECT_OK(personality(0xffffffff));
	CHILD_EXPECT_OK(personality(PER_LINUX));
	CHILD_EXPECT_ERRNO(personality(PER_LINUX32), EPERM);
	CHILD_EXPECT_ERRNO(personality(PER_LINUX | ADDR_NO_RANDOMIZE), EPERM);
	CHILD_EXPECT_ERRNO(personality(READ_IMPLIES_EXEC), EPERM);
	CHILD_EXPECT_ERRNO(personality(0xfffffffe), EPERM);
	/* the kernel truncates to 32 bits: these would be PER_LINUX32 and the query */
	CHILD_EXPECT_ERRNO(syscall(__NR_personality, 0x100000008UL), EPERM);
	CHILD_EXPECT_ERRNO(syscall(__NR_personality, 0x1ffffffffUL), EPERM);
	CHILD_CHECK(personality(0xffffffff) == PER_LINUX, "persona changed");
}

static void
test_personality(void **state)
{
	run_in_child(child_personality);
}

static void
child_ioctl(void *arg)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	CHILD_CHECK(m >= 0, "posix_openpt: %s", strerror(errno));
	CHILD_CHECK(grantpt(m) == 0 && unlockpt(m) == 0, "grantpt/unlockpt: %s", strerror(errno));
	const char *name = ptsname(m);
	CHILD_CHECK(name, "ptsname: %s", strerror(errno));
	int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	CHILD_CHECK(s >= 0, "open %s: %s", name, strerror(errno));
	load_filter();
	char c = 'x';
	CHILD_EXPECT_ERRNO(ioctl(s, TIOCSTI, &c), EPERM);
	/* CVE-2019-10063: the command is an int; a high bit must not get TIOCSTI through. */
	CHILD_EXPECT_ERRNO(syscall(__NR_ioctl, s, (1UL << 32) | TIOCSTI, &c), EPERM);
	char sel[2] = { 2, 0 }; /* TIOCL_SETSEL-ish; the filter answers before the driver */
	CHILD_EXPECT_ERRNO(ioctl(s, TIOCLINUX, sel), EPERM);
	int ldisc = 0;
	CHILD_EXPECT_ERRNO(ioctl(s, TIOCSETD, &ldisc), EPERM);
	struct winsize ws;
	CHILD_EXPECT_OK(ioctl(s, TIOCGWINSZ, &ws));
}

static void
test_ioctl_terminal(void **state)
{
	run_in_child(child_ioctl);
}

static void
child_x32(void *arg)
{
	load_filter();
	syscall(__X32_SYSCALL_BIT | __NR_getpid);
	child_fail("x32 getpid returned instead of killing the process");
}

static void
test_x32_killed(void **state)
{
	struct child_result res;
	child_run(child_x32, NULL, &res);
	if (!WIFSIGNALED(res.status))
		fail_msg("x32 syscall not killed: %s", res.msg);
	assert_int_equal(WTERMSIG(res.status), SIGSYS);
}

static long
i386_getpid(void)
{
	long r;
	/* int 0x80 from a 64-bit process: the i386 ABI, audit arch I386 */
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
	return r;
}

static void
child_i386_plain(void *arg)
{
	CHILD_CHECK(i386_getpid() == getpid(), "i386 getpid gave another pid");
}

static void
child_i386(void *arg)
{
	load_filter();
	i386_getpid();
	child_fail("i386 getpid returned instead of killing the process");
}

static void
test_i386_killed(void **state)
{
	struct child_result res;
	child_run(child_i386_plain, NULL, &res);
	if (res.status != 0)
		skip(); /* no IA32 emulation in this kernel: int 0x80 never reaches seccomp */
	child_run(child_i386, NULL, &res);
	if (!WIFSIGNALED(res.status))
		fail_msg("i386 syscall not killed: %s", res.msg);
	assert_int_equal(WTERMSIG(res.status), SIGSYS);
}

static void
child_ordinary(void *arg)
{
	int *fds = arg;
	load_filter();
	CHILD_CHECK(write(fds[1], "ok", 2) == 2, "write: %s", strerror(errno));
	execl("/bin/true", "true", (char *)NULL);
	child_fail("execl /bin/true: %s", strerror(errno));
}

static void
test_write_and_exec_work(void **state)
{
	int fds[2];
	char buf[3] = { 0 };
	assert_int_equal(pipe(fds), 0);
	struct child_result res;
	child_run(child_ordinary, fds, &res);
	close(fds[1]);
	assert_child_ok(&res);
	assert_int_equal(read(fds[0], buf, 2), 2);
	assert_string_equal(buf, "ok");
	close(fds[0]);
}

/* ---- main ---- */

static int
setup(void **state)
{
	struct nb_err e = { 0 };
	if (!mkdtemp(tmpdir))
		return -1;
	if (cage_seccomp_compile(profile_path, &filter, &e) < 0) {
		fprintf(stderr, "%s\n", e.msg);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	char cmd[PATH_MAX + 16];
	cage_seccomp_free(filter);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const char *dir = getenv("NULLBOX_POLICY_DIR");
	if (!dir) {
		fprintf(stderr, "NULLBOX_POLICY_DIR is not set (meson sets it)\n");
		return 1;
	}
	snprintf(profile_path, sizeof(profile_path), "%s/cage.seccomp", dir);
	if (geteuid() != 0) {
		printf("SKIP: not root: unfiltered, root would pass most of these calls, so only as "
		       "root is an EPERM the filter's verdict\n");
		return 77;
	}
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0) {
		printf("SKIP: kernel without seccomp: %s\n", strerror(errno));
		return 77;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_profile_compiles),
		cmocka_unit_test(test_good_profiles),
		cmocka_unit_test(test_bad_profiles),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_apply_requires_nnp),
		cmocka_unit_test(test_denied_syscalls),
		cmocka_unit_test(test_ptrace_traceme),
		cmocka_unit_test(test_unshare),
		cmocka_unit_test(test_clone_namespaces),
		cmocka_unit_test(test_fork_and_threads_work),
		cmocka_unit_test(test_clone3_enosys),
		cmocka_unit_test(test_sockets),
		cmocka_unit_test(test_personality),
		cmocka_unit_test(test_ioctl_terminal),
		cmocka_unit_test(test_x32_killed),
		cmocka_unit_test(test_i386_killed),
		cmocka_unit_test(test_write_and_exec_work),
	};
	return cmocka_run_group_tests_name("seccomp", tests, setup, teardown);
}
