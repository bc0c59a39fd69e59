/*
 * cgroup.c: one cgroup per sandbox, on cgroup v2, v1, or a mix of both.
 *
 * Sections:
 *   files      read/write helpers whose errors name the file, the value and the reason
 *   discovery  where each hierarchy is mounted (/proc/self/mountinfo) and where the caller (or
 *              another process) is in it (/proc/self/cgroup, /proc/PID/cgroup)
 *   choice     per resource: v2 when its controller is enabled, or can be enabled, in the
 *              caller's v2 cgroup; else the v1 hierarchy that has it
 *   create     mkdir and limits, all or nothing
 *   open       find what create made, from where its directories are; attach; the
 *              CLONE_INTO_CGROUP fd
 *   stats, freeze
 *   destroy    kill what is left (no freeze when nothing is), rmdir every directory
 */
#include "cgroup.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"

#define CPU_PERIOD_US 100000ULL
#define FREEZE_TIMEOUT_NS (5 * 1000000000LL)
#define DESTROY_TIMEOUT_NS (2 * 1000000000LL)
#define POLL_NS (5 * 1000000L)
#define READ_MAX                                                                                   \
	(8u << 20) /* cgroup.procs of 4M pids would be ~32 MiB; pids.max keeps it small            \
		    */

/* The v1 controller behind each resource (v2 has no controller for the freezer or cpu.stat). */
static const char *const res_v1_name[NB_CGROUP_N_RES] = {
	[NB_CGROUP_MEMORY] = "memory",	 [NB_CGROUP_CPU] = "cpu",	  [NB_CGROUP_PIDS] = "pids",
	[NB_CGROUP_FREEZER] = "freezer", [NB_CGROUP_CPUACCT] = "cpuacct",
};

/* One directory we create: a hierarchy can serve several resources (v2, or cpu,cpuacct). */
struct cg_dir {
	char *path;  /* absolute directory */
	char *rel;   /* the same cgroup as /proc/PID/cgroup shows it */
	char *ctrls; /* v1: the controller field of that hierarchy's /proc/PID/cgroup line; v2: ""
		      */
	char *hier;  /* mountinfo major:minor of the hierarchy, to find shared ones */
	bool v2;
	bool created; /* destroy's to empty and remove: made by create, or found by open */
};

struct nb_cgroup {
	struct cg_dir dir[NB_CGROUP_N_RES];
	size_t n_dir;
	int res[NB_CGROUP_N_RES]; /* index into dir[] */
	int v2_fd;
	const char *mode;
	char *desc;
};

/* ---- files ---- */

static int64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
nap(void)
{
	struct timespec ts = { 0, POLL_NS };
	nanosleep(&ts, NULL);
}

static int
join(char *buf, size_t size, const char *dir, const char *file, struct nb_err *e)
{
	int n = snprintf(buf, size, "%s/%s", dir, file);
	if (n < 0 || (size_t)n >= size)
		return nb_err_set(e, ENAMETOOLONG, "cgroup: %s/%s: path too long", dir, file);
	return 0;
}

/*
 * Writes @val to @dir/@file in one write(2), as cgroupfs wants. -ENOENT is returned without
 * touching @e when @optional, so callers can skip files this kernel does not have.
 */
static int
write_file(const char *dir, const char *file, const char *val, bool optional, struct nb_err *e)
{
	char path[PATH_MAX];
	int r = join(path, sizeof(path), dir, file, e);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		if (optional && errno == ENOENT)
			return -ENOENT;
		return nb_err_setp(e, errno, "cgroup: %s: open", path);
	}
	size_t len = strlen(val);
	ssize_t w = write(fd, val, len);
	if (w < 0)
		return nb_err_setp(e, errno, "cgroup: %s: write %s", path, val);
	if ((size_t)w != len)
		return nb_err_set(e, EIO, "cgroup: %s: write %s: short write", path, val);
	return 0;
}

/* For the optional variants: a file this kernel does not have is not an error. */
static int
absent_ok(int r)
{
	return r == -ENOENT ? 0 : r;
}

static int
write_u64(const char *dir, const char *file, uint64_t v, bool optional, struct nb_err *e)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return write_file(dir, file, buf, optional, e);
}

/* Reads a whole file into a NUL-terminated heap string. -ENOENT untouched @e when @optional. */
static int
read_path(const char *path, char **out, bool optional, struct nb_err *e)
{
	*out = NULL;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (optional && errno == ENOENT)
			return -ENOENT;
		return nb_err_setp(e, errno, "cgroup: %s: open", path);
	}
	size_t cap = 4096, len = 0;
	_cleanup_free_ char *buf = malloc(cap);
	if (!buf)
		return nb_err_set(e, ENOMEM, "cgroup: %s: out of memory", path);
	for (;;) {
		if (len + 1 >= cap) {
			if (cap >= READ_MAX)
				return nb_err_set(e, EFBIG, "cgroup: %s: larger than %u bytes",
						  path, READ_MAX);
			char *n = realloc(buf, cap * 2);
			if (!n)
				return nb_err_set(e, ENOMEM, "cgroup: %s: out of memory", path);
			buf = n;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return nb_err_setp(e, errno, "cgroup: %s: read", path);
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = steal_ptr(&buf);
	return 0;
}

static int
read_file(const char *dir, const char *file, char **out, bool optional, struct nb_err *e)
{
	char path[PATH_MAX];
	int r = join(path, sizeof(path), dir, file, e);
	if (r < 0)
		return r;
	return read_path(path, out, optional, e);
}

/* Parses a file holding one decimal number. */
static int
read_u64(const char *dir, const char *file, uint64_t *v, bool optional, struct nb_err *e)
{
	_cleanup_free_ char *s = NULL;
	int r = read_file(dir, file, &s, optional, e);
	if (r < 0)
		return r;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno || end == s || (*end != '\n' && *end != '\0'))
		return nb_err_set(e, EIO, "cgroup: %s/%s: not a number: %.32s", dir, file, s);
	*v = x;
	return 0;
}

/* Finds "KEY VALUE" lines (memory.events, cpu.stat, memory.oom_control). */
static int
read_keyed_u64(const char *dir, const char *file, const char *key, uint64_t *v, struct nb_err *e)
{
	_cleanup_free_ char *s = NULL;
	int r = read_file(dir, file, &s, false, e);
	if (r < 0)
		return r;
	size_t kl = strlen(key);
	for (char *line = s; line;) {
		if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
			*v = strtoull(line + kl + 1, NULL, 10);
			return 0;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return nb_err_set(e, ENOENT, "cgroup: %s/%s: no \"%s\" field (kernel too old?)", dir, file,
			  key);
}

/* Whether the space- or comma-separated @list holds @word. */
static bool
has_word(const char *list, const char *word, char sep)
{
	size_t wl = strlen(word);
	for (const char *p = list; p && *p;) {
		const char *end = strchr(p, sep);
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n > 0 && p[n - 1] == '\n')
			n--;
		if (n == wl && strncmp(p, word, wl) == 0)
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

/* ---- discovery ---- */

/* Where the caller is in one hierarchy. */
struct hier {
	bool found;
	char *mnt;   /* where the hierarchy is mounted */
	char *root;  /* the cgroup the mount shows at @mnt (mountinfo ROOT; "/" for the whole tree)
		      */
	char *dir;   /* absolute path of the caller's cgroup */
	char *rel;   /* its path as /proc/self/cgroup shows it */
	char *ctrls; /* controller field of its /proc/self/cgroup line ("" for v2) */
	char *id;    /* mountinfo major:minor */
};

struct sys {
	struct hier v2;
	struct hier v1[NB_CGROUP_N_RES];
	pid_t pid;     /* whose cgroups: 0 for the caller */
	char proc[16]; /* "self" or the pid, for /proc/%s/... */
};

static void
hier_free(struct hier *h)
{
	free(h->mnt);
	free(h->root);
	free(h->dir);
	free(h->rel);
	free(h->ctrls);
	free(h->id);
	*h = (struct hier){ 0 };
}

static void
sys_free(struct sys *s)
{
	hier_free(&s->v2);
	for (size_t i = 0; i < NB_CGROUP_N_RES; i++)
		hier_free(&s->v1[i]);
}

/* Undoes mountinfo's octal escapes (\040 for a space, ...) in place. */
static void
unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

/*
 * The caller's cgroup seen through a mount of its hierarchy: @mnt + (@path minus the mount's
 * @root). NULL when the mount shows only another part of the tree (a bind of a subtree).
 */
static char *
dir_in_mount(const char *mnt, const char *root, const char *path)
{
	size_t rl = strcmp(root, "/") == 0 ? 0 : strlen(root);
	if (strncmp(path, root, rl) != 0 || (path[rl] != '\0' && path[rl] != '/'))
		return NULL;
	const char *rest = path + rl;
	if (strcmp(rest, "/") == 0)
		rest = "";
	char *d;
	if (asprintf(&d, "%s%s", mnt, rest) < 0)
		return NULL;
	return d;
}

static int
hier_set(struct hier *h, const char *mnt, const char *root, const char *id, const char *ctrls,
	 const char *path)
{
	/*
	 * A cgroup outside the reader's cgroup namespace shows as "/../..."; joined to the mount
	 * it would name a directory outside it. -EXDEV, and discover() decides what that means.
	 */
	if (strncmp(path, "/..", 3) == 0 && (path[3] == '\0' || path[3] == '/'))
		return -EXDEV;
	char *d = dir_in_mount(mnt, root, path);
	if (!d)
		return 0; /* try another mount of the same hierarchy */
	h->dir = d;
	h->mnt = strdup(mnt);
	h->root = strdup(root);
	h->rel = strdup(path);
	h->ctrls = strdup(ctrls);
	h->id = strdup(id);
	if (!h->mnt || !h->root || !h->rel || !h->ctrls || !h->id)
		return -ENOMEM;
	h->found = true;
	return 0;
}

struct self_line {
	char *ctrls;
	char *path;
	bool v2;
};

/* The state letter of /proc/@pid/stat ('R', 'S', 'Z', ...), or 0 when it cannot be read. */
static char
proc_state(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	_cleanup_free_ char *s = NULL;
	struct nb_err ign;
	if (read_path(path, &s, false, &ign) < 0)
		return 0;
	const char *rp = strrchr(s, ')'); /* the command name may hold anything, ')' too */
	return rp && rp[1] == ' ' ? rp[2] : 0;
}

/*
 * Reads /proc/@pid/cgroup (@pid 0: /proc/self/cgroup) into *@out. Why the care for another
 * process: a pidfd pins its pid, so the number cannot pass to another process while we read;
 * and once it has exited (a zombie) the kernel shows the root cgroup in v1 hierarchies, which
 * would send the caller to the wrong place, so that is refused.
 */
static int
read_proc_cgroup(pid_t pid, char **out, struct nb_err *e)
{
	if (pid == 0)
		return read_path("/proc/self/cgroup", out, false, e);
	_cleanup_close_ int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0 && errno != ENOSYS) /* kernel < 5.3: the pid is trusted as it is */
		return nb_err_setp(e, errno, "cgroup: pid %d", (int)pid);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	int r = read_path(path, out, true, e);
	if (r == -ENOENT)
		return nb_err_set(e, ESRCH, "cgroup: pid %d: No such process", (int)pid);
	if (r < 0)
		return r;
	char st = proc_state(pid);
	if (st == 'Z' || st == 'X' || st == 0) {
		free(*out);
		*out = NULL;
		return nb_err_set(e, ESRCH,
				  "cgroup: pid %d has exited; /proc/%d/cgroup no longer says where "
				  "it was",
				  (int)pid, (int)pid);
	}
	return 0;
}

/*
 * Finds every cgroup mount in the caller's /proc/self/mountinfo, and where process @pid (0: the
 * caller) is in each hierarchy according to /proc/PID/cgroup, which shows it as the caller's
 * cgroup namespace sees it.
 */
static int
discover(struct sys *s, pid_t pid, struct nb_err *e)
{
	_cleanup_free_ char *cg = NULL;
	int r = read_proc_cgroup(pid, &cg, e);
	if (r < 0)
		return r;
	s->pid = pid;
	if (pid)
		snprintf(s->proc, sizeof(s->proc), "%d", (int)pid);
	else
		snprintf(s->proc, sizeof(s->proc), "self");
	struct self_line lines[32];
	size_t n_lines = 0;
	for (char *save = NULL, *l = strtok_r(cg, "\n", &save); l && n_lines < NB_ARRAY_SIZE(lines);
	     l = strtok_r(NULL, "\n", &save)) {
		/* "ID:CONTROLLERS:PATH"; PATH may itself hold ':' */
		char *c1 = strchr(l, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c1 = *c2 = '\0';
		lines[n_lines++] = (struct self_line){ .ctrls = c1 + 1,
						       .path = c2 + 1,
						       .v2 = strcmp(l, "0") == 0 && !c1[1] };
	}

	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return nb_err_setp(e, errno, "cgroup: /proc/self/mountinfo");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS */
		char *fld[6], *save = NULL, *tok;
		size_t n = 0;
		for (tok = strtok_r(line, " \n", &save); tok && n < 6;
		     tok = strtok_r(NULL, " \n", &save))
			fld[n++] = tok;
		if (n < 6)
			continue;
		while (tok && strcmp(tok, "-") != 0)
			tok = strtok_r(NULL, " \n", &save);
		char *fstype = strtok_r(NULL, " \n", &save);
		char *source = strtok_r(NULL, " \n", &save);
		char *opts = strtok_r(NULL, " \n", &save);
		if (!fstype || !source || !opts)
			continue;
		char *id = fld[2], *root = fld[3], *mnt = fld[4];
		unescape(root);
		unescape(mnt);
		if (strcmp(fstype, "cgroup2") == 0) {
			for (size_t i = 0; i < n_lines && !s->v2.found && r >= 0; i++)
				if (lines[i].v2)
					r = hier_set(&s->v2, mnt, root, id, "", lines[i].path);
		} else if (strcmp(fstype, "cgroup") == 0) {
			for (size_t rs = 0; rs < NB_CGROUP_N_RES; rs++) {
				if (s->v1[rs].found || !has_word(opts, res_v1_name[rs], ','))
					continue;
				for (size_t i = 0; i < n_lines && !s->v1[rs].found && r >= 0; i++)
					if (!lines[i].v2 &&
					    has_word(lines[i].ctrls, res_v1_name[rs], ','))
						r = hier_set(&s->v1[rs], mnt, root, id,
							     lines[i].ctrls, lines[i].path);
			}
		}
		/*
		 * Such a hierarchy cannot be reached from here: create treats it as absent (it
		 * cannot make a cgroup there anyway); open refuses, as the creator's cgroups are
		 * out of the caller's sight.
		 */
		if (r == -EXDEV && pid == 0) {
			log_debug("cgroup: %s (%s): the caller's cgroup is outside its cgroup "
				  "namespace; hierarchy ignored",
				  mnt, fstype);
			r = 0;
		}
		if (r == -EXDEV)
			return nb_err_set(
				e, EXDEV,
				"cgroup: /proc/%s/cgroup: in a cgroup outside the caller's "
				"cgroup namespace (%s)",
				s->proc, mnt);
		if (r < 0)
			return nb_err_set(e, ENOMEM, "cgroup: out of memory");
	}
	return 0;
}

/* ---- choice ---- */

enum backend { BE_NONE, BE_V1, BE_V2 };

static const enum nb_cgroup_res limit_res[] = { NB_CGROUP_MEMORY, NB_CGROUP_CPU, NB_CGROUP_PIDS };

/* The kernel gives the initial cgroup namespace a fixed inode (PROC_CGROUP_INIT_INO). */
#define CGROUP_NS_INIT_INO 0xEFFFFFFBu

/* A v2 cgroup that could hold ours, and which limit controllers it can hand to a child. */
struct v2_parent {
	char *dir;	/* absolute directory; NULL when not tried */
	char *rel;	/* the same cgroup as /proc/PID/cgroup shows it */
	char label[96]; /* for messages: "in the caller's cgroup", ... */
	bool root;	/* the real root cgroup, exempt from "no internal processes" */
	bool ok[NB_CGROUP_N_RES];
	struct nb_err why[NB_CGROUP_N_RES]; /* where !ok: why not */
};

static void
parent_free(struct v2_parent *p)
{
	free(p->dir);
	free(p->rel);
}

/* A message without the "cgroup: " that write_file() and friends put in front. */
static const char *
bare(const struct nb_err *w)
{
	if (!w->msg[0])
		return "usable for it, but not for every controller the first choice has";
	return strncmp(w->msg, "cgroup: ", 8) == 0 ? w->msg + 8 : w->msg;
}

/* Gives every limit @p cannot serve (yet) the same reason. */
static void __attribute__((format(printf, 3, 4)))
parent_fail(struct v2_parent *p, int code, const char *fmt, ...)
{
	struct nb_err w;
	va_list ap;
	va_start(ap, fmt);
	nb_err_vset(&w, code, fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < NB_ARRAY_SIZE(limit_res); i++)
		if (!p->ok[limit_res[i]])
			p->why[limit_res[i]] = w;
}

/* Whether cgroup @dir holds a process itself (not counting its children); -errno if unknown. */
static int
holds_procs(const char *dir, struct nb_err *e)
{
	char path[PATH_MAX];
	int r = join(path, sizeof(path), dir, "cgroup.procs", e);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return nb_err_setp(e, errno, "cgroup: %s: open", path);
	char c;
	ssize_t n;
	while ((n = read(fd, &c, 1)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return nb_err_setp(e, errno, "cgroup: %s: read", path);
	return n > 0;
}

/*
 * Fills @p->ok and @p->why for memory, cpu and pids. Enabling a controller in @p's
 * cgroup.subtree_control is the one change made outside our own directories: cgroup v2 offers no
 * other way to hand a controller to a child. v2 allows it only in the root or a cgroup without
 * processes ("no internal processes"); we never move processes to make room. An enabled
 * controller is left enabled: other children may rely on it.
 */
static void
offer(struct v2_parent *p)
{
	_cleanup_free_ char *avail = NULL, *subtree = NULL;
	struct nb_err w = { 0 };
	int busy = 0;
	if (read_file(p->dir, "cgroup.controllers", &avail, false, &w) < 0 ||
	    read_file(p->dir, "cgroup.subtree_control", &subtree, false, &w) < 0 ||
	    (!p->root && (busy = holds_procs(p->dir, &w)) < 0)) {
		parent_fail(p, w.code, "%s", bare(&w));
		return;
	}
	for (size_t i = 0; i < NB_ARRAY_SIZE(limit_res); i++) {
		enum nb_cgroup_res rs = limit_res[i];
		const char *c = res_v1_name[rs];
		if (!has_word(avail, c, ' ')) {
			nb_err_set(&p->why[rs], ENOENT,
				   "%s/cgroup.controllers does not list it (the parent does not "
				   "enable it)",
				   p->dir);
			continue;
		}
		if (has_word(subtree, c, ' ')) {
			p->ok[rs] = true;
			continue;
		}
		/*
		 * Not even a try where processes are: the kernel refuses memory there (EBUSY), but
		 * takes cpu and pids, which are "threaded" controllers, and turns the cgroup into
		 * a thread root, whose new children cannot hold processes at all (EOPNOTSUPP). That
		 * would change the caller's cgroup (a systemd session scope, say) for nothing.
		 */
		if (busy) {
			nb_err_set(&p->why[rs], EBUSY,
				   "%s holds processes, so v2 lets it hand no controller to its "
				   "children, and %s is not in its cgroup.subtree_control",
				   p->dir, c);
			continue;
		}
		char plus[32];
		snprintf(plus, sizeof(plus), "+%s", c);
		int r = write_file(p->dir, "cgroup.subtree_control", plus, false, &p->why[rs]);
		if (r >= 0) {
			log_debug("cgroup: enabled %s in %s/cgroup.subtree_control", c, p->dir);
			p->ok[rs] = true;
		} else if (r == -EBUSY) {
			nb_err_set(&p->why[rs], EBUSY,
				   "%s/cgroup.subtree_control: write %s: Device or resource busy "
				   "(a process joined it: v2 lets only the root cgroup or one "
				   "without processes hand controllers to its children)",
				   p->dir, plus);
		}
	}
}

/* Whether @p serves every limit. */
static bool
serves_all(const struct v2_parent *p)
{
	for (size_t i = 0; i < NB_ARRAY_SIZE(limit_res); i++)
		if (!p->ok[limit_res[i]])
			return false;
	return true;
}

/* Whether @b serves every limit @a serves, and more. */
static bool
serves_more(const struct v2_parent *b, const struct v2_parent *a)
{
	bool more = false;
	for (size_t i = 0; i < NB_ARRAY_SIZE(limit_res); i++) {
		enum nb_cgroup_res rs = limit_res[i];
		if (a->ok[rs] && !b->ok[rs])
			return false;
		more |= b->ok[rs] && !a->ok[rs];
	}
	return more;
}

/*
 * Whether /proc/@proc ("self" or a pid) is in the initial cgroup namespace (a kernel without
 * cgroup namespaces: yes).
 */
static bool
in_init_cgroupns(const char *proc)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%s/ns/cgroup", proc);
	struct stat st;
	if (stat(path, &st) < 0)
		return errno == ENOENT && strcmp(proc, "self") == 0;
	return st.st_ino == CGROUP_NS_INIT_INO;
}

/*
 * Why the fallback parent cannot serve the process @s describes, or NULL; the caller's euid is
 * for try_nullbox() to judge. Only in the initial cgroup namespace, with the whole tree mounted,
 * is the mount's root the real root cgroup, the one exempt from "no internal processes", and it
 * belongs to the host's administrator. In a cgroup namespace (a container) it is an ordinary
 * cgroup holding the container's processes.
 */
static const char *
fallback_refused(const struct sys *s)
{
	if (!in_init_cgroupns("self"))
		return "the caller is in a cgroup namespace, whose root is not the real root cgroup";
	if (s->pid && !in_init_cgroupns(s->proc))
		return "the process is in a cgroup namespace, whose root is not the real root cgroup";
	if (strcmp(s->v2.root, "/") != 0)
		return "the cgroup2 mount shows only a subtree, not the root";
	if (strcmp(s->v2.rel, "/") == 0)
		return s->pid ? "the process's cgroup is the root"
			      : "the caller's cgroup is the root";
	return NULL;
}

/*
 * The fallback parent <v2 mount>/nullbox (see cgroup.h for why it exists): made if missing,
 * mode 0755, and left in place. Tried only when the caller's cgroup @first serves some limit
 * badly, and touches nothing unless the root offers a controller @first could not hand out. Then
 * the controllers the root offers are enabled in the root's cgroup.subtree_control (the root is
 * exempt from "no internal processes", so this works with processes in it, as systemd's are) and
 * in nullbox's. nullbox never holds a process: nothing is ever attached to it, and once a
 * controller is enabled in its subtree_control the kernel refuses processes there anyway.
 * Fills @fb, and sets fb->dir only when the directory is there to be used.
 */
static void
try_nullbox(const struct sys *s, const struct v2_parent *first, struct v2_parent *fb)
{
	/*
	 * Only root, and only where fallback_refused() finds nothing to object: a caller without
	 * root was delegated a subtree and must stay inside it.
	 */
	const char *no = NULL;
	char euid[64];
	if (geteuid() != 0) {
		snprintf(euid, sizeof(euid), "the caller is not root (euid %u)",
			 (unsigned)geteuid());
		no = euid;
	} else {
		no = fallback_refused(s);
	}
	if (no) {
		parent_fail(fb, EPERM, "not tried: %s", no);
		return;
	}

	const char *mnt = s->v2.mnt;
	_cleanup_free_ char *avail = NULL, *subtree = NULL;
	struct nb_err w = { 0 };
	if (read_file(mnt, "cgroup.controllers", &avail, false, &w) < 0 ||
	    read_file(mnt, "cgroup.subtree_control", &subtree, false, &w) < 0) {
		parent_fail(fb, w.code, "%s", bare(&w));
		return;
	}
	bool gain = false;
	for (size_t i = 0; i < NB_ARRAY_SIZE(limit_res); i++) {
		enum nb_cgroup_res rs = limit_res[i];
		if (has_word(avail, res_v1_name[rs], ' '))
			gain |= !first->ok[rs];
		else
			nb_err_set(&fb->why[rs], ENOENT,
				   "%s/cgroup.controllers does not list it (it is on v1, or not in "
				   "this kernel)",
				   mnt);
	}
	if (!gain)
		return; /* each limit the caller lacks has its "does not list it" above */

	struct nb_err root_err[NB_CGROUP_N_RES] = { 0 };
	for (size_t i = 0; i < NB_ARRAY_SIZE(limit_res); i++) {
		const char *c = res_v1_name[limit_res[i]];
		if (!has_word(avail, c, ' ') || has_word(subtree, c, ' '))
			continue;
		char plus[32];
		snprintf(plus, sizeof(plus), "+%s", c);
		if (write_file(mnt, "cgroup.subtree_control", plus, false,
			       &root_err[limit_res[i]]) >= 0)
			log_debug("cgroup: enabled %s in %s/cgroup.subtree_control", c, mnt);
	}

	char dir[PATH_MAX];
	if (join(dir, sizeof(dir), mnt, NB_CGROUP_FALLBACK_PARENT, &w) < 0) {
		parent_fail(fb, w.code, "%s", bare(&w));
		return;
	}
	if (mkdir(dir, 0755) == 0) {
		/* 0755 whatever the umask: tools that list sandboxes need not be root. */
		if (chmod(dir, 0755) < 0)
			log_debug("cgroup: %s: chmod 0755: %m", dir);
		log_debug("cgroup: made %s", dir);
	} else if (errno != EEXIST) {
		parent_fail(fb, errno, "%s: mkdir: %s", dir, strerror(errno));
		return;
	}
	fb->dir = strdup(dir);
	fb->rel = strdup("/" NB_CGROUP_FALLBACK_PARENT);
	if (!fb->dir || !fb->rel) {
		parent_fail(fb, ENOMEM, "out of memory");
		return;
	}
	offer(fb);
	/* A controller the root could not enable is missing below it: say why, not that. */
	for (size_t rs = 0; rs < NB_CGROUP_N_RES; rs++)
		if (!fb->ok[rs] && root_err[rs].code)
			fb->why[rs] = root_err[rs];
}

/*
 * NB_CGROUP_PARENT_ENV, when set: the v2 parent to use instead of the caller's cgroup. It must
 * resolve to an existing directory of the cgroup2 mount found by discover(); ".." and symlinks
 * are resolved first, so it cannot point outside it. Fills @p->dir and @p->rel.
 */
static int
parent_from_env(const struct sys *s, const char *env, struct v2_parent *p, struct nb_err *e)
{
	const char *n = NB_CGROUP_PARENT_ENV;
	if (!s->v2.found)
		return nb_err_set(e, ENOENT,
				  "cgroup: %s=%s: no cgroup2 mount in /proc/self/mountinfo", n,
				  env);
	if (env[0] != '/')
		return nb_err_set(e, EINVAL, "cgroup: %s=%s: not an absolute path", n, env);
	_cleanup_free_ char *rp = realpath(env, NULL);
	struct stat st;
	if (!rp || stat(rp, &st) < 0)
		return nb_err_setp(e, errno, "cgroup: %s=%s", n, env);
	if (!S_ISDIR(st.st_mode))
		return nb_err_set(e, ENOTDIR, "cgroup: %s=%s: not a directory", n, env);
	const char *mnt = s->v2.mnt;
	size_t ml = strcmp(mnt, "/") == 0 ? 0 : strlen(mnt);
	if (strncmp(rp, mnt, ml) != 0 || (rp[ml] != '\0' && rp[ml] != '/'))
		return nb_err_set(e, EINVAL, "cgroup: %s=%s: %s is not inside the cgroup2 mount %s",
				  n, env, rp, mnt);
	struct statfs sf;
	if (statfs(rp, &sf) < 0)
		return nb_err_setp(e, errno, "cgroup: %s=%s: statfs", n, env);
	if (sf.f_type != CGROUP2_SUPER_MAGIC)
		return nb_err_set(e, EINVAL,
				  "cgroup: %s=%s: not a cgroup2 directory (another file system is "
				  "mounted there)",
				  n, env);
	const char *rest = rp + ml;
	const char *root = strcmp(s->v2.root, "/") == 0 ? "" : s->v2.root;
	if (asprintf(&p->rel, "%s%s", root, rest) < 0) {
		p->rel = NULL;
		return nb_err_set(e, ENOMEM, "cgroup: out of memory");
	}
	if (!p->rel[0]) {
		free(p->rel);
		p->rel = strdup("/");
	}
	p->dir = steal_ptr(&rp);
	if (!p->rel)
		return nb_err_set(e, ENOMEM, "cgroup: out of memory");
	return 0;
}

/*
 * Picks v2 or v1 for memory, cpu and pids, and the v2 parent: NB_CGROUP_PARENT_ENV when set,
 * else the caller's cgroup, else (try_nullbox()) <v2 mount>/nullbox when that serves more. A limit
 * the chosen v2 parent cannot serve goes to its v1 hierarchy; without one the call fails saying
 * everything that was tried. On return s->v2.dir and s->v2.rel name the chosen v2 parent.
 */
static int
choose_limits(struct sys *s, enum backend be[NB_CGROUP_N_RES], struct nb_err *e)
{
	_cleanup_(parent_free) struct v2_parent first = { 0 }, fb = { 0 };
	bool use_fb = false;
	/*
	 * secure_getenv: a setuid or file-capability caller must not let whoever runs it choose
	 * where its cgroups go, and so which limits above them apply.
	 */
	const char *env = secure_getenv(NB_CGROUP_PARENT_ENV);
	if (env && *env) {
		int r = parent_from_env(s, env, &first, e);
		if (r < 0)
			return r;
		snprintf(first.label, sizeof(first.label), "in %s", NB_CGROUP_PARENT_ENV);
		first.root = strcmp(first.rel, "/") == 0 && in_init_cgroupns("self");
		offer(&first);
		parent_fail(&fb, EPERM, "not tried: %s is set", NB_CGROUP_PARENT_ENV);
	} else if (s->v2.found) {
		first.dir = strdup(s->v2.dir);
		first.rel = strdup(s->v2.rel);
		if (!first.dir || !first.rel)
			return nb_err_set(e, ENOMEM, "cgroup: out of memory");
		snprintf(first.label, sizeof(first.label), "in the caller's cgroup");
		first.root = strcmp(first.rel, "/") == 0 && in_init_cgroupns("self");
		offer(&first);
		if (!serves_all(&first)) {
			try_nullbox(s, &first, &fb);
			use_fb = fb.dir && serves_more(&fb, &first);
		}
	}
	if (s->v2.found)
		snprintf(fb.label, sizeof(fb.label), "under %.64s/%s", s->v2.mnt,
			 NB_CGROUP_FALLBACK_PARENT);
	struct v2_parent *p = use_fb ? &fb : &first;
	if (use_fb)
		log_debug(
			"cgroup: the caller's cgroup %s cannot hand out every controller; using %s",
			first.dir, fb.dir);

	for (size_t i = 0; i < NB_ARRAY_SIZE(limit_res); i++) {
		enum nb_cgroup_res rs = limit_res[i];
		const char *c = res_v1_name[rs];
		if (p->ok[rs]) {
			be[rs] = BE_V2;
			continue;
		}
		if (s->v1[rs].found) {
			if (s->v2.found)
				log_debug("cgroup: %s on v1 (v2 %s: %s; v2 %s: %s)", c, first.label,
					  bare(&first.why[rs]), fb.label, bare(&fb.why[rs]));
			be[rs] = BE_V1;
			continue;
		}
		if (!s->v2.found)
			return nb_err_set(e, ENOENT,
					  "cgroup: no %s controller: no cgroup2 mount and no v1 %s "
					  "hierarchy in /proc/self/mountinfo; mount one of them",
					  c, c);
		return nb_err_set(e, first.why[rs].code ? first.why[rs].code : ENOENT,
				  "cgroup: no %s controller: v2 %s: %s; v2 %s: %s; v1: no %s "
				  "hierarchy mounted. Run as root outside any cgroup namespace, or "
				  "set %s to a delegated v2 cgroup that holds no processes",
				  c, first.label, bare(&first.why[rs]), fb.label, bare(&fb.why[rs]),
				  c, NB_CGROUP_PARENT_ENV);
	}

	/*
	 * The freezer and CPU accounting come with any v2 cgroup; use v2 when one exists anyway,
	 * else prefer v1 so a pure v1 machine stays pure v1.
	 */
	bool any_v2 = be[NB_CGROUP_MEMORY] == BE_V2 || be[NB_CGROUP_CPU] == BE_V2 ||
		      be[NB_CGROUP_PIDS] == BE_V2;
	static const enum nb_cgroup_res core[] = { NB_CGROUP_FREEZER, NB_CGROUP_CPUACCT };
	for (size_t i = 0; i < NB_ARRAY_SIZE(core); i++) {
		enum nb_cgroup_res rs = core[i];
		if (any_v2)
			be[rs] = BE_V2;
		else if (s->v1[rs].found)
			be[rs] = BE_V1;
		else if (s->v2.found)
			be[rs] = BE_V2;
		else
			return nb_err_set(
				e, ENOENT,
				"cgroup: no %s: no v1 %s hierarchy and no cgroup2 mount in "
				"/proc/self/mountinfo",
				rs == NB_CGROUP_FREEZER ? "freezer" : "CPU accounting",
				res_v1_name[rs]);
	}
	if (s->v2.found) {
		free(s->v2.dir);
		free(s->v2.rel);
		s->v2.dir = steal_ptr(&p->dir);
		s->v2.rel = steal_ptr(&p->rel);
	}
	return 0;
}

/* ---- create ---- */

static int
check_name(const char *name, struct nb_err *e)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > NB_CGROUP_NAME_MAX)
		return nb_err_set(e, EINVAL, "cgroup: name must be 1..%d characters",
				  NB_CGROUP_NAME_MAX);
	/*
	 * The name becomes a path component in cgroupfs: no '/', no "." or "..", and no leading
	 * '.' or '-', so it can name neither another directory nor an interface file's prefix
	 * trick.
	 */
	if (!isalnum((unsigned char)name[0]))
		return nb_err_set(e, EINVAL,
				  "cgroup: name \"%.*s\": must start with a letter or digit",
				  NB_CGROUP_NAME_MAX, name);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!isalnum(c) && c != '_' && c != '.' && c != '-')
			return nb_err_set(
				e, EINVAL,
				"cgroup: name \"%.*s\": character 0x%02x not in [A-Za-z0-9_.-]",
				NB_CGROUP_NAME_MAX, name, c);
	}
	return 0;
}

static int
check_limits(const struct nb_cgroup_limits *lim, struct nb_err *e)
{
	if (!lim)
		return nb_err_set(e, EINVAL, "cgroup: no limits given");
	if (lim->memory_bytes == 0)
		return nb_err_set(e, EINVAL, "cgroup: memory limit must be > 0");
	if (lim->max_pids == 0)
		return nb_err_set(e, EINVAL, "cgroup: pids limit must be > 0");
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	if (lim->cpu_percent == 0 || lim->cpu_percent > 100ULL * (unsigned long)ncpu)
		return nb_err_set(e, EINVAL,
				  "cgroup: cpu percent %" PRIu32 " not in 1..%ld (%ld CPUs)",
				  lim->cpu_percent, 100 * ncpu, ncpu);
	return 0;
}

static void
cg_free(struct nb_cgroup *cg)
{
	if (!cg)
		return;
	for (size_t i = 0; i < cg->n_dir; i++) {
		free(cg->dir[i].path);
		free(cg->dir[i].rel);
		free(cg->dir[i].ctrls);
		free(cg->dir[i].hier);
	}
	if (cg->v2_fd >= 0)
		close(cg->v2_fd);
	free(cg->desc);
	free(cg);
}

static void
cg_freep(struct nb_cgroup **cg)
{
	cg_free(*cg);
}

/* Adds (or finds) the directory in hierarchy @h that will serve resource @rs. */
static int
add_dir(struct nb_cgroup *cg, enum nb_cgroup_res rs, const struct hier *h, bool v2,
	const char *name)
{
	for (size_t i = 0; i < cg->n_dir; i++) {
		if (cg->dir[i].v2 == v2 && strcmp(cg->dir[i].hier, h->id) == 0) {
			cg->res[rs] = (int)i;
			return 0;
		}
	}
	struct cg_dir *d = &cg->dir[cg->n_dir];
	const char *slash = strcmp(h->rel, "/") == 0 ? "" : "/";
	if (asprintf(&d->path, "%s/%s", h->dir, name) < 0) {
		d->path = NULL;
		return -ENOMEM;
	}
	cg->n_dir++; /* from here cg_free() owns what is set */
	if (asprintf(&d->rel, "%s%s%s", h->rel, slash, name) < 0) {
		d->rel = NULL;
		return -ENOMEM;
	}
	d->ctrls = strdup(h->ctrls);
	d->hier = strdup(h->id);
	if (!d->ctrls || !d->hier)
		return -ENOMEM;
	d->v2 = v2;
	cg->res[rs] = (int)cg->n_dir - 1;
	return 0;
}

static const struct cg_dir *
res_dir(const struct nb_cgroup *cg, enum nb_cgroup_res rs)
{
	return &cg->dir[cg->res[rs]];
}

static int
write_limits(struct nb_cgroup *cg, const struct nb_cgroup_limits *lim, struct nb_err *e)
{
	const struct cg_dir *d = res_dir(cg, NB_CGROUP_MEMORY);
	int r;
	/* No swap on top of the limit: an agent must not push its memory out to the host's disk. */
	if (d->v2) {
		r = write_u64(d->path, "memory.max", lim->memory_bytes, false, e);
		if (r >= 0)
			r = absent_ok(write_file(d->path, "memory.swap.max", "0", true, e));
	} else {
		r = write_u64(d->path, "memory.limit_in_bytes", lim->memory_bytes, false, e);
		if (r >= 0)
			r = absent_ok(write_u64(d->path, "memory.memsw.limit_in_bytes",
						lim->memory_bytes, true, e));
		if (r >= 0) {
			/* Best effort: older kernels refuse it below a hierarchy; memsw already
			 * rules. */
			struct nb_err ign;
			if (absent_ok(write_file(d->path, "memory.swappiness", "0", true, &ign)) <
			    0)
				log_debug("%s", ign.msg);
		}
	}
	if (r < 0)
		return r;

	uint64_t quota = (uint64_t)lim->cpu_percent * CPU_PERIOD_US / 100;
	d = res_dir(cg, NB_CGROUP_CPU);
	if (d->v2) {
		char buf[64];
		snprintf(buf, sizeof(buf), "%" PRIu64 " %llu", quota, CPU_PERIOD_US);
		r = write_file(d->path, "cpu.max", buf, false, e);
	} else {
		r = write_u64(d->path, "cpu.cfs_period_us", CPU_PERIOD_US, false, e);
		if (r >= 0)
			r = write_u64(d->path, "cpu.cfs_quota_us", quota, false, e);
	}
	if (r < 0)
		return r;

	return write_u64(res_dir(cg, NB_CGROUP_PIDS)->path, "pids.max", lim->max_pids, false, e);
}

static int
describe(struct nb_cgroup *cg)
{
	size_t v1 = 0, v2 = 0;
	for (size_t rs = 0; rs < NB_CGROUP_N_RES; rs++)
		if (res_dir(cg, rs)->v2)
			v2++;
		else
			v1++;
	cg->mode = v1 == 0 ? "v2" : v2 == 0 ? "v1" : "mixed";

	_cleanup_free_ char *s = NULL;
	size_t len = 0;
	_cleanup_fclose_ FILE *f = open_memstream(&s, &len);
	if (!f)
		return -ENOMEM;
	for (size_t i = 0; i < cg->n_dir; i++) {
		fprintf(f, "%s%s %s (", i ? "; " : "", cg->dir[i].v2 ? "v2" : "v1",
			cg->dir[i].path);
		const char *sep = "";
		for (size_t rs = 0; rs < NB_CGROUP_N_RES; rs++) {
			if (cg->res[rs] == (int)i) {
				fprintf(f, "%s%s", sep, res_v1_name[rs]);
				sep = " ";
			}
		}
		fputc(')', f);
	}
	if (fclose(f) != 0) {
		f = NULL;
		return -ENOMEM;
	}
	f = NULL;
	cg->desc = steal_ptr(&s);
	return 0;
}

/* Removes the directories this process created, newest first. Returns the first error. */
static int
remove_dirs(struct nb_cgroup *cg, int64_t deadline, struct nb_err *e)
{
	int ret = 0;
	for (size_t i = cg->n_dir; i-- > 0;) {
		struct cg_dir *d = &cg->dir[i];
		if (!d->created)
			continue;
		for (;;) {
			if (rmdir(d->path) == 0 || errno == ENOENT) {
				d->created = false;
				break;
			}
			/* EBUSY: a process is still on its way out (exiting, or in D state). */
			if (errno == EBUSY && now_ns() < deadline) {
				nap();
				continue;
			}
			int err = errno;
			if (ret == 0)
				ret = nb_err_setp(e, err, "cgroup: %s: rmdir", d->path);
			break;
		}
	}
	return ret;
}

int
nb_cgroup_create(const char *name, const struct nb_cgroup_limits *lim, struct nb_cgroup **out,
		 struct nb_err *e)
{
	*out = NULL;
	int r = check_name(name, e);
	if (r < 0)
		return r;
	r = check_limits(lim, e);
	if (r < 0)
		return r;

	_cleanup_(sys_free) struct sys s = { 0 };
	r = discover(&s, 0, e);
	if (r < 0)
		return r;
	enum backend be[NB_CGROUP_N_RES] = { 0 };
	r = choose_limits(&s, be, e);
	if (r < 0)
		return r;

	_cleanup_(cg_freep) struct nb_cgroup *cg = calloc(1, sizeof(*cg));
	if (!cg)
		return nb_err_set(e, ENOMEM, "cgroup: out of memory");
	cg->v2_fd = -1;
	for (size_t rs = 0; rs < NB_CGROUP_N_RES; rs++) {
		bool v2 = be[rs] == BE_V2;
		if (add_dir(cg, rs, v2 ? &s.v2 : &s.v1[rs], v2, name) < 0)
			return nb_err_set(e, ENOMEM, "cgroup: out of memory");
	}

	for (size_t i = 0; i < cg->n_dir && r >= 0; i++) {
		/*
		 * An existing directory is refused, never adopted: it could hold someone else's
		 * processes or looser limits, and removing it later would not be ours to do.
		 */
		if (mkdir(cg->dir[i].path, 0755) < 0)
			r = nb_err_setp(e, errno, "cgroup: %s: mkdir", cg->dir[i].path);
		else
			cg->dir[i].created = true;
	}
	if (r >= 0)
		r = write_limits(cg, lim, e);
	if (r >= 0 && cg->n_dir == 1 && cg->dir[0].v2) {
		cg->v2_fd = open(cg->dir[0].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cg->v2_fd < 0)
			r = nb_err_setp(e, errno, "cgroup: %s: open", cg->dir[0].path);
	}
	if (r >= 0 && describe(cg) < 0)
		r = nb_err_set(e, ENOMEM, "cgroup: out of memory");
	if (r < 0) {
		struct nb_err ign;
		if (remove_dirs(cg, now_ns() + DESTROY_TIMEOUT_NS, &ign) < 0)
			log_warn("%s", ign.msg);
		return r;
	}
	log_debug("cgroup: created %s", cg->desc);
	*out = steal_ptr(&cg);
	return 0;
}

/* ---- open ---- */

/* Whether @path is a directory: 1, 0 when there is nothing there, or -errno with @e set. */
static int
dir_exists(const char *path, struct nb_err *e)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return errno == ENOENT ? 0 : nb_err_setp(e, errno, "cgroup: %s: stat", path);
	if (!S_ISDIR(st.st_mode))
		return nb_err_set(e, ENOTDIR, "cgroup: %s: not a directory", path);
	return 1;
}

/* Where open looked on v2, for its -ENOENT message. */
struct v2_seen {
	char where[320]; /* "v2: not in /a/x, /sys/fs/cgroup/nullbox/x", "v2: no cgroup2 mount" */
	bool found;
};

static void
seen_add(struct v2_seen *w, const char *dir, const char *name)
{
	size_t n = strlen(w->where);
	snprintf(w->where + n, sizeof(w->where) - n, "%s%s/%s", n ? ", " : "v2: not in ", dir,
		 name);
}

/*
 * The v2 parent of the cgroup @name, as choose_limits() would have picked it, judged by where
 * <parent>/@name exists: NB_CGROUP_PARENT_ENV alone when set; else the process's own cgroup,
 * then the fallback parent (only where fallback_refused() allows it; the caller's euid does not
 * matter, as one without root may still read the stats). On success s->v2.dir and s->v2.rel
 * name the parent and w->found is set; with no such directory w->found stays false.
 */
static int
find_v2(struct sys *s, const char *name, struct v2_seen *w, struct nb_err *e)
{
	_cleanup_(parent_free) struct v2_parent c0 = { 0 }, c1 = { 0 };
	struct v2_parent *cand[] = { &c0, &c1 };
	size_t n = 0;
	const char *env = secure_getenv(NB_CGROUP_PARENT_ENV);
	if (env && *env) {
		int r = parent_from_env(s, env, cand[n++], e);
		if (r < 0)
			return r;
	} else if (!s->v2.found) {
		snprintf(w->where, sizeof(w->where), "v2: no cgroup2 mount");
		return 0;
	} else {
		cand[n]->dir = strdup(s->v2.dir);
		cand[n++]->rel = strdup(s->v2.rel);
		if (!fallback_refused(s)) {
			if (asprintf(&cand[n]->dir, "%s/%s", s->v2.mnt, NB_CGROUP_FALLBACK_PARENT) <
			    0)
				cand[n]->dir = NULL;
			cand[n++]->rel = strdup("/" NB_CGROUP_FALLBACK_PARENT);
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!cand[i]->dir || !cand[i]->rel)
			return nb_err_set(e, ENOMEM, "cgroup: out of memory");
		char path[PATH_MAX];
		int r = join(path, sizeof(path), cand[i]->dir, name, e);
		if (r >= 0)
			r = dir_exists(path, e);
		if (r < 0)
			return r;
		seen_add(w, cand[i]->dir, name);
		if (r > 0) {
			free(s->v2.dir);
			free(s->v2.rel);
			s->v2.dir = steal_ptr(&cand[i]->dir);
			s->v2.rel = steal_ptr(&cand[i]->rel);
			w->found = true;
			return 0;
		}
	}
	return 0;
}

/*
 * Which hierarchy serves each resource of the cgroup @name: the answer choose_limits() gave
 * create, read back from the directories it left. A limit is on v2 when the v2 directory exists
 * and its cgroup.controllers lists the controller (create put it there only when its parent
 * handed that controller down, and a controller is never on v1 and v2 at once); otherwise on its
 * v1 hierarchy. The freezer and CPU accounting follow create's rule: v2 when any limit is.
 */
static int
detect(const struct sys *s, const struct v2_seen *w, const char *name, const char *whose,
       enum backend be[NB_CGROUP_N_RES], struct nb_err *e)
{
	_cleanup_free_ char *ctrls = NULL;
	if (w->found) {
		char path[PATH_MAX];
		int r = join(path, sizeof(path), s->v2.dir, name, e);
		if (r >= 0)
			r = read_file(path, "cgroup.controllers", &ctrls, false, e);
		if (r < 0)
			return r;
	}
	bool any_v2 = false;
	for (size_t i = 0; i < NB_ARRAY_SIZE(limit_res); i++) {
		enum nb_cgroup_res rs = limit_res[i];
		if (ctrls && has_word(ctrls, res_v1_name[rs], ' ')) {
			be[rs] = BE_V2;
			any_v2 = true;
		} else if (s->v1[rs].found) {
			be[rs] = BE_V1;
		} else if (w->found) {
			return nb_err_set(
				e, ENOENT,
				"cgroup: no cgroup \"%s\" made by %s: %s/%s/cgroup.controllers "
				"does not list %s, and there is no v1 %s hierarchy",
				name, whose, s->v2.dir, name, res_v1_name[rs], res_v1_name[rs]);
		} else {
			return nb_err_set(
				e, ENOENT,
				"cgroup: no cgroup \"%s\" made by %s: %s; and there is no v1 "
				"%s hierarchy",
				name, whose, w->where, res_v1_name[rs]);
		}
	}
	static const enum nb_cgroup_res core[] = { NB_CGROUP_FREEZER, NB_CGROUP_CPUACCT };
	for (size_t i = 0; i < NB_ARRAY_SIZE(core); i++) {
		enum nb_cgroup_res rs = core[i];
		if (any_v2 || (!s->v1[rs].found && w->found))
			be[rs] = BE_V2;
		else if (s->v1[rs].found)
			be[rs] = BE_V1;
		else
			return nb_err_set(
				e, ENOENT,
				"cgroup: no cgroup \"%s\" made by %s: %s; and there is no v1 "
				"%s hierarchy",
				name, whose, w->where, res_v1_name[rs]);
	}
	return 0;
}

int
nb_cgroup_open(const char *name, pid_t creator, struct nb_cgroup **out, struct nb_err *e)
{
	*out = NULL;
	int r = check_name(name, e);
	if (r < 0)
		return r;
	if (creator < 0)
		return nb_err_set(e, EINVAL,
				  "cgroup: creator pid %d: must be > 0, or 0 for the caller",
				  (int)creator);
	char whose[32];
	if (creator)
		snprintf(whose, sizeof(whose), "pid %d", (int)creator);
	else
		snprintf(whose, sizeof(whose), "the caller");

	_cleanup_(sys_free) struct sys s = { 0 };
	r = discover(&s, creator, e);
	if (r < 0)
		return r;
	struct v2_seen w = { 0 };
	r = find_v2(&s, name, &w, e);
	if (r < 0)
		return r;
	enum backend be[NB_CGROUP_N_RES] = { 0 };
	r = detect(&s, &w, name, whose, be, e);
	if (r < 0)
		return r;

	_cleanup_(cg_freep) struct nb_cgroup *cg = calloc(1, sizeof(*cg));
	if (!cg)
		return nb_err_set(e, ENOMEM, "cgroup: out of memory");
	cg->v2_fd = -1;
	for (size_t rs = 0; rs < NB_CGROUP_N_RES; rs++) {
		bool v2 = be[rs] == BE_V2;
		if (add_dir(cg, rs, v2 ? &s.v2 : &s.v1[rs], v2, name) < 0)
			return nb_err_set(e, ENOMEM, "cgroup: out of memory");
	}
	for (size_t i = 0; i < cg->n_dir; i++) {
		struct cg_dir *d = &cg->dir[i];
		r = dir_exists(d->path, e);
		if (r < 0)
			return r;
		if (r == 0) {
			const char *sep = "";
			char what[64] = "";
			for (size_t rs = 0; rs < NB_CGROUP_N_RES; rs++) {
				if (cg->res[rs] != (int)i)
					continue;
				size_t n = strlen(what);
				snprintf(what + n, sizeof(what) - n, "%s%s", sep, res_v1_name[rs]);
				sep = " ";
			}
			return nb_err_set(e, ENOENT,
					  "cgroup: no cgroup \"%s\" made by %s: no %s (v1 %s)%s%s",
					  name, whose, d->path, what, w.found ? "" : "; ",
					  w.found ? "" : w.where);
		}
		/* Ours to empty and remove, should the caller destroy it; close leaves it. */
		d->created = true;
	}
	if (cg->n_dir == 1 && cg->dir[0].v2) {
		cg->v2_fd = open(cg->dir[0].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cg->v2_fd < 0)
			return nb_err_setp(e, errno, "cgroup: %s: open", cg->dir[0].path);
	}
	if (describe(cg) < 0)
		return nb_err_set(e, ENOMEM, "cgroup: out of memory");
	log_debug("cgroup: opened %s", cg->desc);
	*out = steal_ptr(&cg);
	return 0;
}

void
nb_cgroup_close(struct nb_cgroup *cg)
{
	cg_free(cg);
}

int
nb_cgroup_attach(struct nb_cgroup *cg, pid_t pid, struct nb_err *e)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%d", (int)pid);
	for (size_t i = 0; i < cg->n_dir; i++) {
		int r = write_file(cg->dir[i].path, "cgroup.procs", buf, false, e);
		if (r < 0)
			return r;
	}
	return 0;
}

int
nb_cgroup_v2_fd(const struct nb_cgroup *cg)
{
	return cg->v2_fd;
}

const char *
nb_cgroup_mode(const struct nb_cgroup *cg)
{
	return cg->mode;
}

const char *
nb_cgroup_describe(const struct nb_cgroup *cg)
{
	return cg->desc;
}

const char *
nb_cgroup_path(const struct nb_cgroup *cg, enum nb_cgroup_res res, bool *v2)
{
	if ((unsigned)res >= NB_CGROUP_N_RES)
		return NULL;
	if (v2)
		*v2 = res_dir(cg, res)->v2;
	return res_dir(cg, res)->path;
}

/* ---- stats, freeze ---- */

int
nb_cgroup_stats(const struct nb_cgroup *cg, struct nb_cgroup_stats *st, struct nb_err *e)
{
	*st = (struct nb_cgroup_stats){ 0 };
	const struct cg_dir *d = res_dir(cg, NB_CGROUP_MEMORY);
	int r;
	if (d->v2) {
		r = read_keyed_u64(d->path, "memory.events", "oom_kill", &st->oom_kills, e);
		if (r >= 0) {
			r = read_u64(d->path, "memory.peak", &st->memory_peak_bytes, true, e);
			if (r == -ENOENT)
				r = 0;
		}
	} else {
		r = read_keyed_u64(d->path, "memory.oom_control", "oom_kill", &st->oom_kills, e);
		if (r >= 0)
			r = read_u64(d->path, "memory.max_usage_in_bytes", &st->memory_peak_bytes,
				     false, e);
	}
	if (r < 0)
		return r;

	d = res_dir(cg, NB_CGROUP_CPUACCT);
	if (d->v2) {
		r = read_keyed_u64(d->path, "cpu.stat", "usage_usec", &st->cpu_usec, e);
	} else {
		uint64_t ns = 0;
		r = read_u64(d->path, "cpuacct.usage", &ns, false, e);
		st->cpu_usec = ns / 1000;
	}
	if (r < 0)
		return r;
	return read_u64(res_dir(cg, NB_CGROUP_PIDS)->path, "pids.current", &st->pids_current, false,
			e);
}

static int
freeze_write(const struct nb_cgroup *cg, bool frozen, struct nb_err *e)
{
	const struct cg_dir *d = res_dir(cg, NB_CGROUP_FREEZER);
	if (d->v2)
		return write_file(d->path, "cgroup.freeze", frozen ? "1" : "0", false, e);
	return write_file(d->path, "freezer.state", frozen ? "FROZEN" : "THAWED", false, e);
}

/* Sets *done when the kernel reports the freezer in state @frozen. */
static int
freeze_reached(const struct nb_cgroup *cg, bool frozen, bool *done, struct nb_err *e)
{
	const struct cg_dir *d = res_dir(cg, NB_CGROUP_FREEZER);
	if (d->v2) {
		uint64_t v = 0;
		int r = read_keyed_u64(d->path, "cgroup.events", "frozen", &v, e);
		*done = r >= 0 && v == (frozen ? 1 : 0);
		return r;
	}
	_cleanup_free_ char *s = NULL;
	int r = read_file(d->path, "freezer.state", &s, false, e);
	if (r < 0)
		return r;
	*done = strcmp(s, frozen ? "FROZEN\n" : "THAWED\n") == 0;
	return 0;
}

int
nb_cgroup_freeze(struct nb_cgroup *cg, bool frozen, struct nb_err *e)
{
	const struct cg_dir *d = res_dir(cg, NB_CGROUP_FREEZER);
	int64_t deadline = now_ns() + FREEZE_TIMEOUT_NS;
	for (;;) {
		/* v1 asks to write FROZEN again to retry tasks that could not be frozen yet. */
		int r = freeze_write(cg, frozen, e);
		bool done = false;
		if (r >= 0)
			r = freeze_reached(cg, frozen, &done, e);
		if (r < 0)
			return r;
		if (done)
			return 0;
		if (now_ns() >= deadline)
			break;
		nap();
	}
	if (frozen) {
		struct nb_err ign;
		if (freeze_write(cg, false, &ign) < 0)
			log_warn("%s", ign.msg);
	}
	return nb_err_set(e, ETIMEDOUT, "cgroup: %s: not %s after %lld s%s", d->path,
			  frozen ? "frozen" : "thawed", FREEZE_TIMEOUT_NS / 1000000000LL,
			  frozen ? " (a process stuck in the kernel?); thawed again" : "");
}

/* ---- destroy ---- */

/* Whether /proc/@pid/cgroup puts @pid in directory @d. */
static bool
pid_in_dir(pid_t pid, const struct cg_dir *d)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	_cleanup_free_ char *s = NULL;
	struct nb_err ign;
	if (read_path(path, &s, false, &ign) < 0)
		return false;
	for (char *save = NULL, *l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(l, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c1 = *c2 = '\0';
		bool v2 = strcmp(l, "0") == 0 && !c1[1];
		if (v2 == d->v2 && strcmp(c1 + 1, d->ctrls) == 0 && strcmp(c2 + 1, d->rel) == 0)
			return true;
	}
	return false;
}

/*
 * SIGKILLs @pid if it is (still) in @d. Why the care: we run as root and a pid read from
 * cgroup.procs may have exited and been reused by an unrelated process by the time we signal it.
 * A pidfd pins the process; checking membership after opening it and signalling through it
 * means we only ever kill a process that was in our cgroup.
 */
static void
kill_member(pid_t pid, const struct cg_dir *d)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0 && errno != ENOSYS)
		return; /* gone */
	if (pid_in_dir(pid, d)) {
		if (pfd >= 0)
			syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
		else
			kill(pid, SIGKILL); /* kernel < 5.3: the small race is the best we have */
	}
	if (pfd >= 0)
		close(pfd);
}

/* Whether any directory's cgroup.procs lists a process (one that cannot be read: no). */
static bool
any_procs(const struct nb_cgroup *cg)
{
	for (size_t i = 0; i < cg->n_dir; i++) {
		struct nb_err ign;
		if (cg->dir[i].created && holds_procs(cg->dir[i].path, &ign) > 0)
			return true;
	}
	return false;
}

/* Kills everything in every directory until all cgroup.procs are empty or @deadline passes. */
static int
kill_all(struct nb_cgroup *cg, int64_t deadline, struct nb_err *e)
{
	const struct cg_dir *fz = res_dir(cg, NB_CGROUP_FREEZER);
	for (size_t i = 0; i < cg->n_dir; i++) {
		/* cgroup.kill (5.14+) kills atomically, forks in flight included. */
		if (cg->dir[i].v2 && cg->dir[i].created) {
			struct nb_err ign;
			int r = write_file(cg->dir[i].path, "cgroup.kill", "1", true, &ign);
			if (r < 0 && r != -ENOENT)
				log_debug("%s", ign.msg);
		}
	}
	for (;;) {
		/*
		 * Empty everywhere, nothing is left to fork, and only attach could put a process
		 * back. So the freeze below is skipped: freezing and thawing a v1 freezer flips a
		 * static key with an IPI to every CPU, a fifth of a millisecond per sandbox, and
		 * most sandboxes are empty by now (the agent has exited, or cgroup.kill took it).
		 */
		if (!any_procs(cg))
			return 0;
		bool any = false;
		struct nb_err ign;
		/*
		 * Frozen, nothing can fork while we walk the list. v1 delivers SIGKILL only once
		 * thawed, so the thaw below is what lets them die; v2 lets it through regardless.
		 */
		if (fz->created)
			freeze_write(cg, true, &ign);
		for (size_t i = 0; i < cg->n_dir; i++) {
			if (!cg->dir[i].created)
				continue;
			_cleanup_free_ char *procs = NULL;
			if (read_file(cg->dir[i].path, "cgroup.procs", &procs, false, &ign) < 0)
				continue;
			for (char *p = procs; *p;) {
				char *end;
				long pid = strtol(p, &end, 10);
				if (end == p)
					break;
				p = end + (*end == '\n');
				if (pid <= 0) /* 0: in a pid namespace we cannot see */
					continue;
				any = true;
				kill_member((pid_t)pid, &cg->dir[i]);
			}
		}
		if (fz->created)
			freeze_write(cg, false, &ign);
		if (!any)
			return 0;
		if (now_ns() >= deadline)
			return nb_err_set(e, EBUSY,
					  "cgroup: %s: processes still alive after SIGKILL",
					  cg->desc ? cg->desc : cg->dir[0].path);
		nap();
	}
}

int
nb_cgroup_destroy(struct nb_cgroup *cg, struct nb_err *e)
{
	if (!cg)
		return 0;
	int r = kill_all(cg, now_ns() + DESTROY_TIMEOUT_NS, e);
	struct nb_err e2 = { 0 };
	int r2 = remove_dirs(cg, now_ns() + DESTROY_TIMEOUT_NS, r < 0 ? &e2 : e);
	if (r >= 0)
		r = r2;
	else if (r2 < 0)
		log_warn("%s", e2.msg);
	cg_free(cg);
	return r;
}
