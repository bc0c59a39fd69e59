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
#include <sys/inotify.h>
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

/* Skips one test, saying why (cmocka lists it as skipped, never as passed). */
#define SKIP_BECAUSE(why)                                                                          \
	do {                                                                                       \
		print_message("SKIP: %s\n", (why));                                                \
		skip();                                                                            \
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

/* ---- v2 layout helpers, for the parent choice ---- */

/*
 * When set (NBTEST_EXPECT_V2_PARENT, or a test), every v2 directory create_ok() makes must be
 * <expect_v2_parent>/<name>, and at least one must be v2: the VM harness uses it to prove which
 * parent a layout takes, e.g. /sys/fs/cgroup/nullbox when the caller's cgroup holds processes.
 */
static const char *expect_v2_parent;
static const char *expect_v2_parent_env;

/* NB_CGROUP_PARENT_ENV as the suite found it; tests that set it put it back. */
static char *orig_parent_env;

static void
restore_parent_env(void)
{
	if (orig_parent_env)
		setenv(NB_CGROUP_PARENT_ENV, orig_parent_env, 1);
	else
		unsetenv(NB_CGROUP_PARENT_ENV);
}

/* The cgroup2 mount that shows the whole tree, and where this process is in it. */
struct v2info {
	bool found;
	char mnt[1024];
	char self[2048];      /* absolute directory of our v2 cgroup */
	char root_ctrls[512]; /* the root's cgroup.controllers */
};

static bool
v2_info(struct v2info *v)
{
	memset(v, 0, sizeof(*v));
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	char line[8192];
	while (!v->found && fgets(line, sizeof(line), f)) {
		char root[1024], mnt[1024];
		const char *dash = strstr(line, " - ");
		if (!dash || strncmp(dash, " - cgroup2 ", 11) != 0)
			continue;
		if (sscanf(line, "%*s %*s %*s %1023s %1023s", root, mnt) != 2 ||
		    strcmp(root, "/") != 0)
			continue;
		snprintf(v->mnt, sizeof(v->mnt), "%s", mnt);
		v->found = true;
	}
	fclose(f);
	char cg[8192];
	if (!v->found || !slurp("/proc/self/cgroup", cg, sizeof(cg)))
		return v->found = false;
	const char *p = strncmp(cg, "0::", 3) == 0 ? cg : strstr(cg, "\n0::");
	if (!p)
		return v->found = false;
	p += p[0] == '\n' ? 4 : 3;
	char rel[1024];
	snprintf(rel, sizeof(rel), "%.*s", (int)strcspn(p, "\n"), p);
	snprintf(v->self, sizeof(v->self), "%s%s", v->mnt, strcmp(rel, "/") == 0 ? "" : rel);
	char path[1200];
	join_path(path, sizeof(path), v->mnt, "cgroup.controllers");
	slurp(path, v->root_ctrls, sizeof(v->root_ctrls));
	return true;
}

/* Whether the space-separated @list holds @word. */
static bool
has_word(const char *list, const char *word)
{
	size_t wl = strlen(word);
	for (const char *p = list; (p = strstr(p, word)); p += wl)
		if ((p == list || p[-1] == ' ') && (p[wl] == '\0' || p[wl] == ' ' || p[wl] == '\n'))
			return true;
	return false;
}

static const char *const limit_ctrl[] = { "memory", "cpu", "pids" };
static const enum nb_cgroup_res limit_res[] = { NB_CGROUP_MEMORY, NB_CGROUP_CPU, NB_CGROUP_PIDS };

/* How many of memory, cpu and pids the v2 root offers. */
static int
root_offers(const struct v2info *v)
{
	int n = 0;
	for (size_t i = 0; i < 3; i++)
		n += has_word(v->root_ctrls, limit_ctrl[i]);
	return n;
}

/* Whether this process has a v1 hierarchy with controller @c. */
static bool
has_v1(const char *c)
{
	char cg[8192];
	if (!slurp("/proc/self/cgroup", cg, sizeof(cg)))
		return false;
	for (char *save = NULL, *l = strtok_r(cg, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		for (char *s2 = NULL, *w = strtok_r(c1 + 1, ",", &s2); w;
		     w = strtok_r(NULL, ",", &s2))
			if (strcmp(w, c) == 0)
				return true;
	}
	return false;
}

static bool
in_init_cgroupns(void)
{
	struct stat st;
	return stat("/proc/self/ns/cgroup", &st) < 0 ? errno == ENOENT : st.st_ino == 0xEFFFFFFBu;
}

/* Writes @val to @dir/@file; returns 0 or -errno. */
static int
try_write(const char *dir, const char *file, const char *val)
{
	char path[4096];
	join_path(path, sizeof(path), dir, file);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, val, strlen(val));
	int err = errno;
	close(fd);
	return n < 0 ? -err : 0;
}

static void
write_ok(const char *dir, const char *file, const char *val)
{
	int r = try_write(dir, file, val);
	if (r < 0)
		fail_msg("%s/%s: write %s: %s", dir, file, val, strerror(-r));
}

/*
 * Directories a test made outside nb_cgroup: cgroups that hold a sleeping child (and maybe this
 * process), as a systemd session scope holds a shell, and parents for NB_CGROUP_PARENT_ENV.
 * teardown() undoes them all, so a failed assertion leaves nothing behind.
 */
static struct made {
	char dir[2048];
	char home[2048]; /* where this process was before it moved in; "" if it did not */
	pid_t sleeper;
} made[4];
static size_t n_made;

/*
 * mkdir @dir, and when @occupy put a sleeping child in it, and this process too when @self:
 * then @dir holds processes, so v2 lets it hand no controller to its children.
 */
static void
make_dir(const char *dir, bool occupy, bool self, const struct v2info *v)
{
	assert_true(n_made < NB_ARRAY_SIZE(made));
	struct made *m = &made[n_made];
	*m = (struct made){ .sleeper = -1 };
	if (mkdir(dir, 0755) < 0)
		fail_msg("mkdir %s: %s", dir, strerror(errno));
	snprintf(m->dir, sizeof(m->dir), "%s", dir);
	n_made++;
	if (!occupy)
		return;
	m->sleeper = fork();
	assert_true(m->sleeper >= 0);
	if (m->sleeper == 0) {
		for (;;)
			pause();
	}
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)m->sleeper);
	write_ok(dir, "cgroup.procs", pid);
	if (self) {
		snprintf(m->home, sizeof(m->home), "%s", v->self);
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		write_ok(dir, "cgroup.procs", pid);
	}
}

/* Undoes make_dir(), newest first. */
static void
unmake_dirs(void)
{
	while (n_made > 0) {
		struct made *m = &made[--n_made];
		if (m->home[0]) {
			char pid[32];
			snprintf(pid, sizeof(pid), "%d", (int)getpid());
			if (try_write(m->home, "cgroup.procs", pid) < 0)
				fprintf(stderr, "cannot move back to %s: %s\n", m->home,
					strerror(errno));
		}
		if (m->sleeper > 0) {
			kill(m->sleeper, SIGKILL);
			waitpid(m->sleeper, NULL, 0);
		}
		if (rmdir(m->dir) < 0)
			fprintf(stderr, "rmdir %s: %s\n", m->dir, strerror(errno));
	}
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

/*
 * No path of @ps exists, and no "nbtest-PID-" entry is left in any of their parents (a parent that
 * is gone too holds none).
 */
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
		if (!d && errno == ENOENT)
			continue;
		assert_non_null(d);
		for (struct dirent *de; (de = readdir(d));)
			if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
				fail_msg("left behind: %s/%s", parent, de->d_name);
		closedir(d);
	}
}

/*
 * The cgroup of the running test, and one it is in; teardown destroys them (in this order) if
 * an assertion jumped out early.
 */
static struct nb_cgroup *current, *current_outer;

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
	if (expect_v2_parent) {
		char want[4096];
		snprintf(want, sizeof(want), "%s/%s", expect_v2_parent, name);
		bool any = false;
		for (int i = 0; i < NB_CGROUP_N_RES; i++) {
			bool v2;
			const char *p = nb_cgroup_path(cg, i, &v2);
			any |= v2;
			if (v2 && strcmp(p, want) != 0)
				fail_msg("%s, want %s (the v2 parent expected here)", p, want);
		}
		if (!any)
			fail_msg("nothing on v2, want %s", want);
	}
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
	if (pid < 0 && errno == ENOSYS) {
		destroy_ok(cg, &ps);
		SKIP_BECAUSE("clone3: ENOSYS (kernel before 5.7, or valgrind, which does not "
			     "implement it)");
	}
	if (pid < 0)
		fail_msg("clone3(CLONE_INTO_CGROUP): %s", strerror(errno));
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

/* ---- the v2 parent: caller's cgroup, fallback parent, NB_CGROUP_PARENT_ENV ---- */

/* Why the fallback parent cannot be exercised here, or NULL. */
static const char *
no_fallback_here(struct v2info *v)
{
	static char why[2048];
	if (!v2_info(v))
		return "no cgroup2 mount showing the whole tree";
	if (!in_init_cgroupns())
		return "in a cgroup namespace: the fallback parent is for the initial one only";
	if (getenv(NB_CGROUP_PARENT_ENV))
		return NB_CGROUP_PARENT_ENV " is set: it replaces the fallback parent";
	int n = root_offers(v);
	if (n == 0) {
		snprintf(why, sizeof(why),
			 "%s/cgroup.controllers is \"%s\": memory, cpu and pids are not on v2 "
			 "here, so there is no v2 fallback to take",
			 v->mnt, v->root_ctrls);
		return why;
	}
	for (size_t i = 0; i < 3; i++) {
		if (!has_word(v->root_ctrls, limit_ctrl[i]) && !has_v1(limit_ctrl[i])) {
			snprintf(why, sizeof(why), "%s is neither on v2 nor on v1", limit_ctrl[i]);
			return why;
		}
	}
	return NULL;
}

/*
 * The caller's cgroup holds processes and hands out nothing (a systemd session scope): the
 * cgroup goes to <v2 mount>/nullbox/<name>, serving every limit the v2 root offers, and works.
 */
static void
test_fallback_parent(void **state)
{
	SKIP_IF_NEEDED(state);
	struct v2info v;
	const char *why = no_fallback_here(&v);
	if (why)
		SKIP_BECAUSE(why);
	char busy[2200], nullbox[1200], name[64];
	snprintf(busy, sizeof(busy), "%s/nbtest-%d-busy", v.self, (int)getpid());
	snprintf(nullbox, sizeof(nullbox), "%s/%s", v.mnt, NB_CGROUP_FALLBACK_PARENT);
	make_dir(busy, true, true, &v);
	make_name(name, sizeof(name));
	expect_v2_parent = nullbox;
	struct nb_cgroup *cg = create_ok(name, 64 * MiB, 30, 16);
	struct paths ps;
	paths_of(cg, &ps);
	print_message("mode %s: %s\n", nb_cgroup_mode(cg), nb_cgroup_describe(cg));
	for (size_t i = 0; i < 3; i++) {
		bool on_v2 = has_word(v.root_ctrls, limit_ctrl[i]);
		if (ps.v2[limit_res[i]] != on_v2)
			fail_msg("%s: on %s, want %s", limit_ctrl[i],
				 ps.v2[limit_res[i]] ? "v2" : "v1",
				 on_v2 ? "v2 under the fallback parent" : "v1");
	}
	assert_true(ps.v2[NB_CGROUP_FREEZER] && ps.v2[NB_CGROUP_CPUACCT]);
	if (root_offers(&v) == 3) {
		assert_string_equal(nb_cgroup_mode(cg), "v2");
		assert_true(nb_cgroup_v2_fd(cg) >= 0);
	}

	/* The limits are in force below nullbox, which lends them and holds no process itself. */
	char rootsub[256], sub[256], procs[256], path[2400];
	join_path(path, sizeof(path), v.mnt, "cgroup.subtree_control");
	assert_true(slurp(path, rootsub, sizeof(rootsub)));
	join_path(path, sizeof(path), nullbox, "cgroup.subtree_control");
	assert_true(slurp(path, sub, sizeof(sub)));
	for (size_t i = 0; i < 3; i++) {
		if (!ps.v2[limit_res[i]])
			continue;
		if (!has_word(rootsub, limit_ctrl[i]) || !has_word(sub, limit_ctrl[i]))
			fail_msg("%s not enabled: root \"%s\", nullbox \"%s\"", limit_ctrl[i],
				 rootsub, sub);
	}
	if (ps.v2[NB_CGROUP_MEMORY])
		assert_file(ps.p[NB_CGROUP_MEMORY], "memory.max", "67108864");
	if (ps.v2[NB_CGROUP_CPU])
		assert_file(ps.p[NB_CGROUP_CPU], "cpu.max", "30000 100000");
	if (ps.v2[NB_CGROUP_PIDS])
		assert_file(ps.p[NB_CGROUP_PIDS], "pids.max", "16");
	join_path(path, sizeof(path), nullbox, "cgroup.procs");
	assert_true(slurp(path, procs, sizeof(procs)));
	assert_string_equal(procs, "");
	/*
	 * The caller's cgroup is left as it was: no controller enabled, so no thread root (the
	 * kernel would take cpu and pids there, and its children could then hold no process).
	 */
	assert_file(busy, "cgroup.subtree_control", "");
	assert_file(busy, "cgroup.type", "domain");

	/* A process attached shows up where the kernel says it is, and is killed by destroy. */
	int go;
	pid_t pid = spawn_waiting(do_nothing, NULL, &go);
	attach_ok(cg, pid);
	char want[256], got[4096];
	snprintf(want, sizeof(want), "0::/%s/%s", NB_CGROUP_FALLBACK_PARENT, name);
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	assert_true(slurp(path, got, sizeof(got)));
	if (!strstr(got, want))
		fail_msg("/proc/%d/cgroup is \"%s\", lacks \"%s\"", (int)pid, got, want);
	struct nb_cgroup_stats s;
	struct nb_err e = { 0 };
	assert_int_equal(nb_cgroup_stats(cg, &s, &e), 0);
	assert_int_equal(s.pids_current, 1);
	release(&go);
	destroy_ok(cg, &ps);
	int st = wait_for(pid, 2000);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

	/* The parent stays: other sandboxes may be in it. */
	struct stat sb;
	assert_int_equal(stat(nullbox, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0755);
	expect_v2_parent = expect_v2_parent_env;
	unmake_dirs();
}

/*
 * When nothing works, the error says what each choice answered. Here the fallback is refused
 * because the caller is not root (euid 65534, in a child), and there is no v1 memory.
 */
static void
test_fallback_error_names_all(void **state)
{
	SKIP_IF_NEEDED(state);
	struct v2info v;
	const char *why = no_fallback_here(&v);
	if (why)
		SKIP_BECAUSE(why);
	if (!has_word(v.root_ctrls, "memory"))
		SKIP_BECAUSE("memory is not on v2 here: the error would not be about it");
	char busy[2200], name[64];
	snprintf(busy, sizeof(busy), "%s/nbtest-%d-busy", v.self, (int)getpid());
	make_dir(busy, true, true, &v);
	make_name(name, sizeof(name));

	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct nb_err e = { 0 };
		struct nb_cgroup_limits lim = { .memory_bytes = 64 * MiB,
						.cpu_percent = 10,
						.max_pids = 4 };
		struct nb_cgroup *cg = NULL;
		int r = -1000;
		if (seteuid(65534) == 0)
			r = nb_cgroup_create(name, &lim, &cg, &e);
		if (write(p[1], &r, sizeof(r)) != sizeof(r) || write(p[1], &e, sizeof(e)) < 0)
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	int r = 0;
	struct nb_err e = { 0 };
	assert_int_equal(read(p[0], &r, sizeof(r)), sizeof(r));
	assert_int_equal(read(p[0], &e, sizeof(e)), sizeof(e));
	close(p[0]);
	wait_for(pid, 5000);
	print_message("%d: %s\n", r, e.msg);
	assert_true(r < 0 && r != -1000);
	char want[4096];
	snprintf(want, sizeof(want), "cgroup: no memory controller: v2 in the caller's cgroup: %s",
		 busy);
	if (strncmp(e.msg, want, strlen(want)) != 0)
		fail_msg("message does not start with \"%s\"", want);
	snprintf(want, sizeof(want),
		 "; v2 under %s/%s: not tried: the caller is not root (euid 65534); v1: no memory "
		 "hierarchy mounted. ",
		 v.mnt, NB_CGROUP_FALLBACK_PARENT);
	if (!strstr(e.msg, want))
		fail_msg("message lacks \"%s\"", want);
	assert_non_null(strstr(e.msg, NB_CGROUP_PARENT_ENV));
	char path[2400];
	snprintf(path, sizeof(path), "%s/%s", busy, name);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/%s/%s", v.mnt, NB_CGROUP_FALLBACK_PARENT, name);
	assert_int_equal(access(path, F_OK), -1);
	unmake_dirs();
}

/*
 * Where the v2 root offers none of memory, cpu and pids (v1 or hybrid machines, like systemd's
 * hybrid layout), a caller's cgroup that hands out nothing changes nothing: no fallback parent is
 * made, the root's cgroup.subtree_control is left alone, and v1 serves the limits as before.
 */
static void
test_fallback_not_taken_when_useless(void **state)
{
	SKIP_IF_NEEDED(state);
	struct v2info v;
	if (!v2_info(&v))
		SKIP_BECAUSE("no cgroup2 mount showing the whole tree");
	if (root_offers(&v) > 0)
		SKIP_BECAUSE("the v2 root offers memory, cpu or pids: this checks hybrid machines "
			     "where it offers none");
	if (getenv(NB_CGROUP_PARENT_ENV))
		SKIP_BECAUSE(NB_CGROUP_PARENT_ENV " is set");
	char busy[2200], nullbox[1200], path[1300], sub0[256], sub1[256], name[64];
	snprintf(busy, sizeof(busy), "%s/nbtest-%d-busy", v.self, (int)getpid());
	snprintf(nullbox, sizeof(nullbox), "%s/%s", v.mnt, NB_CGROUP_FALLBACK_PARENT);
	bool had = access(nullbox, F_OK) == 0;
	join_path(path, sizeof(path), v.mnt, "cgroup.subtree_control");
	assert_true(slurp(path, sub0, sizeof(sub0)));
	make_dir(busy, true, true, &v);
	make_name(name, sizeof(name));
	struct nb_cgroup *cg = create_ok(name, 64 * MiB, 30, 16);
	struct paths ps;
	paths_of(cg, &ps);
	print_message("mode %s: %s\n", nb_cgroup_mode(cg), nb_cgroup_describe(cg));
	for (size_t i = 0; i < 3; i++)
		assert_false(ps.v2[limit_res[i]]);
	for (int i = 0; i < NB_CGROUP_N_RES; i++)
		if (strncmp(ps.p[i], nullbox, strlen(nullbox)) == 0)
			fail_msg("under the fallback parent: %s", ps.p[i]);
	assert_int_equal(access(nullbox, F_OK) == 0, had);
	assert_true(slurp(path, sub1, sizeof(sub1)));
	assert_string_equal(sub0, sub1);
	destroy_ok(cg, &ps);
	unmake_dirs();
}

static void
expect_env_error(const char *val, int want, const char *msg_part)
{
	assert_int_equal(setenv(NB_CGROUP_PARENT_ENV, val, 1), 0);
	char name[64];
	make_name(name, sizeof(name));
	struct nb_cgroup_limits lim = { .memory_bytes = 64 * MiB,
					.cpu_percent = 10,
					.max_pids = 4 };
	struct nb_cgroup *cg = (struct nb_cgroup *)1;
	struct nb_err e = { 0 };
	int r = nb_cgroup_create(name, &lim, &cg, &e);
	restore_parent_env();
	print_message("%s=%s: %s\n", NB_CGROUP_PARENT_ENV, val, e.msg);
	if (r < 0)
		assert_null(cg);
	else
		current = cg;
	if (r != -want)
		fail_msg("%s=%s: got %d (%s), want %d", NB_CGROUP_PARENT_ENV, val, r, e.msg, -want);
	char head[1200];
	snprintf(head, sizeof(head), "cgroup: %s=%s: ", NB_CGROUP_PARENT_ENV, val);
	if (strncmp(e.msg, head, strlen(head)) != 0 || !strstr(e.msg, msg_part))
		fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", e.msg, head, msg_part);
}

/* A bad NB_CGROUP_PARENT_ENV is refused, naming it, before anything is made. */
static void
test_parent_env_invalid(void **state)
{
	SKIP_IF_NEEDED(state);
	struct v2info v;
	if (!v2_info(&v)) {
		expect_env_error("/sys/fs/cgroup", ENOENT, "no cgroup2 mount");
		return;
	}
	char path[1200];
	expect_env_error("relative/path", EINVAL, "not an absolute path");
	expect_env_error("/nonexistent-nbtest", ENOENT, "No such file or directory");
	expect_env_error("/tmp", EINVAL, "is not inside the cgroup2 mount");
	snprintf(path, sizeof(path), "%s/..", v.mnt);
	expect_env_error(path, EINVAL, "is not inside the cgroup2 mount");
	snprintf(path, sizeof(path), "%s/cgroup.procs", v.mnt);
	expect_env_error(path, ENOTDIR, "not a directory");
	snprintf(path, sizeof(path), "%s/nbtest-%d-none/x", v.mnt, (int)getpid());
	expect_env_error(path, ENOENT, "No such file or directory");

	/* Empty means unset. */
	assert_int_equal(setenv(NB_CGROUP_PARENT_ENV, "", 1), 0);
	char name[64];
	make_name(name, sizeof(name));
	struct nb_cgroup *cg = create_ok(name, 64 * MiB, 10, 4);
	restore_parent_env();
	struct paths ps;
	paths_of(cg, &ps);
	destroy_ok(cg, &ps);
}

/*
 * NB_CGROUP_PARENT_ENV names a cgroup made for it (as systemd delegates one to a service): ours
 * is made under it for every limit v2 offers, never under the caller's cgroup; the parent stays.
 * Then one that holds processes: the error says so and that the fallback was not tried.
 */
static void
test_parent_env(void **state)
{
	SKIP_IF_NEEDED(state);
	struct v2info v;
	if (!v2_info(&v))
		SKIP_BECAUSE("no cgroup2 mount showing the whole tree");
	/* The parent's controllers come from the root's subtree_control: as systemd sets it. */
	for (size_t i = 0; i < 3; i++) {
		char plus[16];
		snprintf(plus, sizeof(plus), "+%s", limit_ctrl[i]);
		if (has_word(v.root_ctrls, limit_ctrl[i]))
			write_ok(v.mnt, "cgroup.subtree_control", plus);
	}
	char parent[1200], val[1300], name[64];
	snprintf(parent, sizeof(parent), "%s/nbtest-%d-parent", v.mnt, (int)getpid());
	make_dir(parent, false, false, &v);
	/* Not in canonical form: the library resolves it. */
	snprintf(val, sizeof(val), "%s//nbtest-%d-parent/", v.mnt, (int)getpid());
	assert_int_equal(setenv(NB_CGROUP_PARENT_ENV, val, 1), 0);
	make_name(name, sizeof(name));
	bool all = root_offers(&v) == 3;
	expect_v2_parent = all ? parent : NULL;
	struct nb_cgroup *cg = create_ok(name, 64 * MiB, 30, 16);
	restore_parent_env();
	expect_v2_parent = expect_v2_parent_env;
	struct paths ps;
	paths_of(cg, &ps);
	print_message("mode %s: %s\n", nb_cgroup_mode(cg), nb_cgroup_describe(cg));
	char want[4096];
	snprintf(want, sizeof(want), "%s/%s", parent, name);
	for (size_t i = 0; i < 3; i++) {
		bool on_v2 = has_word(v.root_ctrls, limit_ctrl[i]);
		assert_int_equal(ps.v2[limit_res[i]], on_v2);
		if (on_v2)
			assert_string_equal(ps.p[limit_res[i]], want);
	}
	char path[2400];
	snprintf(path, sizeof(path), "%s/%s", v.self, name);
	assert_int_equal(access(path, F_OK), -1);
	if (ps.v2[NB_CGROUP_PIDS])
		assert_file(ps.p[NB_CGROUP_PIDS], "pids.max", "16");
	destroy_ok(cg, &ps);
	assert_int_equal(access(parent, F_OK), 0);

	if (!has_word(v.root_ctrls, "memory") || has_v1("memory")) {
		print_message("memory is not on v2 only: a busy %s not exercised\n",
			      NB_CGROUP_PARENT_ENV);
		unmake_dirs();
		return;
	}
	char busy[1200];
	snprintf(busy, sizeof(busy), "%s/nbtest-%d-parent-busy", v.mnt, (int)getpid());
	make_dir(busy, true, false, &v);
	assert_int_equal(setenv(NB_CGROUP_PARENT_ENV, busy, 1), 0);
	struct nb_cgroup_limits lim = { .memory_bytes = 64 * MiB,
					.cpu_percent = 10,
					.max_pids = 4 };
	struct nb_err e = { 0 };
	int r = nb_cgroup_create(name, &lim, &cg, &e);
	restore_parent_env();
	print_message("%s\n", e.msg);
	if (r >= 0)
		current = cg;
	assert_int_equal(r, -EBUSY);
	snprintf(want, sizeof(want),
		 "cgroup: no memory controller: v2 in %s: %s holds processes, so v2 lets it "
		 "hand no controller to its children, and memory is not in its "
		 "cgroup.subtree_control; ",
		 NB_CGROUP_PARENT_ENV, busy);
	if (strncmp(e.msg, want, strlen(want)) != 0)
		fail_msg("message does not start with \"%s\"", want);
	snprintf(want, sizeof(want), "not tried: %s is set", NB_CGROUP_PARENT_ENV);
	assert_non_null(strstr(e.msg, want));
	snprintf(path, sizeof(path), "%s/%s", busy, name);
	assert_int_equal(access(path, F_OK), -1);
	unmake_dirs();
}

/* ---- open: the supervisor finds the cgroup a child made ---- */

/* What the stand-in for cage reports, in memory shared with the test. */
struct cage_report {
	volatile uint64_t ctr; /* the grandchild's counter */
	pid_t grandchild;
	int r; /* nb_cgroup_create()'s answer */
	struct nb_err e;
	char mode[8];
	char desc[4096];
	struct paths ps;
};

/*
 * The stand-in for cage, forked by the test (the stand-in for nulld). @cmd gives the order: one
 * byte to start, then one byte (or EOF) to finish. On start it makes cgroup @name, forks a
 * grandchild that counts in shared memory, puts it in the cgroup, reports, closes its handle
 * (the cgroup stays: the test destroys it) and writes a byte to @ready. On finish it reaps the
 * grandchild and exits 0 when that died of SIGKILL (destroy killed it).
 */
static void __attribute__((noreturn))
cage_main(const char *name, struct cage_report *rep, int cmd, int ready)
{
	char c;
	if (read(cmd, &c, 1) != 1)
		_exit(10);
	struct nb_cgroup_limits lim = { .memory_bytes = 256 * MiB,
					.cpu_percent = 100,
					.max_pids = 16 };
	struct nb_cgroup *cg = NULL;
	rep->r = nb_cgroup_create(name, &lim, &cg, &rep->e);
	if (rep->r < 0)
		_exit(11);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		_exit(12);
	pid_t gc = fork();
	if (gc < 0)
		_exit(13);
	if (gc == 0) {
		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			_exit(100);
		for (;;)
			rep->ctr++;
	}
	close(p[0]);
	rep->grandchild = gc;
	rep->r = nb_cgroup_attach(cg, gc, &rep->e);
	if (rep->r < 0) {
		kill(gc, SIGKILL);
		_exit(14);
	}
	snprintf(rep->mode, sizeof(rep->mode), "%s", nb_cgroup_mode(cg));
	snprintf(rep->desc, sizeof(rep->desc), "%s", nb_cgroup_describe(cg));
	for (int i = 0; i < NB_CGROUP_N_RES; i++)
		snprintf(rep->ps.p[i], sizeof(rep->ps.p[i]), "%s",
			 nb_cgroup_path(cg, i, &rep->ps.v2[i]));
	nb_cgroup_close(cg);
	if (write(p[1], "g", 1) != 1 || write(ready, "r", 1) != 1)
		_exit(15);
	close(p[1]);
	if (read(cmd, &c, 1) < 0)
		_exit(16);
	int st;
	if (waitpid(gc, &st, 0) != gc)
		_exit(17);
	_exit(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL ? 0 : 18);
}

/* The running cage stand-in; teardown() cleans up after it when an assertion jumped out. */
static struct cage {
	pid_t pid;
	int cmd, ready;
	struct cage_report *rep;
	char name[64];
} cage = { .pid = -1, .cmd = -1, .ready = -1 };

/* Forks the cage stand-in for cgroup @name; it waits for cage_start(). */
static void
cage_fork(const char *name)
{
	int cmd[2], ready[2];
	assert_int_equal(pipe2(cmd, O_CLOEXEC), 0);
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	struct cage_report *rep =
		mmap(NULL, sizeof(*rep), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(rep != MAP_FAILED);
	memset(rep, 0, sizeof(*rep));
	snprintf(cage.name, sizeof(cage.name), "%s", name);
	cage.rep = rep;
	cage.pid = fork();
	assert_true(cage.pid >= 0);
	if (cage.pid == 0) {
		close(cmd[1]);
		close(ready[0]);
		cage_main(name, rep, cmd[0], ready[1]);
	}
	close(cmd[0]);
	close(ready[1]);
	cage.cmd = cmd[1];
	cage.ready = ready[0];
}

/* Lets the stand-in make its cgroup; returns once the grandchild counts in it. */
static void
cage_start(void)
{
	char c;
	assert_int_equal(write(cage.cmd, "s", 1), 1);
	if (read(cage.ready, &c, 1) != 1)
		fail_msg("cage stand-in: create %d: %s (status 0x%x)", cage.rep->r, cage.rep->e.msg,
			 wait_for(cage.pid, 2000));
	int64_t end = now_ms() + 5000;
	while (cage.rep->ctr == 0 && now_ms() < end)
		sleep_ms(5);
	assert_true(cage.rep->ctr > 0);
	print_message("cage %d made mode %s: %s\n", (int)cage.pid, cage.rep->mode, cage.rep->desc);
}

/* Lets the stand-in exit, which it does with 0 once its grandchild died of SIGKILL. */
static void
cage_finish(void)
{
	assert_int_equal(write(cage.cmd, "x", 1), 1);
	close(cage.cmd);
	close(cage.ready);
	cage.cmd = cage.ready = -1;
	int st = wait_for(cage.pid, 5000);
	cage.pid = -1;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("cage stand-in: status 0x%x (18: its grandchild did not die of SIGKILL)",
			 st);
	munmap(cage.rep, sizeof(*cage.rep));
	cage.rep = NULL;
}

/* For teardown(): destroys what a failed test left, kills the stand-in and its grandchild. */
static void
cage_cleanup(void)
{
	if (cage.pid > 0) {
		struct nb_cgroup *cg = NULL;
		struct nb_err e = { 0 };
		if (nb_cgroup_open(cage.name, cage.pid, &cg, &e) == 0 &&
		    nb_cgroup_destroy(cg, &e) < 0)
			fprintf(stderr, "teardown: %s\n", e.msg);
		if (cage.rep && cage.rep->grandchild > 0)
			kill(cage.rep->grandchild, SIGKILL);
		kill(cage.pid, SIGKILL);
		waitpid(cage.pid, NULL, 0);
		cage.pid = -1;
	}
	if (cage.cmd >= 0)
		close(cage.cmd);
	if (cage.ready >= 0)
		close(cage.ready);
	cage.cmd = cage.ready = -1;
	if (cage.rep)
		munmap(cage.rep, sizeof(*cage.rep));
	cage.rep = NULL;
}

static struct nb_cgroup *
open_ok(const char *name, pid_t creator)
{
	struct nb_cgroup *cg = NULL;
	struct nb_err e = { 0 };
	int r = nb_cgroup_open(name, creator, &cg, &e);
	if (r < 0)
		fail_msg("open %s (creator %d): %d %s", name, (int)creator, r, e.msg);
	assert_non_null(cg);
	return cg;
}

/* @cg names exactly the directories, versions and mode that @rep's create reported. */
static void
assert_same_as_created(const struct nb_cgroup *cg, const struct cage_report *rep)
{
	for (int i = 0; i < NB_CGROUP_N_RES; i++) {
		bool v2;
		const char *p = nb_cgroup_path(cg, i, &v2);
		if (strcmp(p, rep->ps.p[i]) != 0 || v2 != rep->ps.v2[i])
			fail_msg("resource %d: opened %s %s, created %s %s", i, v2 ? "v2" : "v1", p,
				 rep->ps.v2[i] ? "v2" : "v1", rep->ps.p[i]);
	}
	assert_string_equal(nb_cgroup_mode(cg), rep->mode);
	assert_string_equal(nb_cgroup_describe(cg), rep->desc);
	bool all_v2 = strcmp(rep->mode, "v2") == 0;
	assert_int_equal(nb_cgroup_v2_fd(cg) >= 0, all_v2);
}

/* Every directory of @ps is there. */
static void
assert_present(const struct paths *ps)
{
	for (int i = 0; i < NB_CGROUP_N_RES; i++)
		if (access(ps->p[i], F_OK) < 0)
			fail_msg("%s: %s", ps->p[i], strerror(errno));
}

/* What the kernel says of the freezer at @dir: 1 frozen, 0 thawed (v1 FREEZING counts as 0). */
static int
frozen_state(const char *dir, bool v2)
{
	char path[4200], buf[512];
	join_path(path, sizeof(path), dir, v2 ? "cgroup.events" : "freezer.state");
	if (!slurp(path, buf, sizeof(buf)))
		fail_msg("%s: %s", path, strerror(errno));
	if (!v2)
		return strcmp(buf, "FROZEN") == 0;
	const char *f = strstr(buf, "frozen ");
	if (!f)
		fail_msg("%s: no \"frozen\" in \"%s\"", path, buf);
	return f[7] == '1';
}

/*
 * The supervisor's view: a child (the stand-in for cage) makes the cgroup and runs a grandchild
 * in it; the test (the stand-in for nulld) opens it by the child's pid and by 0 (the child is in
 * the test's cgroups), freezes, thaws and reads it, closes it (nothing removed), and destroys it
 * through a handle it opened (everything removed, the grandchild killed).
 */
static void
test_open_freeze_stats_destroy(void **state)
{
	SKIP_IF_NEEDED(state);
	char name[64];
	make_name(name, sizeof(name));
	cage_fork(name);
	cage_start();
	const struct cage_report *rep = cage.rep;
	const struct paths *ps = &rep->ps;
	assert_present(ps);

	struct nb_cgroup *self = open_ok(name, 0);
	assert_same_as_created(self, rep);
	nb_cgroup_close(self);
	assert_present(ps);

	struct nb_cgroup *cg = open_ok(name, cage.pid);
	current = cg;
	assert_same_as_created(cg, rep);
	print_message("opened mode %s: %s\n", nb_cgroup_mode(cg), nb_cgroup_describe(cg));

	bool fz_v2;
	const char *fz = nb_cgroup_path(cg, NB_CGROUP_FREEZER, &fz_v2);
	struct nb_err e = { 0 };
	if (nb_cgroup_freeze(cg, true, &e) < 0)
		fail_msg("freeze: %s", e.msg);
	assert_int_equal(frozen_state(fz, fz_v2), 1);
	uint64_t c1 = rep->ctr;
	sleep_ms(200);
	uint64_t c2 = rep->ctr;
	char stt = proc_state(rep->grandchild);
	print_message("frozen: counter %" PRIu64 " -> %" PRIu64 ", state %c\n", c1, c2, stt);
	assert_true(c1 == c2);
	assert_true(stt != 'R');

	if (nb_cgroup_freeze(cg, false, &e) < 0)
		fail_msg("thaw: %s", e.msg);
	assert_int_equal(frozen_state(fz, fz_v2), 0);
	sleep_ms(100);
	assert_true(rep->ctr > c2);

	struct nb_cgroup_stats s;
	if (nb_cgroup_stats(cg, &s, &e) < 0)
		fail_msg("stats: %s", e.msg);
	print_message("stats: pids %" PRIu64 ", cpu %" PRIu64 " us, peak %" PRIu64
		      " bytes, oom kills %" PRIu64 "\n",
		      s.pids_current, s.cpu_usec, s.memory_peak_bytes, s.oom_kills);
	assert_int_equal(s.pids_current, 1);
	assert_true(s.cpu_usec > 0);
	assert_int_equal(s.oom_kills, 0);

	/* close leaves everything as it was, the grandchild running */
	current = NULL;
	nb_cgroup_close(cg);
	assert_present(ps);
	uint64_t c3 = rep->ctr;
	sleep_ms(50);
	assert_true(rep->ctr > c3);
	nb_cgroup_close(NULL);

	/* destroy through a handle that open made: the grandchild dies, every directory goes */
	cg = open_ok(name, cage.pid);
	current = cg;
	destroy_ok(cg, ps);
	cage_finish();
}

/*
 * A creator in cgroups of its own (made by the test and joined before it creates, as a cage
 * might be placed in a service's cgroup): opened by its pid, the cgroup is found where it made
 * it; opened by 0, it is found only where both look alike (a shared parent: the fallback parent
 * or NB_CGROUP_PARENT_ENV), and otherwise refused with -ENOENT, never mistaken for another.
 */
static void
test_open_creator_elsewhere(void **state)
{
	SKIP_IF_NEEDED(state);
	char outer_name[64], name[64];
	make_name(outer_name, sizeof(outer_name));
	make_name(name, sizeof(name));
	struct nb_cgroup *outer = create_ok(outer_name, 256 * MiB, 100, 16);
	current_outer = outer;
	current = NULL;
	struct paths ops;
	paths_of(outer, &ops);
	cage_fork(name);
	attach_ok(outer, cage.pid);
	cage_start();
	const struct cage_report *rep = cage.rep;
	bool below_outer = false;
	for (int i = 0; i < NB_CGROUP_N_RES; i++) {
		size_t n = strlen(ops.p[i]);
		for (int j = 0; j < NB_CGROUP_N_RES; j++)
			below_outer |=
				strncmp(rep->ps.p[j], ops.p[i], n) == 0 && rep->ps.p[j][n] == '/';
	}

	struct nb_cgroup *cg = NULL;
	struct nb_err e = { 0 };
	int r = nb_cgroup_open(name, 0, &cg, &e);
	print_message("open by 0: %d %s\n", r, r < 0 ? e.msg : nb_cgroup_describe(cg));
	if (r == 0) {
		/* Only a parent both share can make the caller's lookup find it. */
		assert_false(below_outer);
		assert_same_as_created(cg, rep);
		nb_cgroup_close(cg);
	} else {
		assert_int_equal(r, -ENOENT);
		assert_null(cg);
		char want[128];
		snprintf(want, sizeof(want), "cgroup: no cgroup \"%s\" made by the caller: ", name);
		if (strncmp(e.msg, want, strlen(want)) != 0)
			fail_msg("message \"%s\" does not start with \"%s\"", e.msg, want);
	}
	if (!below_outer)
		print_message("none of its directories is below the creator's own cgroups (it "
			      "took a parent both could share)\n");

	cg = open_ok(name, cage.pid);
	current = cg;
	assert_same_as_created(cg, rep);
	struct nb_cgroup_stats s;
	assert_int_equal(nb_cgroup_stats(cg, &s, &e), 0);
	assert_int_equal(s.pids_current, 1);
	/*
	 * Its directories go; the parents are swept for leftovers only once the outer cgroup,
	 * which may share a parent with it (the fallback parent), is gone too.
	 */
	static struct paths ps;
	ps = rep->ps;
	current = NULL;
	if (nb_cgroup_destroy(cg, &e) < 0)
		fail_msg("destroy: %s", e.msg);
	for (int i = 0; i < NB_CGROUP_N_RES; i++)
		if (access(ps.p[i], F_OK) == 0 || errno != ENOENT)
			fail_msg("left behind: %s", ps.p[i]);
	cage_finish();
	current_outer = NULL;
	destroy_ok(outer, &ops);
	assert_gone(&ps);
}

static void
expect_open_error(const char *name, pid_t creator, int want, const char *msg_part)
{
	struct nb_cgroup *cg = (struct nb_cgroup *)1;
	struct nb_err e = { 0 };
	int r = nb_cgroup_open(name, creator, &cg, &e);
	print_message("open \"%s\" (creator %d): %d %s\n", name, (int)creator, r, e.msg);
	if (r == 0)
		current = cg;
	if (r != -want)
		fail_msg("open \"%s\" (creator %d): got %d (%s), want %d", name, (int)creator, r,
			 e.msg, -want);
	assert_null(cg);
	if (!strstr(e.msg, msg_part))
		fail_msg("message \"%s\" lacks \"%s\"", e.msg, msg_part);
}

/*
 * Refusals: a name nobody made (-ENOENT, naming it and where it looked), bad names and pids
 * (-EINVAL), a creator that is gone or has exited (-ESRCH), and a cgroup that lost one of its
 * directories (-ENOENT naming that one).
 */
static void
test_open_refused(void **state)
{
	SKIP_IF_NEEDED(state);
	char name[64], want[256];
	make_name(name, sizeof(name));
	snprintf(want, sizeof(want), "cgroup: no cgroup \"%s\" made by the caller: ", name);
	expect_open_error(name, 0, ENOENT, want);
	snprintf(want, sizeof(want), "/%s", name); /* where it looked */
	expect_open_error(name, 0, ENOENT, want);

	char long_name[NB_CGROUP_NAME_MAX + 2];
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	static const char *const bad[] = { "", ".", "..", "../escape", "a/b", "a b", "x\n", "-x" };
	for (size_t i = 0; i < NB_ARRAY_SIZE(bad); i++)
		expect_open_error(bad[i], 0, EINVAL, "name");
	expect_open_error(long_name, 0, EINVAL, "name");
	struct nb_cgroup *cg = (struct nb_cgroup *)1;
	struct nb_err e = { 0 };
	assert_int_equal(nb_cgroup_open(NULL, 0, &cg, &e), -EINVAL);
	assert_null(cg);
	expect_open_error(name, -1, EINVAL, "creator pid -1");

	/* A zombie's /proc/PID/cgroup shows the root in v1 hierarchies: refused, not trusted. */
	pid_t dead = fork();
	if (dead == 0)
		_exit(0);
	assert_true(dead > 0);
	siginfo_t si;
	assert_int_equal(waitid(P_PID, (id_t)dead, &si, WEXITED | WNOWAIT), 0);
	expect_open_error(name, dead, ESRCH, "has exited");
	waitpid(dead, NULL, 0);
	expect_open_error(name, dead, ESRCH, "No such process");

	/* Where it takes more than one directory, each must be there. */
	char name2[64];
	make_name(name2, sizeof(name2));
	struct nb_cgroup *two = create_ok(name2, 64 * MiB, 10, 4);
	struct paths ps;
	paths_of(two, &ps);
	int gone = -1;
	for (int i = 0; i < NB_CGROUP_N_RES && gone < 0; i++)
		if (!ps.v2[i])
			gone = i;
	if (gone < 0) {
		print_message("mode %s: one directory, nothing to lose partly\n",
			      nb_cgroup_mode(two));
	} else {
		assert_int_equal(rmdir(ps.p[gone]), 0);
		snprintf(want, sizeof(want), "no %s (v1 ", ps.p[gone]);
		expect_open_error(name2, 0, ENOENT, want);
	}
	destroy_ok(two, &ps);
}

/*
 * destroy of an empty cgroup leaves the freezer alone (no cgroup.freeze or freezer.state write:
 * a v1 freeze and thaw costs an IPI to every CPU); one that holds processes is frozen while they
 * are killed, then thawed. inotify sees every write to a cgroupfs file.
 */
static void
test_destroy_freezes_only_when_needed(void **state)
{
	SKIP_IF_NEEDED(state);
	for (int busy = 0; busy < 2; busy++) {
		char name[64];
		make_name(name, sizeof(name));
		struct nb_cgroup *cg = create_ok(name, 64 * MiB, 50, 16);
		struct paths ps;
		paths_of(cg, &ps);
		bool v2 = ps.v2[NB_CGROUP_FREEZER];
		const char *file = v2 ? "cgroup.freeze" : "freezer.state";
		int go = -1;
		pid_t pid = -1;
		if (busy) {
			pid = spawn_waiting(do_nothing, NULL, &go);
			attach_ok(cg, pid);
			release(&go);
		}
		int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		assert_true(in >= 0);
		/* IN_CLOSE_WRITE between them, or inotify merges two writes into one event */
		assert_true(inotify_add_watch(in, ps.p[NB_CGROUP_FREEZER],
					      IN_MODIFY | IN_CLOSE_WRITE) >= 0);
		destroy_ok(cg, &ps);
		int writes = 0;
		char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
		ssize_t n;
		while ((n = read(in, buf, sizeof(buf))) > 0) {
			for (char *q = buf; q < buf + n;) {
				const struct inotify_event *ev = (const void *)q;
				writes += (ev->mask & IN_MODIFY) && ev->len &&
					  strcmp(ev->name, file) == 0;
				q += sizeof(*ev) + ev->len;
			}
		}
		close(in);
		print_message("%s: %d writes to %s\n", busy ? "one process" : "empty", writes,
			      file);
		if (!busy) {
			assert_int_equal(writes, 0);
			continue;
		}
		int st = wait_for(pid, 2000);
		assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
		/* v2's cgroup.kill may have emptied it before the check: then no freeze either. */
		if (v2)
			print_message("v2: cgroup.kill came first; %d writes is right either way\n",
				      writes);
		else if (writes < 2 || writes % 2) /* FROZEN, THAWED, once or more */
			fail_msg("v1: %d writes to freezer.state, want FROZEN and THAWED", writes);
	}
}

/* ---- main ---- */

static int
teardown(void **state)
{
	(void)state;
	int r = 0;
	cage_cleanup();
	if (current) {
		struct nb_err e = { 0 };
		r = nb_cgroup_destroy(current, &e);
		current = NULL;
		if (r < 0)
			fprintf(stderr, "teardown: %s\n", e.msg);
	}
	if (current_outer) {
		struct nb_err e = { 0 };
		int r2 = nb_cgroup_destroy(current_outer, &e);
		current_outer = NULL;
		if (r2 < 0)
			fprintf(stderr, "teardown: %s\n", e.msg);
		if (r == 0)
			r = r2;
	}
	restore_parent_env();
	expect_v2_parent = expect_v2_parent_env;
	unmake_dirs();
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
	expect_v2_parent = expect_v2_parent_env = getenv("NBTEST_EXPECT_V2_PARENT");
	if (getenv(NB_CGROUP_PARENT_ENV))
		orig_parent_env = strdup(getenv(NB_CGROUP_PARENT_ENV));
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
		cmocka_unit_test_teardown(test_fallback_parent, teardown),
		cmocka_unit_test_teardown(test_fallback_error_names_all, teardown),
		cmocka_unit_test_teardown(test_fallback_not_taken_when_useless, teardown),
		cmocka_unit_test_teardown(test_parent_env_invalid, teardown),
		cmocka_unit_test_teardown(test_parent_env, teardown),
		cmocka_unit_test_teardown(test_open_freeze_stats_destroy, teardown),
		cmocka_unit_test_teardown(test_open_creator_elsewhere, teardown),
		cmocka_unit_test_teardown(test_open_refused, teardown),
		cmocka_unit_test_teardown(test_destroy_freezes_only_when_needed, teardown),
	};
	int failed = cmocka_run_group_tests_name("cgroup", tests, group_setup, NULL);
	if (failed == 0 && skip_reason) {
		fprintf(stderr, "SKIP: %s\n", skip_reason);
		return 77;
	}
	return failed;
}
