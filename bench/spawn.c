/*
 * bench-spawn: what a sandbox costs, measured against a bare exec and against bubblewrap.
 *
 *   bench-spawn [-n N] [--warmup N] [--gap MS] [--idle N] [--cage PATH] [--bwrap PATH] [--json]
 *
 * Sections:
 *   options      command line, where cage and bwrap are
 *   workspace    a private temp dir: AGENT.toml, the read and write paths, files bwrap binds
 *   commands     the argv of the three kinds: /bin/true, cage run, bwrap with cage's profile
 *   spawning     fork + execve + waitpid, timed with CLOCK_MONOTONIC
 *   statistics   median, p95, mean, min, max
 *   processes    /proc scans: process trees, Pss, MemAvailable
 *   idle         N idle cages alive at once: memory per cage, clean stop
 *   cgroups      nullbox-* cgroup directories left behind
 *   output       text and JSON
 *
 * Figures are printed, never asserted: the machines this runs on are shared and noisy. The three
 * kinds are interleaved round-robin (and the order rotates every round) so that noise, and the
 * kernel's deferred namespace teardown after each sandbox, fall on all of them alike.
 *
 * Everything the benchmark creates lives in one mkdtemp(3) directory that it removes at the end;
 * it signals only the processes it started, by pid.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-paths.h"
#include "cleanup.h"
#include "json.h"

#define PROG "bench-spawn"

/* The targets of issue 4, printed next to the measured ratios. */
#define TARGET_CAGE_BWRAP 0.5
#define TARGET_CAGE_TRUE 3.0

/* How long idle cages may take to come up, and to stop after SIGTERM. */
#define IDLE_START_TIMEOUT_MS 120000
#define IDLE_STOP_TIMEOUT_MS 10000
#define CGROUP_GONE_TIMEOUT_MS 5000
#define CGROUP_SCAN_DEPTH 8

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
	int gap_ms; /* pause before each spawn: isolated spawns instead of back-to-back ones */
	int idle;
	char *cage;
	char *bwrap; /* NULL: not found; then bwrap_reason says why */
	char bwrap_reason[1024];
	bool json;
};

static void
usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " [OPTIONS]\n"
		"\n"
		"Spawn latency of /bin/true, `cage run -- /bin/true` and bwrap with cage's profile,\n"
		"interleaved in one run; then memory per idle cage with many alive at once.\n"
		"Needs root (cage creates cgroups). Prints figures; never fails on timing.\n"
		"\n"
		"Options:\n"
		"  -n N            measured spawns per kind (default 200)\n"
		"      --warmup N  unmeasured spawns per kind first (default 10)\n"
		"      --gap MS    pause before every spawn (default 0: back to back)\n"
		"      --idle N    idle cages alive at once for the memory figure (default 100; 0 skips)\n"
		"      --cage PATH the cage binary (default: the one built next to this benchmark)\n"
		"      --bwrap PATH  the bwrap binary (default: bwrap in PATH)\n"
		"      --json      one JSON object on stdout instead of the text report\n"
		"  -h, --help      this help\n");
}

static int
parse_count(const char *opt, const char *s, int min)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > 100000)
		die("%s: expected a number from %d to 100000, got '%s'", opt, min, s);
	return (int)v;
}

static bool
is_executable(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Looks @name up in $PATH; returns a malloc'ed path or NULL. */
static char *
find_in_path(const char *name)
{
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		char buf[PATH_MAX];
		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name);
		if (n && is_executable(buf))
			return strdup(buf);
		path += n + (path[n] == ':');
	}
	return NULL;
}

/*
 * The cage built in the same meson build: BUILD/bench/bench-spawn -> BUILD/src/cage/cage, found
 * from /proc/self/exe so a moved build dir still works; else the path meson configured.
 */
static char *
default_cage(void)
{
	char self[PATH_MAX], buf[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(buf, sizeof(buf), "%s/../src/cage/cage", self);
			char real[PATH_MAX];
			if (is_executable(buf) && realpath(buf, real))
				return strdup(real);
		}
	}
#ifdef BENCH_CAGE_PATH
	if (is_executable(BENCH_CAGE_PATH))
		return strdup(BENCH_CAGE_PATH);
#endif
	return NULL;
}

static void
parse_opts(int argc, char **argv, struct opts *o)
{
	enum { OPT_WARMUP = 256, OPT_GAP, OPT_IDLE, OPT_CAGE, OPT_BWRAP, OPT_JSON };
	static const struct option longopts[] = {
		{ "warmup", required_argument, NULL, OPT_WARMUP },
		{ "gap", required_argument, NULL, OPT_GAP },
		{ "idle", required_argument, NULL, OPT_IDLE },
		{ "cage", required_argument, NULL, OPT_CAGE },
		{ "bwrap", required_argument, NULL, OPT_BWRAP },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cage = NULL, *bwrap = NULL;
	*o = (struct opts){ .n = 200, .warmup = 10, .idle = 100 };
	int c;
	while ((c = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o->n = parse_count("-n", optarg, 1);
			break;
		case OPT_WARMUP:
			o->warmup = parse_count("--warmup", optarg, 0);
			break;
		case OPT_GAP:
			o->gap_ms = parse_count("--gap", optarg, 0);
			break;
		case OPT_IDLE:
			o->idle = parse_count("--idle", optarg, 0);
			break;
		case OPT_CAGE:
			cage = optarg;
			break;
		case OPT_BWRAP:
			bwrap = optarg;
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

	if (cage) {
		char real[PATH_MAX];
		if (!realpath(cage, real) || !is_executable(real))
			die("--cage %s: not an executable file", cage);
		o->cage = strdup(real);
	} else {
		o->cage = default_cage();
		if (!o->cage)
			die("cage not found next to this benchmark (../src/cage/cage); build it with "
			    "`meson compile -C BUILD` or pass --cage PATH");
	}
	if (bwrap) {
		if (!is_executable(bwrap))
			die("--bwrap %s: not an executable file", bwrap);
		o->bwrap = strdup(bwrap);
	} else {
		o->bwrap = find_in_path("bwrap");
		if (!o->bwrap)
			snprintf(
				o->bwrap_reason, sizeof(o->bwrap_reason),
				"bwrap is not installed (not in PATH; Debian: apt-get install bubblewrap)");
	}
	if (!o->cage || (bwrap && !o->bwrap))
		die("out of memory");
}

/* ---- workspace ---- */

struct workspace {
	char root[PATH_MAX]; /* the mkdtemp directory, resolved */
	char agent_dir[PATH_MAX + 16];
	char manifest[PATH_MAX + 32];
	char read_dir[PATH_MAX + 16];
	char write_dir[PATH_MAX + 16];
	char etc_dir[PATH_MAX + 16]; /* what cage generates in /etc, for bwrap to bind */
	char empty[PATH_MAX + 16];   /* an empty mode-0 file, what cage masks paths with */
	char err_log[PATH_MAX + 16]; /* stderr of the spawned commands */
	char agent_name[64];
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
	if (fchmod(fd, mode) < 0) /* the umask must not change what cage would create */
		die("chmod %s: %m", path);
}

static void
make_dir(const char *path)
{
	if (mkdir(path, 0755) < 0)
		die("mkdir %s: %m", path);
}

/*
 * Creates the workspace: a typical agent (a manifest with one read and one write path, limits
 * that fit an idle `sleep`) and the files bwrap needs to show what cage generates.
 */
static void
workspace_create(struct workspace *w)
{
	const char *tmp = getenv("TMPDIR");
	char tmpl[PATH_MAX];
	snprintf(tmpl, sizeof(tmpl), "%s/nullbox-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(tmpl))
		die("mkdtemp %s: %m", tmpl);
	/* Manifest paths must be normalised and bind sources are resolved: use the real path. */
	if (!realpath(tmpl, w->root))
		die("realpath %s: %m", tmpl);
	/* The sandbox user (65534) must be able to reach the read and write paths. */
	if (chmod(w->root, 0755) < 0)
		die("chmod %s: %m", w->root);
	snprintf(w->agent_dir, sizeof(w->agent_dir), "%s/agent", w->root);
	snprintf(w->manifest, sizeof(w->manifest), "%s/AGENT.toml", w->agent_dir);
	snprintf(w->read_dir, sizeof(w->read_dir), "%s/data", w->root);
	snprintf(w->write_dir, sizeof(w->write_dir), "%s/out", w->root);
	snprintf(w->etc_dir, sizeof(w->etc_dir), "%s/etc", w->root);
	snprintf(w->empty, sizeof(w->empty), "%s/empty", w->root);
	snprintf(w->err_log, sizeof(w->err_log), "%s/stderr.log", w->root);
	/* Unique per run, so the cgroups this run creates can be told apart from anyone else's. */
	snprintf(w->agent_name, sizeof(w->agent_name), "bench-%d", (int)getpid());

	make_dir(w->agent_dir);
	make_dir(w->read_dir);
	make_dir(w->write_dir);
	if (chown(w->write_dir, 65534, 65534) < 0)
		die("chown %s: %m", w->write_dir);
	make_dir(w->etc_dir);
	write_text(w->empty, "", 0000);

	char buf[4 * PATH_MAX];
	snprintf(buf, sizeof(buf),
		 "# A typical agent, written by bench-spawn.\n"
		 "[agent]\n"
		 "name = \"%s\"\n"
		 "version = \"1\"\n"
		 "runtime = \"binary\"\n"
		 "entry = \"/bin/true\"\n"
		 "\n"
		 "[capabilities]\n"
		 "max_memory_mb = 256\n"
		 "max_pids = 64\n"
		 "\n"
		 "[capabilities.filesystem]\n"
		 "read = [\"%s\"]\n"
		 "write = [\"%s\"]\n",
		 w->agent_name, w->read_dir, w->write_dir);
	write_text(w->manifest, buf, 0644);

	/* The same content cage writes into the sandbox's /etc (src/cage/rootfs.c). */
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/passwd", w->etc_dir);
	snprintf(buf, sizeof(buf),
		 "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
		 "agent:x:65534:65534:%s:/tmp:/usr/sbin/nologin\n",
		 w->agent_name);
	write_text(path, buf, 0644);
	snprintf(path, sizeof(path), "%s/group", w->etc_dir);
	write_text(path, "root:x:0:\nagent:x:65534:\n", 0644);
	snprintf(path, sizeof(path), "%s/hosts", w->etc_dir);
	write_text(path, "127.0.0.1\tlocalhost\n::1\tlocalhost\n", 0644);
	snprintf(path, sizeof(path), "%s/hostname", w->etc_dir);
	snprintf(buf, sizeof(buf), "%s\n", w->agent_name);
	write_text(path, buf, 0644);

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

/* The last part of what the spawned commands wrote to stderr, for an error message. */
static const char *
err_tail(const struct workspace *w, char *buf, size_t len)
{
	off_t size = lseek(w->err_fd, 0, SEEK_END);
	off_t from = size > (off_t)len - 1 ? size - (off_t)len + 1 : 0;
	ssize_t n = pread(w->err_fd, buf, len - 1, from);
	buf[n > 0 ? n : 0] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return buf[0] ? buf : "(nothing on stderr)";
}

/* ---- commands ---- */

struct strv {
	char **v;
	size_t n, cap;
};

static void
strv_add(struct strv *s, const char *str)
{
	if (s->n + 2 > s->cap) {
		s->cap = s->cap ? s->cap * 2 : 32;
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
strv_add3(struct strv *s, const char *a, const char *b, const char *c)
{
	strv_add(s, a);
	strv_add(s, b);
	if (c)
		strv_add(s, c);
}

static void
strv_clear(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	*s = (struct strv){ 0 };
}

enum kind { KIND_TRUE, KIND_CAGE, KIND_BWRAP, N_KINDS };

static const char *const kind_name[N_KINDS] = { "/bin/true", "cage run", "bwrap" };
static const char *const kind_key[N_KINDS] = { "true", "cage", "bwrap" };

/* What cage binds from the host's /etc (src/cage/config.c), when present. */
static const char *const etc_files[] = {
	"/etc/ld.so.cache",  "/etc/ld.so.conf",	   "/etc/ld.so.conf.d",
	"/etc/alternatives", "/etc/ssl/certs",	   "/etc/ca-certificates.conf",
	"/etc/localtime",    "/etc/nsswitch.conf", "/etc/mime.types",
	"/etc/protocols",    "/etc/services",	   "/etc/python3",
	"/etc/python3.11",
};
static const char *const top_runtime[] = { "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32" };
static const char *const shell_candidates[] = {
	"/bin/sh",	 "/bin/bash",	     "/bin/dash",      "/bin/rbash",   "/bin/zsh",
	"/bin/ksh",	 "/bin/csh",	     "/bin/tcsh",      "/bin/fish",    "/usr/bin/sh",
	"/usr/bin/bash", "/usr/bin/dash",    "/usr/bin/rbash", "/usr/bin/zsh", "/usr/bin/ksh",
	"/usr/bin/fish", "/usr/bin/busybox",
};
/* /proc files cage hides behind an empty file. */
static const char *const proc_masked[] = { "kcore", "keys", "timer_list", "sched_debug", "kmsg" };

static void
cage_argv(struct strv *s, const struct opts *o, const struct workspace *w, const char *const *cmd)
{
	strv_add3(s, o->cage, "run", "--manifest");
	strv_add3(s, w->manifest, "--", NULL);
	for (; *cmd; cmd++)
		strv_add(s, *cmd);
}

/* The shells cage masks (shell = false): the candidates and /etc/shells, resolved, files only. */
static void
add_shell_masks(struct strv *s, struct strv *seen, const struct workspace *w)
{
	struct strv cand = { 0 };
	for (size_t i = 0; i < NB_ARRAY_SIZE(shell_candidates); i++)
		strv_add(&cand, shell_candidates[i]);
	_cleanup_fclose_ FILE *f = fopen("/etc/shells", "re");
	char line[PATH_MAX];
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '/')
			strv_add(&cand, line);
	}
	for (size_t i = 0; i < cand.n; i++) {
		char real[PATH_MAX];
		struct stat st;
		bool dup = false;
		if (!realpath(cand.v[i], real) || stat(real, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		for (size_t j = 0; j < seen->n && !dup; j++)
			dup = strcmp(seen->v[j], real) == 0;
		if (dup)
			continue;
		strv_add(seen, real);
		strv_add3(s, "--ro-bind", w->empty, real);
	}
	strv_clear(&cand);
}

/*
 * bwrap with cage's profile, as far as bwrap can express it (bwrap_differences lists the rest).
 * bwrap processes its options in order: /tmp before the paths under it, /proc before its masks.
 */
static void
bwrap_argv(struct strv *s, const struct opts *o, const struct workspace *w, const char *const *cmd,
	   size_t *n_masks)
{
	char path[PATH_MAX + 32];
	strv_add(s, o->bwrap);
	strv_add3(s, "--unshare-all", "--die-with-parent", NULL);
	strv_add3(s, "--ro-bind", "/usr", "/usr");
	for (size_t i = 0; i < NB_ARRAY_SIZE(top_runtime); i++) {
		struct stat st;
		char target[PATH_MAX];
		if (lstat(top_runtime[i], &st) < 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			ssize_t n = readlink(top_runtime[i], target, sizeof(target) - 1);
			if (n < 0)
				continue;
			target[n] = '\0';
			strv_add3(s, "--symlink", target, top_runtime[i]);
		} else {
			strv_add3(s, "--ro-bind", top_runtime[i], top_runtime[i]);
		}
	}
	for (size_t i = 0; i < NB_ARRAY_SIZE(etc_files); i++) {
		char real[PATH_MAX];
		if (realpath(etc_files[i], real))
			strv_add3(s, "--ro-bind", real, etc_files[i]);
	}
	static const char *const generated[] = { "passwd", "group", "hosts", "hostname" };
	for (size_t i = 0; i < NB_ARRAY_SIZE(generated); i++) {
		char dst[64];
		snprintf(path, sizeof(path), "%s/%s", w->etc_dir, generated[i]);
		snprintf(dst, sizeof(dst), "/etc/%s", generated[i]);
		strv_add3(s, "--ro-bind", path, dst);
	}
	strv_add3(s, "--tmpfs", "/tmp", NULL);
	strv_add3(s, "--ro-bind", w->agent_dir, "/agent");
	strv_add3(s, "--ro-bind", w->read_dir, w->read_dir);
	strv_add3(s, "--bind", w->write_dir, w->write_dir);
	strv_add3(s, "--dev", "/dev", NULL);
	strv_add3(s, "--tmpfs", "/dev/shm", NULL);
	strv_add3(s, "--proc", "/proc", NULL);
	*n_masks = 0;
	for (size_t i = 0; i < NB_ARRAY_SIZE(proc_masked); i++) {
		snprintf(path, sizeof(path), "/proc/%s", proc_masked[i]);
		if (access(path, F_OK) == 0) {
			strv_add3(s, "--ro-bind", w->empty, path);
			++*n_masks;
		}
	}
	strv_add3(s, "--dir", "/run/nullbox", NULL);
	struct strv seen = { 0 };
	add_shell_masks(s, &seen, w);
	*n_masks += seen.n;
	strv_clear(&seen);
	/* The environment cage gives a binary agent (src/cage/config.c), nothing else. */
	strv_add(s, "--clearenv");
	strv_add3(s, "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin");
	strv_add3(s, "--setenv", "HOME", "/tmp");
	strv_add3(s, "--setenv", "TMPDIR", "/tmp");
	strv_add3(s, "--setenv", "LANG", "C.UTF-8");
	strv_add3(s, "--setenv", "USER", "agent");
	strv_add3(s, "--setenv", "NULLBOX_AGENT", w->agent_name);
	strv_add3(s, "--hostname", w->agent_name, NULL);
	strv_add3(s, "--chdir", "/agent", NULL);
	strv_add3(s, "--cap-drop", "ALL", NULL);
	strv_add3(s, "--uid", "65534", NULL);
	strv_add3(s, "--gid", "65534", NULL);
	strv_add(s, "--new-session");
	strv_add3(s, "--remount-ro", "/", NULL);
	strv_add(s, "--");
	for (; *cmd; cmd++)
		strv_add(s, *cmd);
}

/* What the bwrap run does not do that cage does, or does differently. */
static const char *const bwrap_differences[] = {
	"no cgroup (cage creates and removes a memory+cpu+pids cgroup per run: v1 here)",
	"no Landlock (cage applies a ruleset with the newest ABI)",
	"no seccomp: bwrap only loads a pre-compiled BPF program from --seccomp FD; "
	"policy/cage.seccomp is not applied",
	"a user namespace: bwrap maps sandbox uid 65534 to the caller (host root); cage, run as root, "
	"uses no user namespace and runs the agent as host uid 65534",
	"no hidepid=2 on /proc; no read-only /proc/fs (bwrap makes its own set read-only)",
	"/tmp, /dev/shm and the write path are not noexec (bwrap cannot set noexec on binds/tmpfs)",
	"/dev also has full, pts, ptmx (bwrap's --dev); cage has null, zero, random, urandom, tty, shm",
	"generated /etc files (passwd, group, hosts, hostname) are bound from the workspace, not "
	"written into the tmpfs root",
	"bwrap's pid 1 reaper vs cage's init: both forward signals and reap",
};

/* ---- spawning ---- */

/*
 * Runs @argv (fork + execve + waitpid) with stdin and stdout on /dev/null and stderr appended to
 * the workspace's log; @pdeathsig, when not 0, is delivered to the child if this process dies.
 * Returns the child's pid (not waited for) or -errno.
 */
static pid_t
start(char *const *argv, const struct workspace *w, int pdeathsig)
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
		dup2(w->null_fd, STDIN_FILENO);
		dup2(w->null_fd, STDOUT_FILENO);
		dup2(w->err_fd, STDERR_FILENO);
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

/* Runs @argv once; *ns gets the time from fork to the end of waitpid. Returns the wait status. */
static int
run_timed(char *const *argv, const struct workspace *w, uint64_t *ns)
{
	uint64_t t0 = now_ns();
	pid_t pid = start(argv, w, 0);
	if (pid < 0)
		die("fork: %s", strerror(-pid));
	int ws = wait_for(pid);
	*ns = now_ns() - t0;
	if (ws < 0)
		die("waitpid %d: %s", (int)pid, strerror(-ws));
	return ws;
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
	double median, p95, mean, min, max; /* µs */
};

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Sorts @ns in place. Median: mean of the middle two for even n; p95: nearest rank. */
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
	s.mean = sum / (double)n / 1e3;
	s.min = (double)ns[0] / 1e3;
	s.max = (double)ns[n - 1] / 1e3;
	s.median =
		n % 2 ? (double)ns[n / 2] / 1e3 : ((double)ns[n / 2 - 1] + (double)ns[n / 2]) / 2e3;
	size_t rank = (size_t)ceil(0.95 * (double)n);
	s.p95 = (double)ns[(rank ? rank : 1) - 1] / 1e3;
	return s;
}

/* ---- processes ---- */

struct proc {
	pid_t pid, ppid;
	char comm[32];
	int owner; /* index of the idle cage whose tree it is in, or -1 */
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
				if (p->pid == roots[r]) {
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

/* The /proc/meminfo fields the idle figure reports: where an idle cage's memory goes. */
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

/*
 * The meminfo_keys fields in KiB, each the median of five samples 50 ms apart: one sample is too
 * noisy on a shared machine. A field the kernel does not have reads as 0.
 */
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

/* ---- cgroups ---- */

struct cgroup_scan {
	const char *ours_prefix; /* "nullbox-bench-PID-" */
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
 * Lists nullbox-* directories under /sys/fs/cgroup (as `find -maxdepth 8 -name 'nullbox-*'`),
 * split into this run's (named after its agent) and anyone else's (a concurrent test, say).
 */
static void
cgroup_scan(struct cgroup_scan *cs, const struct workspace *w)
{
	static char prefix[96];
	snprintf(prefix, sizeof(prefix), "nullbox-%s-", w->agent_name);
	strv_clear(&cs->ours);
	strv_clear(&cs->others);
	cs->ours_prefix = prefix;
	cgroup_walk("/sys/fs/cgroup", CGROUP_SCAN_DEPTH, cs);
}

/* Scans until none of this run's cgroups is left or @timeout_ms passed (a guard may lag). */
static void
cgroup_scan_settled(struct cgroup_scan *cs, const struct workspace *w, unsigned timeout_ms)
{
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		cgroup_scan(cs, w);
		if (cs->ours.n == 0 || now_ns() > end || interrupted)
			return;
		sleep_ms(100);
	}
}

/* ---- idle ---- */

struct idle_result {
	bool ran;
	int requested;
	int started;	 /* cages that were all running at the same time */
	double start_ms; /* from the first fork until every agent runs */
	size_t n_procs;	 /* processes in all the trees */
	long long pss_kib, pss_host_kib, pss_inside_kib;
	long long mem_delta_kib[N_MEMINFO]; /* after - before, for meminfo_keys */
	int stopped_term, stopped_kill;
	double stop_ms;
	char error[1024];
};

/*
 * Starts @o->idle cages running `sleep`, all at once; when every agent runs, sums the Pss of every
 * cage process and every process below it, and the drop in MemAvailable; then stops them (SIGTERM
 * to each cage pid, SIGKILL after IDLE_STOP_TIMEOUT_MS) and reaps them.
 */
static void
idle_measure(const struct opts *o, const struct workspace *w, struct idle_result *r)
{
	static const char *const cmd[] = { "/bin/sleep", "600", NULL };
	struct strv argv = { 0 };
	cage_argv(&argv, o, w, cmd);
	pid_t *pids = xcalloc((size_t)o->idle, sizeof(pid_t));
	bool *done = xcalloc((size_t)o->idle, sizeof(bool));
	struct proc_table t = { 0 };
	int n = 0;
	*r = (struct idle_result){ .ran = true, .requested = o->idle };

	long long mem0[N_MEMINFO], mem1[N_MEMINFO];
	meminfo_sample(mem0);
	uint64_t t0 = now_ns();
	for (; n < o->idle && !interrupted; n++) {
		/* If the benchmark dies, its cages get SIGTERM and stop: nothing outlives it. */
		pids[n] = start(argv.v, w, SIGTERM);
		if (pids[n] < 0) {
			snprintf(r->error, sizeof(r->error), "fork: %s", strerror(-pids[n]));
			break;
		}
	}

	/* Running = the agent has exec'd: a process named "sleep" in the cage's tree. */
	uint64_t deadline = t0 + (uint64_t)IDLE_START_TIMEOUT_MS * 1000000u;
	bool all = false;
	while (!r->error[0] && !interrupted) {
		for (int i = 0; i < n; i++) {
			int ws;
			if (waitpid(pids[i], &ws, WNOHANG) == pids[i]) {
				char st[64], tail[600];
				done[i] = true;
				describe_status(ws, st, sizeof(st));
				snprintf(r->error, sizeof(r->error),
					 "idle cage %d ended early (%s): %s", (int)pids[i], st,
					 err_tail(w, tail, sizeof(tail)));
				break;
			}
		}
		if (r->error[0])
			break;
		proc_scan(&t);
		proc_assign(&t, pids, (size_t)n);
		int running = 0;
		bool *seen = xcalloc((size_t)n, sizeof(bool));
		for (size_t i = 0; i < t.n; i++) {
			int ow = t.p[i].owner;
			if (ow >= 0 && !seen[ow] && t.p[i].pid != pids[ow] &&
			    strcmp(t.p[i].comm, "sleep") == 0) {
				seen[ow] = true;
				running++;
			}
		}
		free(seen);
		if (running == n) {
			all = true;
			break;
		}
		if (now_ns() > deadline) {
			snprintf(r->error, sizeof(r->error),
				 "only %d of %d idle cages were running after %d s", running, n,
				 IDLE_START_TIMEOUT_MS / 1000);
			break;
		}
		sleep_ms(20);
	}
	if (all) {
		r->start_ms = (double)(now_ns() - t0) / 1e6;
		r->started = n;
		/* Let memory freed lazily after the start-up (short-lived helpers) settle. */
		sleep_ms(1000);
		proc_scan(&t);
		proc_assign(&t, pids, (size_t)n);
		for (size_t i = 0; i < t.n; i++) {
			if (t.p[i].owner < 0)
				continue;
			char path[64];
			snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)t.p[i].pid);
			long long pss = read_kib(path, "Pss");
			if (pss < 0)
				continue;
			r->n_procs++;
			r->pss_kib += pss;
			if (in_child_pidns(t.p[i].pid))
				r->pss_inside_kib += pss;
			else
				r->pss_host_kib += pss;
		}
		meminfo_sample(mem1);
		for (size_t k = 0; k < N_MEMINFO; k++)
			r->mem_delta_kib[k] = mem1[k] - mem0[k];
	}

	/* Stop: SIGTERM to each cage we started (cage forwards it to the agent), then SIGKILL. */
	uint64_t s0 = now_ns();
	for (int i = 0; i < n; i++)
		if (!done[i])
			kill(pids[i], SIGTERM);
	int left = 0;
	uint64_t stop_deadline = s0 + (uint64_t)IDLE_STOP_TIMEOUT_MS * 1000000u;
	do {
		left = 0;
		for (int i = 0; i < n; i++) {
			if (done[i])
				continue;
			int ws;
			if (waitpid(pids[i], &ws, WNOHANG) == pids[i]) {
				done[i] = true;
				r->stopped_term++;
			} else {
				left++;
			}
		}
		if (left)
			sleep_ms(10);
	} while (left && now_ns() < stop_deadline);
	for (int i = 0; i < n; i++) {
		if (done[i])
			continue;
		kill(pids[i], SIGKILL);
		wait_for(pids[i]);
		r->stopped_kill++;
	}
	r->stop_ms = (double)(now_ns() - s0) / 1e6;
	free(t.p);
	free(pids);
	free(done);
	strv_clear(&argv);
}

/* Pss plus the kernel's growth (every meminfo_keys field but MemAvailable), per cage, in KiB. */
static double
idle_total_per_cage(const struct idle_result *r)
{
	double kib = (double)r->pss_kib;
	for (size_t k = 1; k < N_MEMINFO; k++)
		kib += (double)r->mem_delta_kib[k];
	return r->started ? kib / r->started : 0;
}

/* ---- output ---- */

struct report {
	char date[64], kernel[256], bwrap_version[128];
	long cpus;
	int n, warmup, gap_ms;
	struct stats st[N_KINDS];
	bool have[N_KINDS];
	size_t bwrap_masks;
	struct idle_result idle;
	struct cgroup_scan cg;
};

static void
capture_version(const char *bin, char *out, size_t len)
{
	int p[2];
	snprintf(out, len, "unknown version");
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		execl(bin, bin, "--version", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	if (pid > 0) {
		ssize_t n = read(p[0], out, len - 1);
		if (n > 0) {
			out[n] = '\0';
			out[strcspn(out, "\n")] = '\0';
		} else {
			snprintf(out, len, "unknown version");
		}
		wait_for(pid);
	}
	close(p[0]);
}

static double
ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

static void
print_text(const struct opts *o, const struct report *rp)
{
	printf("bench-spawn: %s, Linux %s, %ld CPUs\n", rp->date, rp->kernel, rp->cpus);
	printf("  %d spawns per kind after %d warm-up, interleaved round-robin, %d ms between "
	       "spawns\n",
	       rp->n, rp->warmup, rp->gap_ms);
	printf("  cage:  %s run --manifest AGENT.toml -- /bin/true\n", o->cage);
	printf("         (typical manifest: 1 read path, 1 write path, 256 MiB, 64 pids, no shell)\n");
	if (o->bwrap)
		printf("  bwrap: %s (%s), cage's profile (%zu masks)\n", o->bwrap,
		       rp->bwrap_version, rp->bwrap_masks);
	else
		printf("  bwrap: skipped: %s\n", o->bwrap_reason);
	printf("\n%-22s %10s %10s %10s %10s %10s\n", "spawn latency (µs)", "median", "p95", "mean",
	       "min", "max");
	for (int k = 0; k < N_KINDS; k++) {
		if (!rp->have[k])
			continue;
		const struct stats *s = &rp->st[k];
		printf("  %-20s %10.0f %10.0f %10.0f %10.0f %10.0f\n", kind_name[k], s->median,
		       s->p95, s->mean, s->min, s->max);
	}
	printf("\n%-22s %10s %10s %10s   %s\n", "ratio", "median", "p95", "target",
	       "met (median / p95)");
	const struct {
		enum kind other;
		const char *name;
		double target;
	} rows[] = { { KIND_BWRAP, "cage / bwrap", TARGET_CAGE_BWRAP },
		     { KIND_TRUE, "cage / /bin/true", TARGET_CAGE_TRUE } };
	for (size_t i = 0; i < NB_ARRAY_SIZE(rows); i++) {
		if (!rp->have[KIND_CAGE] || !rp->have[rows[i].other]) {
			printf("  %-20s %10s\n", rows[i].name, "n/a");
			continue;
		}
		double m = ratio(rp->st[KIND_CAGE].median, rp->st[rows[i].other].median);
		double p = ratio(rp->st[KIND_CAGE].p95, rp->st[rows[i].other].p95);
		printf("  %-20s %10.2f %10.2f %8s%.1f   %s / %s\n", rows[i].name, m, p,
		       "<= ", rows[i].target, m <= rows[i].target ? "yes" : "no",
		       p <= rows[i].target ? "yes" : "no");
	}
	if (o->bwrap) {
		printf("\nbwrap does less than cage here:\n");
		for (size_t i = 0; i < NB_ARRAY_SIZE(bwrap_differences); i++)
			printf("  - %s\n", bwrap_differences[i]);
	}
	const struct idle_result *r = &rp->idle;
	if (r->ran) {
		printf("\nidle cages: %d requested (cage run ... -- /bin/sleep 600)\n",
		       r->requested);
		if (r->error[0])
			printf("  error: %s\n", r->error);
		if (r->started) {
			int c = r->started;
			printf("  all %d running after %.0f ms\n", c, r->start_ms);
			printf("  processes: %zu (%.1f per cage: launcher, cgroup guard, sandbox init, "
			       "agent)\n",
			       r->n_procs, (double)r->n_procs / c);
			printf("  Pss per cage: %.0f KiB (host side: %.0f KiB, inside the sandbox: %.0f "
			       "KiB)\n",
			       (double)r->pss_kib / c, (double)r->pss_host_kib / c,
			       (double)r->pss_inside_kib / c);
			printf("  MemAvailable drop per cage: %.0f KiB (with kernel memory: namespaces, "
			       "mounts, cgroups, page tables, tmpfs)\n",
			       -(double)r->mem_delta_kib[0] / c);
			printf("  kernel growth per cage (meminfo, KiB):");
			for (size_t k = 1; k < N_MEMINFO; k++)
				printf(" %s %.0f%s", meminfo_keys[k],
				       (double)r->mem_delta_kib[k] / c,
				       k + 1 < N_MEMINFO ? "," : "\n");
			printf("  Pss + kernel growth per cage: %.0f KiB (MemAvailable moves with the "
			       "rest of a shared machine; this sum less so)\n",
			       idle_total_per_cage(r));
		}
		printf("  stopped in %.0f ms: %d after SIGTERM, %d needed SIGKILL\n", r->stop_ms,
		       r->stopped_term, r->stopped_kill);
	}
	printf("\nnullbox cgroups left after the run: %zu of this run's", rp->cg.ours.n);
	for (size_t i = 0; i < rp->cg.ours.n; i++)
		printf("%s%s", i ? ", " : ": ", rp->cg.ours.v[i]);
	printf("; %zu other nullbox-* (not started by this run)\n", rp->cg.others.n);
}

static json_t *
stats_json(const struct stats *s)
{
	return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f}", "n", (json_int_t)s->n, "median_us",
			 s->median, "p95_us", s->p95, "mean_us", s->mean, "min_us", s->min,
			 "max_us", s->max);
}

static json_t *
ratio_json(const struct report *rp, enum kind other, double target)
{
	if (!rp->have[KIND_CAGE] || !rp->have[other])
		return json_null();
	double m = ratio(rp->st[KIND_CAGE].median, rp->st[other].median);
	double p = ratio(rp->st[KIND_CAGE].p95, rp->st[other].p95);
	return json_pack("{s:f, s:f, s:f, s:b, s:b}", "median", m, "p95", p, "target", target,
			 "met_median", m <= target, "met_p95", p <= target);
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
print_json(const struct opts *o, const struct report *rp)
{
	_cleanup_json_ json_t *root =
		json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:s}", "date", rp->date, "kernel",
			  rp->kernel, "cpus", (int)rp->cpus, "n", rp->n, "warmup", rp->warmup,
			  "gap_ms", rp->gap_ms, "cage", o->cage);
	if (!root)
		die("out of memory");
	json_t *spawn = json_object();
	for (int k = 0; k < N_KINDS; k++)
		json_object_set_new(spawn, kind_key[k],
				    rp->have[k] ? stats_json(&rp->st[k]) : json_null());
	json_object_set_new(root, "spawn", spawn);
	if (o->bwrap) {
		json_t *diff = json_array();
		for (size_t i = 0; i < NB_ARRAY_SIZE(bwrap_differences); i++)
			json_array_append_new(diff, json_string(bwrap_differences[i]));
		json_object_set_new(root, "bwrap",
				    json_pack("{s:s, s:s, s:o}", "path", o->bwrap, "version",
					      rp->bwrap_version, "differences", diff));
	} else {
		json_object_set_new(root, "bwrap", json_pack("{s:s}", "skipped", o->bwrap_reason));
	}
	json_object_set_new(root, "ratios",
			    json_pack("{s:o, s:o}", "cage_bwrap",
				      ratio_json(rp, KIND_BWRAP, TARGET_CAGE_BWRAP), "cage_true",
				      ratio_json(rp, KIND_TRUE, TARGET_CAGE_TRUE)));
	const struct idle_result *r = &rp->idle;
	if (r->ran) {
		int c = r->started ? r->started : 1;
		json_t *idle = json_pack(
			"{s:i, s:i, s:f, s:I, s:f, s:f, s:f, s:f, s:i, s:i, s:f}", "requested",
			r->requested, "running", r->started, "start_all_ms", r->start_ms,
			"processes", (json_int_t)r->n_procs, "pss_kib_per_cage",
			(double)r->pss_kib / c, "pss_host_kib_per_cage",
			(double)r->pss_host_kib / c, "pss_inside_kib_per_cage",
			(double)r->pss_inside_kib / c, "memavailable_drop_kib_per_cage",
			-(double)r->mem_delta_kib[0] / c, "stopped_sigterm", r->stopped_term,
			"stopped_sigkill", r->stopped_kill, "stop_ms", r->stop_ms);
		json_t *kern = json_object();
		for (size_t k = 1; kern && k < N_MEMINFO; k++)
			json_object_set_new(kern, meminfo_keys[k],
					    json_real((double)r->mem_delta_kib[k] / c));
		if (idle) {
			json_object_set_new(idle, "meminfo_growth_kib_per_cage",
					    kern ? kern : json_null());
			json_object_set_new(idle, "pss_plus_kernel_kib_per_cage",
					    json_real(idle_total_per_cage(r)));
		}
		if (idle && r->error[0])
			json_object_set_new(idle, "error", json_string(r->error));
		json_object_set_new(root, "idle", idle ? idle : json_null());
	}
	json_object_set_new(root, "cgroups_left",
			    json_pack("{s:o, s:o}", "ours", strv_json(&rp->cg.ours), "others",
				      strv_json(&rp->cg.others)));
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
}

/*
 * The latency part: warm-up, then o->n measured spawns of each active kind, interleaved, the
 * order rotating every round. Fills rp->st and rp->have. Returns 0, or -1 when a spawn failed
 * (said on stderr); a bwrap that fails on its first spawn is skipped with the reason instead.
 */
static int
measure_spawns(struct opts *o, const struct workspace *w, struct strv av[N_KINDS],
	       struct report *rp)
{
	uint64_t *ns[N_KINDS];
	size_t got[N_KINDS] = { 0 };
	bool active[N_KINDS] = { true, true, o->bwrap != NULL };
	int r = 0;
	for (int k = 0; k < N_KINDS; k++)
		ns[k] = xcalloc((size_t)o->n, sizeof(uint64_t));

	fprintf(stderr, PROG ": %d warm-up + %d measured spawns per kind...\n", o->warmup, o->n);
	for (int round = 0; round < o->warmup + o->n && !interrupted && r == 0; round++) {
		for (int j = 0; j < N_KINDS && !interrupted && r == 0; j++) {
			int k = (round + j) % N_KINDS;
			if (!active[k])
				continue;
			if (o->gap_ms)
				sleep_ms((unsigned)o->gap_ms);
			if (ftruncate(w->err_fd, 0) < 0)
				die("truncate %s: %m", w->err_log);
			uint64_t t;
			int ws = run_timed(av[k].v, w, &t);
			if (interrupted) /* the terminal's SIGINT reached the child too */
				break;
			if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) {
				if (round >= o->warmup)
					ns[k][got[k]++] = t;
				continue;
			}
			char st[64], buf[600];
			describe_status(ws, st, sizeof(st));
			const char *tail = err_tail(w, buf, sizeof(buf));
			/* bwrap may be unusable here (user namespaces off, say): a skip, with why.
			 */
			if (k == KIND_BWRAP && round == 0) {
				snprintf(o->bwrap_reason, sizeof(o->bwrap_reason),
					 "bwrap failed (%s): %s", st, tail);
				fprintf(stderr, PROG ": skipping bwrap: %s\n", o->bwrap_reason);
				free(o->bwrap);
				o->bwrap = NULL;
				active[k] = false;
				continue;
			}
			fprintf(stderr, PROG ": %s failed (%s) in round %d: %s\n", kind_name[k], st,
				round + 1, tail);
			r = -1;
		}
	}
	for (int k = 0; k < N_KINDS; k++) {
		rp->have[k] = active[k] && got[k] > 0;
		rp->st[k] = compute_stats(ns[k], got[k]);
		free(ns[k]);
	}
	return r;
}

int
main(int argc, char **argv)
{
	struct opts o;
	parse_opts(argc, argv, &o);
	if (geteuid() != 0)
		fprintf(stderr, PROG ": warning: not root; cage needs root to create cgroups\n");

	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART: waits see EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	static struct report rp;
	report_header(&rp);
	rp.n = o.n;
	rp.warmup = o.warmup;
	rp.gap_ms = o.gap_ms;

	static struct workspace w = { .null_fd = -1, .err_fd = -1 };
	workspace_create(&w);

	static const char *const cmd[] = { "/bin/true", NULL };
	struct strv av[N_KINDS] = { 0 };
	strv_add(&av[KIND_TRUE], "/bin/true");
	cage_argv(&av[KIND_CAGE], &o, &w, cmd);
	if (o.bwrap) {
		bwrap_argv(&av[KIND_BWRAP], &o, &w, cmd, &rp.bwrap_masks);
		capture_version(o.bwrap, rp.bwrap_version, sizeof(rp.bwrap_version));
	}

	int rc = 0;
	if (measure_spawns(&o, &w, av, &rp) < 0) {
		rc = 1;
	} else {
		if (o.idle > 0 && !interrupted) {
			fprintf(stderr, PROG ": %d idle cages at once...\n", o.idle);
			idle_measure(&o, &w, &rp.idle);
			if (rp.idle.error[0])
				rc = 1;
		}
		/* A cgroup of ours left behind is a bug in cage, not a timing: it fails the run. */
		cgroup_scan_settled(&rp.cg, &w, CGROUP_GONE_TIMEOUT_MS);
		if (rp.cg.ours.n)
			rc = 1;
		if (interrupted) {
			fprintf(stderr, PROG ": interrupted by signal %d\n", (int)interrupted);
			rc = 130;
		}
		if (o.json)
			print_json(&o, &rp);
		else
			print_text(&o, &rp);
	}
	for (int k = 0; k < N_KINDS; k++)
		strv_clear(&av[k]);
	strv_clear(&rp.cg.ours);
	strv_clear(&rp.cg.others);
	workspace_remove(&w);
	free(o.cage);
	free(o.bwrap);
	return rc;
}
