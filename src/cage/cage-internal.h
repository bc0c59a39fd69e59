#pragma once
/*
 * What cage's own files share beyond cage.h: the config builder, the sandbox builder and the
 * launcher. Nothing here is for other programs.
 */
#include <stdint.h>
#include <sys/types.h>

#include "cage.h"
#include "manifest.h"

/* Where the directory holding AGENT.toml is shown, read-only, inside the sandbox. */
#define CAGE_AGENT_DIR "/agent"

/* nobody:nogroup on Debian; the agent's ids when cage runs as root. */
#define CAGE_DEFAULT_UID 65534
#define CAGE_DEFAULT_GID 65534

/* Exit statuses of `cage` itself, as podman and docker use them. */
#define CAGE_EXIT_FAILURE 125 /* cage could not build the sandbox */
#define CAGE_EXIT_CANNOT_EXEC 126
#define CAGE_EXIT_NOT_FOUND 127

/*
 * Builds @c from the validated manifest @m and the command @cmd (NULL or empty: the manifest's
 * runtime and entry). Host paths of binds are resolved here; a filesystem path that does not exist
 * is an error naming the manifest and the field. Returns 0 or negative errno with @e set; on
 * failure @c owns nothing.
 */
int cage_config_from_manifest(const struct nb_manifest *m, char *const *cmd, struct cage_config *c,
			      struct nb_err *e);

/* Where the agent finds its ctxgraph socket inside the sandbox. */
#define CAGE_CTX_SOCKET "/run/nullbox/ctxgraph.sock"

/*
 * The agent's credentials (the manifest's credential_refs) in its environment. Each NAME gets a
 * placeholder, never a real secret: the one in @placeholders ("NAME=NULLBOX_PLACEHOLDER_x", as
 * nulld passes them, so egress can swap them later), else one cage makes up. A real value goes
 * in only when cage's own environment holds NULLBOX_INJECT_NAME (nulld sets it for a secret with
 * inject = "env"; never argv, which every user can read); cage's copy is wiped. A NAME that is not
 * among credential_refs, or a malformed placeholder, is refused. Returns 0 or -errno with @e set.
 */
int cage_config_credentials(struct cage_config *c, const struct nb_manifest *m,
			    char *const *placeholders, struct nb_err *e);

/* Checks @path (a Unix socket, no symlink on the way) and records it in @c. */
int cage_config_ctx_socket(struct cage_config *c, const char *path, struct nb_err *e);

/*
 * Builds the sandbox's root file system from @c and moves the calling process into it
 * (pivot_root, old root detached). Must run in a fresh mount namespace as (namespace) root.
 * Returns 0 or negative errno with @e set ("rootfs: ...").
 */
int cage_rootfs_setup(const struct cage_config *c, struct nb_err *e);

/* Landlock rules for the root that cage_rootfs_setup() built (paths inside the sandbox).
 * Returns a malloc'ed array (*n entries) whose strings point into @c; NULL on ENOMEM. */
struct cage_ll_rule *cage_rootfs_landlock_rules(const struct cage_config *c, size_t *n);

struct cage_result {
	enum { CAGE_STATUS_EXITED, CAGE_STATUS_SIGNALED, CAGE_STATUS_ERROR } status;
	int exit_code; /* what `cage` exits with */
	int signal;    /* when SIGNALED */
	uint64_t oom_kills;
	uint64_t cpu_usec;
	uint64_t wall_usec;
	uint64_t memory_peak_bytes;
	int landlock_abi;
	char cgroup_mode[8];
	pid_t pid; /* the sandbox's init, as seen from the host */
};

/*
 * Runs @c: cgroup, namespaces, root file system, Landlock, capabilities, seccomp, then the
 * command, and waits for it, forwarding signals. Fills @res in every case. Returns 0 when the
 * command ran (whatever its status) or negative errno with @e set when the sandbox could not be
 * built; nothing is left behind either way.
 */
int cage_run(const struct cage_config *c, struct cage_result *res, struct nb_err *e);
