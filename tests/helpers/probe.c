/*
 * probe: one escape attempt, run inside a cage, reporting what the kernel answered.
 *
 * In the manner of bubblewrap's tests/try-syscall.c: `probe ATTEMPT [ARGS]` performs exactly one
 * attempt and ends with exactly one verdict line on stdout,
 *
 *	ATTEMPT: ok          (exit 0)
 *	ATTEMPT: ERRNONAME   (exit 1; e.g. "EPERM", or "errno-N" for a number not in the table)
 *
 * Attempts that report data (id, env, ls, read, forkbomb, cpuhog, ...) print it on lines *before*
 * the verdict, as `key=value` or, for file contents, `| line`. A usage error prints to stderr and
 * exits 2. `probe list` prints every attempt with its arguments.
 *
 * The probe is linked statically and uses nothing but the C library, so it runs in a sandbox that
 * has no /lib. Every attempt is harmless when the probe runs outside a sandbox (so the tests can be
 * checked against an unprotected run): attempts that would change host state either target
 * something that does not exist, are undone at once, or only open a file without writing to it.
 *
 * Sections: errno names; output helpers; syscall attempts (seccomp); file system attempts;
 * process and limit attempts; network attempts; information; the attempt table; main.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>

extern char **environ;

/* Constants the C library does not export (values from the kernel's uapi headers). */
#define PROBE_KEYCTL_GET_KEYRING_ID 0
#define PROBE_KEY_SPEC_PROCESS_KEYRING (-2)
#define PROBE_KEY_SPEC_SESSION_KEYRING (-3)
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

/* ---- errno names ---- */

#define E(x) [x] = #x
static const char *const errno_names[] = {
	E(EPERM),	 E(ENOENT),	     E(ESRCH),		 E(EINTR),
	E(EIO),		 E(ENXIO),	     E(E2BIG),		 E(ENOEXEC),
	E(EBADF),	 E(ECHILD),	     E(EAGAIN),		 E(ENOMEM),
	E(EACCES),	 E(EFAULT),	     E(ENOTBLK),	 E(EBUSY),
	E(EEXIST),	 E(EXDEV),	     E(ENODEV),		 E(ENOTDIR),
	E(EISDIR),	 E(EINVAL),	     E(ENFILE),		 E(EMFILE),
	E(ENOTTY),	 E(ETXTBSY),	     E(EFBIG),		 E(ENOSPC),
	E(ESPIPE),	 E(EROFS),	     E(EMLINK),		 E(EPIPE),
	E(EDOM),	 E(ERANGE),	     E(EDEADLK),	 E(ENAMETOOLONG),
	E(ENOLCK),	 E(ENOSYS),	     E(ENOTEMPTY),	 E(ELOOP),
	E(ENOMSG),	 E(EIDRM),	     E(ENOSTR),		 E(ENODATA),
	E(ETIME),	 E(ENOSR),	     E(ENOLINK),	 E(EPROTO),
	E(EBADMSG),	 E(EOVERFLOW),	     E(EILSEQ),		 E(EUSERS),
	E(ENOTSOCK),	 E(EDESTADDRREQ),    E(EMSGSIZE),	 E(EPROTOTYPE),
	E(ENOPROTOOPT),	 E(EPROTONOSUPPORT), E(ESOCKTNOSUPPORT), E(EOPNOTSUPP),
	E(EPFNOSUPPORT), E(EAFNOSUPPORT),    E(EADDRINUSE),	 E(EADDRNOTAVAIL),
	E(ENETDOWN),	 E(ENETUNREACH),     E(ENETRESET),	 E(ECONNABORTED),
	E(ECONNRESET),	 E(ENOBUFS),	     E(EISCONN),	 E(ENOTCONN),
	E(ESHUTDOWN),	 E(ETIMEDOUT),	     E(ECONNREFUSED),	 E(EHOSTDOWN),
	E(EHOSTUNREACH), E(EALREADY),	     E(EINPROGRESS),	 E(ESTALE),
	E(EDQUOT),	 E(ECANCELED),	     E(ENOKEY),		 E(EKEYEXPIRED),
	E(EKEYREVOKED),	 E(EKEYREJECTED),    E(EOWNERDEAD),	 E(ENOTRECOVERABLE),
	E(ERFKILL),	 E(EHWPOISON),	     E(ENOMEDIUM),	 E(EMEDIUMTYPE),
	E(EBADE),	 E(EBADR),	     E(EBADFD),		 E(EREMOTEIO),
};
#undef E

static const char *
errno_name(int err)
{
	static char buf[32];

	if (err > 0 && (size_t)err < sizeof(errno_names) / sizeof(errno_names[0]) &&
	    errno_names[err])
		return errno_names[err];
	snprintf(buf, sizeof(buf), "errno-%d", err);
	return buf;
}

/* ---- output helpers ---- */

static const char *attempt_name; /* the ATTEMPT being run, for the verdict line */

/* Prints the verdict line and returns the exit status: 0 for "ok", 1 for a refusal. */
static int
verdict(int err)
{
	printf("%s: %s\n", attempt_name, err ? errno_name(err) : "ok");
	fflush(stdout);
	return err ? 1 : 0;
}

/* The verdict of a syscall wrapper that returned @r and set errno on failure. */
static int
verdict_rc(long r)
{
	return verdict(r < 0 ? errno : 0);
}

static void
data(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static int
usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "probe: %s: ", attempt_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 2;
}

static bool
parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static uint64_t
now_usec(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Copies the running probe (/proc/self/exe) to @dst with @mode. Returns 0 or an errno. */
static int
copy_self(const char *dst, mode_t mode)
{
	char buf[65536];
	int in, out, err = 0;
	ssize_t n;

	in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return errno;
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (out < 0) {
		err = errno;
		close(in);
		return err;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (write(out, buf, (size_t)n) != n) {
			err = errno ? errno : EIO;
			break;
		}
	}
	if (n < 0)
		err = errno;
	close(in);
	if (close(out) < 0 && !err)
		err = errno;
	if (!err && chmod(dst, mode) < 0)
		err = errno;
	return err;
}

/*
 * Runs @path in a child with @argv and reports whether execve() itself succeeded: the child writes
 * its errno into a close-on-exec pipe when execve fails, so an empty read means the exec happened.
 * The child's output goes to our stdout. Returns 0 or the errno of execve.
 */
static int
exec_in_child(const char *path, char *const argv[])
{
	int p[2], err = 0;
	pid_t pid;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) < 0)
		return errno;
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		err = errno;
		close(p[0]);
		close(p[1]);
		return err;
	}
	if (pid == 0) {
		close(p[0]);
		execve(path, argv, environ);
		err = errno;
		(void)!write(p[1], &err, sizeof(err));
		_exit(127);
	}
	close(p[1]);
	do {
		n = read(p[0], &err, sizeof(err));
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(err))
		err = 0;
	close(p[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return err;
}

/* ---- syscall attempts (what seccomp must refuse) ---- */

static int
do_ptrace_traceme(int argc, char **argv)
{
	/* Harmless outside a sandbox: our parent never waits for us as a tracer, and we do not
	 * exec. */
	return verdict_rc(ptrace(PTRACE_TRACEME, 0, NULL, NULL));
}

/* PTRACE_ATTACH to @pid (default 1), wait for the attach stop, detach at once. */
static int
do_ptrace_attach(int argc, char **argv)
{
	long pid = 1;

	if (argc > 0 && !parse_long(argv[0], 1, INT_MAX, &pid))
		return usage_error("bad pid '%s'", argv[0]);
	if (ptrace(PTRACE_ATTACH, (pid_t)pid, NULL, NULL) < 0)
		return verdict(errno);
	waitpid((pid_t)pid, NULL, __WALL);
	ptrace(PTRACE_DETACH, (pid_t)pid, NULL, NULL);
	return verdict(0);
}

/*
 * PTRACE_ATTACH to a child of our own, same uid: without seccomp this always succeeds (no
 * capability and no Yama rule forbids tracing a descendant), so a refusal proves the filter.
 */
static int
do_ptrace_child(int argc, char **argv)
{
	pid_t pid;
	int err = 0;

	pid = fork();
	if (pid < 0)
		return verdict(errno);
	if (pid == 0) {
		for (;;)
			pause();
	}
	if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) < 0) {
		err = errno;
	} else {
		waitpid(pid, NULL, __WALL);
		ptrace(PTRACE_DETACH, pid, NULL, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return verdict(err);
}

static int
do_mount(int argc, char **argv)
{
	int r = mount("none", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m");

	if (r == 0)
		umount2("/tmp", MNT_DETACH); /* undo: only reachable without protection */
	return verdict_rc(r);
}

/*
 * umount2("/proc", MNT_EXPIRE): the first MNT_EXPIRE call only marks the mount and answers
 * EAGAIN, so even an unprotected root unmounts nothing; without CAP_SYS_ADMIN: EPERM.
 */
static int
do_umount(int argc, char **argv)
{
	return verdict_rc(umount2("/proc", MNT_EXPIRE));
}

/*
 * pivot_root on a path that does not exist: the capability check comes first (EPERM), an
 * unprotected root gets ENOENT, and nothing can be pivoted by accident.
 */
static int
do_pivot_root(int argc, char **argv)
{
	return verdict_rc(syscall(SYS_pivot_root, "/nonexistent-nullbox-probe",
				  "/nonexistent-nullbox-probe"));
}

static int
do_bpf(int argc, char **argv)
{
	union bpf_attr attr;
	long fd;

	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_ARRAY;
	attr.key_size = 4;
	attr.value_size = 4;
	attr.max_entries = 1;
	fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
	if (fd >= 0)
		close((int)fd);
	return verdict_rc(fd);
}

static int
do_io_uring_setup(int argc, char **argv)
{
	struct io_uring_params p;
	long fd;

	memset(&p, 0, sizeof(p));
	fd = syscall(SYS_io_uring_setup, 1, &p);
	if (fd >= 0)
		close((int)fd);
	return verdict_rc(fd);
}

static int
do_keyctl(int argc, char **argv)
{
	return verdict_rc(syscall(SYS_keyctl, PROBE_KEYCTL_GET_KEYRING_ID,
				  PROBE_KEY_SPEC_SESSION_KEYRING, 0));
}

static int
do_add_key(int argc, char **argv)
{
	/* the process keyring dies with us, so nothing stays on the host */
	return verdict_rc(syscall(SYS_add_key, "user", "nullbox-probe", "x", (size_t)1,
				  PROBE_KEY_SPEC_PROCESS_KEYRING));
}

static int
do_request_key(int argc, char **argv)
{
	/* no callout info: the kernel never runs /sbin/request-key; unprotected answer is ENOKEY */
	return verdict_rc(syscall(SYS_request_key, "user", "nullbox-probe-nonexistent", NULL, 0));
}

static int
do_kexec_load(int argc, char **argv)
{
	/*
	 * An impossible architecture in flags: with CAP_SYS_BOOT the kernel answers EINVAL (or
	 * ENOSYS without kexec) and loads nothing; without it, EPERM. Never a real load or an
	 * unload.
	 */
	return verdict_rc(syscall(SYS_kexec_load, 0UL, 0UL, NULL, 0x7fff0000UL));
}

static int
do_init_module(int argc, char **argv)
{
	return verdict_rc(syscall(SYS_init_module, NULL, 0UL, ""));
}

static int
do_finit_module(int argc, char **argv)
{
	return verdict_rc(syscall(SYS_finit_module, -1, "", 0));
}

static int
do_delete_module(int argc, char **argv)
{
	return verdict_rc(syscall(SYS_delete_module, "nullbox_probe_nonexistent", O_NONBLOCK));
}

static int
do_perf_event_open(int argc, char **argv)
{
	struct perf_event_attr attr;
	long fd;

	memset(&attr, 0, sizeof(attr));
	attr.type = PERF_TYPE_SOFTWARE;
	attr.size = sizeof(attr);
	attr.config = PERF_COUNT_SW_TASK_CLOCK;
	attr.disabled = 1;
	attr.exclude_kernel = 1;
	attr.exclude_hv = 1;
	fd = syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0UL);
	if (fd >= 0)
		close((int)fd);
	return verdict_rc(fd);
}

static int
do_userfaultfd(int argc, char **argv)
{
	/* UFFD_USER_MODE_ONLY works unprivileged even with vm.unprivileged_userfaultfd=0 */
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);

	if (fd >= 0)
		close((int)fd);
	return verdict_rc(fd);
}

/* unshare() in a child, so an unprotected run does not change the probe's own namespaces. */
static int
unshare_in_child(int flags)
{
	int p[2], err = 0;
	pid_t pid;

	if (pipe(p) < 0)
		return verdict(errno);
	pid = fork();
	if (pid < 0)
		return verdict(errno);
	if (pid == 0) {
		close(p[0]);
		err = unshare(flags) < 0 ? errno : 0;
		(void)!write(p[1], &err, sizeof(err));
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], &err, sizeof(err)) != (ssize_t)sizeof(err))
		err = EIO;
	close(p[0]);
	waitpid(pid, NULL, 0);
	return verdict(err);
}

static int
do_unshare_user(int argc, char **argv)
{
	/* unprivileged user namespaces are allowed on Debian: only seccomp stands in the way */
	return unshare_in_child(CLONE_NEWUSER);
}

static int
do_unshare_net(int argc, char **argv)
{
	return unshare_in_child(CLONE_NEWNET);
}

static int
do_unshare_mount(int argc, char **argv)
{
	return unshare_in_child(CLONE_NEWNS);
}

static int
do_setns(int argc, char **argv)
{
	int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int err;

	if (fd < 0)
		return verdict(errno);
	/* joining the namespace we are already in: a no-op when allowed */
	err = setns(fd, CLONE_NEWNET) < 0 ? errno : 0;
	close(fd);
	return verdict(err);
}

/* Raw clone(2) with @flags | SIGCHLD; the child exits at once. */
static int
clone_raw(unsigned long flags)
{
	long pid;

	fflush(stdout);
	pid = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0UL);
	if (pid < 0)
		return verdict(errno);
	if (pid == 0)
		syscall(SYS_exit, 0);
	waitpid((pid_t)pid, NULL, 0);
	return verdict(0);
}

static int
do_clone_newuser(int argc, char **argv)
{
	return clone_raw(CLONE_NEWUSER);
}

static int
do_clone_newns(int argc, char **argv)
{
	return clone_raw(CLONE_NEWNS);
}

static int
do_clone3(int argc, char **argv)
{
	struct clone_args args;
	long pid;

	memset(&args, 0, sizeof(args));
	args.exit_signal = SIGCHLD;
	fflush(stdout);
	pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0)
		return verdict(errno);
	if (pid == 0)
		syscall(SYS_exit, 0);
	waitpid((pid_t)pid, NULL, 0);
	return verdict(0);
}

static int
do_socket_packet(int argc, char **argv)
{
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));

	if (fd >= 0)
		close(fd);
	return verdict_rc(fd);
}

/* socket(FAMILY, TYPE, PROTO) with numbers: e.g. AF_VSOCK 40 1 0, netlink uevents 16 3 15. */
static int
do_socket_any(int argc, char **argv)
{
	long fam, type, proto;

	if (argc < 3 || !parse_long(argv[0], 0, 255, &fam) || !parse_long(argv[1], 0, 15, &type) ||
	    !parse_long(argv[2], 0, 65535, &proto))
		return usage_error("needs FAMILY TYPE PROTO (numbers)");
	int fd = socket((int)fam, (int)type | SOCK_CLOEXEC, (int)proto);
	if (fd >= 0)
		close(fd);
	return verdict_rc(fd);
}

static int
do_socket_raw(int argc, char **argv)
{
	int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);

	if (fd >= 0)
		close(fd);
	return verdict_rc(fd);
}

static int
do_personality(int argc, char **argv)
{
	int old = personality(0xffffffff);
	int r = personality(PER_LINUX32);

	if (r >= 0)
		personality((unsigned long)old);
	return verdict_rc(r);
}

/*
 * TIOCSTI pushes a byte into a terminal's input queue: the classic way out of a sandbox that shares
 * the caller's terminal. The fd used: the first of 0, 1, 2 that is a tty, else /dev/tty, else
 * /dev/null. seccomp matches the ioctl request number, not the fd, so a filter answers EPERM even
 * on a non-tty fd, whereas an unprotected kernel answers ENOTTY there (or EIO when
 * dev.tty.legacy_tiocsti=0). The byte pushed, when allowed, is a newline.
 */
static int
do_tiocsti(int argc, char **argv)
{
	char c = '\n';
	int fd = -1, err, i;
	bool opened = false;

	for (i = 0; i < 3; i++) {
		if (isatty(i)) {
			fd = i;
			break;
		}
	}
	if (fd < 0) {
		fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		opened = fd >= 0;
	}
	if (fd < 0)
		return verdict(errno);
	data("fd=%d tty=%d", fd, isatty(fd));
	err = ioctl(fd, TIOCSTI, &c) < 0 ? errno : 0;
	if (opened)
		close(fd);
	return verdict(err);
}

static int
do_chroot(int argc, char **argv)
{
	/* chroot into "/" changes nothing even when it is allowed */
	return verdict_rc(chroot("/"));
}

/*
 * open_by_handle_at() with AT_FDCWD as the mount fd, so nothing but the call itself can fail
 * (opening "/" for the mount fd may be refused by Landlock). The handle is a real one of "."
 * when name_to_handle_at() works (it is denied by the profile too), else a made-up one: seccomp
 * answers before the kernel looks at it. Unprotected root with a real handle: ok.
 */
static int
do_open_by_handle_at(int argc, char **argv)
{
	struct {
		struct file_handle fh;
		unsigned char bytes[MAX_HANDLE_SZ];
	} h;
	int mount_id, fd, err;

	memset(&h, 0, sizeof(h));
	h.fh.handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(AT_FDCWD, ".", &h.fh, &mount_id, 0) < 0) {
		data("name_to_handle_at=%s", errno_name(errno));
		h.fh.handle_bytes = 8;
		h.fh.handle_type = 1;
	} else {
		data("name_to_handle_at=ok");
	}
	fd = (int)syscall(SYS_open_by_handle_at, AT_FDCWD, &h.fh, O_RDONLY | O_CLOEXEC);
	err = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	return verdict(err);
}

static int
do_hostname(int argc, char **argv)
{
	char old[HOST_NAME_MAX + 1] = "";
	int r;

	gethostname(old, sizeof(old) - 1);
	r = sethostname("nullbox-pwned", strlen("nullbox-pwned"));
	if (r == 0)
		sethostname(old, strlen(old)); /* undo */
	return verdict_rc(r);
}

static int
do_setuid0(int argc, char **argv)
{
	return verdict_rc(setuid(0));
}

/* ---- file system attempts ---- */

/* Reads @path and prints it as `| line` (NUL bytes, as in /proc/N/environ, end lines too). */
static int
dump_file(const char *path)
{
	char buf[4096], line[4096];
	size_t len = 0, total = 0;
	ssize_t n, i;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	while ((n = read(fd, buf, sizeof(buf))) > 0 && total < (1u << 20)) {
		total += (size_t)n;
		for (i = 0; i < n; i++) {
			if (buf[i] == '\n' || buf[i] == '\0' || len == sizeof(line) - 1) {
				line[len] = '\0';
				data("| %s", line);
				len = 0;
				if (buf[i] == '\n' || buf[i] == '\0')
					continue;
			}
			line[len++] = buf[i];
		}
	}
	if (n < 0)
		err = errno;
	if (len) {
		line[len] = '\0';
		data("| %s", line);
	}
	close(fd);
	return err;
}

static int
do_read(int argc, char **argv)
{
	if (argc != 1)
		return usage_error("needs FILE");
	return verdict(dump_file(argv[0]));
}

/* Creates or truncates FILE and writes a line to it. */
static int
do_write(int argc, char **argv)
{
	static const char msg[] = "written by nullbox probe\n";
	int fd, err = 0;

	if (argc != 1)
		return usage_error("needs FILE");
	fd = open(argv[0], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return verdict(errno);
	if (write(fd, msg, sizeof(msg) - 1) != (ssize_t)(sizeof(msg) - 1))
		err = errno ? errno : EIO;
	if (close(fd) < 0 && !err)
		err = errno;
	return verdict(err);
}

/* Opens FILE for writing without O_CREAT or O_TRUNC and writes nothing: safe on /proc and /sys. */
static int
do_open_w(int argc, char **argv)
{
	int fd;

	if (argc != 1)
		return usage_error("needs FILE");
	fd = open(argv[0], O_WRONLY | O_CLOEXEC);
	if (fd >= 0)
		close(fd);
	return verdict_rc(fd);
}

/* Opens FILE read-only and reads nothing: for devices such as a raw disk. */
static int
do_open_r(int argc, char **argv)
{
	int fd;

	if (argc != 1)
		return usage_error("needs FILE");
	fd = open(argv[0], O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		close(fd);
	return verdict_rc(fd);
}

static int
do_write_sysfs(int argc, char **argv)
{
	/* a knob of the whole machine's memory management: opened, never written */
	const char *path = argc > 0 ? argv[0] : "/sys/kernel/mm/transparent_hugepage/enabled";
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd >= 0)
		close(fd);
	return verdict_rc(fd);
}

static int
do_mkdir(int argc, char **argv)
{
	if (argc != 1)
		return usage_error("needs DIR");
	return verdict_rc(mkdir(argv[0], 0755));
}

static int
do_mknod(int argc, char **argv)
{
	int r;

	if (argc != 1)
		return usage_error("needs PATH");
	/* 1:3 is /dev/null: a char device node is the step towards raw disks and /dev/mem */
	r = mknod(argv[0], S_IFCHR | 0666, makedev(1, 3));
	if (r == 0)
		unlink(argv[0]);
	return verdict_rc(r);
}

/* Executes PATH (with ARGS) in a child; ok means execve() succeeded. */
static int
do_exec(int argc, char **argv)
{
	if (argc < 1)
		return usage_error("needs PATH [ARGS]");
	return verdict(exec_in_child(argv[0], argv));
}

/* Copies the probe into DIR and executes the copy: proves DIR is (or is not) noexec. */
static int
do_exec_copy(int argc, char **argv)
{
	char path[PATH_MAX];
	char *args[] = { path, (char *)"exit", (char *)"0", NULL };
	int err;

	if (argc != 1)
		return usage_error("needs DIR");
	snprintf(path, sizeof(path), "%s/probe-copy.%d", argv[0], (int)getpid());
	/* the copy must succeed for the verdict to be about exec: the test checks "copy=ok" */
	err = copy_self(path, 0755);
	data("copy=%s", err ? errno_name(err) : "ok");
	if (err)
		return verdict(err);
	err = exec_in_child(path, args);
	unlink(path);
	return verdict(err);
}

/*
 * Writes the probe into a memfd and executes that (execveat AT_EMPTY_PATH): code that never
 * touches a noexec mount or a Landlock-ruled path. Informational: it shows whether "write paths
 * are noexec" can be walked around.
 */
static int
do_memfd_exec(int argc, char **argv)
{
	char buf[65536];
	char *args[] = { (char *)"probe", (char *)"exit", (char *)"0", NULL };
	int in, fd, p[2], err = 0;
	ssize_t n;
	pid_t pid;

	fd = memfd_create("probe", 0);
	if (fd < 0)
		return verdict(errno);
	in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return verdict(errno);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(fd, buf, (size_t)n) != n)
			return verdict(errno ? errno : EIO);
	close(in);
	if (pipe2(p, O_CLOEXEC) < 0)
		return verdict(errno);
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return verdict(errno);
	if (pid == 0) {
		close(p[0]);
		syscall(SYS_execveat, fd, "", args, environ, AT_EMPTY_PATH);
		err = errno;
		(void)!write(p[1], &err, sizeof(err));
		_exit(127);
	}
	close(p[1]);
	if (read(p[0], &err, sizeof(err)) != (ssize_t)sizeof(err))
		err = 0;
	close(p[0]);
	waitpid(pid, NULL, 0);
	close(fd);
	return verdict(err);
}

/*
 * Creates DIR/LINK -> TARGET (TARGET: a host path) and reads through the link. Inside a sandbox
 * the link resolves in the sandbox's own tree, so a host file that was not granted stays ENOENT.
 */
static int
do_symlink_escape(int argc, char **argv)
{
	char link[PATH_MAX];
	int err;

	if (argc != 2)
		return usage_error("needs DIR TARGET");
	snprintf(link, sizeof(link), "%s/escape-link.%d", argv[0], (int)getpid());
	if (symlink(argv[1], link) < 0) {
		data("symlink=%s", errno_name(errno));
		return verdict(errno);
	}
	err = dump_file(link);
	unlink(link);
	return verdict(err);
}

/* Reads START/../../../(as many as needed)/TARGET, i.e. climbs above START with "..". */
static int
do_dotdot(int argc, char **argv)
{
	char path[PATH_MAX];
	const char *start = argc > 0 ? argv[0] : "/agent";
	const char *target = argc > 1 ? argv[1] : "/etc/shadow";
	size_t len;
	int i;

	len = (size_t)snprintf(path, sizeof(path), "%s", start);
	for (i = 0; i < 16 && len < sizeof(path); i++)
		len += (size_t)snprintf(path + len, sizeof(path) - len, "/..");
	if (len < sizeof(path))
		snprintf(path + len, sizeof(path) - len, "%s%s", target[0] == '/' ? "" : "/",
			 target);
	data("path=%s", path);
	return verdict(dump_file(path));
}

static int
do_ls(int argc, char **argv)
{
	struct dirent *de;
	DIR *d;

	if (argc != 1)
		return usage_error("needs DIR");
	d = opendir(argv[0]);
	if (!d)
		return verdict(errno);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			data("| %s", de->d_name);
	closedir(d);
	return verdict(0);
}

/* ---- process and limit attempts ---- */

static int do_id(int argc, char **argv);

/*
 * Executes PATH (meant to be a setuid-root copy of the probe) as `PATH id`: the copy prints its
 * own uid/euid/CapEff, so the test can see that neither the setuid bit nor file capabilities
 * raised anything (no_new_privs, nosuid). The verdict line is the copy's own `id: ok`; when
 * execve fails, it is ours, `setuid-exec: ERRNO`.
 */
static int
do_setuid_exec(int argc, char **argv)
{
	char *args[] = { NULL, (char *)"id", NULL };

	if (argc != 1)
		return usage_error("needs PATH");
	args[0] = argv[0];
	fflush(stdout);
	execve(argv[0], args, environ);
	return verdict(errno);
}

/*
 * Forks children that wait in pause() until fork() fails, reports how many were made and the
 * errno of the failing fork, then kills and reaps them all. A cap (default 2000) keeps an
 * unprotected run bounded; reaching it is reported as "ok" (the bomb was not stopped).
 */
static int
do_forkbomb(int argc, char **argv)
{
	long cap = 2000;
	pid_t *pids;
	long n = 0, i;
	int err = 0;

	if (argc > 0 && !parse_long(argv[0], 1, 100000, &cap))
		return usage_error("bad cap '%s'", argv[0]);
	pids = calloc((size_t)cap, sizeof(*pids));
	if (!pids)
		return verdict(errno);
	fflush(stdout);
	while (n < cap) {
		pid_t pid = fork();

		if (pid < 0) {
			err = errno;
			break;
		}
		if (pid == 0) {
			for (;;)
				pause();
		}
		pids[n++] = pid;
	}
	for (i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	for (i = 0; i < n; i++)
		while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
			;
	free(pids);
	data("forked=%ld", n);
	return verdict(err);
}

/* Maps and touches MB mebibytes, one page at a time; ok means all of it was obtained. */
static int
do_membomb(int argc, char **argv)
{
	long mb, i;
	long page = sysconf(_SC_PAGESIZE);

	if (argc != 1 || !parse_long(argv[0], 1, 1L << 20, &mb))
		return usage_error("needs MB");
	for (i = 0; i < mb; i++) {
		char *p = mmap(NULL, 1u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);
		long off;

		if (p == MAP_FAILED) {
			data("touched_mb=%ld", i);
			return verdict(errno);
		}
		for (off = 0; off < (1L << 20); off += page)
			p[off] = (char)1;
	}
	data("touched_mb=%ld", mb);
	return verdict(0);
}

/* Busy-loops for SECONDS of wall time and reports the CPU time it was given. */
static int
do_cpuhog(int argc, char **argv)
{
	uint64_t start, wall, cpu0, cpu;
	volatile uint64_t spin = 0;
	long secs;

	if (argc != 1 || !parse_long(argv[0], 1, 3600, &secs))
		return usage_error("needs SECONDS");
	start = now_usec(CLOCK_MONOTONIC);
	cpu0 = now_usec(CLOCK_PROCESS_CPUTIME_ID);
	do {
		for (int i = 0; i < 100000; i++)
			spin++;
		wall = now_usec(CLOCK_MONOTONIC) - start;
	} while (wall < (uint64_t)secs * 1000000u);
	cpu = now_usec(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
	data("cpu_usec=%" PRIu64, cpu);
	data("wall_usec=%" PRIu64, wall);
	data("cpu_percent=%" PRIu64, wall ? cpu * 100 / wall : 0);
	return verdict(0);
}

static int
do_sleep(int argc, char **argv)
{
	/* argv[1], if any, is a tag for the test to find this process by its cmdline */
	long secs;
	struct timespec ts;

	if (argc < 1 || !parse_long(argv[0], 0, 86400, &secs))
		return usage_error("needs SECONDS [TAG]");
	data("pid=%d", (int)getpid());
	ts.tv_sec = secs;
	ts.tv_nsec = 0;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return verdict(0);
}

static int
do_exit(int argc, char **argv)
{
	long code;

	if (argc != 1 || !parse_long(argv[0], 0, 255, &code))
		return usage_error("needs CODE (0-255)");
	fflush(stdout);
	_exit((int)code);
}

/* Counts the processes this probe can see in /proc; the host has many, a sandbox two or three. */
static int
do_host_procs(int argc, char **argv)
{
	struct dirent *de;
	long n = 0;
	DIR *d;

	d = opendir("/proc");
	if (!d)
		return verdict(errno);
	while ((de = readdir(d))) {
		if (de->d_name[0] >= '1' && de->d_name[0] <= '9') {
			data("| %s", de->d_name);
			n++;
		}
	}
	closedir(d);
	data("pids=%ld", n);
	return verdict(0);
}

/* ---- network attempts ---- */

static int
do_connect(int argc, char **argv)
{
	struct sockaddr_in sa;
	struct pollfd pfd;
	socklen_t len = sizeof(int);
	long port;
	int fd, err = 0;

	if (argc != 2 || !parse_long(argv[1], 1, 65535, &port))
		return usage_error("needs HOST PORT (IPv4 address)");
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, argv[0], &sa.sin_addr) != 1)
		return usage_error("bad IPv4 address '%s'", argv[0]);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return verdict(errno);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = errno;
		if (err == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, 3000) == 0)
				err = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
				err = errno;
		}
	}
	close(fd);
	return verdict(err);
}

static int
do_socket_tcp(int argc, char **argv)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0)
		close(fd);
	return verdict_rc(fd);
}

/* Lists the network interfaces (with up/down): a fresh netns has only "lo". */
static int
do_net_ifaces(int argc, char **argv)
{
	struct if_nameindex *ifs = if_nameindex(), *i;
	int fd;

	if (!ifs)
		return verdict(errno);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	for (i = ifs; i->if_index; i++) {
		struct ifreq ifr;
		bool up = false;

		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", i->if_name);
		if (fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) == 0)
			up = ifr.ifr_flags & IFF_UP;
		data("| %s %s", i->if_name, up ? "up" : "down");
	}
	if (fd >= 0)
		close(fd);
	if_freenameindex(ifs);
	return verdict(0);
}

/* ---- information ---- */

static int
do_env(int argc, char **argv)
{
	for (char **e = environ; *e; e++)
		data("%s", *e);
	return verdict(0);
}

static int
do_id(int argc, char **argv)
{
	static const char *const keys[] = { "CapInh", "CapPrm",	    "CapEff", "CapBnd",
					    "CapAmb", "NoNewPrivs", "Seccomp" };
	char line[256];
	gid_t groups[64];
	int ng, i;
	FILE *f;

	data("uid=%u", (unsigned)getuid());
	data("gid=%u", (unsigned)getgid());
	data("euid=%u", (unsigned)geteuid());
	data("egid=%u", (unsigned)getegid());
	ng = getgroups(64, groups);
	printf("groups=");
	for (i = 0; i < ng; i++)
		printf("%s%u", i ? "," : "", (unsigned)groups[i]);
	data("");
	f = fopen("/proc/self/status", "re");
	if (!f)
		return verdict(errno);
	while (fgets(line, sizeof(line), f)) {
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			size_t kl = strlen(keys[k]);

			if (!strncmp(line, keys[k], kl) && line[kl] == ':') {
				char *v = line + kl + 1;

				v += strspn(v, " \t");
				v[strcspn(v, "\n")] = '\0';
				data("%s=%s", keys[k], v);
			}
		}
	}
	fclose(f);
	return verdict(0);
}

static int
do_proc_environ_1(int argc, char **argv)
{
	return verdict(dump_file("/proc/1/environ"));
}

/* ---- the attempt table ---- */

struct attempt {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *args;
};

static int do_list(int argc, char **argv);

static const struct attempt attempts[] = {
	{ "ptrace-traceme", do_ptrace_traceme, "" },
	{ "ptrace-attach", do_ptrace_attach, "[PID=1]" },
	{ "ptrace-child", do_ptrace_child, "" },
	{ "mount", do_mount, "" },
	{ "umount", do_umount, "" },
	{ "pivot_root", do_pivot_root, "" },
	{ "bpf", do_bpf, "" },
	{ "io_uring_setup", do_io_uring_setup, "" },
	{ "keyctl", do_keyctl, "" },
	{ "add_key", do_add_key, "" },
	{ "request_key", do_request_key, "" },
	{ "kexec_load", do_kexec_load, "" },
	{ "init_module", do_init_module, "" },
	{ "finit_module", do_finit_module, "" },
	{ "delete_module", do_delete_module, "" },
	{ "perf_event_open", do_perf_event_open, "" },
	{ "userfaultfd", do_userfaultfd, "" },
	{ "unshare-user", do_unshare_user, "" },
	{ "unshare-net", do_unshare_net, "" },
	{ "unshare-mount", do_unshare_mount, "" },
	{ "setns", do_setns, "" },
	{ "clone-newuser", do_clone_newuser, "" },
	{ "clone-newns", do_clone_newns, "" },
	{ "clone3", do_clone3, "" },
	{ "socket-packet", do_socket_packet, "" },
	{ "socket-raw", do_socket_raw, "" },
	{ "socket", do_socket_any, "FAMILY TYPE PROTO" },
	{ "socket-tcp", do_socket_tcp, "" },
	{ "personality", do_personality, "" },
	{ "tiocsti", do_tiocsti, "" },
	{ "chroot", do_chroot, "" },
	{ "open_by_handle_at", do_open_by_handle_at, "" },
	{ "hostname", do_hostname, "" },
	{ "setuid0", do_setuid0, "" },
	{ "read", do_read, "FILE" },
	{ "write", do_write, "FILE" },
	{ "open-r", do_open_r, "FILE" },
	{ "open-w", do_open_w, "FILE" },
	{ "write-sysfs", do_write_sysfs, "[FILE=/sys/kernel/mm/transparent_hugepage/enabled]" },
	{ "mkdir", do_mkdir, "DIR" },
	{ "mknod", do_mknod, "PATH" },
	{ "exec", do_exec, "PATH [ARGS]" },
	{ "exec-copy", do_exec_copy, "DIR" },
	{ "memfd-exec", do_memfd_exec, "" },
	{ "symlink-escape", do_symlink_escape, "DIR TARGET" },
	{ "dotdot", do_dotdot, "[START=/agent [TARGET=/etc/shadow]]" },
	{ "ls", do_ls, "DIR" },
	{ "setuid-exec", do_setuid_exec, "PATH" },
	{ "forkbomb", do_forkbomb, "[CAP=2000]" },
	{ "membomb", do_membomb, "MB" },
	{ "cpuhog", do_cpuhog, "SECONDS" },
	{ "sleep", do_sleep, "SECONDS [TAG]" },
	{ "exit", do_exit, "CODE" },
	{ "host-procs", do_host_procs, "" },
	{ "connect", do_connect, "HOST PORT" },
	{ "net-ifaces", do_net_ifaces, "" },
	{ "env", do_env, "" },
	{ "id", do_id, "" },
	{ "proc-environ-1", do_proc_environ_1, "" },
	{ "list", do_list, "" },
};

static int
do_list(int argc, char **argv)
{
	for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++)
		printf("%s %s\n", attempts[i].name, attempts[i].args);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: probe ATTEMPT [ARGS]   (probe list: the attempts)\n");
		return 2;
	}
	attempt_name = argv[1];
	for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++)
		if (!strcmp(attempts[i].name, argv[1]))
			return attempts[i].fn(argc - 2, argv + 2);
	fprintf(stderr, "probe: unknown attempt '%s' (probe list: the attempts)\n", argv[1]);
	return 2;
}
