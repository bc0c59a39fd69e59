#pragma once
/*
 * One cgroup per sandbox: its memory, CPU and pids limits, a freezer, and CPU accounting.
 *
 * Each resource is served by cgroup v2 when its controller is enabled (or can be enabled) in the
 * caller's v2 cgroup, and otherwise by the v1 hierarchy that has it, so a machine may end up with
 * "v2", "v1" or "mixed". Mounts are found in /proc/self/mountinfo and the caller's position in each
 * hierarchy in /proc/self/cgroup (for nb_cgroup_open(), another process's in /proc/PID/cgroup);
 * nothing is hard-coded. On v2 the freezer (cgroup.freeze), the kill switch (cgroup.kill) and CPU
 * accounting (cpu.stat) need no controller; they are taken from v2 when a v2 cgroup is in use
 * anyway, else from the v1 freezer and cpuacct hierarchies.
 *
 * The v2 fallback parent. On a stock systemd machine with only v2, a root shell sits in
 * /user.slice/user-0.slice/session-N.scope. That cgroup holds processes, so v2 ("no internal
 * processes") refuses to enable a controller in its cgroup.subtree_control (EBUSY), and there is
 * no v1 to fall back to. Then, and only for root in the initial cgroup namespace, the sandbox's
 * cgroup is made under a parent NullBox owns directly below the v2 root instead:
 * <v2 mount>/NB_CGROUP_FALLBACK_PARENT ("/sys/fs/cgroup/nullbox/<name>"). It is made when missing
 * (0755) and never removed (other sandboxes may be in it; it holds no process itself), and the
 * controllers are enabled in the root's cgroup.subtree_control (the root cgroup is exempt from the
 * rule) and in its own. This is what docker's cgroupfs driver does (/sys/fs/cgroup/docker/<id>).
 * The price: the sandbox is no longer below the caller's cgroup, so limits set on the caller's own
 * cgroup or its slice (say, a MemoryMax= on the user's slice) are not inherited by it and it is
 * not counted against them; only its own limits apply. The fallback is taken only when it serves a
 * controller the caller's cgroup cannot, so nothing changes where the caller's cgroup works, nor
 * on v1 or hybrid machines whose v2 root offers none of memory, cpu and pids. The lasting answer is
 * a delegated cgroup: nulld, run as a systemd service with Delegate=yes, will pass its own in
 * NB_CGROUP_PARENT_ENV, which replaces both the caller's cgroup and the fallback parent.
 *
 * Every function needs the privilege to write the caller's cgroups (root, or a delegated subtree).
 * None of them is async-signal-safe; none may be called between clone and exec.
 */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

/* The longest name nb_cgroup_create() accepts. */
#define NB_CGROUP_NAME_MAX 128

/*
 * An absolute path to a v2 cgroup to create sandboxes under instead of the caller's cgroup, e.g.
 * the cgroup systemd delegates to nulld (Delegate=yes), for the controllers it can hand out. It
 * must resolve (symlinks and ".." followed) to an existing directory on the cgroup2 mount; the
 * fallback parent is then never tried. Ignored when empty, and in setuid or file-capability
 * programs (secure_getenv).
 */
#define NB_CGROUP_PARENT_ENV "NULLBOX_CGROUP_PARENT"

/* The fallback parent's name below the v2 mount (see above); it is never removed. */
#define NB_CGROUP_FALLBACK_PARENT "nullbox"

struct nb_cgroup_limits {
	uint64_t memory_bytes; /* > 0; swap is not allowed on top of it */
	uint32_t
		cpu_percent; /* of one CPU: 1..100*N (N = online CPUs); 150 = one and a half CPUs */
	uint32_t max_pids;   /* > 0; the kernel refuses values above its pid limit */
};

/* What a cgroup directory serves; see nb_cgroup_path(). */
enum nb_cgroup_res {
	NB_CGROUP_MEMORY,
	NB_CGROUP_CPU,
	NB_CGROUP_PIDS,
	NB_CGROUP_FREEZER,
	NB_CGROUP_CPUACCT,
	NB_CGROUP_N_RES,
};

struct nb_cgroup; /* opaque */

/*
 * Creates a fresh cgroup named @name ([A-Za-z0-9_.-], starting with a letter or digit, at most
 * NB_CGROUP_NAME_MAX bytes; e.g. "nullbox-<agent>-<pid>") under the caller's current cgroup in
 * every hierarchy used (on v2: under NB_CGROUP_PARENT_ENV when set, or the fallback parent when
 * needed; see above), and writes @lim:
 *   memory  v2 memory.max, memory.swap.max = 0 (when present);
 *           v1 memory.limit_in_bytes, memory.memsw.limit_in_bytes (when present), and
 *           memory.swappiness = 0 (best effort)
 *   cpu     v2 cpu.max "QUOTA 100000"; v1 cpu.cfs_period_us = 100000, cpu.cfs_quota_us = QUOTA
 *   pids    pids.max
 * The order, per limit: v2 in the caller's cgroup (or NB_CGROUP_PARENT_ENV), where a controller in
 * cgroup.controllers but not in cgroup.subtree_control is enabled (and left enabled: other
 * children may rely on it); then v2 in the fallback parent (root in the initial cgroup namespace
 * only; made and its controllers enabled as described above, and left so); then the v1
 * hierarchy. Every v2 limit lives in one directory, so when the fallback parent is used it serves
 * them all. With none of the three the call fails naming what each said, e.g. "cgroup: no memory
 * controller: v2 in the caller's cgroup: ...: Device or resource busy (...); v2 under
 * /sys/fs/cgroup/nullbox: not tried: the caller is not root (euid 1000); v1: no memory hierarchy
 * mounted. ...". A bad NB_CGROUP_PARENT_ENV fails with -EINVAL, -ENOENT or -ENOTDIR naming it.
 * A directory that already exists is an error (EEXIST), never adopted.
 * Returns 0 and *@out (free with nb_cgroup_destroy()), or a negative errno with @e set, e.g.
 * "cgroup: /sys/fs/cgroup/memory/x/memory.limit_in_bytes: write 268435456: Device or resource
 * busy"; then every directory created so far has been removed again and *@out is NULL.
 * Bad @name or @lim: -EINVAL.
 */
int nb_cgroup_create(const char *name, const struct nb_cgroup_limits *lim, struct nb_cgroup **out,
		     struct nb_err *e);

/*
 * Finds the cgroup @name that nb_cgroup_create(@name, ...) made when called by process @creator
 * (0: the caller; else a pid, typically the caller's child, e.g. nulld opening the cgroup of the
 * cage it started; a process in the same cgroups as the caller gives the same answer as 0). It
 * looks where create would have made it, in the same order: on v2, under NB_CGROUP_PARENT_ENV
 * when set (the caller's environment), else under the creator's v2 cgroup, then under the
 * fallback parent (only in the initial cgroup namespace with the whole tree mounted, as for
 * create; the caller need not be root); the first <parent>/@name that exists is the v2 cgroup.
 * Create records nowhere which hierarchy serves what, so it is read back from the directories:
 *   memory, cpu, pids  v2 when the v2 cgroup was found and its cgroup.controllers lists the
 *                      controller (a controller is never on v1 and v2 at once); else v1, the
 *                      directory below the creator's cgroup in that hierarchy
 *   freezer, cpuacct   v2 when any of the three is on v2; else v1 when that hierarchy is
 *                      mounted; else v2
 * Every directory must exist. Nothing is changed: no mkdir, no controller enabled. The creator
 * must still be running (an exited process's /proc/PID/cgroup shows the root in v1 hierarchies,
 * so a zombie is refused with -ESRCH), and @creator must still name it: the pid of a process that
 * is not the caller's child can be reused once it exits.
 * Returns 0 and *@out, or a negative errno with @e set and *@out NULL: -ENOENT when there is no
 * such cgroup, naming where it looked, e.g. "cgroup: no cgroup "x" made by pid 42: no
 * /sys/fs/cgroup/memory/a/x (v1 memory); v2: not in /sys/fs/cgroup/unified/a/x"; -EINVAL for a
 * bad @name (as for create) or a negative @creator; -ESRCH when @creator is not running; -EXDEV
 * when its cgroup is outside the caller's cgroup namespace.
 * Every function takes the handle: stats, freeze, path, describe, mode, attach, v2_fd. Free it
 * with nb_cgroup_close(), which leaves the cgroup as it is, or nb_cgroup_destroy(), which kills
 * what is in it and removes it as for a handle from create.
 */
int nb_cgroup_open(const char *name, pid_t creator, struct nb_cgroup **out, struct nb_err *e);

/*
 * Frees @cg without touching the cgroup: nothing is killed or removed. For a handle from
 * nb_cgroup_open(), or from nb_cgroup_create() when someone else (who opens it) is to destroy
 * it. @cg may be NULL.
 */
void nb_cgroup_close(struct nb_cgroup *cg);

/*
 * Moves process @pid (the whole thread group) into the cgroup in every hierarchy used. Call it
 * before @pid runs anything untrusted, and before @pid enters a new cgroup namespace (that
 * namespace's root is the cgroup it is in when it is created). Returns 0, or a negative errno
 * with @e naming the cgroup.procs that refused (-ESRCH: no such process); @pid may then be in
 * some hierarchies and not others, so the caller should kill it.
 */
int nb_cgroup_attach(struct nb_cgroup *cg, pid_t pid, struct nb_err *e);

/*
 * For clone3(CLONE_INTO_CGROUP): an O_DIRECTORY fd of the v2 cgroup when every resource is on
 * v2, else -1. The fd belongs to @cg (O_CLOEXEC; do not close it) and lives until destroy.
 */
int nb_cgroup_v2_fd(const struct nb_cgroup *cg);

struct nb_cgroup_stats {
	uint64_t oom_kills;	    /* processes killed by the OOM killer for this cgroup */
	uint64_t memory_peak_bytes; /* 0 when the kernel does not report it (v2 before 5.19) */
	uint64_t cpu_usec;	    /* CPU time used by every process that ever ran in it */
	uint64_t pids_current;	    /* processes (and threads) in it now */
};

/* Fills @st. Returns 0, or a negative errno with @e naming the file that could not be read. */
int nb_cgroup_stats(const struct nb_cgroup *cg, struct nb_cgroup_stats *st, struct nb_err *e);

/*
 * Freezes (@frozen) or thaws every process in the cgroup and waits until the kernel reports the
 * state reached (v2 cgroup.events "frozen", v1 freezer.state). Returns 0, or a negative errno
 * with @e set: -ETIMEDOUT when the freeze does not complete within 5 s (a process stuck in the
 * kernel), in which case the cgroup is thawed again.
 */
int nb_cgroup_freeze(struct nb_cgroup *cg, bool frozen, struct nb_err *e);

/*
 * Kills every process left (v2 cgroup.kill when present, and in any case SIGKILL to each pid
 * listed in cgroup.procs, frozen while listed so nothing forks away, repeated until empty; when
 * every cgroup.procs is empty already there is nothing to freeze, and the freezer is not
 * touched) and removes every directory, retrying rmdir on EBUSY for up to ~2 s (never a parent:
 * the fallback parent and NB_CGROUP_PARENT_ENV stay). Zombies do not block removal; reaping the
 * caller's own children stays the caller's job. On a handle from nb_cgroup_open() it does the
 * same. Always tries everything, frees @cg, and returns 0 or the first error (negative errno,
 * @e set). @cg may be NULL.
 */
int nb_cgroup_destroy(struct nb_cgroup *cg, struct nb_err *e);

/* "v1", "v2" or "mixed", for --json and logs. Static storage. */
const char *nb_cgroup_mode(const struct nb_cgroup *cg);

/*
 * One line naming each directory, its version and what it serves, e.g.
 * "v1 /sys/fs/cgroup/memory/a/x (memory); v1 /sys/fs/cgroup/cpu/x (cpu)". Owned by @cg.
 */
const char *nb_cgroup_describe(const struct nb_cgroup *cg);

/*
 * The directory that serves @res, and in *@v2 (may be NULL) whether it is a v2 cgroup. Owned by
 * @cg. NULL for an out-of-range @res.
 */
const char *nb_cgroup_path(const struct nb_cgroup *cg, enum nb_cgroup_res res, bool *v2);
