/*
 * rootfs.c: the sandbox's root file system.
 *
 * Sections:
 *   helpers       mkdir -p, file creation, bind with the new mount API
 *   base          a private tmpfs that holds the new root while it is built; the host's root is
 *                 reachable at /oldroot until the final pivot
 *   special       /tmp, /dev, /proc, generated /etc files
 *   binds         runtime, agent directory, manifest read (ro) and write (rw, noexec) paths
 *   masks         shells (shell = false), sensitive /proc files
 *   finish        root read-only, pivot_root into it, old root detached
 *
 * Binds use open_tree(OPEN_TREE_CLONE|AT_RECURSIVE) + mount_setattr(AT_RECURSIVE) + move_mount,
 * so read-only/nosuid/nodev apply to every submount of a bound tree, not only its top (the classic
 * MS_BIND|MS_REMOUNT leaves submounts writable). That needs Linux >= 5.12.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cage-internal.h"
#include "cleanup.h"
#include "log.h"

#define BASE "/tmp"
#define NEWROOT "/newroot"
#define OLDROOT "/oldroot"
#define EMPTY_FILE "/.empty"

/* ---- helpers ---- */

static int
mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(buf, mode) < 0 && errno != EEXIST)
				return -errno;
			*p = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

static int
write_file(const char *path, const char *content, mode_t mode)
{
	_cleanup_close_ int fd =
		open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	size_t len = strlen(content);
	if (write(fd, content, len) != (ssize_t)len)
		return errno ? -errno : -EIO;
	return 0;
}

/* Creates what a bind of @src_is_dir onto @dst needs: a directory, or an empty file. */
static int
make_mountpoint(const char *dst, bool is_dir)
{
	struct stat st;
	if (lstat(dst, &st) == 0)
		return S_ISDIR(st.st_mode) == is_dir ? 0 : -ENOTDIR;
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", dst);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		int r = mkdir_p(parent, 0755);
		if (r < 0)
			return r;
	}
	if (is_dir)
		return mkdir(dst, 0755) < 0 && errno != EEXIST ? -errno : 0;
	int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0444);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/*
 * Binds @src (recursively) onto @dst with @attrs set on every mount of the copy.
 * Returns 0 or -errno; @what names the step in the error.
 */
static int
bind_tree(const char *src, const char *dst, uint64_t attrs, bool recursive, struct nb_err *e)
{
	unsigned int flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0);
	_cleanup_close_ int fd = open_tree(AT_FDCWD, src, flags);
	if (fd < 0) {
		if (errno == ENOSYS)
			return nb_err_set(
				e, ENOSYS,
				"rootfs: cage needs Linux 5.12 or newer (open_tree, mount_setattr)");
		return nb_err_setp(e, errno, "rootfs: bind %s", src);
	}
	struct mount_attr attr = { .attr_set = attrs, .propagation = MS_PRIVATE };
	if (mount_setattr(fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr,
			  sizeof(attr)) < 0)
		return nb_err_setp(e, errno, "rootfs: bind %s: set attributes", src);
	if (move_mount(fd, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return nb_err_setp(e, errno, "rootfs: bind %s on %s", src, dst);
	return 0;
}

/* openat2(2): glibc 2.36 has no wrapper. */
static int
open_resolved(int dirfd, const char *path, uint64_t resolve)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = resolve };
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/*
 * Binds the host path @src (absolute, symlink-free: config.c checked it) onto @dst in the new
 * root. Both ends are opened without trusting names a second time: the source beneath the host's
 * root with no symlink followed at all, the target inside the new root (RESOLVE_IN_ROOT: a
 * symlink there cannot point outside it). So a component swapped for a symlink after config.c's
 * check (by an agent writing into a shared directory) makes the bind fail instead of redirecting
 * it.
 */
static int
bind_host_path(int oldroot_fd, int newroot_fd, const char *src, const char *dst, uint64_t attrs,
	       struct nb_err *e)
{
	_cleanup_close_ int sfd =
		open_resolved(oldroot_fd, src + 1, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
	if (sfd < 0)
		return nb_err_setp(e, errno == ELOOP ? ELOOP : errno, "rootfs: %s%s", src,
				   errno == ELOOP ? " (a symlink appeared on the path)" : "");
	_cleanup_close_ int dfd =
		open_resolved(newroot_fd, dst + 1, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
	if (dfd < 0)
		return nb_err_setp(e, errno, "rootfs: mount point %s", dst);
	_cleanup_close_ int tree = open_tree(
		sfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
	if (tree < 0)
		return nb_err_setp(e, errno, "rootfs: bind %s", src);
	struct mount_attr attr = { .attr_set = attrs, .propagation = MS_PRIVATE };
	if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
		return nb_err_setp(e, errno, "rootfs: bind %s: set attributes", src);
	if (move_mount(tree, "", dfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return nb_err_setp(e, errno, "rootfs: bind %s on %s", src, dst);
	return 0;
}

static int
mount_tmpfs(const char *dst, const char *opts, unsigned long flags, struct nb_err *e)
{
	int r = mkdir_p(dst, 0755);
	if (r < 0)
		return nb_err_setp(e, -r, "rootfs: mkdir %s", dst);
	if (mount("tmpfs", dst, "tmpfs", flags, opts) < 0)
		return nb_err_setp(e, errno, "rootfs: mount tmpfs on %s", dst);
	return 0;
}

/* ---- base ---- */

/*
 * Why a base: after this pivot the host's root sits at /oldroot, so every bind source is named
 * as /oldroot/<realpath> and nothing in the new root can depend on where the host keeps things.
 */
static int
setup_base(struct nb_err *e)
{
	/* Nothing we mount may propagate back to the host's mount namespace. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return nb_err_setp(e, errno, "rootfs: make / private");
	int r = mount_tmpfs(BASE, "mode=0700,size=1m", MS_NOSUID | MS_NODEV, e);
	if (r < 0)
		return r;
	if (mkdir(BASE OLDROOT, 0700) < 0 || mkdir(BASE NEWROOT, 0755) < 0)
		return nb_err_setp(e, errno, "rootfs: mkdir in base");
	if (syscall(SYS_pivot_root, BASE, BASE OLDROOT) < 0)
		return nb_err_setp(e, errno, "rootfs: pivot_root to base");
	if (chdir("/") < 0)
		return nb_err_setp(e, errno, "rootfs: chdir /");
	/* An empty, unreadable, unexecutable file: what masked paths are replaced with. */
	r = write_file(EMPTY_FILE, "", 0000);
	if (r < 0)
		return nb_err_setp(e, -r, "rootfs: create %s", EMPTY_FILE);
	return 0;
}

/* ---- special ---- */

static const char *const dev_nodes[] = { "null", "zero", "random", "urandom", "tty" };

static int
setup_dev(struct nb_err *e)
{
	int r = mount_tmpfs(NEWROOT "/dev", "mode=0755,size=64k", MS_NOSUID | MS_NOEXEC, e);
	if (r < 0)
		return r;
	for (size_t i = 0; i < NB_ARRAY_SIZE(dev_nodes); i++) {
		char src[64], dst[64];
		snprintf(src, sizeof(src), OLDROOT "/dev/%s", dev_nodes[i]);
		snprintf(dst, sizeof(dst), NEWROOT "/dev/%s", dev_nodes[i]);
		struct stat st;
		if (stat(src, &st) < 0 || !S_ISCHR(st.st_mode))
			return nb_err_setp(e, errno ? errno : ENODEV, "rootfs: host device %s",
					   src + strlen(OLDROOT));
		r = make_mountpoint(dst, false);
		if (r < 0)
			return nb_err_setp(e, -r, "rootfs: create %s", dst);
		/*
		 * Binding the host's node (instead of mknod) works in a user namespace too, where
		 * mknod is refused, and cannot create a device the host does not expose.
		 */
		r = bind_tree(src, dst, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, false, e);
		if (r < 0)
			return r;
	}
	static const char *const links[][2] = {
		{ "/proc/self/fd", "fd" },
		{ "/proc/self/fd/0", "stdin" },
		{ "/proc/self/fd/1", "stdout" },
		{ "/proc/self/fd/2", "stderr" },
	};
	for (size_t i = 0; i < NB_ARRAY_SIZE(links); i++) {
		char dst[64];
		snprintf(dst, sizeof(dst), NEWROOT "/dev/%s", links[i][1]);
		if (symlink(links[i][0], dst) < 0)
			return nb_err_setp(e, errno, "rootfs: symlink %s", dst);
	}
	return mount_tmpfs(NEWROOT "/dev/shm", "mode=1777,size=64m",
			   MS_NOSUID | MS_NODEV | MS_NOEXEC, e);
}

/*
 * Binds read-only over each /proc/NAME in @names that exists: the entry itself (@src NULL),
 * which makes it read-only, or @src, which hides it.
 */
static int
cover_proc(const char *const *names, size_t n, const char *src, struct nb_err *e)
{
	const uint64_t attrs =
		MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
	for (size_t i = 0; i < n; i++) {
		char p[64];
		snprintf(p, sizeof(p), NEWROOT "/proc/%s", names[i]);
		if (access(p, F_OK) < 0)
			continue;
		int r = bind_tree(src ? src : p, p, attrs, src == NULL, e);
		if (r < 0)
			return r;
	}
	return 0;
}

static int
setup_proc(struct nb_err *e)
{
	int r = mkdir_p(NEWROOT "/proc", 0555);
	if (r < 0)
		return nb_err_setp(e, -r, "rootfs: mkdir /proc");
	/* A fresh proc for the new PID namespace; hidepid=2 hides other users' processes. */
	if (mount("proc", NEWROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") <
	    0)
		return nb_err_setp(e, errno, "rootfs: mount /proc");
	/*
	 * An agent may not write native code to a memfd and run it: that would sidestep the noexec
	 * write paths. memfd_noexec=2 applies to this PID namespace only (Linux 6.3+; older
	 * kernels lack the knob, and there the write paths' noexec is all there is).
	 */
	r = write_file(NEWROOT "/proc/sys/vm/memfd_noexec", "2\n", 0644);
	if (r == -ENOENT)
		log_debug("kernel has no vm.memfd_noexec: memfd execution not restricted");
	else if (r == -EACCES || r == -EPERM)
		/* Unprivileged (a user namespace): the knob belongs to the host's root. */
		log_warn("cannot set vm.memfd_noexec without root: memfd execution not restricted");
	else if (r < 0)
		return nb_err_setp(e, -r, "rootfs: set vm.memfd_noexec");
	/* Kernel knobs stay read-only even for a process that regains privilege. */
	static const char *const ro[] = { "sys", "sysrq-trigger", "irq", "bus", "fs" };
	/* Kernel memory and timer/key listings leak host state: masked like docker does. */
	static const char *const masked[] = { "kcore", "keys", "timer_list", "sched_debug",
					      "kmsg" };
	r = cover_proc(ro, NB_ARRAY_SIZE(ro), NULL, e);
	if (r == 0)
		r = cover_proc(masked, NB_ARRAY_SIZE(masked), EMPTY_FILE, e);
	return r;
}

static int
setup_etc(const struct cage_config *c, struct nb_err *e)
{
	char buf[512];
	int r = mkdir_p(NEWROOT "/etc", 0755);
	if (r < 0)
		return nb_err_setp(e, -r, "rootfs: mkdir /etc");
	/* Only the agent's own account exists: no host user names, no shadow file at all. */
	snprintf(buf, sizeof(buf),
		 "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
		 "agent:x:%u:%u:%s:/tmp:/usr/sbin/nologin\n",
		 (unsigned)c->uid, (unsigned)c->gid, c->name);
	r = write_file(NEWROOT "/etc/passwd", buf, 0644);
	if (r == 0) {
		snprintf(buf, sizeof(buf), "root:x:0:\nagent:x:%u:\n", (unsigned)c->gid);
		r = write_file(NEWROOT "/etc/group", buf, 0644);
	}
	if (r == 0)
		r = write_file(NEWROOT "/etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
			       0644);
	if (r == 0) {
		snprintf(buf, sizeof(buf), "%s\n", c->name);
		r = write_file(NEWROOT "/etc/hostname", buf, 0644);
	}
	if (r < 0)
		return nb_err_setp(e, -r, "rootfs: write /etc");
	return 0;
}

/* ---- binds ---- */

static size_t
depth(const char *p)
{
	size_t d = 0;
	for (; *p; p++)
		d += *p == '/';
	return d;
}

static int
cmp_depth(const void *a, const void *b)
{
	const struct cage_mount *x = *(const struct cage_mount *const *)a;
	const struct cage_mount *y = *(const struct cage_mount *const *)b;
	size_t dx = depth(x->dst), dy = depth(y->dst);
	return dx < dy ? -1 : dx > dy;
}

static int
bind_one(int oldroot_fd, int newroot_fd, const struct cage_mount *m, struct nb_err *e)
{
	char src[PATH_MAX], dst[PATH_MAX];
	if (snprintf(src, sizeof(src), OLDROOT "%s", m->src) >= (int)sizeof(src) ||
	    snprintf(dst, sizeof(dst), NEWROOT "%s", m->dst) >= (int)sizeof(dst))
		return nb_err_set(e, ENAMETOOLONG, "rootfs: path too long: %s", m->src);
	struct stat st;
	if (lstat(src, &st) < 0) {
		if (errno == ENOENT && m->optional)
			return 0;
		return nb_err_setp(e, errno, "rootfs: %s", m->src);
	}
	if (S_ISLNK(st.st_mode)) {
		/* A top-level runtime symlink such as /bin -> usr/bin: recreate it, do not follow.
		 */
		char target[PATH_MAX];
		ssize_t n = readlink(src, target, sizeof(target) - 1);
		if (n < 0)
			return nb_err_setp(e, errno, "rootfs: readlink %s", m->src);
		target[n] = '\0';
		if (symlink(target, dst) < 0 && errno != EEXIST)
			return nb_err_setp(e, errno, "rootfs: symlink %s", m->dst);
		return 0;
	}
	int r = make_mountpoint(dst, S_ISDIR(st.st_mode));
	if (r < 0)
		return nb_err_setp(e, -r, "rootfs: mount point %s", m->dst);
	uint64_t attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
	/*
	 * Write paths are noexec: a file the agent writes there cannot be executed (Landlock
	 * refuses execute there too). This is not W^X for the process: native code can still be
	 * made in memory; seccomp and Landlock bound what it can do.
	 */
	attrs |= m->kind == CAGE_MOUNT_RO ? MOUNT_ATTR_RDONLY : MOUNT_ATTR_NOEXEC;
	return bind_host_path(oldroot_fd, newroot_fd, m->src, m->dst, attrs, e);
}

static int
setup_binds(const struct cage_config *c, struct nb_err *e)
{
	_cleanup_free_ const struct cage_mount **order = calloc(c->n_mounts + 1, sizeof(*order));
	if (!order)
		return nb_err_set(e, ENOMEM, "rootfs: out of memory");
	for (size_t i = 0; i < c->n_mounts; i++)
		order[i] = &c->mounts[i];
	/* Parents before children, so a write path inside a read path is not hidden by it. */
	qsort(order, c->n_mounts, sizeof(*order), cmp_depth);
	_cleanup_close_ int oldroot_fd = open(OLDROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
	_cleanup_close_ int newroot_fd = open(NEWROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (oldroot_fd < 0 || newroot_fd < 0)
		return nb_err_setp(e, errno, "rootfs: open %s", oldroot_fd < 0 ? OLDROOT : NEWROOT);
	for (size_t i = 0; i < c->n_mounts; i++) {
		int r = bind_one(oldroot_fd, newroot_fd, order[i], e);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- masks ---- */

static int
setup_masks(const struct cage_config *c, struct nb_err *e)
{
	for (char **p = c->masked; p && *p; p++) {
		char dst[PATH_MAX];
		snprintf(dst, sizeof(dst), NEWROOT "%s", *p);
		struct stat st;
		/* Only what is visible in the sandbox and is a plain file (never follow a link). */
		if (lstat(dst, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		int r = bind_tree(EMPTY_FILE, dst,
				  MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
					  MOUNT_ATTR_NOEXEC,
				  false, e);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The agent's own ctxgraph socket (its identity there), at a fixed place. */
static int
setup_ctx_socket(const struct cage_config *c, struct nb_err *e)
{
	int r = make_mountpoint(NEWROOT CAGE_CTX_SOCKET, false);
	if (r < 0)
		return nb_err_setp(e, -r, "rootfs: mount point %s", CAGE_CTX_SOCKET);
	_cleanup_close_ int oldroot_fd = open(OLDROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
	_cleanup_close_ int newroot_fd = open(NEWROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (oldroot_fd < 0 || newroot_fd < 0)
		return nb_err_setp(e, errno, "rootfs: open roots");
	/* Read-only is fine: connect(2) to a socket does not write the file system. */
	return bind_host_path(
		oldroot_fd, newroot_fd, c->ctx_socket, CAGE_CTX_SOCKET,
		MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, e);
}

/* ---- finish ---- */

int
cage_rootfs_setup(const struct cage_config *c, struct nb_err *e)
{
	int r = setup_base(e);
	if (r < 0)
		return r;
	r = mount_tmpfs(NEWROOT, "mode=0755,size=1m", MS_NOSUID | MS_NODEV, e);
	if (r < 0)
		return r;
	/* /tmp first: a manifest path under /tmp is then bound inside the private /tmp. */
	r = mount_tmpfs(NEWROOT "/tmp", "mode=1777", MS_NOSUID | MS_NODEV | MS_NOEXEC, e);
	if (r == 0)
		r = setup_dev(e);
	if (r == 0)
		r = setup_proc(e);
	if (r == 0)
		r = setup_etc(c, e);
	if (r == 0 && mkdir_p(NEWROOT "/run/nullbox", 0755) < 0)
		r = nb_err_setp(e, errno, "rootfs: mkdir /run/nullbox");
	if (r == 0)
		r = setup_binds(c, e);
	if (r == 0)
		r = setup_masks(c, e);
	if (r == 0 && c->ctx_socket)
		r = setup_ctx_socket(c, e);
	if (r < 0)
		return r;
	/* The root itself is read-only: the agent may create files only where it may write. */
	if (mount(NULL, NEWROOT, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
		  NULL) < 0)
		return nb_err_setp(e, errno, "rootfs: make / read-only");
	/*
	 * pivot_root(".", ".") stacks the old root (the base, with the host's root under it) on top
	 * of the new one; the lazy unmount then detaches the host's whole tree from this namespace.
	 */
	if (chdir(NEWROOT) < 0)
		return nb_err_setp(e, errno, "rootfs: chdir %s", NEWROOT);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return nb_err_setp(e, errno, "rootfs: pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		return nb_err_setp(e, errno, "rootfs: detach old root");
	if (chdir("/") < 0)
		return nb_err_setp(e, errno, "rootfs: chdir /");
	return 0;
}

struct cage_ll_rule *
cage_rootfs_landlock_rules(const struct cage_config *c, size_t *n)
{
	static const struct cage_ll_rule fixed[] = {
		{ "/etc", CAGE_LL_READ_EXEC },	       { "/proc", CAGE_LL_READ_EXEC },
		{ "/dev", CAGE_LL_READ_EXEC },	       { "/tmp", CAGE_LL_READ_WRITE },
		{ "/dev/shm", CAGE_LL_READ_WRITE },    { "/dev/null", CAGE_LL_DEV },
		{ "/dev/zero", CAGE_LL_DEV },	       { "/dev/random", CAGE_LL_DEV },
		{ "/dev/urandom", CAGE_LL_DEV },       { "/dev/tty", CAGE_LL_DEV },
		{ "/run/nullbox", CAGE_LL_READ_EXEC },
	};
	size_t cap = NB_ARRAY_SIZE(fixed) + c->n_mounts;
	struct cage_ll_rule *rules = calloc(cap, sizeof(*rules));
	if (!rules)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < NB_ARRAY_SIZE(fixed); i++)
		rules[k++] = fixed[i];
	for (size_t i = 0; i < c->n_mounts; i++) {
		rules[k].path = c->mounts[i].dst;
		rules[k].kind =
			c->mounts[i].kind == CAGE_MOUNT_RW ? CAGE_LL_READ_WRITE : CAGE_LL_READ_EXEC;
		k++;
	}
	*n = k;
	return rules;
}
