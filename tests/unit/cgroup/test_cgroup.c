/*
 * Unit tests for lib/cgroup.c, against the real kernel: real cgroups, real processes, no mocks.
 * They need root; without it (or with a read-only cgroupfs) every test is skipped with the reason
 * and main() exits 77 so meson counts a skip. Each test checks that no directory is left behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h> /* cmocka.h needs these first */
#include <cmocka.h>

#include "cgroup.h"
#include "cleanup.h"

#define MiB (1024ULL * 1024)

static const char *skip_reason;

#define SKIP_IF_NEEDED(state)                                                                      \
	do {                                                                                       \
		(void)(state);                                                                     \
		if (skip_reason) {                                                                 \
			print_message("SKIP: %s\n", skip_reason);                                  \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

/* ---- helpers ---- */

static void
make_name(char *buf, size_t size)
{
	static int n;
	snprintf(buf, size, "nbtest-%d-%d", (int)getpid(), n++);
}

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void
join_path(char *buf, size_t size, const char *dir, const char *file)
{
	int n = snprintf(buf, size, "%s/%s", dir, file);
	if (n < 0 || (size_t)n >= size)
		fail_msg("path too long: %s/%s", dir, file);
}

/* Reads a small file into @buf, without the trailing newline. Returns false if unreadable. */
static bool
slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return false;
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return true;
}

static void
assert_file(const char *dir, const char *file, const char *want)
{
	char path[4096], got[256];
	join_path(path, sizeof(path), dir, file);
	if (!slurp(path, got, sizeof(got)))
		fail_msg("%s: %s", path, strerror(errno));
	if (strcmp(got, want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", path, got, want);
}

static bool
file_exists(const char *dir, const char *file)
{
	char path[4096];
	join_path(path, sizeof(path), dir, file);
	return access(path, F_OK) == 0;
}

/* Every directory a cgroup uses, copied so they can be checked after destroy frees it. */
struct paths {
	char p[NB_CGROUP_N_RES][4096];
	bool v2[NB_CGROUP_N_RES];
};

static void
paths_of(const struct nb_cgroup *cg, struct paths *ps)
{
	for (int i = 0; i < NB_CGROUP_N_RES; i++) {
		const char *p = nb_cgroup_path(cg, i, &ps->v2[i]);
		assert_non_null(p);
		snprintf(ps->p[i], sizeof(ps->p[i]), "%s", p);
	}
}

/* No path of @ps exists, and no "nbtest-PID-" entry is left in any of their parents. */
static void
assert_gone(const struct paths *ps)
{
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "nbtest-%d-", (int)getpid());
	for (int i = 0; i < NB_CGROUP_N_RES; i++) {
		if (access(ps->p[i], F_OK) == 0 || errno != ENOENT)
			fail_msg("left behind: %s", ps->p[i]);
		char parent[4096];
		snprintf(parent, sizeof(parent), "%s", ps->p[i]);
		DIR *d = opendir(dirname(parent));
		assert_non_null(d);
		for (struct dirent *de; (de = readdir(d));)
			if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
				fail_msg("left behind: %s/%s", parent, de->d_name);
		closedir(d);
	}
}

/* The cgroup of the running test; teardown destroys it if an assertion jumped out early. */
static struct nb_cgroup *current;

static struct nb_cgroup *
create_ok(const char *name, uint64_t mem, uint32_t cpu, uint32_t pids)
{
	struct nb_cgroup_limits lim = { .memory_bytes = mem, .cpu_percent = cpu, .max_pids = pids };
	struct nb_cgroup *cg = NULL;
	struct nb_err e = { 0 };
	int r = nb_cgroup_create(name, &lim, &cg, &e);
	if (r < 0)
		fail_msg("create %s: %d %s", name, r, e.msg);
	assert_non_null(cg);
	current = cg;
	return cg;
}

static void
destroy_ok(struct nb_cgroup *cg, const struct paths *ps)
{
	struct nb_err e = { 0 };
	current = NULL;
	int r = nb_cgroup_destroy(cg, &e);
	if (r < 0)
		fail_msg("destroy: %d %s", r, e.msg);
	assert_gone(ps);
}

/*
 * Forks a child that waits until *go is written, then runs @fn(@arg) and exits 0 (or whatever
 * @fn _exit()s with). The parent attaches it in between.
 */
static pid_t
spawn_waiting(void (*fn)(void *), void *arg, int *go)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[1]);
		char c;
		if (read(p[0], &c, 1) != 1)
			_exit(100);
		fn(arg);
		_exit(0);
	}
	close(p[0]);
	*go = p[1];
	return pid;
}

static void
release(int *go)
{
	assert_int_equal(write(*go, "g", 1), 1);
	close(*go);
	*go = -1;
}

/* waitpid with a deadline; a child still running then is killed and the test fails. */
static int
wait_for(pid_t pid, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;
	int st;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return st;
		if (r < 0)
			fail_msg("waitpid %d: %s", (int)pid, strerror(errno));
		if (now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			fail_msg("child %d still running after %d ms", (int)pid, timeout_ms);
		}
		sleep_ms(5);
	}
}

static void
attach_ok(struct nb_cgroup *cg, pid_t pid)
{
	struct nb_err e = { 0 };
	int r = nb_cgroup_attach(cg, pid, &e);
	if (r < 0)
		fail_msg("attach %d: %d %s", (int)pid, r, e.msg);
}

static bool
procs_has(const char *dir, pid_t pid)
{
	char path[4096];
	join_path(path, sizeof(path), dir, "cgroup.procs");
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	long v;
	bool found = false;
	while (fscanf(f, "%ld", &v) == 1)
		found |= v == pid;
	fclose(f);
	return found;
}

static void
do_nothing(void *arg)
{
	(void)arg;
	for (;;)
		pause();
}

/* ---- tests ---- */

static void
test_create_limits(void **state)
{
	SKIP_IF_NEEDED(state);
	char name[64];
	make_name(name, sizeof(name));
	struct nb_cgroup *cg = create_ok(name, 256 * MiB, 20, 32);
	struct paths ps;
	paths_of(cg, &ps);
	print_message("mode %s: %s\n", nb_cgroup_mode(cg), nb_cgroup_describe(cg));
	assert_non_null(strstr(nb_cgroup_describe(cg), name));

	const char *mem = ps.p[NB_CGROUP_MEMORY];
	if (ps.v2[NB_CGROUP_MEMORY]) {
		assert_file(mem, "memory.max", "268435456");
		if (file_exists(mem, "memory.swap.max"))
			assert_file(mem, "memory.swap.max", "0");
	} else {
		assert_file(mem, "memory.limit_in_bytes", "268435456");
		if (file_exists(mem, "memory.memsw.limit_in_bytes"))
			assert_file(mem, "memory.memsw.limit_in_bytes", "268435456");
	}
	const char *cpu = ps.p[NB_CGROUP_CPU];
	if (ps.v2[NB_CGROUP_CPU]) {
		assert_file(cpu, "cpu.max", "20000 100000");
	} else {
		assert_file(cpu, "cpu.cfs_period_us", "100000");
		assert_file(cpu, "cpu.cfs_quota_us", "20000");
	}
	assert_file(ps.p[NB_CGROUP_PIDS], "pids.max", "32");
	if (ps.v2[NB_CGROUP_FREEZER])
		assert_true(file_exists(ps.p[NB_CGROUP_FREEZER], "cgroup.freeze"));
	else
		assert_file(ps.p[NB_CGROUP_FREEZER], "freezer.state", "THAWED");
	assert_true(file_exists(ps.p[NB_CGROUP_CPUACCT],
				ps.v2[NB_CGROUP_CPUACCT] ? "cpu.stat" : "cpuacct.usage"));

	bool all_v2 = true, any_v2 = false;
	for (int i = 0; i < NB_CGROUP_N_RES; i++) {
		all_v2 &= ps.v2[i];
		any_v2 |= ps.v2[i];
	}
	assert_string_equal(nb_cgroup_mode(cg), all_v2 ? "v2" : any_v2 ? "mixed" : "v1");
	if (all_v2) {
		struct stat st;
		assert_true(nb_cgroup_v2_fd(cg) >= 0);
		assert_int_equal(fstat(nb_cgroup_v2_fd(cg), &st), 0);
		assert_true(S_ISDIR(st.st_mode));
	} else {
		assert_int_equal(nb_cgroup_v2_fd(cg), -1);
	}

	struct nb_cgroup_stats s;
	struct nb_err e = { 0 };
	assert_int_equal(nb_cgroup_stats(cg, &s, &e), 0);
	assert_int_equal(s.pids_current, 0);
	assert_int_equal(s.oom_kills, 0);
	destroy_ok(cg, &ps);
}

static void
test_attach(void **state)
{
	SKIP_IF_NEEDED(state);
	char name[64];
	make_name(name, sizeof(name));
	struct nb_cgroup *cg = create_ok(name, 512 * MiB, 50, 16);
	struct paths ps;
	paths_of(cg, &ps);
	int go;
	pid_t pid = spawn_waiting(do_nothing, NULL, &go);
	attach_ok(cg, pid);
	for (int i = 0; i < NB_CGROUP_N_RES; i++)
		if (!procs_has(ps.p[i], pid))
			fail_msg("%d not in %s/cgroup.procs", (int)pid, ps.p[i]);
	struct nb_cgroup_stats s;
	struct nb_err e = { 0 };
	assert_int_equal(nb_cgroup_stats(cg, &s, &e), 0);
	assert_int_equal(s.pids_current, 1);
	release(&go);
	destroy_ok(cg, &ps);
	int st = wait_for(pid, 2000);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

/* With the v2 fd, clone3(CLONE_INTO_CGROUP) starts a child already inside (v2 machines only). */
static void
test_clone_into_cgroup(void **state)
{
	SKIP_IF_NEEDED(state);
	char name[64];
	make_name(name, sizeof(name));
	struct nb_cgroup *cg = create_ok(name, 512 * MiB, 50, 16);
	struct paths ps;
	paths_of(cg, &ps);
	int fd = nb_cgroup_v2_fd(cg);
	if (strcmp(nb_cgroup_mode(cg), "v2") != 0) {
		assert_int_equal(fd, -1);
		print_message(
			"mode %s: no v2 fd, as it should be; CLONE_INTO_CGROUP not exercised\n",
			nb_cgroup_mode(cg));
		destroy_ok(cg, &ps);
		return;
	}
	struct clone_args ca = { .flags = CLONE_INTO_CGROUP,
				 .exit_signal = SIGCHLD,
				 .cgroup = (uint64_t)fd };
	long pid = syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid == 0) {
		pause();
		_exit(0);
	}
	assert_true(pid > 0);
	assert_true(procs_has(ps.p[0], (pid_t)pid));
	destroy_ok(cg, &ps);
	int st = wait_for((pid_t)pid, 2000);
	assert_true(WIFSIGNALED(st));
}

static void
touch_memory(void *arg)
{
	size_t n = *(size_t *)arg;
	char *p = malloc(n);
	if (!p)
		_exit(3);
	for (size_t i = 0; i < n; i += 4096)
		p[i] = 1;
	_exit(0);
}

static void
test_memory_oom(void **state)
{
	SKIP_IF_NEEDED(state);
	char name[64];
	make_name(name, sizeof(name));
	uint64_t limit = 32 * MiB;
	struct nb_cgroup *cg = create_ok(name, limit, 100, 16);
	struct paths ps;
	paths_of(cg, &ps);
	size_t want = 4 * limit;
	int go;
	pid_t pid = spawn_waiting(touch_memory, &want, &go);
	attach_ok(cg, pid);
	release(&go);
	int st = wait_for(pid, 20000);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		fail_msg("child touching 4x the limit was not SIGKILLed (status 0x%x)", st);
	struct nb_cgroup_stats s;
	struct nb_err e = { 0 };
	assert_int_equal(nb_cgroup_stats(cg, &s, &e), 0);
	print_message("oom_kills %" PRIu64 ", peak %" PRIu64 " bytes\n", s.oom_kills,
		      s.memory_peak_bytes);
	assert_true(s.oom_kills >= 1);
	assert_true(s.memory_peak_bytes <= limit);
	assert_true(s.memory_peak_bytes == 0 || s.memory_peak_bytes > limit / 2);
	destroy_ok(cg, &ps);
}

struct fork_result {
	int forks;
	int err;
};

static void
fork_until_refused(void *arg)
{
	int fd = *(int *)arg;
	struct fork_result res = { 0, 0 };
	for (int i = 0; i < 1000; i++) {
		pid_t p = fork();
		if (p < 0) {
			res.err = errno;
			break;
		}
		if (p == 0) {
			for (;;)
				pause();
		}
		res.forks++;
	}
	if (write(fd, &res, sizeof(res)) != sizeof(res))
		_exit(2);
	for (;;)
		pause();
}

static void
test_pids_limit(void **state)
{
	SKIP_IF_NEEDED(state);
	char name[64];
	make_name(name, sizeof(name));
	struct nb_cgroup *cg = create_ok(name, 512 * MiB, 50, 8);
	struct paths ps;
	paths_of(cg, &ps);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	int go;
	pid_t pid = spawn_waiting(fork_until_refused, &p[1], &go);
	close(p[1]);
	attach_ok(cg, pid);
	release(&go);
	struct fork_result res;
	assert_int_equal(read(p[0], &res, sizeof(res)), sizeof(res));
	close(p[0]);
	print_message("forks before refusal: %d, then %s\n", res.forks, strerror(res.err));
	assert_int_equal(res.err, EAGAIN);
	assert_int_equal(res.forks, 7); /* 8 with the forking child itself */
	struct nb_cgroup_stats s;
	struct nb_err e = { 0 };
	assert_int_equal(nb_cgroup_stats(cg, &s, &e), 0);
	assert_int_equal(s.pids_current, 8);
	destroy_ok(cg, &ps); /* kills the grandchildren too */
	int st = wait_for(pid, 2000);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

static void
spin_1500ms(void *arg)
{
	(void)arg;
	int64_t end = now_ms() + 1500;
	volatile uint64_t x = 0;
	while (now_ms() < end)
		x++;
	_exit(0);
}

static void
test_cpu_quota(void **state)
{
	SKIP_IF_NEEDED(state);
	char name[64];
	make_name(name, sizeof(name));
	struct nb_cgroup *cg = create_ok(name, 512 * MiB, 20, 16);
	struct paths ps;
	paths_of(cg, &ps);
	int go;
	pid_t pid = spawn_waiting(spin_1500ms, NULL, &go);
	attach_ok(cg, pid);
	int64_t t0 = now_ms();
	release(&go);
	int st = wait_for(pid, 10000);
	int64_t wall_us = (now_ms() - t0) * 1000;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("spinning child: status 0x%x", st);
	struct nb_cgroup_stats s;
	struct nb_err e = { 0 };
	assert_int_equal(nb_cgroup_stats(cg, &s, &e), 0);
	print_message("20%% quota: %" PRIu64 " us of CPU in %" PRId64 " us wall (%.0f%%)\n",
		      s.cpu_usec, wall_us, 100.0 * (double)s.cpu_usec / (double)wall_us);
	/* Tolerant: the expected figure is ~20%; a runaway would be ~100%. */
	assert_true(s.cpu_usec < (uint64_t)wall_us / 2);
	assert_true(s.cpu_usec > (uint64_t)wall_us / 20); /* it did run, and was accounted */
	destroy_ok(cg, &ps);
}

static void
count_forever(void *arg)
{
	volatile uint64_t *ctr = arg;
	for (;;)
		(*ctr)++;
}

static char
proc_state(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!slurp(path, buf, sizeof(buf)))
		return '?';
	char *rp = strrchr(buf, ')');
	return rp && rp[1] ? rp[2] : '?';
}

static void
test_freeze_thaw(void **state)
{
	SKIP_IF_NEEDED(state);
	char name[64];
	make_name(name, sizeof(name));
	struct nb_cgroup *cg = create_ok(name, 512 * MiB, 100, 16);
	struct paths ps;
	paths_of(cg, &ps);
	volatile uint64_t *ctr =
		mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(ctr != MAP_FAILED);
	int go;
	pid_t pid = spawn_waiting(count_forever, (void *)ctr, &go);
	attach_ok(cg, pid);
	release(&go);
	sleep_ms(50);
	assert_true(*ctr > 0);

	struct nb_err e = { 0 };
	if (nb_cgroup_freeze(cg, true, &e) < 0)
		fail_msg("freeze: %s", e.msg);
	assert_int_equal(nb_cgroup_freeze(cg, true, &e), 0); /* idempotent */
	uint64_t c1 = *ctr;
	sleep_ms(200);
	uint64_t c2 = *ctr;
	char stt = proc_state(pid);
	print_message("frozen: counter %" PRIu64 " -> %" PRIu64 ", state %c\n", c1, c2, stt);
	assert_true(c1 == c2);
	assert_true(stt != 'R');
	if (ps.v2[NB_CGROUP_FREEZER])
		assert_true(file_exists(ps.p[NB_CGROUP_FREEZER], "cgroup.freeze"));
	else
		assert_file(ps.p[NB_CGROUP_FREEZER], "freezer.state", "FROZEN");

	if (nb_cgroup_freeze(cg, false, &e) < 0)
		fail_msg("thaw: %s", e.msg);
	sleep_ms(100);
	assert_true(*ctr > c2);

	/* Destroy while frozen: the kill must still get through. */
	assert_int_equal(nb_cgroup_freeze(cg, true, &e), 0);
	destroy_ok(cg, &ps);
	int st = wait_for(pid, 2000);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	munmap((void *)ctr, 4096);
}

static void
fork_tree(void *arg)
{
	(void)arg;
	for (int i = 0; i < 5; i++) {
		pid_t p = fork();
		if (p == 0) {
			if (i % 2)
				setsid(); /* a new session changes nothing: it is still in the
					     cgroup */
			for (;;)
				pause();
		}
	}
	for (;;)
		pause();
}

static void
test_destroy_live_tree(void **state)
{
	SKIP_IF_NEEDED(state);
	char name[64];
	make_name(name, sizeof(name));
	struct nb_cgroup *cg = create_ok(name, 512 * MiB, 50, 32);
	struct paths ps;
	paths_of(cg, &ps);
	/* As subreaper, the grandchildren are reparented to us and we can see how they died. */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
	int go;
	pid_t pid = spawn_waiting(fork_tree, NULL, &go);
	attach_ok(cg, pid);
	release(&go);
	struct nb_cgroup_stats s;
	struct nb_err e = { 0 };
	for (int i = 0; i < 200; i++) {
		assert_int_equal(nb_cgroup_stats(cg, &s, &e), 0);
		if (s.pids_current == 6)
			break;
		sleep_ms(5);
	}
	assert_int_equal(s.pids_current, 6);
	destroy_ok(cg, &ps);
	int killed = 0;
	for (int i = 0; i < 6; i++) {
		int st;
		pid_t r = waitpid(-1, &st, 0);
		assert_true(r > 0);
		killed += WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
	}
	assert_int_equal(killed, 6);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);
}

static void
expect_einval(const char *name, uint64_t mem, uint32_t cpu, uint32_t pids, const char *msg_part)
{
	struct nb_cgroup_limits lim = { .memory_bytes = mem, .cpu_percent = cpu, .max_pids = pids };
	struct nb_cgroup *cg = (struct nb_cgroup *)1;
	struct nb_err e = { 0 };
	int r = nb_cgroup_create(name, &lim, &cg, &e);
	if (r != -EINVAL)
		fail_msg("create \"%s\" %" PRIu64 "/%u/%u: got %d (%s), want -EINVAL", name, mem,
			 cpu, pids, r, e.msg);
	assert_null(cg);
	if (!strstr(e.msg, msg_part))
		fail_msg("message \"%s\" lacks \"%s\"", e.msg, msg_part);
}

static void
test_bad_name_and_limits(void **state)
{
	SKIP_IF_NEEDED(state);
	char good[64];
	make_name(good, sizeof(good));
	char long_name[NB_CGROUP_NAME_MAX + 2];
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	expect_einval("", MiB, 10, 4, "name");
	expect_einval(".", MiB, 10, 4, "name");
	expect_einval("..", MiB, 10, 4, "name");
	expect_einval("../escape", MiB, 10, 4, "name");
	expect_einval("a/b", MiB, 10, 4, "name");
	expect_einval("a b", MiB, 10, 4, "name");
	expect_einval("x\n", MiB, 10, 4, "name");
	expect_einval("-x", MiB, 10, 4, "name");
	expect_einval(long_name, MiB, 10, 4, "name");
	expect_einval(good, 0, 10, 4, "memory");
	expect_einval(good, MiB, 0, 4, "cpu");
	expect_einval(good, MiB, 100 * (uint32_t)sysconf(_SC_NPROCESSORS_ONLN) + 1, 4, "cpu");
	expect_einval(good, MiB, 10, 0, "pids");
	struct nb_cgroup *cg = (struct nb_cgroup *)1;
	struct nb_err e = { 0 };
	assert_int_equal(nb_cgroup_create(good, NULL, &cg, &e), -EINVAL);
	assert_null(cg);

	/* Nothing was created: a good create of the same name works and cleans up after itself. */
	cg = create_ok(good, MiB * 8, 10, 4);
	struct paths ps;
	paths_of(cg, &ps);
	destroy_ok(cg, &ps);
}

/* An existing directory in the last hierarchy: everything created before it is removed again. */
static void
test_partial_failure_exists(void **state)
{
	SKIP_IF_NEEDED(state);
	char name[64];
	make_name(name, sizeof(name));
	struct nb_cgroup *cg = create_ok(name, 512 * MiB, 50, 16);
	struct paths ps;
	paths_of(cg, &ps);
	destroy_ok(cg, &ps);

	const char *squatter = ps.p[NB_CGROUP_CPUACCT];
	assert_int_equal(mkdir(squatter, 0755), 0);
	struct nb_cgroup_limits lim = { .memory_bytes = 512 * MiB,
					.cpu_percent = 50,
					.max_pids = 16 };
	struct nb_err e = { 0 };
	int r = nb_cgroup_create(name, &lim, &cg, &e);
	print_message("%s\n", e.msg);
	assert_int_equal(r, -EEXIST);
	assert_null(cg);
	assert_non_null(strstr(e.msg, squatter));
	/* ours are gone, the one we did not create is still there */
	for (int i = 0; i < NB_CGROUP_N_RES; i++)
		if (strcmp(ps.p[i], squatter) != 0 && access(ps.p[i], F_OK) == 0)
			fail_msg("left behind: %s", ps.p[i]);
	assert_int_equal(access(squatter, F_OK), 0);
	assert_int_equal(rmdir(squatter), 0);
	assert_gone(&ps);
}

/* The kernel refuses pids.max above its pid limit: a real write error late in create. */
static void
test_partial_failure_write(void **state)
{
	SKIP_IF_NEEDED(state);
	char name[64];
	make_name(name, sizeof(name));
	struct nb_cgroup *cg = create_ok(name, 512 * MiB, 50, 16);
	struct paths ps;
	paths_of(cg, &ps);
	destroy_ok(cg, &ps);

	struct nb_cgroup_limits lim = { .memory_bytes = 512 * MiB,
					.cpu_percent = 50,
					.max_pids = UINT32_MAX };
	struct nb_err e = { 0 };
	int r = nb_cgroup_create(name, &lim, &cg, &e);
	print_message("%s\n", e.msg);
	assert_int_equal(r, -EINVAL);
	assert_null(cg);
	char want[4200];
	snprintf(want, sizeof(want), "cgroup: %s/pids.max: write 4294967295: Invalid argument",
		 ps.p[NB_CGROUP_PIDS]);
	assert_string_equal(e.msg, want);
	assert_gone(&ps);
}

/* attach of a process that is gone fails with ESRCH and a path; destroy still cleans up. */
static void
test_attach_failure_then_destroy(void **state)
{
	SKIP_IF_NEEDED(state);
	char name[64];
	make_name(name, sizeof(name));
	struct nb_cgroup *cg = create_ok(name, 512 * MiB, 50, 16);
	struct paths ps;
	paths_of(cg, &ps);
	pid_t dead = fork();
	if (dead == 0)
		_exit(0);
	assert_true(dead > 0);
	waitpid(dead, NULL, 0);
	struct nb_err e = { 0 };
	int r = nb_cgroup_attach(cg, dead, &e);
	print_message("%s\n", e.msg);
	assert_int_equal(r, -ESRCH);
	assert_non_null(strstr(e.msg, "cgroup.procs"));
	destroy_ok(cg, &ps);
	assert_int_equal(nb_cgroup_destroy(NULL, &e), 0);
}

/* ---- main ---- */

static int
teardown(void **state)
{
	(void)state;
	if (!current)
		return 0;
	struct nb_err e = { 0 };
	int r = nb_cgroup_destroy(current, &e);
	current = NULL;
	if (r < 0)
		fprintf(stderr, "teardown: %s\n", e.msg);
	return r < 0 ? -1 : 0;
}

static int
group_setup(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		skip_reason = "needs root to create real cgroups";
		return 0;
	}
	/* A read-only or foreign cgroupfs (an unprivileged container) cannot be tested either. */
	char name[64];
	make_name(name, sizeof(name));
	struct nb_cgroup_limits lim = { .memory_bytes = 64 * MiB,
					.cpu_percent = 10,
					.max_pids = 4 };
	struct nb_cgroup *cg = NULL;
	struct nb_err e = { 0 };
	int r = nb_cgroup_create(name, &lim, &cg, &e);
	if (r == -EROFS || r == -EACCES || r == -EPERM) {
		static char why[600];
		snprintf(why, sizeof(why), "cgroups are not writable here: %s", e.msg);
		skip_reason = why;
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "setup: %s\n", e.msg);
		return -1;
	}
	return nb_cgroup_destroy(cg, &e) < 0 ? -1 : 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_create_limits, teardown),
		cmocka_unit_test_teardown(test_attach, teardown),
		cmocka_unit_test_teardown(test_clone_into_cgroup, teardown),
		cmocka_unit_test_teardown(test_memory_oom, teardown),
		cmocka_unit_test_teardown(test_pids_limit, teardown),
		cmocka_unit_test_teardown(test_cpu_quota, teardown),
		cmocka_unit_test_teardown(test_freeze_thaw, teardown),
		cmocka_unit_test_teardown(test_destroy_live_tree, teardown),
		cmocka_unit_test_teardown(test_bad_name_and_limits, teardown),
		cmocka_unit_test_teardown(test_partial_failure_exists, teardown),
		cmocka_unit_test_teardown(test_partial_failure_write, teardown),
		cmocka_unit_test_teardown(test_attach_failure_then_destroy, teardown),
	};
	int failed = cmocka_run_group_tests_name("cgroup", tests, group_setup, NULL);
	if (failed == 0 && skip_reason) {
		fprintf(stderr, "SKIP: %s\n", skip_reason);
		return 77;
	}
	return failed;
}
