/*
 * config.c: AGENT.toml (struct nb_manifest) -> struct cage_config.
 *
 * Sections:
 *   runtime binds   what every agent needs to run (/usr, /lib*, a few /etc files)
 *   manifest binds  filesystem.read / filesystem.write, the agent's own directory at /agent
 *   environment     the complete, clean environment of the agent
 *   command         the command line, from the caller or from [agent] runtime + entry
 *
 * Host paths are resolved with realpath(3) here, on the host, before any namespace exists: after
 * the first pivot_root an absolute symlink would resolve against the sandbox's empty root.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cage-internal.h"
#include "cleanup.h"
#include "log.h"

/*
 * The runtime: read-only, and optional because distributions differ (merged /usr makes /bin a
 * symlink, which rootfs.c recreates as a symlink). /etc is NOT bound whole: it holds host secrets
 * (shadow, ssh host keys, credentials of other services); only these files are shown.
 */
static const char *const runtime_paths[] = {
	"/usr",
	"/bin",
	"/sbin",
	"/lib",
	"/lib64",
	"/lib32",
	"/libx32",
	"/etc/ld.so.cache",
	"/etc/ld.so.conf",
	"/etc/ld.so.conf.d",
	"/etc/alternatives",
	"/etc/ssl/certs",
	"/etc/ca-certificates.conf",
	"/etc/localtime",
	"/etc/nsswitch.conf",
	"/etc/mime.types",
	"/etc/protocols",
	"/etc/services",
	"/etc/python3",
	"/etc/python3.11",
};

/* Shells masked when [capabilities] shell = false. /etc/shells adds the host's own list. */
static const char *const shell_paths[] = {
	"/bin/sh",	 "/bin/bash",	     "/bin/dash",      "/bin/rbash",   "/bin/zsh",
	"/bin/ksh",	 "/bin/csh",	     "/bin/tcsh",      "/bin/fish",    "/usr/bin/sh",
	"/usr/bin/bash", "/usr/bin/dash",    "/usr/bin/rbash", "/usr/bin/zsh", "/usr/bin/ksh",
	"/usr/bin/fish", "/usr/bin/busybox",
};

static int
strv_push(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 2) * sizeof(char *));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = strdup(s);
	if (!nv[*n])
		return -ENOMEM;
	nv[++*n] = NULL;
	return 0;
}

static bool
strv_contains(char **v, const char *s)
{
	for (; v && *v; v++)
		if (strcmp(*v, s) == 0)
			return true;
	return false;
}

static int
add_mount(struct cage_config *c, const char *src, const char *dst, enum cage_mount_kind kind,
	  bool optional, struct nb_err *e)
{
	struct cage_mount *nm = realloc(c->mounts, (c->n_mounts + 1) * sizeof(*nm));
	if (!nm)
		return nb_err_set(e, ENOMEM, "config: out of memory");
	c->mounts = nm;
	struct cage_mount *m = &nm[c->n_mounts];
	*m = (struct cage_mount){
		.src = strdup(src), .dst = strdup(dst), .kind = kind, .optional = optional
	};
	c->n_mounts++;
	if (!m->src || !m->dst)
		return nb_err_set(e, ENOMEM, "config: out of memory");
	return 0;
}

/* True if @path is @dir or lies beneath it (whole components). */
static bool
path_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	if (strcmp(dir, "/") == 0)
		return true;
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/*
 * Where the sandbox keeps its own mounts: a manifest path there would cover them (e.g. the
 * host's /proc over the sandbox's hidepid one). /tmp itself is the sandbox's private /tmp;
 * paths beneath it are fine.
 */
static const char *const reserved_trees[] = { "/proc", "/sys", "/dev", "/run/nullbox",
					      CAGE_AGENT_DIR };

/*
 * A bind source for a manifest path. It must exist, and it must resolve to itself: a symlink
 * anywhere on the path is refused, because whoever can write that directory (another agent,
 * through its write path; a local user) could point it at the host's / between two runs.
 * rootfs.c opens it again without following any symlink, so a swap after this check fails too.
 */
static int
add_manifest_mount(struct cage_config *c, const struct nb_manifest *m, const char *field,
		   const char *path, enum cage_mount_kind kind, struct nb_err *e)
{
	char real[PATH_MAX];
	if (!realpath(path, real))
		return nb_err_setp(e, errno, "%s: %s: %s", m->path, field, path);
	if (strcmp(real, path) != 0)
		return nb_err_set(
			e, ELOOP,
			"%s: %s: %s: resolves through a symlink to %s; name the real path", m->path,
			field, path, real);
	for (size_t i = 0; i < NB_ARRAY_SIZE(reserved_trees); i++)
		if (path_within(path, reserved_trees[i]))
			return nb_err_set(
				e, EINVAL,
				"%s: %s: %s: %s belongs to the sandbox and cannot be bound",
				m->path, field, path, reserved_trees[i]);
	if (strcmp(path, "/tmp") == 0 || strcmp(path, "/") == 0)
		return nb_err_set(e, EINVAL,
				  "%s: %s: %s: cannot be bound (the sandbox has its own)", m->path,
				  field, path);
	/* An agent that may write where its manifest lives could grant itself more next time. */
	if (kind == CAGE_MOUNT_RW && path_within(m->dir, real))
		return nb_err_set(
			e, EPERM,
			"%s: %s: %s: contains the agent's own directory %s (the agent could "
			"rewrite its manifest)",
			m->path, field, path, m->dir);
	return add_mount(c, real, path, kind, false, e);
}

static int
collect_shells(struct cage_config *c)
{
	size_t n = 0;
	char line[PATH_MAX];
	_cleanup_fclose_ FILE *f = fopen("/etc/shells", "re");
	char **cand = NULL;
	size_t nc = 0;
	int r = 0;
	for (size_t i = 0; i < NB_ARRAY_SIZE(shell_paths) && r == 0; i++)
		r = strv_push(&cand, &nc, shell_paths[i]);
	while (r == 0 && f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '/')
			r = strv_push(&cand, &nc, line);
	}
	for (size_t i = 0; r == 0 && i < nc; i++) {
		char real[PATH_MAX];
		/* Mask the file itself: a symlink such as /bin/sh -> dash would otherwise survive.
		 */
		if (!realpath(cand[i], real) || strv_contains(c->masked, real))
			continue;
		r = strv_push(&c->masked, &n, real);
	}
	nb_strv_free(cand);
	return r;
}

static int
build_env(struct cage_config *c, const struct nb_manifest *m)
{
	size_t n = 0;
	char buf[256];
	int r = 0;
	r = r ?: strv_push(&c->envp, &n, "PATH=/usr/local/bin:/usr/bin:/bin");
	r = r ?: strv_push(&c->envp, &n, "HOME=/tmp");
	r = r ?: strv_push(&c->envp, &n, "TMPDIR=/tmp");
	r = r ?: strv_push(&c->envp, &n, "LANG=C.UTF-8");
	r = r ?: strv_push(&c->envp, &n, "USER=agent");
	snprintf(buf, sizeof(buf), "NULLBOX_AGENT=%s", m->name);
	r = r ?: strv_push(&c->envp, &n, buf);
	if (m->runtime == NB_RUNTIME_PYTHON) {
		/* The agent directory is read-only: do not try to write .pyc files next to it. */
		r = r ?: strv_push(&c->envp, &n, "PYTHONDONTWRITEBYTECODE=1");
		r = r ?: strv_push(&c->envp, &n, "PYTHONUNBUFFERED=1");
	}
	return r;
}

static int
build_argv(struct cage_config *c, const struct nb_manifest *m, char *const *cmd)
{
	size_t n = 0;
	int r = 0;
	if (cmd && cmd[0]) {
		for (; *cmd && r == 0; cmd++)
			r = strv_push(&c->argv, &n, *cmd);
		return r;
	}
	char entry[PATH_MAX];
	if (m->entry[0] == '/')
		snprintf(entry, sizeof(entry), "%s", m->entry);
	else
		snprintf(entry, sizeof(entry), "%s/%s", CAGE_AGENT_DIR, m->entry);
	if (m->runtime == NB_RUNTIME_PYTHON)
		r = strv_push(&c->argv, &n, "/usr/bin/python3");
	return r ?: strv_push(&c->argv, &n, entry);
}

int
cage_config_from_manifest(const struct nb_manifest *m, char *const *cmd, struct cage_config *c,
			  struct nb_err *e)
{
	int r;
	*c = (struct cage_config){ 0 };
	c->uid = CAGE_DEFAULT_UID;
	c->gid = CAGE_DEFAULT_GID;
	c->name = strdup(m->name);
	c->cwd = strdup(CAGE_AGENT_DIR);
	if (!c->name || !c->cwd)
		goto oom;

	for (size_t i = 0; i < NB_ARRAY_SIZE(runtime_paths); i++) {
		struct stat st;
		/* lstat: rootfs.c recreates a top-level symlink such as /bin -> usr/bin itself. */
		if (lstat(runtime_paths[i], &st) < 0)
			continue;
		char real[PATH_MAX];
		const char *src = runtime_paths[i];
		if (!S_ISLNK(st.st_mode) || strchr(runtime_paths[i] + 1, '/')) {
			if (!realpath(runtime_paths[i], real))
				continue;
			src = real;
		}
		r = add_mount(c, src, runtime_paths[i], CAGE_MOUNT_RO, true, e);
		if (r < 0)
			goto fail;
	}
	/* The agent's own directory (resolved by the manifest loader) is shown at /agent. */
	if (strcmp(m->dir, "/") == 0) {
		r = nb_err_set(e, EINVAL,
			       "%s: the agent directory would be the whole file system: keep "
			       "AGENT.toml in a directory of its own",
			       m->path);
		goto fail;
	}
	r = add_mount(c, m->dir, CAGE_AGENT_DIR, CAGE_MOUNT_RO, false, e);
	if (r < 0)
		goto fail;
	for (char **p = m->fs_read; *p; p++) {
		r = add_manifest_mount(c, m, "capabilities.filesystem.read", *p, CAGE_MOUNT_RO, e);
		if (r < 0)
			goto fail;
	}
	for (char **p = m->fs_write; *p; p++) {
		r = add_manifest_mount(c, m, "capabilities.filesystem.write", *p, CAGE_MOUNT_RW, e);
		if (r < 0)
			goto fail;
	}
	c->shell = m->shell;
	if (!c->shell && collect_shells(c) < 0)
		goto oom;
	if (build_env(c, m) < 0 || build_argv(c, m, cmd) < 0)
		goto oom;
	c->memory_bytes = m->max_memory_mb * 1024 * 1024;
	c->cpu_percent = m->max_cpu_percent;
	c->max_pids = m->max_pids;
	return 0;
oom:
	r = nb_err_set(e, ENOMEM, "config: out of memory");
fail:
	cage_config_free(c);
	return r;
}

static bool
placeholder_ok(const char *v)
{
	static const char prefix[] = "NULLBOX_PLACEHOLDER_";
	size_t n = strlen(v);
	if (strncmp(v, prefix, sizeof(prefix) - 1) != 0 || n == sizeof(prefix) - 1 || n > 160)
		return false;
	for (v += sizeof(prefix) - 1; *v; v++)
		if (!((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') ||
		      (*v >= '0' && *v <= '9') || *v == '_'))
			return false;
	return true;
}

static size_t
strv_len(char **v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

int
cage_config_credentials(struct cage_config *c, const struct nb_manifest *m,
			char *const *placeholders, struct nb_err *e)
{
	size_t n = strv_len(c->envp);
	for (char *const *p = placeholders; p && *p; p++) {
		const char *eq = strchr(*p, '=');
		bool known = false;
		for (char **r = m->credential_refs; eq && *r; r++)
			known |= strlen(*r) == (size_t)(eq - *p) && strncmp(*r, *p, eq - *p) == 0;
		if (!eq || !known)
			return nb_err_set(
				e, EINVAL,
				"--placeholder %.*s: not one of the manifest's credential_refs",
				eq ? (int)(eq - *p) : 64, *p);
		if (!placeholder_ok(eq + 1))
			return nb_err_set(
				e, EINVAL,
				"--placeholder %.*s: the value must be NULLBOX_PLACEHOLDER_ "
				"followed by letters, digits or _",
				(int)(eq - *p), *p);
	}
	for (char **r = m->credential_refs; *r; r++) {
		char inject[200], buf[4200];
		snprintf(inject, sizeof(inject), "NULLBOX_INJECT_%s", *r);
		char *real = getenv(inject);
		const char *value = NULL;
		size_t len = strlen(*r);
		for (char *const *p = placeholders; !value && p && *p; p++)
			if (strncmp(*p, *r, len) == 0 && (*p)[len] == '=')
				value = *p + len + 1;
		char made[64];
		if (!value) {
			uint8_t rnd[16];
			if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
				return nb_err_setp(e, errno, "credentials: getrandom");
			int k = snprintf(made, sizeof(made), "NULLBOX_PLACEHOLDER_");
			for (size_t i = 0; i < sizeof(rnd); i++)
				k += snprintf(made + k, sizeof(made) - (size_t)k, "%02x", rnd[i]);
			value = made;
		}
		if (real) {
			/* inject = "env": the real value, asked for explicitly (and audited by
			 * nulld). */
			snprintf(buf, sizeof(buf), "%s=%s", *r, real);
			explicit_bzero(real, strlen(real));
			unsetenv(inject);
		} else {
			snprintf(buf, sizeof(buf), "%s=%s", *r, value);
		}
		int rr = strv_push(&c->envp, &n, buf);
		explicit_bzero(buf, sizeof(buf));
		if (rr < 0)
			return nb_err_set(e, ENOMEM, "out of memory");
	}
	return 0;
}

int
cage_config_ctx_socket(struct cage_config *c, const char *path, struct nb_err *e)
{
	char real[PATH_MAX];
	struct stat st;
	if (!realpath(path, real) || stat(real, &st) < 0)
		return nb_err_setp(e, errno, "--ctxgraph-socket %s", path);
	if (strcmp(real, path) != 0)
		return nb_err_set(e, ELOOP,
				  "--ctxgraph-socket %s: resolves through a symlink to %s", path,
				  real);
	if (!S_ISSOCK(st.st_mode))
		return nb_err_set(e, ENOTSOCK, "--ctxgraph-socket %s: not a Unix socket", path);
	free(c->ctx_socket);
	c->ctx_socket = strdup(real);
	return c->ctx_socket ? 0 : nb_err_set(e, ENOMEM, "out of memory");
}

void
cage_config_free(struct cage_config *c)
{
	free(c->name);
	nb_strv_free(c->argv);
	nb_strv_free(c->envp);
	nb_strv_free(c->masked);
	free(c->cwd);
	for (size_t i = 0; i < c->n_mounts; i++) {
		free(c->mounts[i].src);
		free(c->mounts[i].dst);
	}
	free(c->mounts);
	free(c->seccomp_profile);
	free(c->ctx_socket);
	*c = (struct cage_config){ 0 };
}
