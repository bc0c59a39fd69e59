#pragma once
/*
 * cage: one sandbox per agent.
 *
 * The whole configuration of a sandbox is one `struct cage_config`, built from AGENT.toml by
 * cage_config_from_manifest() (config.c). Keep it that way: the same struct is meant to be built
 * later from an OCI runtime spec, so containerd can run agents through NullBox.
 *
 * Files, one kernel concern each:
 *   main.c      command line, result reporting (--json)
 *   config.c    AGENT.toml -> struct cage_config
 *   spawn.c     clone into namespaces, sync socket, the in-sandbox init, signal forwarding
 *   rootfs.c    tmpfs root, binds, /dev, /proc, pivot_root
 *   landlock.c  Landlock ruleset (newest ABI the kernel offers)
 *   seccomp.c   text profile (policy/) -> libseccomp filter
 *   cgroup limits live in lib/cgroup.c (nulld needs them too).
 */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

enum cage_mount_kind {
	CAGE_MOUNT_RO, /* read-only bind (runtime, manifest filesystem.read, the agent dir) */
	CAGE_MOUNT_RW, /* read-write bind, noexec (manifest filesystem.write) */
};

struct cage_mount {
	char *src; /* host path, absolute */
	char *dst; /* path inside the sandbox, absolute */
	enum cage_mount_kind kind;
	bool optional; /* missing source is skipped (runtime dirs), else an error */
};

struct cage_config {
	char *name;  /* agent name, used for the hostname and cgroup names */
	char **argv; /* what to exec, argv[0] resolved inside the sandbox */
	char **envp; /* the complete environment of the agent */
	char *cwd;   /* working directory inside the sandbox */

	struct cage_mount *mounts;
	size_t n_mounts;
	bool shell;    /* false: the shells in `masked` are hidden */
	char **masked; /* host files (resolved) hidden behind an empty, mode-0 file; may be NULL */

	uint64_t memory_bytes;
	uint32_t cpu_percent; /* of one CPU */
	uint32_t max_pids;

	uid_t uid; /* the agent's uid/gid inside the sandbox */
	gid_t gid;

	char *seccomp_profile; /* path of the text profile on the host */
	char *ctx_socket;      /* host path of the agent's ctxgraph socket, or NULL */
};

void cage_config_free(struct cage_config *c);

/* ---- landlock.c ---- */

enum cage_ll_kind {
	CAGE_LL_READ_EXEC,  /* read files, list dirs, execute */
	CAGE_LL_READ_WRITE, /* read + write + create/remove files and dirs (no devices, no execute)
			     */
	CAGE_LL_DEV,	    /* a device node: read, write, ioctl on the device */
};

struct cage_ll_rule {
	const char *path; /* path as seen by the calling process */
	enum cage_ll_kind kind;
};

/*
 * Restricts the calling process (and its future children) to @rules with Landlock, using every
 * access right of the newest ABI the kernel offers. Paths that do not exist are skipped.
 * A kernel without Landlock (ENOSYS/EOPNOTSUPP) is logged and returns 0 with *abi = 0; any other
 * failure returns a negative errno with @e set ("landlock: ..."). *abi gets the ABI used.
 * Requires PR_SET_NO_NEW_PRIVS or CAP_SYS_ADMIN, like landlock_restrict_self(2).
 * With ABI >= 6 the domain is also scoped: no signal to, and no connect to an abstract unix
 * socket of, a process outside it. Network rights stay unhandled (see landlock.c for why).
 * A path that cannot take a rule fails with "landlock: PATH: add rule: REASON".
 */
int cage_landlock_apply(const struct cage_ll_rule *rules, size_t n, int *abi, struct nb_err *e);

/* ---- seccomp.c ---- */

struct cage_seccomp; /* a compiled filter, ready to load */

/*
 * Parses the text profile at @path and builds the filter (no kernel state is touched).
 * Errors name the file and line: "seccomp: FILE:LINE: REASON". Returns 0 or negative errno.
 */
int cage_seccomp_compile(const char *path, struct cage_seccomp **out, struct nb_err *e);

/*
 * Loads @s into the kernel for every thread of the caller (TSYNC). no_new_privs must already be
 * set (checked: -EPERM, even with CAP_SYS_ADMIN; libseccomp is told not to set it). Filtered
 * calls of another ABI (i386 int 0x80, x32) kill the process. Returns 0 or negative errno.
 * @s stays owned by the caller and may be loaded again (in another child).
 */
int cage_seccomp_apply(struct cage_seccomp *s, struct nb_err *e);

/* Frees @s (NULL is fine). A loaded filter stays in the kernel. */
void cage_seccomp_free(struct cage_seccomp *s);
