/*
 * landlock.c: the agent's file system view, enforced by Landlock with the newest ABI the
 * kernel offers.
 *
 * Sections:
 *   uapi       what the installed headers (linux-libc-dev 6.1: ABI 2) do not know yet
 *   rights     access rights per ABI, per rule kind
 *   apply      cage_landlock_apply()
 *
 * Landlock comes on top of the mount namespace: a bind mount decides what exists in the
 * sandbox, Landlock decides what the agent may do with it, per access right (truncate, ioctl,
 * link across directories...), which mount flags cannot express. It also holds if the mount
 * setup has a hole.
 */
#include "cage.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "err.h"
#include "log.h"

/* ---- uapi ---- */

/* Filesystem rights, by the ABI that added them (include/uapi/linux/landlock.h). */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13) /* ABI 2 */
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14) /* ABI 3 */
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */
#endif
/* Network rights (ABI 4): not handled, see ll_ruleset_attr below. */
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0)
#endif
#ifndef LANDLOCK_ACCESS_NET_CONNECT_TCP
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#endif
/* Scopes (ABI 6). */
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#endif
#ifndef LANDLOCK_SCOPE_SIGNAL
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif
/* landlock_restrict_self() flags (ABI 7): audit logging only, no new access right. */
#ifndef LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON
#define LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON (1U << 1)
#endif

/*
 * Our own copy of struct landlock_ruleset_attr: the installed header's has only the first
 * field. The kernel reads as many bytes as we pass, so the size passed says which fields we
 * mean (ll_attr_size()): an old kernel then never sees a field it would refuse (E2BIG).
 */
struct ll_ruleset_attr {
	__u64 handled_access_fs;  /* ABI 1 */
	__u64 handled_access_net; /* ABI 4 */
	__u64 scoped;		  /* ABI 6 */
};

#define LL_SIZE_UPTO(field) (offsetof(struct ll_ruleset_attr, field) + sizeof(__u64))

static int
ll_create_ruleset(const struct ll_ruleset_attr *attr, size_t size, __u32 flags)
{
	return (int)syscall(__NR_landlock_create_ruleset, attr, size, flags);
}

static int
ll_add_rule(int ruleset_fd, enum landlock_rule_type type, const void *attr, __u32 flags)
{
	return (int)syscall(__NR_landlock_add_rule, ruleset_fd, type, attr, flags);
}

static int
ll_restrict_self(int ruleset_fd, __u32 flags)
{
	return (int)syscall(__NR_landlock_restrict_self, ruleset_fd, flags);
}

/* ---- rights ---- */

#define LL_FS_ABI1                                                                                 \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |                              \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |                              \
	 LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |                          \
	 LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |                              \
	 LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |                              \
	 LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |                            \
	 LANDLOCK_ACCESS_FS_MAKE_SYM)

/* The rights a rule on a non-directory may carry; the kernel refuses others (EINVAL). */
#define LL_FS_FILE                                                                                 \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |                              \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |                              \
	 LANDLOCK_ACCESS_FS_IOCTL_DEV)

#define LL_READ_EXEC                                                                               \
	(LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_EXECUTE)

/*
 * Write paths are data, not programs: no EXECUTE, so what the agent writes it cannot run
 * (W^X on the file system; the mounts are noexec too). No MAKE_CHAR/MAKE_BLOCK: a device node
 * in a writable directory is a door to hardware, whatever the mount flags. REFER lets files
 * move between write paths; Landlock still refuses any move that would widen a file's rights.
 */
#define LL_READ_WRITE                                                                              \
	(LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |                              \
	 LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |                           \
	 LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_DIR |                            \
	 LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SYM |                               \
	 LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_SOCK |                             \
	 LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_REFER)

/* Device nodes (/dev/null, /dev/tty...): read, write and their ioctls, nothing else. */
#define LL_DEV                                                                                     \
	(LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |                            \
	 LANDLOCK_ACCESS_FS_IOCTL_DEV)

/*
 * Every filesystem right @abi knows. All of them are handled, so each is denied unless a rule
 * grants it: a right left unhandled would be allowed everywhere. For an ABI newer than this
 * file knows, the rights of the newest one known (7) are used; rights added later stay
 * unhandled until this table learns them.
 */
static __u64
ll_fs_rights(int abi)
{
	__u64 r = LL_FS_ABI1;
	if (abi >= 2)
		r |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		r |= LANDLOCK_ACCESS_FS_TRUNCATE;
	/* ABI 4 added network rights only. */
	if (abi >= 5)
		r |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	/* ABI 6 added scopes, ABI 7 audit-logging flags: no new filesystem right. */
	return r;
}

static size_t
ll_attr_size(int abi)
{
	if (abi >= 6)
		return LL_SIZE_UPTO(scoped);
	if (abi >= 4)
		return LL_SIZE_UPTO(handled_access_net);
	return LL_SIZE_UPTO(handled_access_fs);
}

static __u64
ll_kind_rights(enum cage_ll_kind kind)
{
	switch (kind) {
	case CAGE_LL_READ_EXEC:
		return LL_READ_EXEC;
	case CAGE_LL_READ_WRITE:
		return LL_READ_WRITE;
	case CAGE_LL_DEV:
		return LL_DEV;
	}
	return 0;
}

/* ---- apply ---- */

static int
ll_add_path(int ruleset_fd, const struct cage_ll_rule *rule, __u64 handled, struct nb_err *e)
{
	_cleanup_close_ int fd = open(rule->path, O_PATH | O_CLOEXEC);
	if (fd < 0) {
		/* The rule list is generic (runtime dirs that some hosts lack); a path that is not
		 * there grants nothing, and Landlock denies it anyway. */
		if (errno == ENOENT) {
			log_debug("landlock: %s: does not exist, skipped", rule->path);
			return 0;
		}
		return nb_err_setp(e, errno, "landlock: %s: open", rule->path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return nb_err_setp(e, errno, "landlock: %s: stat", rule->path);

	struct landlock_path_beneath_attr pb = {
		.allowed_access = ll_kind_rights(rule->kind) & handled,
		.parent_fd = fd,
	};
	if (pb.allowed_access == 0)
		return nb_err_set(e, EINVAL, "landlock: %s: unknown rule kind %d", rule->path,
				  (int)rule->kind);
	/* A rule on a file, device or socket may only carry file rights: the kernel refuses
	 * directory rights there (EINVAL). */
	if (!S_ISDIR(st.st_mode))
		pb.allowed_access &= LL_FS_FILE;
	if (ll_add_rule(ruleset_fd, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0)
		return nb_err_setp(e, errno, "landlock: %s: add rule", rule->path);
	return 0;
}

int
cage_landlock_apply(const struct cage_ll_rule *rules, size_t n, int *abi, struct nb_err *e)
{
	*abi = 0;
	int v = ll_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (v < 0) {
		/* ENOSYS: built without Landlock; EOPNOTSUPP: built in but not enabled (lsm=).
		 * Degrade, loudly: the namespaces, mounts and seccomp still hold. */
		if (errno == ENOSYS || errno == EOPNOTSUPP) {
			log_warn("landlock: kernel offers no Landlock; continuing without it");
			return 0;
		}
		return nb_err_setp(e, errno, "landlock: query ABI version");
	}

	struct ll_ruleset_attr attr = {
		.handled_access_fs = ll_fs_rights(v),
		/*
		 * Network rights stay unhandled (allowed). The agent's network namespace holds
		 * only loopback and the veth to egress, and egress decides by host name, which
		 * Landlock's TCP-port rules cannot express. Handling them with no rule would also
		 * cut the agent off from egress's proxy port.
		 */
		.handled_access_net = 0,
	};
	if (v >= 6) {
		/*
		 * Abstract unix sockets live in the network namespace, not the file system, so no
		 * path rule covers them; scoping stops the agent connecting to one bound outside
		 * its domain (a host daemon's, should the network namespace ever be shared: the
		 * containerd-shim escape, CVE-2020-15257). Signals: the agent may signal only
		 * processes of its own domain, never cage or anything on the host.
		 */
		attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
	}

	_cleanup_close_ int ruleset_fd = ll_create_ruleset(&attr, ll_attr_size(v), 0);
	if (ruleset_fd < 0)
		return nb_err_setp(e, errno, "landlock: create ruleset (ABI %d)", v);

	for (size_t i = 0; i < n; i++) {
		int r = ll_add_path(ruleset_fd, &rules[i], attr.handled_access_fs, e);
		if (r < 0)
			return r;
	}

	__u32 flags = 0;
	/*
	 * By default Landlock audits only denials of the program that called restrict_self, here
	 * cage, not of what it executes. The agent is what we want to see: denials after execve
	 * are its attempts, and NullBox's promise is that every refusal leaves a record.
	 */
	if (v >= 7)
		flags |= LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON;
	if (ll_restrict_self(ruleset_fd, flags) < 0)
		return nb_err_setp(e, errno, "landlock: restrict self");
	*abi = v;
	return 0;
}
