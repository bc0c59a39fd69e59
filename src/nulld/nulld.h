#pragma once
/*
 * nulld: the supervisor of NullBox, PID 1 of the image and a daemon on a host.
 *
 * Files:
 *   main.c       command line, PID 1 behaviour (recovery hold), start-up and exit
 *   config.c     nulld.toml -> struct nulld_config (strict: FILE:LINE: FIELD: REASON)
 *   supervise.c  services as a state x event table, the one epoll loop (signalfd, pidfds,
 *                timerfds, readiness and log pipes), dependency order, restarts, shutdown
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

enum nulld_restart { NULLD_RESTART_ALWAYS, NULLD_RESTART_ON_FAILURE, NULLD_RESTART_NEVER };
enum nulld_readiness { NULLD_READY_NOTIFY, NULLD_READY_NONE };

/* One [service.NAME] table. */
struct nulld_service_config {
	char *name;
	char **argv;	   /* argv[0] is `binary` (absolute), then `args`; NULL-terminated */
	char **depends_on; /* names, NULL-terminated, never NULL */
	enum nulld_restart restart;
	enum nulld_readiness readiness;
	uint32_t ready_timeout_secs;
	unsigned line; /* where the table starts, for errors found later (cycles) */
};

struct nulld_config {
	char *path; /* NULL: built-in defaults */
	struct nulld_service_config *services;
	size_t n_services;
};

/*
 * Reads and validates @path. Unknown tables and keys, wrong types, relative binaries, unknown
 * restart policies are refused with "FILE:LINE: FIELD: REASON". Dependencies are checked later
 * (nulld_order), where a cycle or a missing name can be reported as a whole.
 * Returns 0 or a negative errno with @e set; on failure @c owns nothing.
 */
int nulld_config_load(const char *path, struct nulld_config *c, struct nb_err *e);

/*
 * The built-in services (warden -> egress -> ctxgraph), each only if its binary is installed in
 * @bindir; missing ones are logged. Returns 0 or -ENOMEM.
 */
int nulld_config_defaults(const char *bindir, struct nulld_config *c, struct nb_err *e);

void nulld_config_free(struct nulld_config *c);

/*
 * Kahn's topological sort of @c's services over depends_on. *order (malloc'ed, n_services
 * entries) lists indices so that every service comes after what it depends on; ties keep the
 * file's order. A dependency on an unknown service or a cycle is an error that names it:
 * "nulld.toml:12: service.b.depends_on: unknown service \"x\"" or
 * "nulld.toml: dependency cycle: a -> b -> c -> a". Returns 0 or a negative errno.
 */
int nulld_order(const struct nulld_config *c, size_t **order, struct nb_err *e);

struct nulld_options {
	const char *state_dir;
	const char *socket_path;
	bool pid1;
	gid_t control_gid; /* members may control nulld too; (gid_t)-1: root only */
};

/*
 * Runs the supervisor until shutdown: starts @c's services in dependency order, restarts them
 * by their policy with backoff, reaps every child, and on SIGTERM/SIGINT stops them in reverse
 * order (SIGTERM, then SIGKILL after 5 s). Returns 0 after a clean shutdown, or a negative errno
 * with @e set when the loop itself cannot run.
 */
int nulld_supervise(const struct nulld_config *c, const struct nulld_options *o, struct nb_err *e);
