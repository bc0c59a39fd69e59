/*
 * control.c: the control socket nullctl talks to (JSON-RPC 2.0, lib/ipc.c).
 *
 * Who may connect: root and nulld's own uid, checked with SO_PEERCRED at accept (the socket
 * file is 0600 too; the check is what counts, a file mode can be changed). A refused peer is
 * audited. Methods, their params and results are listed in docs/man/nullctl.1 and follow
 * nullctl's commands one to one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "parts.h"

/* What one reply may carry, leaving room for the envelope under NB_IPC_MAX_MSG. */
#define REPLY_BUDGET (NB_IPC_MAX_MSG - 4096)

/* Application errors (JSON-RPC reserves -32768..-32000). */
#define CTL_ERR_FAILED 1    /* the request was valid but could not be done */
#define CTL_ERR_NOT_FOUND 2 /* no such agent or service */

struct control {
	struct nb_ipc_server *srv;
	struct nulld_watch w;
	struct nulld *d;
};

/* True if @pid's supplementary groups (or its primary @gid) include @want. */
static bool
peer_in_group(pid_t pid, gid_t gid, gid_t want)
{
	if (gid == want)
		return true;
	char path[64], line[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Groups:", 7) != 0)
			continue;
		for (char *tok = strtok(line + 7, " \t\n"); tok; tok = strtok(NULL, " \t\n"))
			if ((gid_t)strtoul(tok, NULL, 10) == want)
				return true;
	}
	return false;
}

/*
 * Who may control nulld: root, nulld's own uid, and members of --control-group. The socket's
 * mode is the first gate; this check at accept, on the kernel's SO_PEERCRED, is the one that
 * counts. Supplementary groups are read from /proc/PID/status at accept (a process cannot
 * change them without privilege).
 */
static bool
allow_peer(const struct nb_ipc_peer *peer, void *tag, void *data)
{
	struct nulld *d = data;
	if (peer->uid == 0 || peer->uid == geteuid())
		return true;
	if (d->opt.control_gid != (gid_t)-1 &&
	    peer_in_group(peer->pid, peer->gid, d->opt.control_gid))
		return true;
	char who[64];
	snprintf(who, sizeof(who), "uid %u pid %d", (unsigned)peer->uid, (int)peer->pid);
	nulld_audit(d, "nulld", "control.connect", who, NB_AUDIT_DENIED, NULL,
		    "only root, uid %u and the control group may control nulld",
		    (unsigned)geteuid());
	return false;
}

static struct nulld *
D(struct nb_ipc_call *call)
{
	return nb_ipc_call_data(call);
}

static const char *
caller(struct nb_ipc_call *call, char *buf, size_t len)
{
	const struct nb_ipc_peer *p = nb_ipc_call_peer(call);
	snprintf(buf, len, "uid %u pid %d", (unsigned)p->uid, (int)p->pid);
	return buf;
}

static int
m_status(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	struct nulld *d = D(call);
	json_t *svcs = json_array(), *agents = json_array();
	for (size_t i = 0; i < d->n_units; i++) {
		if (d->units[i]->removed)
			continue;
		json_array_append_new(d->units[i]->agent ? agents : svcs,
				      nulld_unit_json(d, d->units[i]));
	}
	*result =
		json_pack("{s:i, s:I, s:s, s:b, s:o, s:o}", "pid", (int)getpid(), "uptime_ms",
			  (json_int_t)(nulld_now_ms() - d->start_ms), "state_dir", d->opt.state_dir,
			  "pid1", d->opt.pid1, "services", svcs, "agents", agents);
	return NB_IPC_OK;
}

static int
need_agent(struct nb_ipc_call *call, json_t *params, struct nulld_unit **u,
	   struct nb_ipc_error *err)
{
	const char *name = NULL;
	static const char *const names[] = { "name" };
	int r = nb_ipc_params_check(params, names, 1, err);
	if (r < 0)
		return r;
	r = nb_ipc_param_string(params, "name", 0, true, &name, err);
	if (r < 0)
		return r;
	*u = nulld_agent_find(D(call), name);
	if (!*u)
		return nb_ipc_error_set(err, CTL_ERR_NOT_FOUND, "no agent named %s", name);
	return 0;
}

static int
m_agent_start(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	static const char *const names[] = { "manifest", "name" };
	const char *manifest = NULL, *name = NULL;
	int r = nb_ipc_params_check(params, names, 2, err);
	if (r == 0)
		r = nb_ipc_param_string(params, "manifest", 0, true, &manifest, err);
	if (r >= 0)
		r = nb_ipc_param_string(params, "name", 1, false, &name, err);
	if (r < 0)
		return r;
	struct nb_err e = { 0 };
	char who[64];
	struct nulld_unit *u = nulld_agent_add(D(call), manifest, name, &e);
	if (!u) {
		nulld_audit(D(call), "nulld", "agent.start", name ? name : manifest,
			    NB_AUDIT_DENIED, NULL, "%s (asked by %s)", e.msg,
			    caller(call, who, sizeof(who)));
		return nb_ipc_error_set(err, CTL_ERR_FAILED, "%s", e.msg);
	}
	*result = nulld_unit_json(D(call), u);
	return NB_IPC_OK;
}

static int
m_agent_stop(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	struct nulld_unit *u;
	int r = need_agent(call, params, &u, err);
	if (r < 0)
		return r;
	struct nb_err e = { 0 };
	nulld_agent_remove(D(call), u, &e);
	*result = nulld_unit_json(D(call), u);
	return NB_IPC_OK;
}

static int
m_agent_restart(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	struct nulld_unit *u;
	int r = need_agent(call, params, &u, err);
	if (r < 0)
		return r;
	struct nb_err e = { 0 };
	if (u->state == UNIT_PAUSED)
		nulld_agent_pause(D(call), u, false, &e);
	nulld_unit_restart(D(call), u);
	*result = nulld_unit_json(D(call), u);
	return NB_IPC_OK;
}

static int
pause_resume(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err,
	     bool pause)
{
	struct nulld_unit *u;
	int r = need_agent(call, params, &u, err);
	if (r < 0)
		return r;
	struct nb_err e = { 0 };
	if (nulld_agent_pause(D(call), u, pause, &e) < 0)
		return nb_ipc_error_set(err, CTL_ERR_FAILED, "%s", e.msg);
	*result = nulld_unit_json(D(call), u);
	return NB_IPC_OK;
}

static int
m_agent_pause(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	return pause_resume(call, params, result, err, true);
}

static int
m_agent_resume(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	return pause_resume(call, params, result, err, false);
}

static int
m_agent_status(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	struct nulld_unit *u;
	int r = need_agent(call, params, &u, err);
	if (r < 0)
		return r;
	*result = nulld_unit_json(D(call), u);
	return NB_IPC_OK;
}

static int
m_agent_list(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	struct nulld *d = D(call);
	int r = nb_ipc_params_check(params, NULL, 0, err);
	if (r < 0)
		return r;
	json_t *agents = json_array();
	for (size_t i = d->n_services; i < d->n_units; i++)
		if (!d->units[i]->removed)
			json_array_append_new(agents, nulld_unit_json(d, d->units[i]));
	*result = json_pack("{s:o}", "agents", agents);
	return NB_IPC_OK;
}

json_t *nulld_agent_utf8_json(const char *buf, size_t n);

static int
m_agent_logs(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	static const char *const names[] = { "name", "lines", "follow" };
	const char *name = NULL;
	int64_t lines = 100;
	bool follow = false;
	int r = nb_ipc_params_check(params, names, 3, err);
	if (r == 0)
		r = nb_ipc_param_string(params, "name", 0, true, &name, err);
	if (r >= 0)
		r = nb_ipc_param_int(params, "lines", 1, false, &lines, err);
	if (r >= 0)
		r = nb_ipc_param_bool(params, "follow", 2, false, &follow, err);
	if (r < 0)
		return r;
	if (lines < 0 || lines > 100000)
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS, "lines: 0 to 100000");
	/* The name becomes part of a path: only what an agent name may be. */
	if (!nulld_agent_valid_name(name))
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"name: 1-64 characters of A-Z a-z 0-9 _ -");
	struct nulld *d = D(call);
	struct nulld_unit *u = nulld_agent_find(d, name);
	_cleanup_free_ char *tail = nulld_agent_log_tail(d, name, (int)lines);
	if (!tail)
		return nb_ipc_error_set(err, NB_IPC_INTERNAL_ERROR, "out of memory");
	/* Escaped, control bytes grow sixfold: cut from the front, at a line, until it fits. */
	size_t off = 0, len = strlen(tail);
	for (;;) {
		json_t *j = nulld_agent_utf8_json(tail + off, len - off);
		char *dump = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
		size_t sz = dump ? strlen(dump) : 0;
		free(dump);
		json_decref(j);
		if (sz <= REPLY_BUDGET || off >= len)
			break;
		off += (len - off) / 4 + 1;
		/* At a line start when one is near; inside a long line otherwise. */
		size_t look = len - off < 4096 ? len - off : 4096;
		char *nl = memchr(tail + off, '\n', look);
		if (nl)
			off = (size_t)(nl - tail) + 1;
	}
	memmove(tail, tail + off, len - off + 1);
	if (!follow) {
		if (!u && !tail[0])
			return nb_ipc_error_set(err, CTL_ERR_NOT_FOUND, "no agent named %s", name);
		*result = json_pack("{s:o*}", "data", nulld_agent_utf8_json(tail, strlen(tail)));
		return NB_IPC_OK;
	}
	if (!u)
		return nb_ipc_error_set(err, CTL_ERR_NOT_FOUND, "no agent named %s (running)",
					name);
	/* A stream: the tail first, then whatever the agent writes, until the client goes. */
	nb_ipc_call_notify(call, "log",
			   json_pack("{s:s, s:o*}", "name", name, "data",
				     nulld_agent_utf8_json(tail, strlen(tail))));
	if (nulld_agent_follow_logs(d, u, call) < 0)
		return nb_ipc_error_set(err, NB_IPC_INTERNAL_ERROR, "out of memory");
	return NB_IPC_DEFER;
}

static int
verdict_mask(const char *v, unsigned *mask, struct nb_ipc_error *err)
{
	enum nb_audit_verdict vv;
	struct nb_err e = { 0 };
	if (!v)
		return 0;
	if (nb_audit_verdict_parse(v, &vv, &e) < 0)
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"verdict: allowed, denied or deferred (got %.32s)", v);
	*mask = 1u << vv;
	return 0;
}

static int
m_audit_query(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	static const char *const names[] = { "agent", "verdict", "limit", "follow" };
	const char *agent = NULL, *verdict = NULL;
	int64_t limit = 0;
	bool follow = false;
	unsigned mask = 0;
	int r = nb_ipc_params_check(params, names, 4, err);
	if (r == 0)
		r = nb_ipc_param_string(params, "agent", 0, false, &agent, err);
	if (r >= 0)
		r = nb_ipc_param_string(params, "verdict", 1, false, &verdict, err);
	if (r >= 0)
		r = nb_ipc_param_int(params, "limit", 2, false, &limit, err);
	if (r >= 0)
		r = nb_ipc_param_bool(params, "follow", 3, false, &follow, err);
	if (r >= 0)
		r = verdict_mask(verdict, &mask, err);
	if (r < 0)
		return r;
	if (limit < 0)
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS, "limit: must be >= 0");
	struct nulld *d = D(call);
	/* --agent A matches records about A as actor (what the agent did). */
	struct nb_audit_filter f = { .actor = agent, .verdicts = mask };
	struct nb_audit_iter *it = NULL;
	struct nb_err e = { 0 };
	if (nb_audit_iter_open(nulld_audit_dir(d), &f, 0, &it, &e) < 0)
		return nb_ipc_error_set(err, CTL_ERR_FAILED, "%s", e.msg);
	json_t *records = json_array();
	struct nb_audit_record rec;
	/*
	 * Keep the newest @limit records, and never more than fit in one message (64 KiB): a large
	 * log must not make the answer impossible. What was left out is said ("truncated").
	 */
	size_t *sizes = NULL, total = 0, cap = 0;
	bool truncated = false;
	while ((r = nb_audit_iter_next(it, &rec, &e)) == 1) {
		json_t *o = json_loadb(rec.line, rec.line_len, 0, NULL);
		if (!o)
			continue;
		size_t n = json_array_size(records);
		if (n == cap) {
			size_t *ns = realloc(sizes, (cap = cap ? 2 * cap : 256) * sizeof(*sizes));
			if (!ns) {
				json_decref(o);
				break;
			}
			sizes = ns;
		}
		json_array_append_new(records, o);
		sizes[n] = rec.line_len + 1;
		total += sizes[n];
		while (json_array_size(records) > 0 &&
		       ((limit > 0 && json_array_size(records) > (size_t)limit) ||
			total > REPLY_BUDGET)) {
			if (limit <= 0 || json_array_size(records) <= (size_t)limit)
				truncated = true;
			total -= sizes[0];
			memmove(sizes, sizes + 1, (json_array_size(records) - 1) * sizeof(*sizes));
			json_array_remove(records, 0);
		}
	}
	free(sizes);
	nb_audit_iter_free(it);
	if (r < 0) {
		json_decref(records);
		return nb_ipc_error_set(err, CTL_ERR_FAILED, "%s", e.msg);
	}
	if (!follow) {
		*result = json_pack("{s:o, s:b}", "records", records, "truncated", truncated);
		return NB_IPC_OK;
	}
	/* Following: the existing records as one notification, then each new one. */
	nb_ipc_call_notify(call, "audit.records",
			   json_pack("{s:o, s:b}", "records", records, "truncated", truncated));
	if (nulld_audit_follow(d, call, agent, mask) < 0)
		return nb_ipc_error_set(err, CTL_ERR_FAILED, "cannot follow the audit log");
	return NB_IPC_DEFER;
}

static int
m_audit_verify(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	struct nulld *d = D(call);
	char keypath[4400];
	snprintf(keypath, sizeof(keypath), "%s/%s", nulld_audit_dir(d), NB_AUDIT_KEY_NAME);
	uint8_t key[NB_AUDIT_KEY_LEN];
	struct nb_err e = { 0 };
	if (nb_audit_key_load(keypath, 0, key, &e) < 0)
		return nb_ipc_error_set(err, CTL_ERR_FAILED, "%s", e.msg);
	struct nb_audit_report rep = { 0 };
	int r = nb_audit_verify(nulld_audit_dir(d), key, NB_AUDIT_VERIFY_LIVE, &rep, &e);
	explicit_bzero(key, sizeof(key));
	if (r < 0 && rep.problem == NB_AUDIT_OK)
		return nb_ipc_error_set(err, CTL_ERR_FAILED, "%s", e.msg);
	bool ok = rep.problem == NB_AUDIT_OK;
	*result = json_pack("{s:b, s:I, s:o, s:o}", "ok", ok, "records", (json_int_t)rep.records,
			    "first_bad", ok ? json_null() : json_integer((json_int_t)rep.first_bad),
			    "reason", ok ? json_null() : json_string(rep.msg));
	return NB_IPC_OK;
}

static int
m_service_restart(struct nb_ipc_call *call, json_t *params, json_t **result,
		  struct nb_ipc_error *err)
{
	static const char *const names[] = { "name" };
	const char *name = NULL;
	int r = nb_ipc_params_check(params, names, 1, err);
	if (r == 0)
		r = nb_ipc_param_string(params, "name", 0, true, &name, err);
	if (r < 0)
		return r;
	struct nulld *d = D(call);
	for (size_t i = 0; i < d->n_services; i++) {
		if (strcmp(d->units[i]->name, name) == 0) {
			nulld_unit_restart(d, d->units[i]);
			*result = nulld_unit_json(d, d->units[i]);
			return NB_IPC_OK;
		}
	}
	return nb_ipc_error_set(err, CTL_ERR_NOT_FOUND, "no service named %s", name);
}

/*
 * audit.append: a service's own records. The actor is the service the caller *is* (its pid is a
 * unit nulld started), never a name from the request: a service cannot write as another.
 */
static int
m_audit_append(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	static const char *const names[] = { "action", "object", "verdict", "reason", "detail" };
	const char *action = NULL, *object = NULL, *verdict = NULL, *reason = NULL;
	json_t *detail = NULL;
	int r = nb_ipc_params_check(params, names, 5, err);
	if (r == 0)
		r = nb_ipc_param_string(params, "action", 0, true, &action, err);
	if (r >= 0)
		r = nb_ipc_param_string(params, "object", 1, true, &object, err);
	if (r >= 0)
		r = nb_ipc_param_string(params, "verdict", 2, true, &verdict, err);
	if (r >= 0)
		r = nb_ipc_param_string(params, "reason", 3, true, &reason, err);
	if (r >= 0)
		r = nb_ipc_param_json(params, "detail", 4, JSON_OBJECT, false, &detail, err);
	if (r < 0)
		return r;
	struct nulld *d = D(call);
	const struct nb_ipc_peer *peer = nb_ipc_call_peer(call);
	const struct nulld_unit *svc = NULL;
	for (size_t i = 0; i < d->n_services; i++)
		if (d->units[i]->pid > 0 && d->units[i]->pid == peer->pid)
			svc = d->units[i];
	if (!svc) {
		char who[64];
		nulld_audit(d, "nulld", "audit.append", caller(call, who, sizeof(who)),
			    NB_AUDIT_DENIED, NULL, "not a service of this nulld");
		return nb_ipc_error_set(err, CTL_ERR_FAILED,
					"only services started by nulld may append audit records");
	}
	enum nb_audit_verdict v;
	struct nb_err e = { 0 };
	if (nb_audit_verdict_parse(verdict, &v, &e) < 0)
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"verdict: allowed, denied or deferred (got %.32s)",
					verdict);
	nulld_audit(d, svc->name, action, object, v, detail, "%s", reason);
	*result = json_object();
	return NB_IPC_OK;
}

const char *nulld_agent_placeholder_owner(struct nulld *d, const char *placeholder,
					  const char **name);

/* The service the caller is (its pid is a unit of ours), or NULL. */
static const struct nulld_unit *
calling_service(struct nb_ipc_call *call)
{
	struct nulld *d = D(call);
	const struct nb_ipc_peer *peer = nb_ipc_call_peer(call);
	for (size_t i = 0; i < d->n_services; i++)
		if (d->units[i]->pid > 0 && d->units[i]->pid == peer->pid)
			return d->units[i];
	return NULL;
}

/*
 * credentials.resolve {placeholder}: which agent holds this placeholder, for which credential.
 * For egress, which swaps placeholders for secrets: only services may ask (the mapping says
 * which agent may use which secret).
 */
static int
m_credentials_resolve(struct nb_ipc_call *call, json_t *params, json_t **result,
		      struct nb_ipc_error *err)
{
	static const char *const names[] = { "placeholder" };
	const char *ph = NULL;
	int r = nb_ipc_params_check(params, names, 1, err);
	if (r == 0)
		r = nb_ipc_param_string(params, "placeholder", 0, true, &ph, err);
	if (r < 0)
		return r;
	if (!calling_service(call))
		return nb_ipc_error_set(err, CTL_ERR_FAILED,
					"only services started by nulld may resolve placeholders");
	const char *name = NULL;
	const char *agent = nulld_agent_placeholder_owner(D(call), ph, &name);
	if (!agent)
		return nb_ipc_error_set(err, CTL_ERR_NOT_FOUND, "unknown placeholder");
	*result = json_pack("{s:s, s:s}", "agent", agent, "name", name);
	return NB_IPC_OK;
}

static int
m_shutdown(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	char who[64];
	nulld_audit(D(call), "nulld", "shutdown", "nulld", NB_AUDIT_ALLOWED, NULL, "asked by %s",
		    caller(call, who, sizeof(who)));
	nulld_shutdown(D(call), "nullctl shutdown");
	*result = json_object();
	return NB_IPC_OK;
}

static void
on_control(struct nulld *d, struct nulld_watch *w, uint32_t events)
{
	struct control *c = d->control;
	nb_ipc_server_dispatch(c->srv, 0);
}

int
nulld_control_open(struct nulld *d, struct nb_err *e)
{
	static const struct {
		const char *name;
		nb_ipc_handler_fn fn;
	} methods[] = {
		{ "status", m_status },
		{ "agent.start", m_agent_start },
		{ "agent.stop", m_agent_stop },
		{ "agent.restart", m_agent_restart },
		{ "agent.pause", m_agent_pause },
		{ "agent.resume", m_agent_resume },
		{ "agent.status", m_agent_status },
		{ "agent.list", m_agent_list },
		{ "agent.logs", m_agent_logs },
		{ "audit.query", m_audit_query },
		{ "audit.verify", m_audit_verify },
		{ "audit.append", m_audit_append },
		{ "credentials.resolve", m_credentials_resolve },
		{ "service.restart", m_service_restart },
		{ "shutdown", m_shutdown },
	};
	struct control *c = calloc(1, sizeof(*c));
	if (!c)
		return nb_err_set(e, ENOMEM, "out of memory");
	c->d = d;
	struct nb_ipc_server_opts o = { .allow_peer = allow_peer, .data = d };
	c->srv = nb_ipc_server_new(&o, e);
	if (!c->srv) {
		free(c);
		return -(e->code ? e->code : ENOMEM);
	}
	d->control = c;
	for (size_t i = 0; i < NB_ARRAY_SIZE(methods); i++)
		if (nb_ipc_server_add_method(c->srv, methods[i].name, methods[i].fn, d, e) < 0)
			return nb_err_set(e, ENOMEM, "out of memory");
	bool group = d->opt.control_gid != (gid_t)-1;
	if (group) {
		/*
		 * Group members must reach the socket: its directory is made 0750 root:GROUP. The
		 * state dir stays 0700, so the socket cannot live in it.
		 */
		char dir[4200];
		snprintf(dir, sizeof(dir), "%s", d->opt.socket_path);
		char *slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		size_t sl = strlen(d->opt.state_dir);
		if (strncmp(dir, d->opt.state_dir, sl) == 0 && (dir[sl] == '\0' || dir[sl] == '/'))
			return nb_err_set(
				e, EINVAL,
				"--control-group: the socket %s is inside the state dir, which "
				"only its owner may enter; give --socket a path outside it (e.g. "
				"/run/nullbox/nulld.sock)",
				d->opt.socket_path);
		if (mkdir(dir, 0750) < 0 && errno != EEXIST)
			return nb_err_setp(e, errno, "%s: mkdir", dir);
		if (chown(dir, geteuid(), d->opt.control_gid) < 0 || chmod(dir, 0750) < 0)
			return nb_err_setp(e, errno, "%s: make it 0750 for the control group", dir);
	}
	int r = nb_ipc_server_listen(c->srv, d->opt.socket_path, group ? 0660 : 0600,
				     d->opt.control_gid, NULL, e);
	if (r < 0)
		return r;
	c->w = (struct nulld_watch){ NULLD_W_EXTERNAL, NULL, on_control };
	r = nulld_watch(d, nb_ipc_server_fd(c->srv), &c->w, EPOLLIN);
	if (r < 0)
		return nb_err_setp(e, -r, "epoll_ctl");
	log_info("control socket %s", d->opt.socket_path);
	return 0;
}

void
nulld_control_close(struct nulld *d)
{
	struct control *c = d->control;
	if (!c)
		return;
	nb_ipc_server_unlisten(c->srv, d->opt.socket_path);
	nb_ipc_server_free(c->srv);
	free(c);
	d->control = NULL;
}
