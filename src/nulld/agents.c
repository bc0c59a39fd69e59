/*
 * agents.c: the agents nulld runs, each `cage run` as a supervised unit.
 *
 * Sections:
 *   registry   STATE/agents/NAME.json records each agent (its manifest), so agents come back
 *              after nulld restarts; written atomically
 *   units      an agent's unit: cage run --name N --json-fd 3 --manifest M; restart policy
 *              from [agent] restart; it starts once every service is up
 *   hooks      what the supervisor reports: audited (start, exit, sandbox refused, held)
 *   health     [capabilities.health_check]: HTTP GET inside the agent's network namespace
 *   pause      the cgroup freezer (v1 or v2) of the agent's cgroup, found by name
 *   logs       tail of the log files, and streams for `nullctl agent logs --follow`
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "cleanup.h"
#include "utf8.h"
#include "json.h"
#include "log.h"
#include "manifest.h"
#include "parts.h"

struct log_follower {
	struct nb_ipc_call *call; /* NULL once ended */
	struct log_follower *next;
};

struct credential {
	char *name;
	char placeholder[64]; /* NULLBOX_PLACEHOLDER_<32 hex>, new at every start */
};

struct agent {
	char *manifest;
	struct credential *creds;
	size_t n_creds;
	char **ctx_read, **ctx_write;
	char **base_argv; /* cage run ... without the per-start arguments */
	struct nb_health_check health;
	char *health_path;
	int hc_timer;
	struct nulld_watch w_hc;
	pid_t hc_pid;
	unsigned hc_failures;
	char health_state[64];
	bool paused;
	struct log_follower *followers;
};

struct agents {
	char dir[PATH_MAX];
	char cage[PATH_MAX];
};

/* ---- registry ---- */

static int
registry_write(struct nulld *d, const char *name, const char *manifest, struct nb_err *e)
{
	struct agents *as = d->agents;
	char path[PATH_MAX + 80], tmp[PATH_MAX + 96];
	snprintf(path, sizeof(path), "%s/%s.json", as->dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.json.tmp", as->dir, name);
	_cleanup_json_ json_t *o = json_pack("{s:s, s:s}", "name", name, "manifest", manifest);
	if (!o)
		return nb_err_set(e, ENOMEM, "out of memory");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return nb_err_setp(e, errno, "%s", tmp);
	/* Written whole, flushed, then renamed: a crash leaves the old record or the new one. */
	if (json_dumpfd(o, fd, JSON_COMPACT) < 0 || write(fd, "\n", 1) != 1 || fsync(fd) < 0) {
		int err = errno ? errno : EIO;
		close(fd);
		unlink(tmp);
		return nb_err_setp(e, err, "%s", tmp);
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		int err = errno;
		unlink(tmp);
		return nb_err_setp(e, err, "%s", path);
	}
	int dfd = open(as->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

static void
registry_remove(struct nulld *d, const char *name)
{
	struct agents *as = d->agents;
	char path[PATH_MAX + 80];
	snprintf(path, sizeof(path), "%s/%s.json", as->dir, name);
	if (unlink(path) < 0 && errno != ENOENT)
		log_perr("%s", path);
}

/* ---- units ---- */

struct nulld_unit *
nulld_agent_find(struct nulld *d, const char *name)
{
	for (size_t i = d->n_services; i < d->n_units; i++)
		if (d->units[i]->agent && !d->units[i]->removed &&
		    strcmp(d->units[i]->name, name) == 0)
			return d->units[i];
	return NULL;
}

static void
agent_free(struct agent *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n_creds; i++)
		free(a->creds[i].name);
	free(a->creds);
	nb_strv_free(a->ctx_read);
	nb_strv_free(a->ctx_write);
	nb_strv_free(a->base_argv);
	if (a->hc_timer >= 0)
		close(a->hc_timer);
	free(a->manifest);
	free(a->health_path);
	free(a);
}

static void on_health_timer(struct nulld *d, struct nulld_watch *w, uint32_t events);
static const struct nulld_unit *service_up(struct nulld *d, const char *name);
static int service_call(struct nulld *d, const char *sock, const char *method, json_t *params,
			json_t **res, struct nb_err *e);

static char **
strv_copy(char **v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	char **c = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; c && i < n; i++) {
		if (!(c[i] = strdup(v[i]))) {
			nb_strv_free(c);
			return NULL;
		}
	}
	return c;
}

/* Builds the unit for an agent whose manifest loaded as @m from @manifest. */
static struct nulld_unit *
agent_unit(struct nulld *d, const struct nb_manifest *m, const char *name, const char *manifest,
	   struct nb_err *e)
{
	struct agents *as = d->agents;
	struct nulld_unit *u = calloc(1, sizeof(*u));
	struct agent *a = calloc(1, sizeof(*a));
	if (!u || !a) {
		free(u);
		free(a);
		nb_err_set(e, ENOMEM, "out of memory");
		return NULL;
	}
	a->hc_timer = -1;
	int r = nulld_unit_init(u);
	if (r < 0) {
		free(u);
		free(a);
		nb_err_setp(e, -r, "timerfd");
		return NULL;
	}
	u->data = a;
	u->agent = true;
	u->name = strdup(name);
	a->manifest = strdup(manifest);
	a->health = m->health;
	a->health_path = m->health.path ? strdup(m->health.path) : NULL;
	a->health.path = a->health_path;
	snprintf(a->health_state, sizeof(a->health_state), "%s",
		 m->health.present ? "unknown" : "");
	char *argv[] = { as->cage, "run",	 "--name",	   (char *)name, "--json-fd",
			 "3",	   "--manifest", (char *)manifest, NULL };
	a->base_argv = calloc(NB_ARRAY_SIZE(argv), sizeof(char *));
	for (size_t i = 0; a->base_argv && argv[i]; i++)
		a->base_argv[i] = strdup(argv[i]);
	u->argv = calloc(NB_ARRAY_SIZE(argv), sizeof(char *));
	for (size_t i = 0; u->argv && argv[i]; i++)
		u->argv[i] = strdup(argv[i]);
	size_t nc = 0;
	while (m->credential_refs[nc])
		nc++;
	a->creds = calloc(nc + 1, sizeof(*a->creds));
	for (size_t i = 0; a->creds && i < nc; i++)
		if ((a->creds[i].name = strdup(m->credential_refs[i])))
			a->n_creds++;
	a->ctx_read = strv_copy(m->ctx_read);
	a->ctx_write = strv_copy(m->ctx_write);
	u->result_pipe = true;
	u->readiness = NULLD_READY_NONE;
	u->restart = m->restart == NB_RESTART_ALWAYS  ? NULLD_RESTART_ALWAYS
		     : m->restart == NB_RESTART_NEVER ? NULLD_RESTART_NEVER
						      : NULLD_RESTART_ON_FAILURE;
	/* An agent starts after every service: egress, warden and ctxgraph serve it. */
	u->deps = calloc(d->n_services + 1, sizeof(size_t));
	for (size_t i = 0; u->deps && i < d->n_services; i++)
		u->deps[u->n_deps++] = i;
	char path[PATH_MAX + 80];
	snprintf(path, sizeof(path), "%s/logs/agent.%s.log", d->opt.state_dir, name);
	u->log_path = strdup(path);
	if (m->health.present) {
		a->hc_timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		a->w_hc = (struct nulld_watch){ NULLD_W_EXTERNAL, u, on_health_timer };
		if (a->hc_timer >= 0)
			nulld_watch(d, a->hc_timer, &a->w_hc, EPOLLIN);
	}
	if (!u->name || !a->manifest || !u->argv || !u->deps || !u->log_path || !a->base_argv ||
	    !a->creds || a->n_creds != nc || !a->ctx_read || !a->ctx_write ||
	    (m->health.present && (a->hc_timer < 0 || !a->health_path))) {
		u->data = NULL;
		agent_free(a);
		nulld_unit_free(d, u);
		nb_err_set(e, ENOMEM, "out of memory");
		return NULL;
	}
	return u;
}

/* Resolves @path (AGENT.toml or its directory) to the manifest file. */
static int
manifest_path(const char *path, char out[PATH_MAX], struct nb_err *e)
{
	struct stat st;
	char tmp[PATH_MAX + 16];
	if (path[0] != '/')
		return nb_err_set(e, EINVAL, "%s: the manifest path must be absolute", path);
	if (stat(path, &st) < 0)
		return nb_err_setp(e, errno, "%s", path);
	if (S_ISDIR(st.st_mode))
		snprintf(tmp, sizeof(tmp), "%s/AGENT.toml", path);
	else
		snprintf(tmp, sizeof(tmp), "%s", path);
	if (!realpath(tmp, out))
		return nb_err_setp(e, errno, "%s", tmp);
	return 0;
}

static struct nulld_unit *
agent_load(struct nulld *d, const char *path, const char *name, struct nb_err *e)
{
	char manifest[PATH_MAX];
	if (manifest_path(path, manifest, e) < 0)
		return NULL;
	struct nb_manifest m = { 0 };
	if (nb_manifest_load(manifest, &m, e) < 0)
		return NULL;
	if (!name)
		name = m.name;
	struct nulld_unit *u = NULL;
	if (nulld_agent_find(d, name))
		nb_err_set(e, EEXIST,
			   "agent %s already exists (stop it first, or start this one "
			   "with another --name)",
			   name);
	else
		u = agent_unit(d, &m, name, manifest, e);
	nb_manifest_free(&m);
	if (u && nulld_add_unit(d, u) < 0) {
		agent_free(u->data);
		nulld_unit_free(d, u);
		nb_err_set(e, ENOMEM, "out of memory");
		return NULL;
	}
	return u;
}

bool
nulld_agent_valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > NB_AGENT_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return false;
	return true;
}

struct nulld_unit *
nulld_agent_add(struct nulld *d, const char *path, const char *name, struct nb_err *e)
{
	if (name && !nulld_agent_valid_name(name)) {
		nb_err_set(e, EINVAL, "name: 1-64 characters of A-Z a-z 0-9 _ -");
		return NULL;
	}
	struct nulld_unit *u = agent_load(d, path, name, e);
	if (!u)
		return NULL;
	struct agent *a = u->data;
	if (registry_write(d, u->name, a->manifest, e) < 0) {
		u->removed = true;
		return NULL;
	}
	nulld_start_ready_units(d);
	return u;
}

int
nulld_agent_remove(struct nulld *d, struct nulld_unit *u, struct nb_err *e)
{
	struct agent *a = u->data;
	if (a->paused)
		nulld_agent_pause(d, u, false, e);
	u->want_down = true;
	u->removed = true;
	/* A running agent's stop is audited as it is signalled (hook_stopping); one that is not
	 * running (backoff, held, down) is audited here. */
	if (u->pid <= 0)
		nulld_audit(d, "nulld", "agent.stop", u->name, NB_AUDIT_ALLOWED, NULL,
			    "asked; it was not running (%s)", nulld_unit_state_name(u->state));
	nulld_unit_stop(d, u);
	registry_remove(d, u->name);
	/* Its ctxgraph socket goes with it (its entries stay: memory outlives agents). */
	if (service_up(d, "ctxgraph")) {
		struct nb_err ue = { 0 };
		_cleanup_json_ json_t *p = json_pack("{s:s}", "name", u->name);
		_cleanup_json_ json_t *res = NULL;
		if (service_call(d, "ctxgraph.sock", "agent.unregister", p, &res, &ue) < 0)
			log_warn("agent %s: ctxgraph: %s", u->name, ue.msg);
	}
	return 0;
}

/* Unlinks removed agents that have ended (outside event processing: no stale pointers). */
static void
reap_removed(struct nulld *d)
{
	for (size_t i = d->n_services; i < d->n_units;) {
		struct nulld_unit *u = d->units[i];
		if (u->removed && u->pid == 0) {
			struct agent *a = u->data;
			for (struct log_follower *f = a->followers; f;) {
				struct log_follower *next = f->next;
				if (f->call)
					nb_ipc_call_reply(f->call, NULL);
				free(f);
				f = next;
			}
			memmove(&d->units[i], &d->units[i + 1],
				(d->n_units - i - 1) * sizeof(*d->units));
			d->n_units--;
			agent_free(a);
			u->data = NULL;
			nulld_unit_free(d, u);
			continue;
		}
		i++;
	}
}

int
nulld_agents_init(struct nulld *d, struct nb_err *e)
{
	struct agents *as = calloc(1, sizeof(*as));
	if (!as)
		return nb_err_set(e, ENOMEM, "out of memory");
	d->agents = as;
	snprintf(as->dir, sizeof(as->dir), "%s/agents", d->opt.state_dir);
	if (mkdir(as->dir, 0700) < 0 && errno != EEXIST)
		return nb_err_setp(e, errno, "%s: mkdir", as->dir);
	/* cage: $NULLBOX_CAGE, else next to nulld (installed), else the build tree's. */
	const char *env = getenv("NULLBOX_CAGE");
	char self[PATH_MAX - 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	if (env && *env)
		snprintf(as->cage, sizeof(as->cage), "%s", env);
	else if (snprintf(as->cage, sizeof(as->cage), "%s/cage", self) > 0 &&
		 access(as->cage, X_OK) < 0)
		snprintf(as->cage, sizeof(as->cage), "%s/../cage/cage", self);
	if (access(as->cage, X_OK) < 0)
		log_warn("cage not found at %s: agents cannot start (set NULLBOX_CAGE)", as->cage);

	_cleanup_(nb_closep) int dfd = open(as->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = dfd >= 0 ? fdopendir(dup(dfd)) : NULL;
	if (!dir)
		return nb_err_setp(e, errno, "%s", as->dir);
	struct dirent *de;
	while ((de = readdir(dir))) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
			continue;
		char path[PATH_MAX + 300];
		snprintf(path, sizeof(path), "%s/%s", as->dir, de->d_name);
		json_error_t je;
		_cleanup_json_ json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
		const char *name = NULL, *manifest = NULL;
		if (!o || json_unpack(o, "{s:s, s:s}", "name", &name, "manifest", &manifest) < 0 ||
		    !nulld_agent_valid_name(name)) {
			log_err("%s: not an agent record, skipped", path);
			continue;
		}
		struct nb_err le = { 0 };
		if (!agent_load(d, manifest, name, &le)) {
			log_err("agent %s not restored: %s", name, le.msg);
			nulld_audit(d, "nulld", "agent.restore", name, NB_AUDIT_DENIED, NULL, "%s",
				    le.msg);
			continue;
		}
		log_info("agent %s restored from %s", name, path);
	}
	closedir(dir);
	return 0;
}

void
nulld_agents_free(struct nulld *d)
{
	for (size_t i = d->n_services; i < d->n_units; i++) {
		struct agent *a = d->units[i]->data;
		for (struct log_follower *f = a ? a->followers : NULL; f;) {
			struct log_follower *next = f->next;
			if (f->call)
				nb_ipc_call_reply(f->call, NULL);
			free(f);
			f = next;
		}
		agent_free(a);
		d->units[i]->data = NULL;
	}
	free(d->agents);
	d->agents = NULL;
}

/* ---- health ---- */

static void
health_arm(struct agent *a, bool on)
{
	if (a->hc_timer < 0)
		return;
	struct itimerspec its = { 0 };
	if (on) {
		its.it_value.tv_sec = a->health.interval_secs;
		its.it_interval.tv_sec = a->health.interval_secs;
	}
	timerfd_settime(a->hc_timer, 0, &its, NULL);
}

/* The sandbox's init: cage's child in another network namespace (the other is its guard). */
static pid_t
sandbox_init_pid(pid_t cage)
{
	char path[64], buf[256], mine[64] = "", theirs[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)cage, (int)cage);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f || !fgets(buf, sizeof(buf), f))
		return -1;
	ssize_t n = readlink("/proc/self/ns/net", mine, sizeof(mine) - 1);
	mine[n > 0 ? n : 0] = '\0';
	for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n")) {
		snprintf(path, sizeof(path), "/proc/%s/ns/net", tok);
		n = readlink(path, theirs, sizeof(theirs) - 1);
		if (n <= 0)
			continue;
		theirs[n] = '\0';
		if (strcmp(theirs, mine) != 0)
			return (pid_t)atoi(tok);
	}
	return -1;
}

/*
 * The check runs in a child that joins the agent's network namespace (the agent listens on its
 * own loopback, which nothing outside can reach otherwise) and sends one HTTP/1.0 GET. Exit 0
 * for a 2xx or 3xx status line. Only the status line of the agent's answer is parsed.
 */
static pid_t
health_start(struct agent *a, pid_t init)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)init);
	int ns = open(path, O_RDONLY | O_CLOEXEC);
	if (ns < 0 || setns(ns, CLONE_NEWNET) < 0)
		_exit(2);
	/* Nothing of nulld's (control connections, pipes) stays open while the agent answers. */
	close_range(3, ~0U, 0);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { .tv_sec = 2 };
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(a->health.port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		_exit(1);
	char req[600], resp[64];
	int len = snprintf(req, sizeof(req),
			   "GET %s HTTP/1.0\r\nHost: localhost\r\nUser-Agent: nulld-health\r\n\r\n",
			   a->health.path);
	if (write(s, req, (size_t)len) != len)
		_exit(1);
	size_t got = 0;
	ssize_t n;
	while (got < sizeof(resp) - 1 && (n = read(s, resp + got, sizeof(resp) - 1 - got)) > 0)
		got += (size_t)n;
	resp[got] = '\0';
	int code = 0;
	/* "HTTP/1.x NNN": the status needs all 12 bytes. */
	if (got < 12 || strncmp(resp, "HTTP/1.", 7) != 0 || sscanf(resp + 8, " %3d", &code) != 1)
		_exit(1);
	_exit(code >= 200 && code < 400 ? 0 : 1);
}

static void
on_health_timer(struct nulld *d, struct nulld_watch *w, uint32_t events)
{
	struct nulld_unit *u = w->unit;
	struct agent *a = u->data;
	uint64_t ticks;
	if (read(a->hc_timer, &ticks, sizeof(ticks)) != sizeof(ticks))
		return;
	if (u->state != UNIT_UP || a->paused || u->pid <= 0)
		return;
	if (a->hc_pid > 0) {
		/* The last check is still hanging: that is a failure too. */
		kill(a->hc_pid, SIGKILL);
		return;
	}
	pid_t init = sandbox_init_pid(u->pid);
	if (init > 0)
		a->hc_pid = health_start(a, init);
}

static void
health_result(struct nulld *d, struct nulld_unit *u, int status)
{
	struct agent *a = u->data;
	a->hc_pid = 0;
	if (u->state != UNIT_UP)
		return;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		a->hc_failures = 0;
		snprintf(a->health_state, sizeof(a->health_state), "ok");
		return;
	}
	a->hc_failures++;
	snprintf(a->health_state, sizeof(a->health_state), "failing (%u/%u)", a->hc_failures,
		 a->health.max_failures);
	log_warn("agent %s: health check GET :%u%s failed (%u of %u)", u->name, a->health.port,
		 a->health.path, a->hc_failures, a->health.max_failures);
	if (a->hc_failures >= a->health.max_failures) {
		nulld_audit(d, "nulld", "agent.restart", u->name, NB_AUDIT_ALLOWED, NULL,
			    "health check GET :%u%s failed %u times in a row", a->health.port,
			    a->health.path, a->hc_failures);
		a->hc_failures = 0;
		snprintf(a->health_state, sizeof(a->health_state), "restarted");
		nulld_unit_restart(d, u);
	}
}

/* ---- per start: credentials, ctxgraph ---- */

/* The UP service named @name, or NULL. */
static const struct nulld_unit *
service_up(struct nulld *d, const char *name)
{
	for (size_t i = 0; i < d->n_services; i++)
		if (strcmp(d->units[i]->name, name) == 0 && d->units[i]->state == UNIT_UP)
			return d->units[i];
	return NULL;
}

/* A blocking call to a service's socket next to nulld's (short: it runs in the loop). */
static int
service_call(struct nulld *d, const char *sock, const char *method, json_t *params, json_t **res,
	     struct nb_err *e)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s", d->opt.socket_path);
	char *slash = strrchr(path, '/');
	if (!slash)
		return nb_err_set(e, EINVAL, "no run directory");
	snprintf(slash + 1, sizeof(path) - (size_t)(slash + 1 - path), "%s", sock);
	struct nb_ipc_client *c = nb_ipc_connect(path, 2000, e);
	if (!c)
		return -(e->code ? e->code : EIO);
	int r = nb_ipc_call(c, method, params, 2000, res, e);
	nb_ipc_client_free(c);
	return r;
}

/*
 * inject = "env" secrets: warden says which of the agent's credentials want their real value in
 * the environment, and hands it over (it audits the read itself). Everything else stays a
 * placeholder. Without warden there is nothing to inject.
 */
static int
inject_secrets(struct nulld *d, struct nulld_unit *u, char ***env, size_t *n, struct nb_err *e)
{
	struct agent *a = u->data;
	if (a->n_creds == 0 || !service_up(d, "warden"))
		return 0;
	_cleanup_json_ json_t *list = NULL;
	_cleanup_json_ json_t *p = json_object();
	int r = service_call(d, "warden.sock", "vault.list", p, &list, e);
	if (r < 0)
		return nb_err_prefix(e, "warden: vault.list");
	json_t *secrets = json_object_get(list, "secrets");
	for (size_t i = 0; i < a->n_creds; i++) {
		size_t k;
		json_t *s;
		json_array_foreach(secrets, k, s)
		{
			const char *name = json_string_value(json_object_get(s, "name"));
			const char *inject = json_string_value(json_object_get(s, "inject"));
			if (!name || !inject || strcmp(name, a->creds[i].name) != 0 ||
			    strcmp(inject, "env") != 0)
				continue;
			_cleanup_json_ json_t *v = NULL;
			_cleanup_json_ json_t *q =
				json_pack("{s:s, s:s}", "name", name, "agent", u->name);
			r = service_call(d, "warden.sock", "vault.get", q, &v, e);
			if (r < 0)
				return nb_err_prefix(e, "warden: vault.get %s", name);
			const char *value = json_string_value(json_object_get(v, "value"));
			if (!value)
				return nb_err_set(e, EPROTO, "warden: vault.get %s: no value",
						  name);
			char **nv = realloc(*env, (*n + 2) * sizeof(char *));
			if (!nv)
				return nb_err_set(e, ENOMEM, "out of memory");
			*env = nv;
			if (asprintf(&nv[*n], "NULLBOX_INJECT_%s=%s", name, value) < 0)
				return nb_err_set(e, ENOMEM, "out of memory");
			nv[++*n] = NULL;
			nulld_audit(
				d, "nulld", "credential.inject", name, NB_AUDIT_ALLOWED, NULL,
				"WARNING: inject = env: agent %s holds the real value of %s in its "
				"environment",
				u->name, name);
		}
	}
	return 0;
}

static int
register_ctxgraph(struct nulld *d, struct nulld_unit *u, char **path, struct nb_err *e)
{
	struct agent *a = u->data;
	*path = NULL;
	if (!service_up(d, "ctxgraph"))
		return 0;
	json_t *rd = json_array(), *wr = json_array();
	for (char **x = a->ctx_read; x && *x; x++)
		json_array_append_new(rd, json_string(*x));
	for (char **x = a->ctx_write; x && *x; x++)
		json_array_append_new(wr, json_string(*x));
	/* Only the agent's uid (cage's default as root) may connect to its socket. */
	_cleanup_json_ json_t *p = json_pack("{s:s, s:o, s:o, s:i}", "name", u->name, "read", rd,
					     "write", wr, "uid", 65534);
	_cleanup_json_ json_t *res = NULL;
	int r = service_call(d, "ctxgraph.sock", "agent.register", p, &res, e);
	if (r < 0)
		return nb_err_prefix(e, "ctxgraph: agent.register");
	const char *sp = json_string_value(json_object_get(res, "path"));
	if (!sp)
		return nb_err_set(e, EPROTO, "ctxgraph: agent.register: no socket path");
	*path = strdup(sp);
	return *path ? 0 : nb_err_set(e, ENOMEM, "out of memory");
}

/*
 * Before each start of an agent: fresh placeholders for its credentials (egress learns the
 * mapping through credentials.resolve), the real values it asked to have injected, and its own
 * ctxgraph socket. A failure refuses this start (audited) rather than running the agent with
 * less than, or other than, its manifest says.
 */
static int
hook_before_start(struct nulld *d, struct nulld_unit *u)
{
	if (!u->agent)
		return 0;
	struct agent *a = u->data;
	struct nb_err e = { 0 };
	size_t n = 0;
	while (a->base_argv[n])
		n++;
	char **argv = calloc(n + 2 * a->n_creds + 3, sizeof(char *));
	char **env = NULL;
	size_t ne = 0, k = 0;
	_cleanup_free_ char *ctx = NULL;
	int r = argv ? 0 : nb_err_set(&e, ENOMEM, "out of memory");
	for (size_t i = 0; r == 0 && i < n; i++)
		r = (argv[k++] = strdup(a->base_argv[i])) ? 0 : nb_err_set(&e, ENOMEM, "oom");
	for (size_t i = 0; r == 0 && i < a->n_creds; i++) {
		uint8_t rnd[16];
		if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
			r = nb_err_setp(&e, errno, "getrandom");
			break;
		}
		char hex[33];
		nb_hex(rnd, sizeof(rnd), hex);
		snprintf(a->creds[i].placeholder, sizeof(a->creds[i].placeholder),
			 "NULLBOX_PLACEHOLDER_%s", hex);
		argv[k++] = strdup("--placeholder");
		if (asprintf(&argv[k++], "%s=%s", a->creds[i].name, a->creds[i].placeholder) < 0)
			r = nb_err_set(&e, ENOMEM, "out of memory");
	}
	if (r == 0)
		r = inject_secrets(d, u, &env, &ne, &e);
	if (r == 0)
		r = register_ctxgraph(d, u, &ctx, &e);
	if (r == 0 && ctx) {
		argv[k++] = strdup("--ctxgraph-socket");
		argv[k++] = strdup(ctx);
	}
	if (r < 0) {
		nb_strv_free(argv);
		for (char **x = env; x && *x; x++)
			explicit_bzero(*x, strlen(*x));
		nb_strv_free(env);
		nulld_audit(d, "nulld", "agent.start", u->name, NB_AUDIT_DENIED, NULL, "%s", e.msg);
		log_err("agent %s not started: %s", u->name, e.msg);
		return r;
	}
	nb_strv_free(u->argv);
	u->argv = argv;
	u->extra_env = env;
	return 0;
}

const char *nulld_agent_placeholder_owner(struct nulld *d, const char *placeholder,
					  const char **name);

/* Which running agent holds @placeholder, and for which credential (*name). NULL: none. */
const char *
nulld_agent_placeholder_owner(struct nulld *d, const char *placeholder, const char **name)
{
	for (size_t i = d->n_services; i < d->n_units; i++) {
		struct nulld_unit *u = d->units[i];
		struct agent *a = u->data;
		if (!a || u->removed || u->pid <= 0)
			continue;
		for (size_t k = 0; k < a->n_creds; k++) {
			if (strcmp(a->creds[k].placeholder, placeholder) == 0) {
				*name = a->creds[k].name;
				return u->name;
			}
		}
	}
	return NULL;
}

/* ---- hooks ---- */

static void
hook_started(struct nulld *d, struct nulld_unit *u)
{
	if (!u->agent) {
		nulld_audit(d, "nulld", "service.start", u->name, NB_AUDIT_ALLOWED, NULL, "pid %d",
			    (int)u->pid);
		return;
	}
	struct agent *a = u->data;
	a->hc_failures = 0;
	a->paused = false;
	/* A check of the previous instance must not count against this one. */
	if (a->hc_pid > 0)
		kill(a->hc_pid, SIGKILL);
	a->hc_pid = -1;
	health_arm(a, a->health.present);
	nulld_audit(d, "nulld", "agent.start", u->name, NB_AUDIT_ALLOWED, NULL,
		    "cage pid %d, manifest %s", (int)u->pid, a->manifest);
}

static void
hook_exited(struct nulld *d, struct nulld_unit *u, int status, bool failed)
{
	if (!u->agent) {
		nulld_audit(d, "nulld", "service.exit", u->name,
			    failed ? NB_AUDIT_DENIED : NB_AUDIT_ALLOWED, NULL, "%s",
			    WIFEXITED(status) ? "exited" : "killed by a signal");
		return;
	}
	struct agent *a = u->data;
	health_arm(a, false);
	a->paused = false;
	/* The agent was asked to stop (or nulld shuts down): its end is no denial. */
	bool asked = u->state == UNIT_STOPPING || u->want_down || d->shutting_down;
	_cleanup_json_ json_t *res = u->result[0] ? json_loads(u->result, 0, NULL) : NULL;
	const char *st = NULL, *err = NULL;
	int code = -1;
	if (res)
		json_unpack(res, "{s?s, s?s, s?i}", "status", &st, "error", &err, "exit_code",
			    &code);
	if (st && strcmp(st, "error") == 0) {
		/* cage refused to build the sandbox: a denial, with cage's own reason. */
		nulld_audit(d, u->name, "sandbox.create", u->name, NB_AUDIT_DENIED, res, "%s",
			    err ? err : "cage failed");
		return;
	}
	if (!res) {
		nulld_audit(d, u->name, "agent.exit", u->name,
			    asked ? NB_AUDIT_ALLOWED : NB_AUDIT_DENIED, NULL,
			    "cage (pid %d) ended without a result (%s %d)%s", (int)u->last_pid,
			    WIFEXITED(status) ? "status" : "signal",
			    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
			    asked ? ", stopped as asked" : "");
		return;
	}
	nulld_audit(d, u->name, "agent.exit", u->name, NB_AUDIT_ALLOWED, res,
		    "cage pid %d: %s, exit code %d%s", (int)u->last_pid, st ? st : "ended", code,
		    asked ? ", stopped as asked" : "");
}

static void
hook_held(struct nulld *d, struct nulld_unit *u)
{
	nulld_audit(d, "nulld", u->agent ? "agent.hold" : "service.hold", u->name, NB_AUDIT_DENIED,
		    NULL, "failed %u times in a row; not restarted until asked", u->failures);
}

static void
hook_stopping(struct nulld *d, struct nulld_unit *u)
{
	struct agent *a = u->agent ? u->data : NULL;
	/* A frozen process cannot act on SIGTERM: thaw first. */
	if (a && a->paused) {
		struct nb_err e = { 0 };
		nulld_agent_pause(d, u, false, &e);
	}
	nulld_audit(d, "nulld", u->agent ? "agent.stop" : "service.stop", u->name, NB_AUDIT_ALLOWED,
		    NULL, "%s", d->shutting_down ? "shutdown" : "asked");
}

static void
hook_reaped(struct nulld *d, pid_t pid, int status)
{
	for (size_t i = d->n_services; i < d->n_units; i++) {
		struct agent *a = d->units[i]->data;
		if (a && a->hc_pid == pid) {
			health_result(d, d->units[i], status);
			return;
		}
	}
}

/* Agent output as a JSON string: invalid UTF-8 and NUL bytes become U+FFFD. */
static json_t *
utf8_json(const char *buf, size_t n)
{
	_cleanup_free_ char *out = malloc(n * 3 + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	const unsigned char *p = (const unsigned char *)buf;
	for (size_t i = 0; i < n;) {
		/* NUL becomes U+FFFD too: it would cut the string short for some readers. */
		size_t len = p[i] ? nb_utf8_seq(p + i, n - i, NULL) : 0;
		if (len) {
			memcpy(out + o, p + i, len);
			o += len;
			i += len;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	return json_stringn(out, o);
}

static void
hook_log_data(struct nulld *d, struct nulld_unit *u, const char *buf, size_t n)
{
	struct agent *a = u->agent ? u->data : NULL;
	if (!a || !a->followers)
		return;
	/*
	 * In pieces of at most 8 KiB: escaped (a control byte becomes \u00XX, six bytes) each
	 * stays under the 64 KiB message cap, so no output is ever dropped from a stream. A piece
	 * may end inside a UTF-8 sequence; that byte shows as U+FFFD, as in the file it does not.
	 */
	for (size_t off = 0; off < n; off += 8192) {
		size_t len = n - off < 8192 ? n - off : 8192;
		for (struct log_follower *f = a->followers; f; f = f->next) {
			if (!f->call)
				continue;
			json_t *p = json_pack("{s:s, s:o*}", "name", u->name, "data",
					      utf8_json(buf + off, len));
			if (nb_ipc_call_notify(f->call, "log", p) < 0 && f->call &&
			    !nb_ipc_call_alive(f->call)) {
				nb_ipc_call_reply(f->call, NULL);
				f->call = NULL;
			}
		}
	}
}

static void
hook_after_events(struct nulld *d)
{
	for (size_t i = d->n_services; i < d->n_units; i++) {
		struct agent *a = d->units[i]->data;
		for (struct log_follower **pp = a ? &a->followers : NULL; pp && *pp;) {
			if (!(*pp)->call) {
				struct log_follower *f = *pp;
				*pp = f->next;
				free(f);
			} else {
				pp = &(*pp)->next;
			}
		}
	}
	reap_removed(d);
}

/*
 * ctxgraph came back after it ended: the sockets running agents have bound in their sandbox are
 * gone with it (a bind holds the file, not the name). Restart them, so each gets a fresh
 * registration and socket; their memory is in the database and stays.
 */
static void
hook_state_changed(struct nulld *d, struct nulld_unit *u)
{
	if (u->agent || u->state != UNIT_UP || u->exits == 0 || strcmp(u->name, "ctxgraph") != 0)
		return;
	for (size_t i = d->n_services; i < d->n_units; i++) {
		struct nulld_unit *a = d->units[i];
		if (a->removed || a->pid <= 0 || a->state == UNIT_STOPPING)
			continue;
		nulld_audit(d, "nulld", "agent.restart", a->name, NB_AUDIT_ALLOWED, NULL,
			    "ctxgraph restarted: the agent needs a new memory socket");
		if (a->state == UNIT_PAUSED) {
			struct nb_err e = { 0 };
			nulld_agent_pause(d, a, false, &e);
		}
		nulld_unit_restart(d, a);
	}
}

void nulld_agents_hooks(struct nulld *d);

void
nulld_agents_hooks(struct nulld *d)
{
	d->hooks.started = hook_started;
	d->hooks.exited = hook_exited;
	d->hooks.held = hook_held;
	d->hooks.stopping = hook_stopping;
	d->hooks.reaped = hook_reaped;
	d->hooks.log_data = hook_log_data;
	d->hooks.after_events = hook_after_events;
	d->hooks.before_start = hook_before_start;
	d->hooks.state_changed = hook_state_changed;
}

/* ---- pause ---- */

int
nulld_agent_pause(struct nulld *d, struct nulld_unit *u, bool pause, struct nb_err *e)
{
	struct agent *a = u->data;
	if (u->pid <= 0 || (u->state != UNIT_UP && u->state != UNIT_PAUSED))
		return nb_err_set(e, ESRCH, "agent %s is not running (%s)", u->name,
				  nulld_unit_state_name(u->state));
	if (a->paused == pause)
		return 0;
	/* cage names the cgroup nullbox-NAME-CAGEPID, under the cgroups it (our child) is in. */
	char cgname[128];
	snprintf(cgname, sizeof(cgname), "nullbox-%s-%d", u->name, (int)u->pid);
	struct nb_cgroup *cg = NULL;
	int r = nb_cgroup_open(cgname, u->pid, &cg, e);
	if (r == 0)
		r = nb_cgroup_freeze(cg, pause, e);
	nb_cgroup_close(cg);
	if (r < 0)
		return r;
	a->paused = pause;
	nulld_unit_set_state(d, u, pause ? UNIT_PAUSED : UNIT_UP);
	nulld_audit(d, "nulld", pause ? "agent.pause" : "agent.resume", u->name, NB_AUDIT_ALLOWED,
		    NULL, "cgroup freezer");
	return 0;
}

/* ---- json, logs ---- */

json_t *
nulld_unit_json(struct nulld *d, struct nulld_unit *u)
{
	char how[96] = "";
	if (u->exits > 0) {
		int st = u->last_status;
		if (WIFEXITED(st))
			snprintf(how, sizeof(how), "exited %d", WEXITSTATUS(st));
		else if (WIFSIGNALED(st))
			snprintf(how, sizeof(how), "signal %d", WTERMSIG(st));
	}
	json_t *o =
		json_pack("{s:s, s:s, s:i, s:I, s:i, s:i, s:s*}", "name", u->name, "state",
			  nulld_unit_state_name(u->state), "pid", (int)u->pid, "since_ms",
			  (json_int_t)(nulld_now_ms() - u->since_ms), "failures", (int)u->failures,
			  "restarts", (int)(u->exits ? u->exits - (u->pid == 0) : 0), "last_exit",
			  how[0] ? how : NULL);
	if (o && u->agent && u->data) {
		struct agent *a = u->data;
		json_object_set_new(o, "manifest", json_string(a->manifest));
		json_object_set_new(o, "health",
				    a->health_state[0] ? json_string(a->health_state)
						       : json_null());
	}
	return o;
}

char *
nulld_agent_log_tail(struct nulld *d, const char *name, int lines)
{
	char path[PATH_MAX + 80];
	size_t cap = 256 * 1024, len = 0;
	char *buf = malloc(cap + 1);
	if (!buf)
		return NULL;
	/* The rotated file first, then the current one; keep the last @lines lines. */
	for (int k = 1; k >= 0; k--) {
		if (k)
			snprintf(path, sizeof(path), "%s/logs/agent.%s.log.1", d->opt.state_dir,
				 name);
		else
			snprintf(path, sizeof(path), "%s/logs/agent.%s.log", d->opt.state_dir,
				 name);
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		struct stat st;
		off_t start = 0;
		if (fstat(fd, &st) == 0 && (size_t)st.st_size > cap)
			start = st.st_size - (off_t)cap;
		ssize_t n;
		char tmp[16384];
		while ((n = pread(fd, tmp, sizeof(tmp), start)) > 0) {
			start += n;
			if (len + (size_t)n > cap) {
				size_t drop = len + (size_t)n - cap;
				memmove(buf, buf + drop, len - drop);
				len -= drop;
			}
			memcpy(buf + len, tmp, (size_t)n);
			len += (size_t)n;
		}
		close(fd);
	}
	buf[len] = '\0';
	size_t pos = len, seen = 0;
	if (pos > 0 && buf[pos - 1] == '\n')
		pos--;
	while (pos > 0) {
		if (buf[pos - 1] == '\n' && ++seen >= (size_t)lines)
			break;
		pos--;
	}
	memmove(buf, buf + pos, len - pos + 1);
	return buf;
}

/* Runs inside the IPC layer: only end the call and mark the follower. */
static void
log_follower_cancelled(struct nb_ipc_call *call, void *data)
{
	struct agent *a = data;
	for (struct log_follower *f = a->followers; f; f = f->next) {
		if (f->call == call) {
			nb_ipc_call_reply(call, NULL);
			f->call = NULL;
		}
	}
}

int
nulld_agent_follow_logs(struct nulld *d, struct nulld_unit *u, struct nb_ipc_call *call)
{
	struct agent *a = u->data;
	struct log_follower *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->call = call;
	f->next = a->followers;
	a->followers = f;
	nb_ipc_call_on_cancel(call, log_follower_cancelled, a);
	return 0;
}

json_t *nulld_agent_utf8_json(const char *buf, size_t n);

json_t *
nulld_agent_utf8_json(const char *buf, size_t n)
{
	return utf8_json(buf, n);
}
