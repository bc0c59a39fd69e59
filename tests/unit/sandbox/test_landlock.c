/*
 * test_landlock.c: cage_landlock_apply() against the real kernel, in forked children.
 *
 * Layout under a fresh temporary directory T:
 *   T/ro   READ_EXEC rule   (file f, executable true)
 *   T/rw   READ_WRITE rule  (file f, executable true)
 *   T/out  no rule          (file f)
 * plus READ_EXEC on /usr (the dynamic loader and libc, to execute T/ro/true), and /dev as cage
 * sets it up: READ_EXEC on the directory, DEV on /dev/null. Each check asserts the kernel's
 * answer (errno).
 *
 * Runs as root, so a refusal is Landlock's and not a missing capability (mknod needs
 * CAP_MKNOD, for one). Not root or no Landlock: exit 77 (skip) with the reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/landlock.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "cage.h"
#include "child.h"
#include "cleanup.h"

static char top[] = "/tmp/nullbox-landlock-test.XXXXXX";
static char ro[256], rw[256], out[256];
static int kernel_abi;

static void
path_in(char *buf, size_t size, const char *dir, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= size)
		abort(); /* the fixture's paths are short */
}

/* ---- fixtures ---- */

static int
copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	int o = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (o < 0) {
		close(in);
		return -1;
	}
	ssize_t n;
	int r = 0;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(o, buf, (size_t)n) != n)
			r = -1;
	if (n < 0)
		r = -1;
	close(in);
	if (close(o) < 0)
		r = -1;
	return r;
}

static int
write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, text, strlen(text));
	close(fd);
	return w == (ssize_t)strlen(text) ? 0 : -1;
}

static int
setup(void **state)
{
	char p[300];
	if (!mkdtemp(top))
		return -1;
	path_in(ro, sizeof(ro), top, "ro");
	path_in(rw, sizeof(rw), top, "rw");
	path_in(out, sizeof(out), top, "out");
	if (mkdir(ro, 0755) < 0 || mkdir(rw, 0755) < 0 || mkdir(out, 0755) < 0)
		return -1;
	const char *dirs[] = { ro, rw, out };
	for (size_t i = 0; i < NB_ARRAY_SIZE(dirs); i++) {
		path_in(p, sizeof(p), dirs[i], "f");
		if (write_text(p, "hello\n") < 0)
			return -1;
	}
	path_in(p, sizeof(p), ro, "true");
	if (copy_file("/bin/true", p, 0755) < 0)
		return -1;
	path_in(p, sizeof(p), rw, "true");
	if (copy_file("/bin/true", p, 0755) < 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- checks ---- */

/* In the child: no_new_privs, then the test's ruleset. */
static int
apply_rules(void)
{
	const struct cage_ll_rule rules[] = {
		{ ro, CAGE_LL_READ_EXEC },
		{ rw, CAGE_LL_READ_WRITE },
		{ "/usr", CAGE_LL_READ_EXEC },
		{ "/lib64", CAGE_LL_READ_EXEC }, /* a symlink to usr/lib64 on merged-/usr hosts */
		{ "/dev", CAGE_LL_READ_EXEC },	 /* as cage does: the directory read-only... */
		{ "/dev/null", CAGE_LL_DEV },	 /* ...and the devices the agent may use */
		{ "/nonexistent/nullbox-test", CAGE_LL_READ_WRITE }, /* skipped */
	};
	struct nb_err e = { 0 };
	int abi = -1;
	CHILD_CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "no_new_privs: %s",
		    strerror(errno));
	int r = cage_landlock_apply(rules, NB_ARRAY_SIZE(rules), &abi, &e);
	CHILD_CHECK(r == 0, "cage_landlock_apply: %d: %s", r, e.msg);
	return abi;
}

static void
child_abi(void *arg)
{
	int abi = apply_rules();
	CHILD_CHECK(abi >= 1, "ABI %d, want >= 1", abi);
	CHILD_CHECK(abi == kernel_abi, "ABI %d, the kernel offers %d", abi, kernel_abi);
}

static void
test_abi(void **state)
{
	struct child_result res;
	child_run(child_abi, NULL, &res);
	assert_child_ok(&res);
}

/* Runs @path in a grandchild; returns its exit status, or 100 + errno if execve failed. */
static int
exec_status(const char *path)
{
	pid_t pid = fork();
	if (pid == 0) {
		execl(path, path, (char *)NULL);
		_exit(100 + errno);
	}
	int ws;
	if (pid < 0 || waitpid(pid, &ws, 0) != pid || !WIFEXITED(ws))
		return -1;
	return WEXITSTATUS(ws);
}

static void
child_read_exec_dir(void *arg)
{
	char f[300], n[300], t[300], buf[16] = { 0 };
	path_in(f, sizeof(f), ro, "f");
	path_in(n, sizeof(n), ro, "new");
	path_in(t, sizeof(t), ro, "true");
	int abi = apply_rules();

	int fd;
	CHILD_EXPECT_OK(fd = open(f, O_RDONLY | O_CLOEXEC));
	CHILD_CHECK(read(fd, buf, sizeof(buf) - 1) == 6 && strcmp(buf, "hello\n") == 0, "read %s",
		    f);
	close(fd);
	DIR *d = opendir(ro);
	CHILD_CHECK(d, "opendir %s: %s", ro, strerror(errno));
	closedir(d);
	CHILD_CHECK(exec_status(t) == 0, "exec %s: status %d", t, exec_status(t));

	CHILD_EXPECT_ERRNO(open(f, O_WRONLY | O_CLOEXEC), EACCES);
	CHILD_EXPECT_ERRNO(open(f, O_RDWR | O_CLOEXEC), EACCES);
	CHILD_EXPECT_ERRNO(open(n, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), EACCES);
	CHILD_EXPECT_ERRNO(unlink(f), EACCES);
	CHILD_EXPECT_ERRNO(mkdir(n, 0755), EACCES);
	if (abi >= 3)
		CHILD_EXPECT_ERRNO(truncate(f, 0), EACCES);
}

static void
test_read_exec_dir(void **state)
{
	struct child_result res;
	child_run(child_read_exec_dir, NULL, &res);
	assert_child_ok(&res);
}

static void
child_read_write_dir(void *arg)
{
	char n[300], sub[300], moved[300], lnk[300], fifo[300], chr[300], blk[300], t[300];
	path_in(n, sizeof(n), rw, "new");
	path_in(sub, sizeof(sub), rw, "sub");
	path_in(moved, sizeof(moved), sub, "new");
	path_in(lnk, sizeof(lnk), rw, "link");
	path_in(fifo, sizeof(fifo), rw, "fifo");
	path_in(chr, sizeof(chr), rw, "null");
	path_in(blk, sizeof(blk), rw, "loop");
	path_in(t, sizeof(t), rw, "true");
	int abi = apply_rules();

	int fd;
	CHILD_EXPECT_OK(fd = open(n, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
	CHILD_CHECK(write(fd, "data", 4) == 4, "write %s: %s", n, strerror(errno));
	if (abi >= 3)
		CHILD_EXPECT_OK(ftruncate(fd, 2));
	close(fd);
	CHILD_EXPECT_OK(mkdir(sub, 0755));
	/* a move between two directories under one rule needs REFER, which READ_WRITE grants */
	CHILD_EXPECT_OK(rename(n, moved));
	CHILD_EXPECT_OK(symlink("f", lnk));
	CHILD_EXPECT_OK(mkfifo(fifo, 0600));
	CHILD_EXPECT_OK(unlink(fifo));

	/* no device nodes, even for root, and nothing written there runs */
	CHILD_EXPECT_ERRNO(mknod(chr, S_IFCHR | 0600, makedev(1, 3)), EACCES);
	CHILD_EXPECT_ERRNO(mknod(blk, S_IFBLK | 0600, makedev(7, 0)), EACCES);
	CHILD_CHECK(exec_status(t) == 100 + EACCES, "exec %s: status %d, want 100 + EACCES", t,
		    exec_status(t));
}

static void
test_read_write_dir(void **state)
{
	struct child_result res;
	child_run(child_read_write_dir, NULL, &res);
	assert_child_ok(&res);
}

static void
child_across_and_outside(void *arg)
{
	char ro_f[300], rw_f[300], rw_x[300], ro_x[300], out_f[300], out_x[300];
	path_in(ro_f, sizeof(ro_f), ro, "f");
	path_in(rw_f, sizeof(rw_f), rw, "f");
	path_in(rw_x, sizeof(rw_x), rw, "x");
	path_in(ro_x, sizeof(ro_x), ro, "x");
	path_in(out_f, sizeof(out_f), out, "f");
	path_in(out_x, sizeof(out_x), out, "x");
	apply_rules();

	/* outside every rule */
	CHILD_EXPECT_ERRNO(open(out_f, O_RDONLY | O_CLOEXEC), EACCES);
	CHILD_EXPECT_ERRNO(open("/etc/passwd", O_RDONLY | O_CLOEXEC), EACCES);
	CHILD_EXPECT_ERRNO(opendir(top) ? 0 : -1, EACCES);

	/* Linking a read-only file into a writable directory would make it writable there:
	 * Landlock refuses to widen a file's rights by a link or rename (REFER), with EXDEV. */
	CHILD_EXPECT_ERRNO(link(ro_f, rw_x), EXDEV);
	CHILD_EXPECT_ERRNO(rename(ro_f, rw_x), EACCES);
	CHILD_EXPECT_ERRNO(link(rw_f, ro_x), EACCES);
	CHILD_EXPECT_ERRNO(rename(rw_f, ro_x), EACCES);
	CHILD_EXPECT_ERRNO(rename(rw_f, out_x), EACCES);
	CHILD_EXPECT_ERRNO(link(rw_f, out_x), EACCES);
}

static void
test_across_and_outside(void **state)
{
	struct child_result res;
	child_run(child_across_and_outside, NULL, &res);
	assert_child_ok(&res);
}

static void
child_device(void *arg)
{
	struct termios t;
	int abi = apply_rules();
	int fd;
	CHILD_EXPECT_OK(fd = open("/dev/null", O_RDWR | O_CLOEXEC));
	CHILD_CHECK(write(fd, "x", 1) == 1, "write /dev/null: %s", strerror(errno));
	/* IOCTL_DEV granted: the driver answers (/dev/null is no terminal) */
	CHILD_EXPECT_ERRNO(ioctl(fd, TCGETS, &t), ENOTTY);
	close(fd);
	/* a rule on one device is not a rule on its neighbours: /dev/zero has only the
	 * directory's READ_EXEC, so no write and (ABI 5) no ioctl, Landlock answers first */
	CHILD_EXPECT_ERRNO(open("/dev/zero", O_RDWR | O_CLOEXEC), EACCES);
	CHILD_EXPECT_OK(fd = open("/dev/zero", O_RDONLY | O_CLOEXEC));
	if (abi >= 5)
		CHILD_EXPECT_ERRNO(ioctl(fd, TCGETS, &t), EACCES);
	close(fd);
}

static void
test_device_rule(void **state)
{
	struct child_result res;
	child_run(child_device, NULL, &res);
	assert_child_ok(&res);
}

/* ---- scopes (ABI 6) ---- */

static struct sockaddr_un abstract_addr;
static socklen_t abstract_len;

static void
child_scopes(void *arg)
{
	apply_rules();
	/* inside the domain: itself */
	CHILD_EXPECT_OK(kill(getpid(), 0));
	/* outside: the test process, which is not sandboxed */
	CHILD_EXPECT_ERRNO(kill(getppid(), 0), EPERM);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHILD_CHECK(s >= 0, "socket: %s", strerror(errno));
	CHILD_EXPECT_ERRNO(connect(s, (struct sockaddr *)&abstract_addr, abstract_len), EPERM);
	close(s);
}

static void
test_scopes(void **state)
{
	if (kernel_abi < 6)
		skip(); /* scopes came with ABI 6 */
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(ls >= 0);
	memset(&abstract_addr, 0, sizeof(abstract_addr));
	abstract_addr.sun_family = AF_UNIX;
	int n = snprintf(abstract_addr.sun_path + 1, sizeof(abstract_addr.sun_path) - 1,
			 "nullbox-landlock-test-%d", (int)getpid());
	abstract_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	assert_int_equal(bind(ls, (struct sockaddr *)&abstract_addr, abstract_len), 0);
	assert_int_equal(listen(ls, 4), 0);
	struct child_result res;
	child_run(child_scopes, NULL, &res);
	close(ls);
	assert_child_ok(&res);
}

/* ---- errors and degradation ---- */

static void
child_add_rule_error(void *arg)
{
	/* nsfs is internal to the kernel: Landlock takes no rule on it (EBADFD) */
	const struct cage_ll_rule rules[] = { { "/proc/self/ns/net", CAGE_LL_READ_EXEC } };
	struct nb_err e = { 0 };
	int abi = -1;
	CHILD_CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "no_new_privs");
	int r = cage_landlock_apply(rules, 1, &abi, &e);
	CHILD_CHECK(r == -EBADFD, "returned %d (%s), want -EBADFD", r, e.msg);
	CHILD_CHECK(strcmp(e.msg, "landlock: /proc/self/ns/net: add rule: File descriptor in bad "
				  "state") == 0,
		    "message: %s", e.msg);
	CHILD_CHECK(abi == 0, "abi %d after a failure", abi);
	/* and nothing was enforced */
	CHILD_EXPECT_OK(open("/etc/passwd", O_RDONLY | O_CLOEXEC));
}

static void
test_add_rule_error(void **state)
{
	struct child_result res;
	child_run(child_add_rule_error, NULL, &res);
	assert_child_ok(&res);
}

/*
 * A kernel without Landlock, made real with seccomp: landlock_create_ruleset() answers @err.
 * cage_landlock_apply() must log one line, report ABI 0 and succeed.
 */
static void
child_no_landlock(void *arg)
{
	int err = *(int *)arg;
	int p[2];
	CHILD_CHECK(pipe(p) == 0, "pipe");
	CHILD_CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "no_new_privs");
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	CHILD_CHECK(ctx, "seccomp_init");
	CHILD_CHECK(seccomp_rule_add(ctx, SCMP_ACT_ERRNO((uint32_t)err),
				     SCMP_SYS(landlock_create_ruleset), 0) == 0,
		    "seccomp_rule_add");
	CHILD_CHECK(seccomp_load(ctx) == 0, "seccomp_load");
	seccomp_release(ctx);

	CHILD_CHECK(dup2(p[1], STDERR_FILENO) == STDERR_FILENO, "dup2");
	close(p[1]);
	const struct cage_ll_rule rules[] = { { "/usr", CAGE_LL_READ_EXEC } };
	struct nb_err e = { 0 };
	int abi = -1;
	int r = cage_landlock_apply(rules, 1, &abi, &e);
	close(STDERR_FILENO);
	char log[512] = { 0 };
	ssize_t n = read(p[0], log, sizeof(log) - 1);
	CHILD_CHECK(r == 0 && abi == 0, "errno %d: returned %d, abi %d (%s)", err, r, abi, e.msg);
	CHILD_CHECK(n > 0 &&
			    strstr(log, "landlock: kernel offers no Landlock; continuing without "
					"it\n") &&
			    strchr(log, '\n') == log + n - 1,
		    "log: '%s'", log);
	/* and nothing was enforced */
	CHILD_EXPECT_OK(open("/etc/passwd", O_RDONLY | O_CLOEXEC));
}

static void
test_no_landlock_degrades(void **state)
{
	int errs[] = { ENOSYS, EOPNOTSUPP };
	for (size_t i = 0; i < NB_ARRAY_SIZE(errs); i++) {
		struct child_result res;
		child_run(child_no_landlock, &errs[i], &res);
		assert_child_ok(&res);
	}
}

int
main(void)
{
	if (geteuid() != 0) {
		printf("SKIP: not root: only as root is a refusal Landlock's and not a missing "
		       "capability\n");
		return 77;
	}
	kernel_abi = (int)syscall(__NR_landlock_create_ruleset, NULL, 0,
				  LANDLOCK_CREATE_RULESET_VERSION);
	if (kernel_abi < 0) {
		printf("SKIP: kernel offers no Landlock: %s\n", strerror(errno));
		return 77;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_abi),
		cmocka_unit_test(test_read_exec_dir),
		cmocka_unit_test(test_read_write_dir),
		cmocka_unit_test(test_across_and_outside),
		cmocka_unit_test(test_device_rule),
		cmocka_unit_test(test_scopes),
		cmocka_unit_test(test_add_rule_error),
		cmocka_unit_test(test_no_landlock_degrades),
	};
	return cmocka_run_group_tests_name("landlock", tests, setup, teardown);
}
