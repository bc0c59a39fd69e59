/*
 * bench-agents: what nulld costs on top of cage, for one agent and for many, and what the audit
 * log can take.
 *
 *   bench-agents [-n N] [--warmup N] [--gap MS] [--many N] [--audit-ms MS] [--cage PATH]
 *                [--nulld PATH] [--nullctl PATH] [--json]
 *
 * Sections:
 *   options      command line, where cage, nulld and nullctl are
 *   workspace    a private temp dir: the agent (a shell script and its AGENT.toml), its write
 *                path, nulld's state dir (0700), the audit dirs
 *   spawning     fork + execve + waitpid
 *   statistics   median, p95, mean, min, max
 *   markers      inotify on the write path: the agent's first act is to create a file there
 *   nulld        one nulld for the whole run, driven over its control socket (lib/ipc)
 *   processes    /proc scans: process trees, Pss, VmRSS, MemAvailable
 *   cgroups      nullbox-* cgroup directories left behind
 *   starts       start -> agent runs, through nulld (RPC and nullctl) and bare `cage run`
 *   many         N agents alive at once under the one nulld; then shutdown
 *   audit        lib/audit appends/s in both sync modes
 *   output       text and JSON
 *
 * "The agent runs" means the agent's own code has run: its script creates OUT/NAME (an inotify
 * IN_CREATE on the write path), then execs `sleep`. The same script is started by nulld (the
 * manifest's entry) and by a bare `cage run --manifest M -- /agent/agent.sh`; the kinds are
 * interleaved round-robin, the order rotating every round, so that the machine's noise falls on
 * all of them alike. Figures are printed, never asserted: the machines this runs on are shared.
 *
 * Everything the benchmark creates lives in one mkdtemp(3) directory that it removes at the end;
 * it signals only the processes it started (nulld, nullctl, bare cages, and a cage nulld started
 * for it that outlived nulld, which would be a bug), by pid. nulld and bare cages get SIGTERM if
 * the benchmark dies; nulld then stops its agents.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "bench-paths.h"
#include "cleanup.h"
#include "err.h"
#include "ipc.h"
#include "json.h"

#define PROG "bench-agents"

/* The uid cage runs agents as when started by root: it must be able to write the markers. */
#define SANDBOX_UID 65534

/* Limits of the bench agent: a shell that writes one line and execs sleep needs little. */
#define AGENT_MEMORY_MB 32
#define AGENT_MAX_PIDS 16

#define NULLD_READY_TIMEOUT_MS 10000
#define START_TIMEOUT_MS 30000
#define STOP_TIMEOUT_MS 15000
#define MANY_START_TIMEOUT_MS 180000
#define SHUTDOWN_TIMEOUT_MS 60000
#define RPC_TIMEOUT_MS 30000
#define CGROUP_GONE_TIMEOUT_MS 5000
#define CGROUP_SCAN_DEPTH 8
/* nulld's "no agent named X" (src/nulld/control.c CTL_ERR_NOT_FOUND). */
#define CTL_ERR_NOT_FOUND 2

extern char **environ;

static volatile sig_atomic_t interrupted;

static void
closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

static void
on_signal(int sig)
{
	interrupted = sig;
}

static _Noreturn __attribute__((format(printf, 1, 2))) void
die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, PROG ": ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		die("out of memory");
	return p;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double
ms_since(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e6;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !interrupted)
		;
}

/* ---- options ---- */

struct opts {
	int n;
	int warmup;
	int gap_ms; /* pause before each start */
	int many;
	int audit_ms; /* per sync mode; 0 skips the audit part */
	char *cage, *nulld;
	char *nullctl; /* NULL: not found, that kind is skipped */
	bool json;
};

static void
usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " [OPTIONS]\n"
		"\n"
		"Time from nulld's agent.start (and `nullctl agent start`) to the agent running, beside\n"
		"a bare `cage run` of the same agent, interleaved in one run; then many agents alive at\n"
		"once under one nulld (nulld's RSS, memory per agent, shutdown); then lib/audit\n"
		"appends/s in both sync modes. Needs root. Prints figures; never fails on timing.\n"
		"\n"
		"Options:\n"
		"  -n N              measured starts per kind (default 50)\n"
		"      --warmup N    unmeasured starts per kind first (default 3)\n"
		"      --gap MS      pause before every start (default 0)\n"
		"      --many N      agents alive at once under one nulld (default 200; 0 skips)\n"
		"      --audit-ms MS appending time per audit sync mode (default 2000; 0 skips)\n"
		"      --cage PATH   the cage binary (default: the one built next to this benchmark)\n"
		"      --nulld PATH  the nulld binary (default: likewise)\n"
		"      --nullctl PATH  the nullctl binary (default: likewise; none: that kind is "
		"skipped)\n"
		"      --json        one JSON object on stdout instead of the text report\n"
		"  -h, --help        this help\n");
}

static int
parse_count(const char *opt, const char *s, int min, int max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		die("%s: expected a number from %d to %d, got '%s'", opt, min, max, s);
	return (int)v;
}

static bool
is_executable(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/*
 * A binary of the same meson build: BUILD/bench/bench-agents -> BUILD/@rel, found from
 * /proc/self/exe so a moved build dir still works; else @configured (the path meson knew).
 */
static char *
default_binary(const char *rel, const char *configured)
{
	char self[PATH_MAX], buf[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(buf, sizeof(buf), "%s/../%s", self, rel);
			char real[PATH_MAX];
			if (is_executable(buf) && realpath(buf, real))
				return strdup(real);
		}
	}
	if (configured && is_executable(configured))
		return strdup(configured);
	return NULL;
}

static char *
binary_opt(const char *opt, const char *given)
{
	char real[PATH_MAX];
	if (!realpath(given, real) || !is_executable(real))
		die("%s %s: not an executable file", opt, given);
	char *p = strdup(real);
	if (!p)
		die("out of memory");
	return p;
}

#ifndef BENCH_CAGE_PATH
#define BENCH_CAGE_PATH NULL
#endif
#ifndef BENCH_NULLD_PATH
#define BENCH_NULLD_PATH NULL
#endif
#ifndef BENCH_NULLCTL_PATH
#define BENCH_NULLCTL_PATH NULL
#endif

static void
parse_opts(int argc, char **argv, struct opts *o)
{
	enum {
		OPT_WARMUP = 256,
		OPT_GAP,
		OPT_MANY,
		OPT_AUDIT,
		OPT_CAGE,
		OPT_NULLD,
		OPT_NULLCTL,
		OPT_JSON
	};
	static const struct option longopts[] = {
		{ "warmup", required_argument, NULL, OPT_WARMUP },
		{ "gap", required_argument, NULL, OPT_GAP },
		{ "many", required_argument, NULL, OPT_MANY },
		{ "audit-ms", required_argument, NULL, OPT_AUDIT },
		{ "cage", required_argument, NULL, OPT_CAGE },
		{ "nulld", required_argument, NULL, OPT_NULLD },
		{ "nullctl", required_argument, NULL, OPT_NULLCTL },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cage = NULL, *nulld = NULL, *nullctl = NULL;
	*o = (struct opts){ .n = 50, .warmup = 3, .many = 200, .audit_ms = 2000 };
	int c;
	while ((c = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o->n = parse_count("-n", optarg, 1, 100000);
			break;
		case OPT_WARMUP:
			o->warmup = parse_count("--warmup", optarg, 0, 100000);
			break;
		case OPT_GAP:
			o->gap_ms = parse_count("--gap", optarg, 0, 100000);
			break;
		case OPT_MANY:
			o->many = parse_count("--many", optarg, 0, 10000);
			break;
		case OPT_AUDIT:
			o->audit_ms = parse_count("--audit-ms", optarg, 0, 600000);
			break;
		case OPT_CAGE:
			cage = optarg;
			break;
		case OPT_NULLD:
			nulld = optarg;
			break;
		case OPT_NULLCTL:
			nullctl = optarg;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc)
		die("unexpected argument '%s' (see --help)", argv[optind]);

	o->cage = cage ? binary_opt("--cage", cage)
		       : default_binary("src/cage/cage", BENCH_CAGE_PATH);
	if (!o->cage)
		die("cage not found next to this benchmark (../src/cage/cage); build it with "
		    "`meson compile -C BUILD` or pass --cage PATH");
	o->nulld = nulld ? binary_opt("--nulld", nulld)
			 : default_binary("src/nulld/nulld", BENCH_NULLD_PATH);
	if (!o->nulld)
		die("nulld not found next to this benchmark (../src/nulld/nulld); build it or pass "
		    "--nulld PATH");
	o->nullctl = nullctl ? binary_opt("--nullctl", nullctl)
			     : default_binary("src/nullctl/nullctl", BENCH_NULLCTL_PATH);
}

/* ---- workspace ---- */

struct workspace {
	char root[PATH_MAX]; /* the mkdtemp directory, resolved */
	char agent_dir[PATH_MAX + 16];
	char manifest[PATH_MAX + 32];
	char script[PATH_MAX + 32];
	char out_dir[PATH_MAX + 16];   /* the agent's write path: the markers */
	char state_dir[PATH_MAX + 16]; /* nulld's, mode 0700 */
	char socket[PATH_MAX + 32];
	char config[PATH_MAX + 16]; /* an empty nulld.toml: no services */
	char nulld_log[PATH_MAX + 16];
	char err_log[PATH_MAX + 16]; /* stderr of bare cages and nullctl */
	char tag[32];		     /* "bPID": every agent name of this run starts with "tag-" */
	char fs_type[32];	     /* of the workspace (the audit log's file system) */
	int null_fd;
	int err_fd;
};

static void
write_text(const char *path, const char *text, mode_t mode)
{
	_cleanup_close_ int fd =
		open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	size_t len = strlen(text);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len)
		die("write %s: %m", path);
	if (fchmod(fd, mode) < 0) /* the umask must not change what the sandbox may read */
		die("chmod %s: %m", path);
}

static void
make_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 || chmod(path, mode) < 0)
		die("mkdir %s: %m", path);
}

static const char *
fs_type_name(const char *path, char *buf, size_t len)
{
	struct statfs sf;
	if (statfs(path, &sf) < 0) {
		snprintf(buf, len, "unknown");
		return buf;
	}
	switch ((unsigned long)sf.f_type) {
	case 0xEF53UL:
		snprintf(buf, len, "ext4");
		break;
	case 0x01021994UL:
		snprintf(buf, len, "tmpfs");
		break;
	case 0x58465342UL:
		snprintf(buf, len, "xfs");
		break;
	case 0x9123683EUL:
		snprintf(buf, len, "btrfs");
		break;
	case 0x794C7630UL:
		snprintf(buf, len, "overlayfs");
		break;
	default:
		snprintf(buf, len, "0x%lx", (unsigned long)sf.f_type);
	}
	return buf;
}

/*
 * Creates the workspace. The agent: a /bin/sh script whose first act is to create
 * OUT/$NULLBOX_AGENT (cage sets NULLBOX_AGENT to the agent's name: nulld's --name, or cage run's),
 * then execs sleep. Its manifest allows a shell (the script needs one) and the one write path.
 * In $TMPDIR or /var/tmp: on disk, not tmpfs, since the audit figures depend on fdatasync.
 */
static void
workspace_create(struct workspace *w)
{
	const char *tmp = getenv("TMPDIR");
	char tmpl[PATH_MAX];
	snprintf(tmpl, sizeof(tmpl), "%s/nullbox-bench-agents-XXXXXX",
		 tmp && *tmp ? tmp : "/var/tmp");
	if (!mkdtemp(tmpl))
		die("mkdtemp %s: %m", tmpl);
	if (!realpath(tmpl, w->root))
		die("realpath %s: %m", tmpl);
	/* The sandbox user must be able to reach the agent dir and the write path. */
	if (chmod(w->root, 0755) < 0)
		die("chmod %s: %m", w->root);
	snprintf(w->agent_dir, sizeof(w->agent_dir), "%s/agent", w->root);
	snprintf(w->manifest, sizeof(w->manifest), "%s/AGENT.toml", w->agent_dir);
	snprintf(w->script, sizeof(w->script), "%s/agent.sh", w->agent_dir);
	snprintf(w->out_dir, sizeof(w->out_dir), "%s/out", w->root);
	snprintf(w->state_dir, sizeof(w->state_dir), "%s/state", w->root);
	snprintf(w->socket, sizeof(w->socket), "%s/nulld.sock", w->state_dir);
	snprintf(w->config, sizeof(w->config), "%s/nulld.toml", w->root);
	snprintf(w->nulld_log, sizeof(w->nulld_log), "%s/nulld.log", w->root);
	snprintf(w->err_log, sizeof(w->err_log), "%s/stderr.log", w->root);
	snprintf(w->tag, sizeof(w->tag), "b%d", (int)getpid());
	fs_type_name(w->root, w->fs_type, sizeof(w->fs_type));

	make_dir(w->agent_dir, 0755);
	make_dir(w->out_dir, 0755);
	if (chown(w->out_dir, SANDBOX_UID, SANDBOX_UID) < 0)
		die("chown %s: %m", w->out_dir);
	make_dir(w->state_dir, 0700);

	char buf[4 * PATH_MAX];
	snprintf(buf, sizeof(buf),
		 "#!/bin/sh\n"
		 "# bench-agents: the agent's first act is the marker, then it idles.\n"
		 "echo \"$NULLBOX_AGENT\" >\"%s/$NULLBOX_AGENT\"\n"
		 "exec sleep 600\n",
		 w->out_dir);
	write_text(w->script, buf, 0755);
	snprintf(buf, sizeof(buf),
		 "# The agent of bench-agents: a shell script that writes a marker and sleeps.\n"
		 "[agent]\n"
		 "name = \"bench-agent\"\n"
		 "version = \"1\"\n"
		 "runtime = \"binary\"\n"
		 "entry = \"agent.sh\"\n"
		 "restart = \"never\"\n"
		 "\n"
		 "[capabilities]\n"
		 "shell = true\n"
		 "max_memory_mb = %d\n"
		 "max_pids = %d\n"
		 "\n"
		 "[capabilities.filesystem]\n"
		 "write = [\"%s\"]\n",
		 AGENT_MEMORY_MB, AGENT_MAX_PIDS, w->out_dir);
	write_text(w->manifest, buf, 0644);
	write_text(w->config, "# bench-agents: no services, nulld and its agents only.\n", 0644);

	w->null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (w->null_fd < 0)
		die("open /dev/null: %m");
	w->err_fd = open(w->err_log, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (w->err_fd < 0)
		die("open %s: %m", w->err_log);
}

static int
remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((type == FTW_DP ? rmdir(path) : unlink(path)) < 0)
		fprintf(stderr, PROG ": warning: remove %s: %m\n", path);
	return 0;
}

/* Removes the workspace and nothing else: no symlink is followed, no mount point crossed. */
static void
workspace_remove(struct workspace *w)
{
	if (w->null_fd >= 0)
		close(w->null_fd);
	if (w->err_fd >= 0)
		close(w->err_fd);
	if (w->root[0])
		nftw(w->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* The last @len - 1 bytes of the file @path (or of @fd when >= 0), trimmed, for a message. */
static const char *
file_tail(const char *path, int fd, char *buf, size_t len)
{
	_cleanup_close_ int own = -1;
	if (fd < 0)
		fd = own = open(path, O_RDONLY | O_CLOEXEC);
	buf[0] = '\0';
	if (fd < 0)
		return "(no log)";
	off_t size = lseek(fd, 0, SEEK_END);
	off_t from = size > (off_t)len - 1 ? size - (off_t)len + 1 : 0;
	ssize_t n = pread(fd, buf, len - 1, from);
	buf[n > 0 ? n : 0] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return buf[0] ? buf : "(empty)";
}

/* ---- spawning ---- */

struct strv {
	char **v;
	size_t n, cap;
};

static void
strv_add(struct strv *s, const char *str)
{
	if (s->n + 2 > s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->v = realloc(s->v, s->cap * sizeof(char *));
		if (!s->v)
			die("out of memory");
	}
	s->v[s->n] = strdup(str);
	if (!s->v[s->n])
		die("out of memory");
	s->v[++s->n] = NULL;
}

static void
strv_clear(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	*s = (struct strv){ 0 };
}

/*
 * Runs @argv (fork + execve) with stdin on /dev/null, stdout on @out_fd and stderr on @err_fd;
 * @pdeathsig, when not 0, is delivered to the child if this process dies. Returns the child's
 * pid (not waited for) or -errno.
 */
static pid_t
start(char *const *argv, int null_fd, int out_fd, int err_fd, int pdeathsig)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* The parent may have died before prctl: then nobody would stop this child. */
		if (pdeathsig &&
		    (prctl(PR_SET_PDEATHSIG, pdeathsig, 0, 0, 0) < 0 || getppid() != parent))
			_exit(124);
		/* The benchmark's own signal handlers must not stay with what it starts. */
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		dup2(null_fd, STDIN_FILENO);
		dup2(out_fd, STDOUT_FILENO);
		dup2(err_fd, STDERR_FILENO);
		execve(argv[0], argv, environ);
		dprintf(STDERR_FILENO, "%s: execve: %m\n", argv[0]);
		_exit(127);
	}
	return pid;
}

/* Waits for @pid, whatever signals arrive meanwhile. Returns its wait status or -errno. */
static int
wait_for(pid_t pid)
{
	int ws;
	while (waitpid(pid, &ws, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return ws;
}

static int
pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/*
 * Waits up to @timeout_ms for @pidfd to poll readable (its process has exited), or for
 * SIGINT/SIGTERM. Returns true when it has exited.
 */
static bool
pidfd_wait_ms(int pidfd, int timeout_ms)
{
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		uint64_t now = now_ns();
		if (now >= end || interrupted)
			return false;
		struct pollfd p = { .fd = pidfd, .events = POLLIN };
		int r = poll(&p, 1, (int)((end - now) / 1000000u) + 1);
		if (r > 0)
			return true;
		if (r < 0 && errno != EINTR)
			return false;
	}
}

/* Waits up to @timeout_ms for our child @pid; *ws gets its status. Returns true when reaped. */
static bool
wait_for_ms(pid_t pid, int timeout_ms, int *ws)
{
	_cleanup_close_ int pidfd = pidfd_open_(pid);
	if (pidfd >= 0 && !pidfd_wait_ms(pidfd, timeout_ms))
		return waitpid(pid, ws, WNOHANG) == pid;
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		pid_t r = waitpid(pid, ws, pidfd >= 0 ? 0 : WNOHANG);
		if (r == pid)
			return true;
		if (r < 0 && errno != EINTR)
			return false;
		if (now_ns() > end)
			return false;
		if (pidfd < 0)
			sleep_ms(1);
	}
}

static void
describe_status(int ws, char *buf, size_t len)
{
	if (WIFEXITED(ws))
		snprintf(buf, len, "exit status %d", WEXITSTATUS(ws));
	else if (WIFSIGNALED(ws))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(ws),
			 strsignal(WTERMSIG(ws)));
	else
		snprintf(buf, len, "wait status 0x%x", ws);
}

/* ---- statistics ---- */

struct stats {
	size_t n;
	double median, p95, mean, min, max; /* ms */
};

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Sorts @ns in place. Median: mean of the middle two for even n; p95: nearest rank. In ms. */
static struct stats
compute_stats(uint64_t *ns, size_t n)
{
	struct stats s = { .n = n };
	if (n == 0)
		return s;
	qsort(ns, n, sizeof(*ns), cmp_u64);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += (double)ns[i];
	s.mean = sum / (double)n / 1e6;
	s.min = (double)ns[0] / 1e6;
	s.max = (double)ns[n - 1] / 1e6;
	s.median =
		n % 2 ? (double)ns[n / 2] / 1e6 : ((double)ns[n / 2 - 1] + (double)ns[n / 2]) / 2e6;
	size_t rank = (size_t)ceil(0.95 * (double)n);
	s.p95 = (double)ns[(rank ? rank : 1) - 1] / 1e6;
	return s;
}

/* ---- markers ---- */

/*
 * inotify on the write path, set up once before anything starts, so no marker can be missed.
 * A queue overflow (more than the kernel's max_queued_events at once) sets @overflow: the caller
 * then looks at the directory itself.
 */
struct markers {
	int fd;
	const char *dir;
	bool overflow;
};

static void
markers_open(struct markers *m, const char *dir)
{
	m->dir = dir;
	m->overflow = false;
	m->fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (m->fd < 0)
		die("inotify_init1: %m");
	if (inotify_add_watch(m->fd, dir, IN_CREATE | IN_MOVED_TO | IN_ONLYDIR) < 0)
		die("inotify_add_watch %s: %m", dir);
}

/*
 * Waits up to @timeout_ms for events and calls @fn(name, @data) for every file created in the
 * directory. Returns the number of names seen (0 on timeout or EINTR).
 */
static int
markers_read(struct markers *m, int timeout_ms, void (*fn)(const char *name, void *data),
	     void *data)
{
	struct pollfd p = { .fd = m->fd, .events = POLLIN };
	if (poll(&p, 1, timeout_ms) <= 0)
		return 0;
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	int seen = 0;
	for (;;) {
		ssize_t n = read(m->fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p2 = buf; p2 < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p2;
			if (ev->mask & IN_Q_OVERFLOW)
				m->overflow = true;
			else if (ev->len > 0) {
				fn(ev->name, data);
				seen++;
			}
			p2 += sizeof(*ev) + ev->len;
		}
	}
	return seen;
}

static bool
marker_exists(const struct markers *m, const char *name)
{
	char path[PATH_MAX + 80];
	snprintf(path, sizeof(path), "%s/%s", m->dir, name);
	return access(path, F_OK) == 0;
}

static void
marker_remove(const struct markers *m, const char *name)
{
	char path[PATH_MAX + 80];
	snprintf(path, sizeof(path), "%s/%s", m->dir, name);
	unlink(path);
}

struct marker_wait {
	const char *name;
	bool found;
};

static void
marker_match(const char *name, void *data)
{
	struct marker_wait *mw = data;
	if (strcmp(name, mw->name) == 0)
		mw->found = true;
}

/* ---- nulld ---- */

struct nulld {
	pid_t pid;
	int log_fd;
	struct nb_ipc_client *c;
	bool exited;
	int exit_status;
};

/* True while nulld runs; reaps it (and records how it ended) when it has exited. */
static bool
nulld_alive(struct nulld *nd)
{
	if (nd->exited)
		return false;
	int ws;
	if (waitpid(nd->pid, &ws, WNOHANG) == nd->pid) {
		nd->exited = true;
		nd->exit_status = ws;
		return false;
	}
	return true;
}

/*
 * Starts nulld on the workspace (no services; NULLBOX_CAGE = the cage under test) and connects
 * to its control socket once it answers `status`. Returns 0, or -1 with @err filled (nulld's log
 * tail) when it does not come up; it is then stopped and reaped.
 */
static int
nulld_start(struct nulld *nd, const struct opts *o, const struct workspace *w, char *err,
	    size_t err_len)
{
	*nd = (struct nulld){ .pid = -1, .log_fd = -1 };
	nd->log_fd = open(w->nulld_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (nd->log_fd < 0)
		die("open %s: %m", w->nulld_log);
	struct strv argv = { 0 };
	strv_add(&argv, o->nulld);
	strv_add(&argv, "--state-dir");
	strv_add(&argv, w->state_dir);
	strv_add(&argv, "--config");
	strv_add(&argv, w->config);
	strv_add(&argv, "--foreground");
	/* If the benchmark dies, nulld gets SIGTERM and shuts its agents down. */
	nd->pid = start(argv.v, w->null_fd, nd->log_fd, nd->log_fd, SIGTERM);
	strv_clear(&argv);
	if (nd->pid < 0)
		die("fork: %s", strerror(-nd->pid));

	uint64_t end = now_ns() + (uint64_t)NULLD_READY_TIMEOUT_MS * 1000000u;
	struct nb_err e = { 0 };
	char tail[800];
	for (;;) {
		if (!nulld_alive(nd)) {
			char st[64];
			describe_status(nd->exit_status, st, sizeof(st));
			snprintf(err, err_len, "nulld exited at start (%s): %s", st,
				 file_tail(w->nulld_log, -1, tail, sizeof(tail)));
			return -1;
		}
		nd->c = nb_ipc_connect(w->socket, 1000, &e);
		if (nd->c) {
			json_t *res = NULL;
			if (nb_ipc_call(nd->c, "status", NULL, RPC_TIMEOUT_MS, &res, &e) == 0) {
				json_decref(res);
				return 0;
			}
			nb_ipc_client_free(nd->c);
			nd->c = NULL;
		}
		if (now_ns() > end || interrupted) {
			snprintf(err, err_len, "nulld did not answer within %d s (%s): %s",
				 NULLD_READY_TIMEOUT_MS / 1000, e.msg,
				 file_tail(w->nulld_log, -1, tail, sizeof(tail)));
			kill(nd->pid, SIGTERM);
			int ws;
			if (!wait_for_ms(nd->pid, 5000, &ws)) {
				kill(nd->pid, SIGKILL);
				wait_for(nd->pid);
			}
			nd->exited = true;
			return -1;
		}
		sleep_ms(20);
	}
}

/* Calls @method with @params (taken) on nulld. Returns 0 or the negative errno, @e set. */
static int
rpc(struct nulld *nd, const char *method, json_t *params, json_t **result, struct nb_err *e)
{
	if (result)
		*result = NULL;
	if (!nd->c)
		return nb_err_set(e, ENOTCONN, "not connected to nulld");
	int r = nb_ipc_call(nd->c, method, params, RPC_TIMEOUT_MS, result, e);
	json_decref(params);
	return r;
}

static int
rpc_agent_start(struct nulld *nd, const struct workspace *w, const char *name, struct nb_err *e)
{
	return rpc(nd, "agent.start",
		   json_pack("{s:s, s:s}", "manifest", w->manifest, "name", name), NULL, e);
}

/*
 * agent.status NAME: 1 and *state / *pid when nulld knows the agent, 0 when it answers "no agent
 * named NAME", a negative errno for anything else.
 */
static int
rpc_agent_status(struct nulld *nd, const char *name, char *state, size_t state_len, pid_t *pid,
		 struct nb_err *e)
{
	json_t *res = NULL;
	int r = rpc(nd, "agent.status", json_pack("{s:s}", "name", name), &res, e);
	if (r < 0) {
		const struct nb_ipc_error *le = nd->c ? nb_ipc_client_last_error(nd->c) : NULL;
		return le && le->code == CTL_ERR_NOT_FOUND ? 0 : r;
	}
	const char *st = "?";
	int p = 0;
	json_unpack(res, "{s?s, s?i}", "state", &st, "pid", &p);
	if (state)
		snprintf(state, state_len, "%s", st);
	if (pid)
		*pid = p;
	json_decref(res);
	return 1;
}

/*
 * agent.stop NAME, then waits until its cage has exited (a pidfd on the pid nulld reported) and
 * nulld no longer knows the agent (it reaped the cage and dropped the unit).
 */
static int
rpc_agent_stop_wait(struct nulld *nd, const char *name, struct nb_err *e)
{
	pid_t pid = 0;
	int r = rpc_agent_status(nd, name, NULL, 0, &pid, e);
	if (r <= 0)
		return r;
	_cleanup_close_ int pidfd = pid > 0 ? pidfd_open_(pid) : -1;
	r = rpc(nd, "agent.stop", json_pack("{s:s}", "name", name), NULL, e);
	if (r < 0)
		return r;
	if (pidfd >= 0)
		pidfd_wait_ms(pidfd, STOP_TIMEOUT_MS);
	uint64_t end = now_ns() + (uint64_t)STOP_TIMEOUT_MS * 1000000u;
	for (;;) {
		r = rpc_agent_status(nd, name, NULL, 0, NULL, e);
		if (r <= 0)
			return r;
		if (now_ns() > end)
			return nb_err_set(e, ETIMEDOUT,
					  "agent %s still known to nulld %d s after stop", name,
					  STOP_TIMEOUT_MS / 1000);
		sleep_ms(1);
	}
}

/* ---- processes ---- */

struct proc {
	pid_t pid, ppid;
	char comm[32];
	int owner; /* index of the root whose tree it is in, or -1 */
};

struct proc_table {
	struct proc *p;
	size_t n, cap;
};

/* A snapshot of every process: pid, ppid, comm from /proc/PID/stat. Vanished ones are skipped. */
static void
proc_scan(struct proc_table *t)
{
	t->n = 0;
	_cleanup_(closedirp) DIR *d = opendir("/proc");
	if (!d)
		die("opendir /proc: %m");
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		char path[64], buf[512];
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		/* "PID (COMM) STATE PPID ...": COMM may hold ')' itself, so use the last one. */
		char *open_paren = strchr(buf, '('), *close_paren = strrchr(buf, ')');
		if (!open_paren || !close_paren || close_paren < open_paren)
			continue;
		char state;
		int ppid;
		if (sscanf(close_paren + 1, " %c %d", &state, &ppid) != 2)
			continue;
		if (t->n == t->cap) {
			t->cap = t->cap ? t->cap * 2 : 1024;
			t->p = realloc(t->p, t->cap * sizeof(*t->p));
			if (!t->p)
				die("out of memory");
		}
		struct proc *p = &t->p[t->n++];
		*p = (struct proc){ .pid = (pid_t)pid, .ppid = ppid, .owner = -1 };
		size_t len = (size_t)(close_paren - open_paren - 1);
		if (len >= sizeof(p->comm))
			len = sizeof(p->comm) - 1;
		memcpy(p->comm, open_paren + 1, len);
		p->comm[len] = '\0';
	}
}

static struct proc *
proc_find(struct proc_table *t, pid_t pid)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->p[i].pid == pid)
			return &t->p[i];
	return NULL;
}

/* Sets ->owner of every process that is @roots[i] or descends from it (via ppid) to i. */
static void
proc_assign(struct proc_table *t, const pid_t *roots, size_t n_roots)
{
	for (size_t i = 0; i < t->n; i++) {
		struct proc *p = &t->p[i];
		for (int hops = 0; p && hops < 64 && t->p[i].owner < 0; hops++) {
			for (size_t r = 0; r < n_roots; r++) {
				if (roots[r] > 0 && p->pid == roots[r]) {
					t->p[i].owner = (int)r;
					break;
				}
			}
			if (p->ppid <= 1)
				break;
			p = proc_find(t, p->ppid);
		}
	}
}

/* A "Key:   N kB" line of a /proc file, in KiB; -1 when absent or unreadable. */
static long long
read_kib(const char *path, const char *key)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char line[256];
	size_t klen = strlen(key);
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':')
			return strtoll(line + klen + 1, NULL, 10);
	}
	return -1;
}

static long long
proc_kib(pid_t pid, const char *file, const char *key)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	return read_kib(path, key);
}

static int
count_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	_cleanup_(closedirp) DIR *d = opendir(path);
	int n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		n += de->d_name[0] != '.';
	return d ? n : -1;
}

/* The /proc/meminfo fields reported: where an agent's memory goes. MemAvailable first. */
static const char *const meminfo_keys[] = {
	"MemAvailable", "SUnreclaim", "SReclaimable", "KernelStack",
	"PageTables",	"Percpu",     "Shmem",
};
#define N_MEMINFO NB_ARRAY_SIZE(meminfo_keys)

static int
cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

/* The meminfo_keys fields in KiB, each the median of five samples 50 ms apart. */
static void
meminfo_sample(long long out[N_MEMINFO])
{
	long long v[N_MEMINFO][5];
	for (int i = 0; i < 5; i++) {
		for (size_t k = 0; k < N_MEMINFO; k++) {
			long long x = read_kib("/proc/meminfo", meminfo_keys[k]);
			v[k][i] = x < 0 ? 0 : x;
		}
		if (i < 4)
			sleep_ms(50);
	}
	for (size_t k = 0; k < N_MEMINFO; k++) {
		qsort(v[k], 5, sizeof(long long), cmp_ll);
		out[k] = v[k][2];
	}
}

/* True when @pid lives in a pid namespace below ours (NSpid lists more than one id). */
static bool
in_child_pidns(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "NSpid:", 6) == 0) {
			int a, b;
			return sscanf(line + 6, "%d %d", &a, &b) == 2;
		}
	}
	return false;
}

/* Processes (other than this one) whose command line mentions @root: what this run started. */
static size_t
procs_of_run(const char *root, pid_t *out, size_t max)
{
	size_t n = 0;
	_cleanup_(closedirp) DIR *d = opendir("/proc");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0 || pid == getpid())
			continue;
		char path[64], buf[8192];
		snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
		_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t len = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (len <= 0)
			continue;
		for (ssize_t i = 0; i < len; i++)
			if (buf[i] == '\0')
				buf[i] = ' ';
		buf[len] = '\0';
		if (strstr(buf, root)) {
			if (n < max)
				out[n] = (pid_t)pid;
			n++;
		}
	}
	return n;
}

/* ---- cgroups ---- */

struct cgroup_scan {
	char ours_prefix[64]; /* "nullbox-bPID-" */
	struct strv ours, others;
};

static void
cgroup_walk(const char *dir, int depth, struct cgroup_scan *cs)
{
	_cleanup_(closedirp) DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		char path[PATH_MAX];
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path))
			continue;
		if (strncmp(de->d_name, "nullbox-", 8) == 0) {
			strv_add(strncmp(de->d_name, cs->ours_prefix, strlen(cs->ours_prefix)) == 0
					 ? &cs->ours
					 : &cs->others,
				 path);
			continue;
		}
		if (depth > 1)
			cgroup_walk(path, depth - 1, cs);
	}
}

/*
 * Lists nullbox-* directories under /sys/fs/cgroup, split into this run's (cage names them
 * nullbox-NAME-PID and every agent name of this run starts with "bPID-") and anyone else's;
 * until none of this run's is left or @timeout_ms passed.
 */
static void
cgroup_scan_settled(struct cgroup_scan *cs, const struct workspace *w, unsigned timeout_ms)
{
	snprintf(cs->ours_prefix, sizeof(cs->ours_prefix), "nullbox-%s-", w->tag);
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		strv_clear(&cs->ours);
		strv_clear(&cs->others);
		cgroup_walk("/sys/fs/cgroup", CGROUP_SCAN_DEPTH, cs);
		if (cs->ours.n == 0 || now_ns() > end || interrupted)
			return;
		sleep_ms(100);
	}
}

/* ---- starts ---- */

enum kind { KIND_RPC, KIND_NULLCTL, KIND_CAGE, N_KINDS };

static const char *const kind_name[N_KINDS] = { "nulld agent.start", "nullctl agent start",
						"bare cage run" };
static const char *const kind_key[N_KINDS] = { "nulld_rpc", "nullctl", "cage" };
static const char kind_letter[N_KINDS] = { 'r', 'c', 'x' };

struct start_result {
	bool have[N_KINDS];
	struct stats start[N_KINDS]; /* start -> marker */
	struct stats stop[N_KINDS];  /* stop -> gone */
	struct stats reply;	     /* agent.start request -> reply (KIND_RPC) */
	char error[1024];
};

/*
 * Waits until the marker @name appears; meanwhile checks that nulld lives and, when @child > 0,
 * what @child did (a bare cage must not end; nullctl must end with status 0: *child_done).
 * Returns the time the marker was seen, or 0 with @err filled.
 */
static uint64_t
wait_marker(struct markers *m, struct nulld *nd, const char *name, pid_t child, bool child_may_exit,
	    bool *child_done, const struct workspace *w, char *err, size_t err_len)
{
	struct marker_wait mw = { .name = name };
	uint64_t end = now_ns() + (uint64_t)START_TIMEOUT_MS * 1000000u;
	for (;;) {
		markers_read(m, 20, marker_match, &mw);
		if (!mw.found && m->overflow && marker_exists(m, name))
			mw.found = true;
		if (mw.found)
			return now_ns();
		if (interrupted) {
			snprintf(err, err_len, "interrupted");
			return 0;
		}
		if (!nulld_alive(nd)) {
			char st[64], tail[600];
			describe_status(nd->exit_status, st, sizeof(st));
			snprintf(err, err_len, "nulld ended (%s): %s", st,
				 file_tail(w->nulld_log, -1, tail, sizeof(tail)));
			return 0;
		}
		int ws;
		if (child > 0 && !*child_done && waitpid(child, &ws, WNOHANG) == child) {
			*child_done = true;
			if (!child_may_exit || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
				char st[64], tail[600];
				describe_status(ws, st, sizeof(st));
				snprintf(err, err_len, "%s ended (%s) before the agent ran: %s",
					 child_may_exit ? "nullctl" : "cage", st,
					 file_tail(NULL, w->err_fd, tail, sizeof(tail)));
				return 0;
			}
		}
		if (now_ns() > end) {
			char state[32] = "not a nulld agent", tail[600];
			if (child <= 0 || child_may_exit)
				rpc_agent_status(nd, name, state, sizeof(state), NULL,
						 &(struct nb_err){ 0 });
			snprintf(err, err_len, "agent %s did not run within %d s (state: %s): %s",
				 name, START_TIMEOUT_MS / 1000, state,
				 file_tail(w->nulld_log, -1, tail, sizeof(tail)));
			return 0;
		}
	}
}

/*
 * One start of kind @k named @name, and its stop. *start_ns: from the request (RPC sent, nullctl
 * or cage forked) to the marker; *stop_ns: from the stop (agent.stop sent, SIGTERM to the cage)
 * until the agent is gone (nulld no longer knows it; the cage reaped); *reply_ns: agent.start
 * round trip (KIND_RPC only). Returns 0, or -1 with @err filled.
 */
static int
one_start(enum kind k, const char *name, const struct opts *o, const struct workspace *w,
	  struct markers *m, struct nulld *nd, uint64_t *start_ns, uint64_t *stop_ns,
	  uint64_t *reply_ns, char *err, size_t err_len)
{
	struct nb_err e = { 0 };
	pid_t child = -1;
	bool child_done = false;
	struct strv argv = { 0 };
	if (k == KIND_NULLCTL) {
		strv_add(&argv, o->nullctl);
		strv_add(&argv, "--state-dir");
		strv_add(&argv, w->state_dir);
		strv_add(&argv, "agent");
		strv_add(&argv, "start");
		strv_add(&argv, w->manifest);
		strv_add(&argv, "--name");
		strv_add(&argv, name);
	} else if (k == KIND_CAGE) {
		strv_add(&argv, o->cage);
		strv_add(&argv, "run");
		strv_add(&argv, "--name");
		strv_add(&argv, name);
		strv_add(&argv, "--manifest");
		strv_add(&argv, w->manifest);
		strv_add(&argv, "--");
		strv_add(&argv, "/agent/agent.sh");
	}
	if (ftruncate(w->err_fd, 0) < 0)
		die("truncate %s: %m", w->err_log);

	uint64_t t0 = now_ns();
	if (k == KIND_RPC) {
		if (rpc_agent_start(nd, w, name, &e) < 0) {
			snprintf(err, err_len, "agent.start %s: %s", name, e.msg);
			return -1;
		}
		*reply_ns = now_ns() - t0;
	} else {
		child = start(argv.v, w->null_fd, w->null_fd, w->err_fd,
			      k == KIND_CAGE ? SIGTERM : 0);
		strv_clear(&argv);
		if (child < 0)
			die("fork: %s", strerror(-child));
	}
	uint64_t t1 =
		wait_marker(m, nd, name, child, k == KIND_NULLCTL, &child_done, w, err, err_len);
	int r = 0;
	if (t1)
		*start_ns = t1 - t0;
	else
		r = -1;

	/* Stop it, timed, whatever happened above. */
	uint64_t s0 = now_ns();
	if (k == KIND_CAGE) {
		if (!child_done) {
			kill(child, SIGTERM);
			int ws;
			if (!wait_for_ms(child, STOP_TIMEOUT_MS, &ws)) {
				kill(child, SIGKILL);
				wait_for(child);
				if (r == 0)
					snprintf(err, err_len, "cage %d did not stop within %d s",
						 (int)child, STOP_TIMEOUT_MS / 1000);
				r = -1;
			}
		}
	} else {
		if (child > 0 && !child_done) {
			/* nullctl returns right after nulld's reply. */
			int ws;
			if (!wait_for_ms(child, RPC_TIMEOUT_MS, &ws)) {
				kill(child, SIGKILL);
				ws = wait_for(child);
			}
			if ((!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) && r == 0) {
				char st[64], tail[600];
				describe_status(ws, st, sizeof(st));
				snprintf(err, err_len, "nullctl agent start %s: %s: %s", name, st,
					 file_tail(NULL, w->err_fd, tail, sizeof(tail)));
				r = -1;
			}
		}
		if (rpc_agent_stop_wait(nd, name, &e) < 0 && r == 0) {
			snprintf(err, err_len, "stopping %s: %s", name, e.msg);
			r = -1;
		}
	}
	*stop_ns = now_ns() - s0;
	marker_remove(m, name);
	return r;
}

static void
measure_starts(const struct opts *o, const struct workspace *w, struct markers *m, struct nulld *nd,
	       struct start_result *res)
{
	uint64_t *start_ns[N_KINDS], *stop_ns[N_KINDS], *reply_ns;
	size_t got[N_KINDS] = { 0 };
	bool active[N_KINDS] = { true, o->nullctl != NULL, true };
	for (int k = 0; k < N_KINDS; k++) {
		start_ns[k] = xcalloc((size_t)o->n, sizeof(uint64_t));
		stop_ns[k] = xcalloc((size_t)o->n, sizeof(uint64_t));
	}
	reply_ns = xcalloc((size_t)o->n, sizeof(uint64_t));

	fprintf(stderr, PROG ": %d warm-up + %d measured starts per kind...\n", o->warmup, o->n);
	for (int round = 0; round < o->warmup + o->n && !interrupted && !res->error[0]; round++) {
		for (int j = 0; j < N_KINDS && !interrupted && !res->error[0]; j++) {
			int k = (round + j) % N_KINDS;
			if (!active[k])
				continue;
			if (o->gap_ms)
				sleep_ms((unsigned)o->gap_ms);
			char name[64];
			snprintf(name, sizeof(name), "%s-%c%d", w->tag, kind_letter[k], round);
			uint64_t t_start = 0, t_stop = 0, t_reply = 0;
			if (one_start((enum kind)k, name, o, w, m, nd, &t_start, &t_stop, &t_reply,
				      res->error, sizeof(res->error)) < 0) {
				if (interrupted)
					res->error[0] = '\0';
				break;
			}
			if (round < o->warmup)
				continue;
			start_ns[k][got[k]] = t_start;
			stop_ns[k][got[k]] = t_stop;
			if (k == KIND_RPC)
				reply_ns[got[k]] = t_reply;
			got[k]++;
		}
	}
	for (int k = 0; k < N_KINDS; k++) {
		res->have[k] = active[k] && got[k] > 0;
		res->start[k] = compute_stats(start_ns[k], got[k]);
		res->stop[k] = compute_stats(stop_ns[k], got[k]);
		free(start_ns[k]);
		free(stop_ns[k]);
	}
	res->reply = compute_stats(reply_ns, got[KIND_RPC]);
	free(reply_ns);
}

/* ---- many ---- */

struct many_result {
	bool ran;
	int requested;
	int sent;	  /* agent.start calls nulld accepted */
	int started;	  /* markers seen */
	int alive;	  /* "up" in nulld with a live `sleep` in the cage's tree, all at once */
	double sent_ms;	  /* the N agent.start calls, back to back */
	double all_up_ms; /* first request -> last marker */
	long long nulld_rss_fresh, nulld_rss_idle, nulld_rss_many, nulld_pss_many; /* KiB */
	int nulld_fds_idle, nulld_fds_many;
	size_t n_procs;
	long long pss_kib, pss_host_kib, pss_inside_kib;
	long long mem_delta_kib[N_MEMINFO]; /* after - before */
	double shutdown_ms;
	bool nulld_exited;
	int nulld_status;
	char error[1024];
};

struct many_wait {
	const char *prefix; /* "bPID-m" */
	bool *seen;
	int n, count;
	uint64_t t0, last;
};

static void
many_match(const char *name, void *data)
{
	struct many_wait *mw = data;
	size_t pl = strlen(mw->prefix);
	if (strncmp(name, mw->prefix, pl) != 0)
		return;
	char *end;
	long i = strtol(name + pl, &end, 10);
	if (*end || i < 0 || i >= mw->n || mw->seen[i])
		return;
	mw->seen[i] = true;
	mw->count++;
	mw->last = now_ns();
}

/*
 * Starts @o->many agents under nulld, back to back over its control socket, waits until every one
 * has run (its marker), checks they are all alive at once, then measures nulld's RSS and the
 * memory of each agent's cage process tree (Pss) and of the kernel (meminfo).
 */
static void
measure_many(const struct opts *o, const struct workspace *w, struct markers *m, struct nulld *nd,
	     struct many_result *r)
{
	int n = o->many;
	struct many_wait mw = { .n = n };
	char prefix[48];
	snprintf(prefix, sizeof(prefix), "%s-m", w->tag);
	mw.prefix = prefix;
	mw.seen = xcalloc((size_t)n, sizeof(bool));
	pid_t *pids = xcalloc((size_t)n, sizeof(pid_t));
	struct proc_table t = { 0 };
	struct nb_err e = { 0 };
	r->ran = true;
	r->requested = n;

	r->nulld_rss_idle = proc_kib(nd->pid, "status", "VmRSS");
	r->nulld_fds_idle = count_fds(nd->pid);
	long long mem0[N_MEMINFO], mem1[N_MEMINFO];
	meminfo_sample(mem0);

	fprintf(stderr, PROG ": %d agents at once under one nulld...\n", n);
	mw.t0 = now_ns();
	int sent = 0;
	for (; sent < n && !interrupted; sent++) {
		char name[64];
		snprintf(name, sizeof(name), "%s%d", prefix, sent);
		if (rpc_agent_start(nd, w, name, &e) < 0) {
			snprintf(r->error, sizeof(r->error), "agent.start %s: %s", name, e.msg);
			break;
		}
		/* Drain the markers as they come, so the queue never overflows. */
		markers_read(m, 0, many_match, &mw);
	}
	r->sent_ms = ms_since(mw.t0);
	r->sent = sent;
	uint64_t end = mw.t0 + (uint64_t)MANY_START_TIMEOUT_MS * 1000000u;
	while (!r->error[0] && !interrupted && mw.count < sent) {
		markers_read(m, 50, many_match, &mw);
		if (m->overflow) {
			for (int i = 0; i < sent; i++) {
				char name[64];
				snprintf(name, sizeof(name), "%s%d", prefix, i);
				if (!mw.seen[i] && marker_exists(m, name)) {
					mw.seen[i] = true;
					mw.count++;
					mw.last = now_ns();
				}
			}
			m->overflow = false;
		}
		if (!nulld_alive(nd)) {
			snprintf(r->error, sizeof(r->error), "nulld ended with %d agents running",
				 mw.count);
			break;
		}
		if (now_ns() > end) {
			snprintf(r->error, sizeof(r->error),
				 "only %d of %d agents had run after %d s", mw.count, n,
				 MANY_START_TIMEOUT_MS / 1000);
			break;
		}
	}
	r->started = mw.count;
	if (mw.count == n) {
		r->all_up_ms = (double)(mw.last - mw.t0) / 1e6;
		/* Let memory freed lazily after the start-up (short-lived helpers) settle. */
		sleep_ms(1000);
		for (int i = 0; i < n; i++) {
			char name[64], state[32] = "";
			snprintf(name, sizeof(name), "%s%d", prefix, i);
			if (rpc_agent_status(nd, name, state, sizeof(state), &pids[i], &e) <= 0 ||
			    strcmp(state, "up") != 0)
				pids[i] = 0;
		}
		proc_scan(&t);
		proc_assign(&t, pids, (size_t)n);
		bool *has_sleep = xcalloc((size_t)n, sizeof(bool));
		for (size_t i = 0; i < t.n; i++) {
			int ow = t.p[i].owner;
			if (ow < 0)
				continue;
			if (strcmp(t.p[i].comm, "sleep") == 0)
				has_sleep[ow] = true;
			long long pss = proc_kib(t.p[i].pid, "smaps_rollup", "Pss");
			if (pss < 0)
				continue;
			r->n_procs++;
			r->pss_kib += pss;
			if (in_child_pidns(t.p[i].pid))
				r->pss_inside_kib += pss;
			else
				r->pss_host_kib += pss;
		}
		for (int i = 0; i < n; i++)
			r->alive += pids[i] > 0 && has_sleep[i];
		free(has_sleep);
		meminfo_sample(mem1);
		for (size_t k = 0; k < N_MEMINFO; k++)
			r->mem_delta_kib[k] = mem1[k] - mem0[k];
		r->nulld_rss_many = proc_kib(nd->pid, "status", "VmRSS");
		r->nulld_pss_many = proc_kib(nd->pid, "smaps_rollup", "Pss");
		r->nulld_fds_many = count_fds(nd->pid);
		if (r->alive < n && !r->error[0])
			snprintf(r->error, sizeof(r->error),
				 "only %d of %d agents were alive at once", r->alive, n);
	}
	free(t.p);
	free(pids);
	free(mw.seen);
}

/* `shutdown`, then the time until nulld has exited (SIGKILL after SHUTDOWN_TIMEOUT_MS). */
static void
nulld_shutdown(struct nulld *nd, struct many_result *r)
{
	struct nb_err e = { 0 };
	uint64_t t0 = now_ns();
	if (rpc(nd, "shutdown", NULL, NULL, &e) < 0 && nulld_alive(nd))
		kill(nd->pid, SIGTERM);
	nb_ipc_client_free(nd->c);
	nd->c = NULL;
	int ws = 0;
	if (nd->exited)
		ws = nd->exit_status;
	else if (!wait_for_ms(nd->pid, SHUTDOWN_TIMEOUT_MS, &ws)) {
		fprintf(stderr, PROG ": nulld did not exit within %d s of shutdown: SIGKILL\n",
			SHUTDOWN_TIMEOUT_MS / 1000);
		kill(nd->pid, SIGKILL);
		ws = wait_for(nd->pid);
	}
	r->shutdown_ms = ms_since(t0);
	nd->exited = true;
	nd->exit_status = ws;
	r->nulld_exited = true;
	r->nulld_status = ws;
}

/* ---- audit ---- */

enum { AUDIT_EVERY, AUDIT_BATCH, N_AUDIT };
static const char *const audit_name[N_AUDIT] = { "SYNC_EVERY", "SYNC_BATCH" };
static const char *const audit_key[N_AUDIT] = { "sync_every", "sync_batch" };

struct audit_result {
	bool ran;
	uint64_t records;
	double secs;	    /* appends and the final close (flush) */
	double close_ms;    /* nb_audit_close(): the last flush */
	double bytes_per;   /* average line size */
	struct stats lat;   /* per append, ms */
	double verify_secs; /* nb_audit_verify() of the whole log with the key */
	bool verified;
	char error[600];
};

/*
 * Appends records like nulld's agent.start ones to a fresh log for @ms milliseconds, one writer,
 * sync mode @mode (SYNC_BATCH: the default 100 ms), then closes (flushes) and verifies the log.
 */
static void
measure_audit(const struct workspace *w, int mode, int ms, struct audit_result *r)
{
	char dir[PATH_MAX + 32], keypath[PATH_MAX + 48], object[64], reason[PATH_MAX + 64];
	snprintf(dir, sizeof(dir), "%s/audit-%s", w->root, mode == AUDIT_EVERY ? "every" : "batch");
	snprintf(keypath, sizeof(keypath), "%s/" NB_AUDIT_KEY_NAME, dir);
	make_dir(dir, 0700);
	struct nb_err e = { 0 };
	uint8_t key[NB_AUDIT_KEY_LEN];
	struct nb_audit *log = NULL;
	struct nb_audit_opts ao = { .sync = mode == AUDIT_EVERY ? NB_AUDIT_SYNC_EVERY
								: NB_AUDIT_SYNC_BATCH };
	*r = (struct audit_result){ .ran = true };
	if (nb_audit_key_load(keypath, NB_AUDIT_KEY_CREATE, key, &e) < 0 ||
	    nb_audit_open(dir, key, &ao, &log, &e) < 0) {
		snprintf(r->error, sizeof(r->error), "%s", e.msg);
		explicit_bzero(key, sizeof(key));
		return;
	}
	size_t cap = 4096;
	uint64_t *lat = xcalloc(cap, sizeof(uint64_t));
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)ms * 1000000u;
	for (uint64_t i = 0; !interrupted; i++) {
		uint64_t a = now_ns();
		if (a >= end && i >= 10)
			break;
		snprintf(object, sizeof(object), "%s-a%llu", w->tag, (unsigned long long)i);
		snprintf(reason, sizeof(reason), "cage pid %d, manifest %s",
			 100000 + (int)(i % 100000), w->manifest);
		if (nb_audit_append(log, "nulld", "agent.start", object, NB_AUDIT_ALLOWED, reason,
				    NULL, NULL, &e) < 0) {
			snprintf(r->error, sizeof(r->error), "append %llu: %s",
				 (unsigned long long)i + 1, e.msg);
			break;
		}
		if (r->records == cap) {
			cap *= 2;
			lat = realloc(lat, cap * sizeof(uint64_t));
			if (!lat)
				die("out of memory");
		}
		lat[r->records++] = now_ns() - a;
	}
	uint64_t c0 = now_ns();
	if (nb_audit_close(log, &e) < 0 && !r->error[0])
		snprintf(r->error, sizeof(r->error), "close: %s", e.msg);
	r->close_ms = ms_since(c0);
	r->secs = (double)(now_ns() - t0) / 1e9;
	r->lat = compute_stats(lat, r->records);
	free(lat);

	char logpath[PATH_MAX + 64];
	snprintf(logpath, sizeof(logpath), "%s/" NB_AUDIT_LOG_NAME, dir);
	struct stat st;
	if (stat(logpath, &st) == 0 && r->records)
		r->bytes_per = (double)st.st_size / (double)r->records;
	struct nb_audit_report rep;
	uint64_t v0 = now_ns();
	int vr = nb_audit_verify(dir, key, 0, &rep, &e);
	r->verify_secs = (double)(now_ns() - v0) / 1e9;
	r->verified = vr == 0 && rep.records == r->records;
	if (!r->verified && !r->error[0])
		snprintf(r->error, sizeof(r->error), "verify: %s (%llu records of %llu)",
			 vr < 0 ? e.msg : "record count differs", (unsigned long long)rep.records,
			 (unsigned long long)r->records);
	explicit_bzero(key, sizeof(key));
}

/* ---- output ---- */

struct report {
	char date[64], kernel[256], load_start[64], load_end[64];
	long cpus;
	long long mem_total_kib;
	unsigned long long nofile;
	int n, warmup, gap_ms;
	struct start_result st;
	struct many_result many;
	struct audit_result audit[N_AUDIT];
	int audit_ms;
	struct cgroup_scan cg;
	size_t procs_left;
};

static double
ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

static void
read_loadavg(char *buf, size_t len)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/loadavg", "re");
	double a = 0, b = 0, c = 0;
	if (f && fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
		snprintf(buf, len, "%.2f %.2f %.2f", a, b, c);
	else
		snprintf(buf, len, "unknown");
}

/* Pss plus the kernel's growth (every meminfo_keys field but MemAvailable), per agent, in KiB. */
static double
many_total_per_agent(const struct many_result *r)
{
	double kib = (double)r->pss_kib;
	for (size_t k = 1; k < N_MEMINFO; k++)
		kib += (double)r->mem_delta_kib[k];
	return r->started ? kib / r->started : 0;
}

static void
print_stats_row(const char *name, const struct stats *s)
{
	printf("  %-34s %9.2f %9.2f %9.2f %9.2f %9.2f\n", name, s->median, s->p95, s->mean, s->min,
	       s->max);
}

static void
print_text(const struct opts *o, const struct workspace *w, const struct report *rp)
{
	printf("bench-agents: %s, Linux %s, %ld CPUs, %.1f GiB RAM\n", rp->date, rp->kernel,
	       rp->cpus, (double)rp->mem_total_kib / 1048576.0);
	printf("  load average: %s at the start, %s at the end\n", rp->load_start, rp->load_end);
	printf("  nulld:   %s (no services; RLIMIT_NOFILE %llu)\n", o->nulld, rp->nofile);
	printf("  nullctl: %s\n", o->nullctl ? o->nullctl : "not found: skipped");
	printf("  cage:    %s\n", o->cage);
	printf("  agent:   /bin/sh script: creates a file in its write path, then exec sleep 600\n"
	       "           (manifest: shell, 1 write path, %d MiB, %d pids); workspace on %s\n",
	       AGENT_MEMORY_MB, AGENT_MAX_PIDS, w->fs_type);

	const struct start_result *s = &rp->st;
	printf("\n%d starts per kind after %d warm-up, interleaved round-robin, %d ms between\n",
	       rp->n, rp->warmup, rp->gap_ms);
	printf("%-36s %9s %9s %9s %9s %9s\n", "start -> agent runs (ms)", "median", "p95", "mean",
	       "min", "max");
	for (int k = 0; k < N_KINDS; k++)
		if (s->have[k])
			print_stats_row(kind_name[k], &s->start[k]);
	if (s->have[KIND_RPC])
		print_stats_row("  (agent.start reply alone)", &s->reply);
	printf("\n%-36s %9s %9s\n", "ratio", "median", "p95");
	for (int k = 0; k < KIND_CAGE; k++) {
		if (!s->have[k] || !s->have[KIND_CAGE])
			continue;
		char label[64];
		snprintf(label, sizeof(label), "%s / cage run", kind_name[k]);
		printf("  %-34s %9.2f %9.2f\n", label,
		       ratio(s->start[k].median, s->start[KIND_CAGE].median),
		       ratio(s->start[k].p95, s->start[KIND_CAGE].p95));
	}
	printf("\n%-36s %9s %9s %9s %9s %9s\n", "stop -> gone (ms)", "median", "p95", "mean", "min",
	       "max");
	for (int k = 0; k < N_KINDS; k++)
		if (s->have[k])
			print_stats_row(k == KIND_CAGE	? "cage run: SIGTERM -> reaped"
					: k == KIND_RPC ? "nulld agent.stop -> unknown"
							: "(after nullctl) agent.stop",
					&s->stop[k]);
	if (s->error[0])
		printf("  error: %s\n", s->error);

	const struct many_result *r = &rp->many;
	if (r->ran) {
		int c = r->started ? r->started : 1;
		printf("\nmany agents: %d requested under one nulld (agent.start back to back)\n",
		       r->requested);
		if (r->error[0])
			printf("  error: %s\n", r->error);
		printf("  %d agent.start calls accepted in %.0f ms\n", r->sent, r->sent_ms);
		if (r->started == r->requested) {
			printf("  all %d running %.0f ms after the first request (%.1f ms per agent); "
			       "%d alive at once (state up, sleep running)\n",
			       r->started, r->all_up_ms, r->all_up_ms / c, r->alive);
			printf("  nulld VmRSS: %lld KiB fresh, %lld KiB after the starts above, %lld "
			       "KiB with %d agents (%.1f KiB per agent); Pss %lld KiB; fds %d -> %d\n",
			       r->nulld_rss_fresh, r->nulld_rss_idle, r->nulld_rss_many, r->started,
			       (double)(r->nulld_rss_many - r->nulld_rss_idle) / c,
			       r->nulld_pss_many, r->nulld_fds_idle, r->nulld_fds_many);
			printf("  processes: %zu (%.1f per agent: cage, its cgroup guard, sandbox "
			       "init, agent)\n",
			       r->n_procs, (double)r->n_procs / c);
			printf("  Pss per agent: %.0f KiB (host side: %.0f KiB, inside the sandbox: "
			       "%.0f KiB)\n",
			       (double)r->pss_kib / c, (double)r->pss_host_kib / c,
			       (double)r->pss_inside_kib / c);
			printf("  MemAvailable drop per agent: %.0f KiB\n",
			       -(double)r->mem_delta_kib[0] / c);
			printf("  kernel growth per agent (meminfo, KiB):");
			for (size_t k = 1; k < N_MEMINFO; k++)
				printf(" %s %.0f%s", meminfo_keys[k],
				       (double)r->mem_delta_kib[k] / c,
				       k + 1 < N_MEMINFO ? "," : "\n");
			printf("  Pss + kernel growth per agent: %.0f KiB\n",
			       many_total_per_agent(r));
		}
	}
	if (r->nulld_exited) {
		char st[64];
		describe_status(r->nulld_status, st, sizeof(st));
		printf("  shutdown: nulld exited %.0f ms after `shutdown` (%s)\n", r->shutdown_ms,
		       st);
	}
	printf("  left after the run: %zu nullbox cgroups of this run", rp->cg.ours.n);
	for (size_t i = 0; i < rp->cg.ours.n; i++)
		printf("%s%s", i ? ", " : ": ", rp->cg.ours.v[i]);
	printf(", %zu processes of this run; %zu other nullbox-* cgroups (not this run's)\n",
	       rp->procs_left, rp->cg.others.n);

	if (rp->audit[0].ran || rp->audit[1].ran) {
		printf("\naudit appends (lib/audit, one writer, %d ms per mode, log on %s)\n",
		       rp->audit_ms, w->fs_type);
		printf("  %-14s %10s %9s %9s %9s %9s %9s %10s\n", "mode", "appends/s", "records",
		       "mean µs", "p50 µs", "p95 µs", "max µs", "verify/s");
		for (int i = 0; i < N_AUDIT; i++) {
			const struct audit_result *a = &rp->audit[i];
			if (!a->ran)
				continue;
			printf("  %-14s %10.0f %9llu %9.1f %9.1f %9.1f %9.0f %10.0f\n",
			       audit_name[i], a->secs > 0 ? (double)a->records / a->secs : 0,
			       (unsigned long long)a->records, a->lat.mean * 1e3,
			       a->lat.median * 1e3, a->lat.p95 * 1e3, a->lat.max * 1e3,
			       a->verify_secs > 0 ? (double)a->records / a->verify_secs : 0);
			if (a->error[0])
				printf("    error: %s\n", a->error);
		}
		printf("  (SYNC_EVERY: fdatasync and a re-signed head per record, what nulld uses; "
		       "SYNC_BATCH: every 100 ms; ~%.0f bytes per record; the final flush took "
		       "%.1f ms)\n",
		       rp->audit[AUDIT_BATCH].bytes_per, rp->audit[AUDIT_BATCH].close_ms);
	}
}

static json_t *
stats_json(const struct stats *s)
{
	return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f}", "n", (json_int_t)s->n, "median_ms",
			 s->median, "p95_ms", s->p95, "mean_ms", s->mean, "min_ms", s->min,
			 "max_ms", s->max);
}

static json_t *
strv_json(const struct strv *s)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < s->n; i++)
		json_array_append_new(a, json_string(s->v[i]));
	return a;
}

static void
print_json(const struct opts *o, const struct workspace *w, const struct report *rp)
{
	_cleanup_json_ json_t *root = json_pack(
		"{s:s, s:s, s:i, s:I, s:s, s:s, s:i, s:i, s:i, s:s, s:s, s:s?, s:s}", "date",
		rp->date, "kernel", rp->kernel, "cpus", (int)rp->cpus, "mem_total_kib",
		(json_int_t)rp->mem_total_kib, "load_start", rp->load_start, "load_end",
		rp->load_end, "n", rp->n, "warmup", rp->warmup, "gap_ms", rp->gap_ms, "nulld",
		o->nulld, "cage", o->cage, "nullctl", o->nullctl, "fs", w->fs_type);
	if (!root)
		die("out of memory");
	const struct start_result *s = &rp->st;
	json_t *start = json_object(), *stop = json_object();
	for (int k = 0; k < N_KINDS; k++) {
		json_object_set_new(start, kind_key[k],
				    s->have[k] ? stats_json(&s->start[k]) : json_null());
		json_object_set_new(stop, kind_key[k],
				    s->have[k] ? stats_json(&s->stop[k]) : json_null());
	}
	json_object_set_new(start, "nulld_rpc_reply",
			    s->have[KIND_RPC] ? stats_json(&s->reply) : json_null());
	json_object_set_new(root, "start", start);
	json_object_set_new(root, "stop", stop);
	json_t *ratios = json_object();
	for (int k = 0; k < KIND_CAGE; k++) {
		if (!s->have[k] || !s->have[KIND_CAGE])
			continue;
		char key[64];
		snprintf(key, sizeof(key), "%s_cage", kind_key[k]);
		json_object_set_new(ratios, key,
				    json_pack("{s:f, s:f}", "median",
					      ratio(s->start[k].median, s->start[KIND_CAGE].median),
					      "p95",
					      ratio(s->start[k].p95, s->start[KIND_CAGE].p95)));
	}
	json_object_set_new(root, "ratios", ratios);
	if (s->error[0])
		json_object_set_new(root, "start_error", json_string(s->error));

	const struct many_result *r = &rp->many;
	if (r->ran) {
		int c = r->started ? r->started : 1;
		json_t *many = json_pack(
			"{s:i, s:i, s:i, s:i, s:f, s:f, s:I, s:I, s:I, s:I, s:i, s:i, s:I, s:f, "
			"s:f, s:f, s:f, s:f}",
			"requested", r->requested, "sent", r->sent, "started", r->started, "alive",
			r->alive, "sent_ms", r->sent_ms, "all_up_ms", r->all_up_ms,
			"nulld_rss_fresh_kib", (json_int_t)r->nulld_rss_fresh, "nulld_rss_idle_kib",
			(json_int_t)r->nulld_rss_idle, "nulld_rss_many_kib",
			(json_int_t)r->nulld_rss_many, "nulld_pss_many_kib",
			(json_int_t)r->nulld_pss_many, "nulld_fds_idle", r->nulld_fds_idle,
			"nulld_fds_many", r->nulld_fds_many, "processes", (json_int_t)r->n_procs,
			"pss_kib_per_agent", (double)r->pss_kib / c, "pss_host_kib_per_agent",
			(double)r->pss_host_kib / c, "pss_inside_kib_per_agent",
			(double)r->pss_inside_kib / c, "memavailable_drop_kib_per_agent",
			-(double)r->mem_delta_kib[0] / c, "pss_plus_kernel_kib_per_agent",
			many_total_per_agent(r));
		json_t *kern = json_object();
		for (size_t k = 1; kern && k < N_MEMINFO; k++)
			json_object_set_new(kern, meminfo_keys[k],
					    json_real((double)r->mem_delta_kib[k] / c));
		if (many) {
			json_object_set_new(many, "meminfo_growth_kib_per_agent",
					    kern ? kern : json_null());
			if (r->error[0])
				json_object_set_new(many, "error", json_string(r->error));
		}
		json_object_set_new(root, "many", many ? many : json_null());
	}
	if (r->nulld_exited) {
		char st[64];
		describe_status(r->nulld_status, st, sizeof(st));
		json_object_set_new(
			root, "shutdown",
			json_pack("{s:f, s:s}", "ms", r->shutdown_ms, "nulld_exit", st));
	}
	json_object_set_new(root, "left",
			    json_pack("{s:o, s:o, s:I}", "cgroups_ours", strv_json(&rp->cg.ours),
				      "cgroups_others", strv_json(&rp->cg.others), "processes",
				      (json_int_t)rp->procs_left));
	json_t *audit = json_object();
	for (int i = 0; i < N_AUDIT; i++) {
		const struct audit_result *a = &rp->audit[i];
		if (!a->ran)
			continue;
		json_t *one = json_pack(
			"{s:I, s:f, s:f, s:o, s:f, s:f, s:b}", "records", (json_int_t)a->records,
			"secs", a->secs, "appends_per_sec",
			a->secs > 0 ? (double)a->records / a->secs : 0, "latency",
			stats_json(&a->lat), "bytes_per_record", a->bytes_per, "verify_per_sec",
			a->verify_secs > 0 ? (double)a->records / a->verify_secs : 0, "verified",
			a->verified);
		if (one && a->error[0])
			json_object_set_new(one, "error", json_string(a->error));
		json_object_set_new(audit, audit_key[i], one ? one : json_null());
	}
	json_object_set_new(root, "audit", audit);
	if (json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) < 0)
		die("write JSON: %m");
	putchar('\n');
}

/* ---- main ---- */

static void
report_header(struct report *rp)
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(rp->date, sizeof(rp->date), "%Y-%m-%d %H:%M UTC", &tm);
	struct utsname u;
	if (uname(&u) == 0)
		snprintf(rp->kernel, sizeof(rp->kernel), "%s %s", u.release, u.machine);
	rp->cpus = sysconf(_SC_NPROCESSORS_ONLN);
	rp->mem_total_kib = read_kib("/proc/meminfo", "MemTotal");
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		rp->nofile = (unsigned long long)rl.rlim_cur;
	read_loadavg(rp->load_start, sizeof(rp->load_start));
}

/* argv[0] of @pid, or "" when it is gone. */
static void
proc_argv0(pid_t pid, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;
	buf[n > 0 ? n : 0] = '\0';
}

/*
 * Whatever of this run still runs after a grace period (a bug, or an interrupted run): processes
 * whose command line names the workspace. Each is listed; those that are one of the programs this
 * run started (cage, nulld, nullctl: directly or through nulld) get SIGKILL, by pid. A cage's
 * sandbox ends with it. Returns how many there were.
 */
static size_t
kill_leftovers(const struct opts *o, const struct workspace *w)
{
	pid_t left[256];
	size_t n = 0;
	for (int i = 0; i < 50; i++) {
		n = procs_of_run(w->root, left, NB_ARRAY_SIZE(left));
		if (n == 0)
			return 0;
		sleep_ms(100);
	}
	for (size_t i = 0; i < n && i < NB_ARRAY_SIZE(left); i++) {
		char argv0[PATH_MAX];
		proc_argv0(left[i], argv0, sizeof(argv0));
		bool ours = strcmp(argv0, o->cage) == 0 || strcmp(argv0, o->nulld) == 0 ||
			    (o->nullctl && strcmp(argv0, o->nullctl) == 0);
		fprintf(stderr, PROG ": process %d (%s) of this run still runs%s\n", (int)left[i],
			argv0, ours ? ": SIGKILL" : "; not one this run started, left alone");
		if (ours)
			kill(left[i], SIGKILL);
	}
	return n;
}

int
main(int argc, char **argv)
{
	struct opts o;
	parse_opts(argc, argv, &o);
	if (geteuid() != 0)
		die("needs root: nulld starts agents in cages, which create cgroups");

	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART: waits see EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	static struct report rp;
	report_header(&rp);
	rp.n = o.n;
	rp.warmup = o.warmup;
	rp.gap_ms = o.gap_ms;
	rp.audit_ms = o.audit_ms;

	static struct workspace w = { .null_fd = -1, .err_fd = -1 };
	workspace_create(&w);
	/* nulld runs the cage under test, the same one the bare runs use. */
	if (setenv("NULLBOX_CAGE", o.cage, 1) < 0)
		die("setenv: %m");

	struct markers m;
	markers_open(&m, w.out_dir);
	struct nulld nd;
	char err[1024];
	if (nulld_start(&nd, &o, &w, err, sizeof(err)) < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		kill_leftovers(&o, &w);
		workspace_remove(&w);
		return 1;
	}
	rp.many.nulld_rss_fresh = proc_kib(nd.pid, "status", "VmRSS");

	int rc = 0;
	measure_starts(&o, &w, &m, &nd, &rp.st);
	if (rp.st.error[0])
		rc = 1;
	if (o.many > 0 && !interrupted && !rp.st.error[0]) {
		measure_many(&o, &w, &m, &nd, &rp.many);
		if (rp.many.error[0])
			rc = 1;
	}
	fprintf(stderr, PROG ": shutdown...\n");
	nulld_shutdown(&nd, &rp.many);
	close(m.fd);
	close(nd.log_fd);
	/* A cgroup or process of ours left behind is a bug, not a timing: it fails the run. */
	cgroup_scan_settled(&rp.cg, &w, CGROUP_GONE_TIMEOUT_MS);
	rp.procs_left = kill_leftovers(&o, &w);
	if (rp.cg.ours.n || rp.procs_left)
		rc = 1;

	for (int i = 0; i < N_AUDIT && o.audit_ms > 0 && !interrupted; i++) {
		fprintf(stderr, PROG ": audit appends, %s...\n", audit_name[i]);
		measure_audit(&w, i, o.audit_ms, &rp.audit[i]);
		if (rp.audit[i].error[0])
			rc = 1;
	}
	read_loadavg(rp.load_end, sizeof(rp.load_end));
	if (interrupted) {
		fprintf(stderr, PROG ": interrupted by signal %d\n", (int)interrupted);
		rc = 130;
	}
	if (rc == 1) {
		char tail[1500];
		fprintf(stderr, PROG ": nulld's log ends with:\n%s\n",
			file_tail(w.nulld_log, -1, tail, sizeof(tail)));
	}
	if (o.json)
		print_json(&o, &w, &rp);
	else
		print_text(&o, &w, &rp);

	strv_clear(&rp.cg.ours);
	strv_clear(&rp.cg.others);
	workspace_remove(&w);
	free(o.cage);
	free(o.nulld);
	free(o.nullctl);
	return rc;
}
