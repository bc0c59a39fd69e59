/*
 * service.c: ctxgraph's JSON-RPC service (see ctxgraph.h and docs/CTXGRAPH.md).
 *
 * Sections:
 *   registrations  one per agent: its ACLs, limits, socket; the control registration
 *   identity       who a call is from: the listener it came in on, never the request
 *   decisions      log and audit of refusals, with a per-agent cap
 *   replies        entries as JSON, pages that fit in one message, cursors
 *   methods        agent.register/unregister/list, ctx.write/write_batch/read/query/history/
 *                  by_agent, ctx.stats
 *   lifecycle      new, free, feed identity
 *
 * The rule for reading: an agent sees an entry if the entry's key starts with one of its read
 * prefixes, or if it wrote the entry itself. The store applies that rule inside its queries
 * (struct ctxgraph_scope), so "latest" and pages are computed over visible entries only. A read
 * that could only ever return entries the agent may not see is refused and audited; one that
 * finds nothing visible where the agent may look is an ordinary "not found" or empty page.
 * The operator (the control socket) sees everything.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "ctxgraph.h"
#include "log.h"

/* A reply must fit in one message: pages stop at this many (estimated) bytes. */
#define PAGE_BUDGET (NB_IPC_MAX_MSG - 4096)
/* Refusals logged and audited per agent: at most this many a second, bursts of AUDIT_BURST. */
#define AUDIT_RATE 10.0
#define AUDIT_BURST 50.0
/* Registrations alive at once. */
#define AGENTS_MAX 4096

/* ---- registrations ---- */

enum reg_kind { REG_CONTROL = 1, REG_AGENT };

/*
 * A registration is also the tag of its listener, and connections accepted on that listener keep
 * the tag after an unregister. So a registration is never freed while the service runs: once
 * unregistered it stays as a husk (live = false, ACLs freed) that refuses every call.
 */
struct reg {
	enum reg_kind kind;
	bool live;
	char name[CTXGRAPH_NAME_MAX + 1];
	char *path; /* its socket; NULL without a run dir */
	char **read, **write;
	size_t n_read, n_write;
	bool has_uid;
	uid_t uid;
	double rate, burst;
	struct ctxgraph_bucket writes;
	struct ctxgraph_bucket audits;
	uint64_t suppressed;	/* refusals not logged or audited since the last one that was */
	int64_t rate_logged_ns; /* last "rate limited" log line */
	uint64_t rate_refused;	/* writes refused for rate since that line */
	struct reg *next;
};

struct ctxgraph {
	struct ctxgraph_store *store;
	struct nb_ipc_server *srv;
	char *control_path, *agent_dir;
	int64_t rate, burst;
	struct ctxgraph_hooks hooks;
	struct reg control;
	struct reg *regs; /* live ones and husks */
	unsigned n_live;
	struct reg *feed;
};

static int64_t
now_ns(struct ctxgraph *g)
{
	if (g->hooks.now_ns)
		return g->hooks.now_ns(g->hooks.clock_data);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t
wall_ms(struct ctxgraph *g)
{
	if (g->hooks.wall_ms)
		return g->hooks.wall_ms(g->hooks.clock_data);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct reg *
reg_find(struct ctxgraph *g, const char *name)
{
	for (struct reg *r = g->regs; r; r = r->next)
		if (r->live && strcmp(r->name, name) == 0)
			return r;
	return NULL;
}

static void
strv_free_n(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* Copies and checks a prefix list. Returns 0 or -EINVAL/-E2BIG/-ENOMEM with @e set. */
static int
prefixes_copy(const char *what, const char *const *in, size_t n, char ***out, struct nb_err *e)
{
	*out = NULL;
	if (n > CTXGRAPH_PREFIXES_MAX)
		return nb_err_set(e, EINVAL, "%s: %zu prefixes; at most %d are allowed", what, n,
				  CTXGRAPH_PREFIXES_MAX);
	char **v = calloc(n + 1, sizeof(*v));
	if (!v)
		return nb_err_set(e, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		char why[160];
		int r = ctxgraph_key_check(in[i], strlen(in[i]), true, why, sizeof(why));
		if (r < 0) {
			strv_free_n(v, i);
			return nb_err_set(e, -r, "%s[%zu]: %s", what, i, why);
		}
		if (!(v[i] = strdup(in[i]))) {
			strv_free_n(v, i);
			return nb_err_set(e, ENOMEM, "out of memory");
		}
	}
	*out = v;
	return 0;
}

/* The agent's socket directory, 0711: agents may pass through it, nobody may list it. */
static int
make_agent_dir(const char *dir, struct nb_err *e)
{
	if (mkdir(dir, 0711) < 0 && errno != EEXIST)
		return nb_err_setp(e, errno, "%s: mkdir", dir);
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return nb_err_setp(e, errno, "%s: open", dir);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return nb_err_setp(e, errno, "%s: stat", dir);
	/* Why: whoever owns or can write the directory can swap an agent's socket for their own
	 * and read what that agent writes. */
	if (st.st_uid != geteuid())
		return nb_err_set(e, EPERM, "%s: belongs to uid %u, not to us; refusing it", dir,
				  (unsigned)st.st_uid);
	/* Why 0711 (not 0700): an agent's cage may see this directory (bound in), and its
	 * unprivileged uid must pass through it to its socket; without read it cannot list the
	 * other agents' sockets. */
	if (fchmod(fd, 0711) < 0)
		return nb_err_setp(e, errno, "%s: chmod 0711", dir);
	return 0;
}

/*
 * Removes the agent sockets a previous ctxgraph left (killed before it could): registrations do
 * not outlive the process, so nothing listens on them and nulld registers its agents again.
 * Only sockets, never followed through a symlink.
 */
static void
clear_stale_sockets(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		size_t n = strlen(de->d_name);
		if (n < 6 || strcmp(de->d_name + n - 5, ".sock") != 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISSOCK(st.st_mode) && unlinkat(dirfd(d), de->d_name, 0) == 0)
			log_info("%s/%s: removed a stale agent socket", dir, de->d_name);
	}
	closedir(d);
}

int
ctxgraph_agent_register(struct ctxgraph *g, const char *name,
			const struct ctxgraph_agent_opts *opts, const char **path, bool *created,
			struct nb_err *e)
{
	if (path)
		*path = NULL;
	if (!ctxgraph_name_valid(name))
		return nb_err_set(e, EINVAL, "agent name \"%.80s\": use 1 to %d of A-Z a-z 0-9 - _",
				  name, CTXGRAPH_NAME_MAX);
	int64_t rate = opts->rate ? opts->rate : g->rate;
	int64_t burst = opts->burst ? opts->burst : g->burst;
	if (rate < 1 || rate > CTXGRAPH_RATE_MAX || burst < 1 || burst > CTXGRAPH_RATE_MAX)
		return nb_err_set(e, EINVAL, "rate and burst: 1 to %d", CTXGRAPH_RATE_MAX);
	char **rd = NULL, **wr = NULL;
	int r = prefixes_copy("read", opts->read, opts->n_read, &rd, e);
	if (r == 0)
		r = prefixes_copy("write", opts->write, opts->n_write, &wr, e);
	if (r < 0) {
		strv_free_n(rd, opts->n_read);
		return r;
	}
	struct reg *reg = reg_find(g, name);
	bool fresh = !reg;
	if (fresh) {
		if (g->n_live >= AGENTS_MAX) {
			strv_free_n(rd, opts->n_read);
			strv_free_n(wr, opts->n_write);
			return nb_err_set(e, ENOSPC, "%d agents are registered already",
					  AGENTS_MAX);
		}
		reg = calloc(1, sizeof(*reg));
		if (!reg) {
			strv_free_n(rd, opts->n_read);
			strv_free_n(wr, opts->n_write);
			return nb_err_set(e, ENOMEM, "out of memory");
		}
		reg->kind = REG_AGENT;
		snprintf(reg->name, sizeof(reg->name), "%s", name);
		if (g->agent_dir) {
			if (asprintf(&reg->path, "%s/%s.sock", g->agent_dir, name) < 0)
				reg->path = NULL;
			if (!reg->path) {
				free(reg);
				strv_free_n(rd, opts->n_read);
				strv_free_n(wr, opts->n_write);
				return nb_err_set(e, ENOMEM, "out of memory");
			}
			r = nb_ipc_server_listen(g->srv, reg->path, 0660, (gid_t)-1, reg, e);
			/*
			 * Why 0666: the agent runs under an unprivileged uid of its cage's
			 * choosing, outside our group, and must connect. Who can reach the file is
			 * decided by the directories above it (the run dir, the 0711 agent dir) and
			 * the bind into that agent's cage; what it may do is decided by which
			 * socket it is. With a uid in the registration, allow_peer checks it too.
			 */
			if (r == 0 && chmod(reg->path, 0666) < 0) {
				r = nb_err_setp(e, errno, "%s: chmod 0666", reg->path);
				nb_ipc_server_unlisten(g->srv, reg->path);
			}
			if (r < 0) {
				free(reg->path);
				free(reg);
				strv_free_n(rd, opts->n_read);
				strv_free_n(wr, opts->n_write);
				return r;
			}
		}
		reg->live = true;
		reg->next = g->regs;
		g->regs = reg;
		g->n_live++;
	} else {
		strv_free_n(reg->read, reg->n_read);
		strv_free_n(reg->write, reg->n_write);
	}
	reg->read = rd;
	reg->n_read = opts->n_read;
	reg->write = wr;
	reg->n_write = opts->n_write;
	reg->has_uid = opts->has_uid;
	reg->uid = opts->uid;
	reg->rate = (double)rate;
	reg->burst = (double)burst;
	reg->writes = (struct ctxgraph_bucket){ 0 };
	if (path)
		*path = reg->path;
	if (created)
		*created = fresh;
	log_info("agent %s %s: read %zu prefixes, write %zu, %" PRId64 " writes/s (burst %" PRId64
		 ")%s%s",
		 name, fresh ? "registered" : "updated", reg->n_read, reg->n_write, rate, burst,
		 reg->path ? ", socket " : "", reg->path ? reg->path : "");
	return 0;
}

int
ctxgraph_agent_unregister(struct ctxgraph *g, const char *name, struct nb_err *e)
{
	struct reg *reg = reg_find(g, name);
	if (!reg)
		return nb_err_set(e, ENOENT, "no agent named \"%.80s\" is registered", name);
	if (reg->path)
		nb_ipc_server_unlisten(g->srv, reg->path);
	reg->live = false;
	strv_free_n(reg->read, reg->n_read);
	strv_free_n(reg->write, reg->n_write);
	reg->read = reg->write = NULL;
	reg->n_read = reg->n_write = 0;
	g->n_live--;
	if (g->feed == reg)
		g->feed = NULL;
	log_info("agent %s unregistered", name);
	return 0;
}

/* ---- identity ---- */

/*
 * Who may connect, by the kernel's SO_PEERCRED at accept. The control socket: root and our own
 * uid (it registers agents and reads everything). An agent's socket: anyone who can reach it,
 * or only the registered uid; an unregistered agent's socket: nobody.
 */
static bool
allow_peer(const struct nb_ipc_peer *peer, void *tag, void *data)
{
	const struct reg *reg = tag;
	if (!reg)
		return false;
	if (reg->kind == REG_CONTROL)
		return peer->uid == 0 || peer->uid == geteuid();
	return reg->live && (!reg->has_uid || peer->uid == reg->uid);
}

struct caller {
	struct reg *reg;  /* the agent's registration; NULL for the operator */
	const char *name; /* the agent's name, or "operator" */
};

/*
 * Why the tag: the listener a connection came in on is the only thing an agent cannot choose.
 * Each agent has its own socket, reachable only from its cage, so the socket is the identity;
 * nothing in the request is believed about who is asking.
 */
static int
caller_of(struct ctxgraph *g, struct nb_ipc_call *call, struct caller *c, struct nb_ipc_error *err)
{
	struct reg *reg = nb_ipc_call_tag(call);
	if (!reg)
		reg = g->feed;
	if (!reg)
		return nb_ipc_error_set(err, CTXGRAPH_ERR_DENIED,
					"permission denied: this connection has no identity");
	if (reg->kind == REG_CONTROL) {
		*c = (struct caller){ .reg = NULL, .name = "operator" };
		return 0;
	}
	if (!reg->live)
		return nb_ipc_error_set(err, CTXGRAPH_ERR_DENIED,
					"permission denied: agent %s is no longer registered",
					reg->name);
	*c = (struct caller){ .reg = reg, .name = reg->name };
	return 0;
}

static bool
under_any(const char *key, char *const *prefixes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ctxgraph_prefix_match(key, prefixes[i]))
			return true;
	return false;
}

/* ---- decisions ---- */

static void decide(struct ctxgraph *g, const struct caller *c, const char *method,
		   const char *action, const char *object, const char *verdict, const char *fmt,
		   ...) __attribute__((format(printf, 7, 8)));

/*
 * Logs and audits one decision about @c. An agent's refusals are capped (AUDIT_RATE a second,
 * bursts of AUDIT_BURST): one that loops on refused calls must not flood nulld's audit log; the
 * next record that goes through says how many were left out.
 */
static void
decide(struct ctxgraph *g, const struct caller *c, const char *method, const char *action,
       const char *object, const char *verdict, const char *fmt, ...)
{
	char reason[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	uint64_t suppressed = 0;
	if (c->reg) {
		if (!ctxgraph_bucket_take(&c->reg->audits, AUDIT_RATE, AUDIT_BURST, 1, now_ns(g),
					  NULL)) {
			c->reg->suppressed++;
			return;
		}
		suppressed = c->reg->suppressed;
		c->reg->suppressed = 0;
	}
	char obj[CTXGRAPH_KEY_MAX + 1];
	ctxgraph_text_clip(object, obj, sizeof(obj));
	log_info("%s: %s \"%s\" (%s): %s: %s%s", c->name, action, obj, method, verdict, reason,
		 suppressed ? " (and earlier refusals not logged)" : "");
	if (!g->hooks.audit)
		return;
	json_t *detail = json_pack("{s:s,s:s}", "agent", c->name, "method", method);
	if (detail && suppressed)
		json_object_set_new(detail, "suppressed", json_integer((json_int_t)suppressed));
	g->hooks.audit(g->hooks.audit_data, action, obj, verdict, reason, detail);
	json_decref(detail);
}

static int deny(struct ctxgraph *g, const struct caller *c, const char *method, const char *action,
		const char *object, struct nb_ipc_error *err, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));

/* A refusal: decided (logged, audited) and returned to the caller with the same words. */
static int
deny(struct ctxgraph *g, const struct caller *c, const char *method, const char *action,
     const char *object, struct nb_ipc_error *err, const char *fmt, ...)
{
	char reason[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	decide(g, c, method, action, object, "denied", "%s", reason);
	return nb_ipc_error_set(err, CTXGRAPH_ERR_DENIED, "permission denied: %s", reason);
}

/*
 * Why refuse a claimed identity instead of ignoring it: an agent that names another agent is
 * trying to write or read as that agent. It gets nothing, and the attempt is on the record.
 */
static int
check_claim(struct ctxgraph *g, const struct caller *c, const char *method, json_t *params,
	    struct nb_ipc_error *err)
{
	json_t *claim = json_object_get(params, "agent");
	if (!claim)
		return 0;
	if (!json_is_string(claim))
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"invalid params: \"agent\" must be a string");
	if (!c->reg || strcmp(json_string_value(claim), c->name) == 0)
		return 0;
	char claimed[CTXGRAPH_NAME_MAX + 1];
	ctxgraph_text_clip(json_string_value(claim), claimed, sizeof(claimed));
	return deny(g, c, method, "ctx.forge", claimed, err,
		    "this socket belongs to agent %s; a request may not claim to be agent %s",
		    c->name, claimed);
}

/* A string param that must be a valid key (or prefix). */
static int
param_key(json_t *params, const char *name, bool prefix, const char **out, struct nb_ipc_error *err)
{
	json_t *v;
	int r = nb_ipc_param_json(params, name, NB_IPC_NAMED_ONLY, JSON_STRING, true, &v, err);
	if (r < 0)
		return r;
	char why[160];
	r = ctxgraph_key_check(json_string_value(v), json_string_length(v), prefix, why,
			       sizeof(why));
	if (r < 0)
		return nb_ipc_error_set(
			err, r == -E2BIG ? CTXGRAPH_ERR_TOO_LARGE : NB_IPC_INVALID_PARAMS,
			"invalid %s: %s", name, why);
	*out = json_string_value(v);
	return 0;
}

static int
param_limit(json_t *params, int64_t *limit, struct nb_ipc_error *err)
{
	*limit = CTXGRAPH_LIMIT_DEFAULT;
	int r = nb_ipc_param_int(params, "limit", NB_IPC_NAMED_ONLY, false, limit, err);
	if (r < 0)
		return r;
	if (*limit < 1 || *limit > CTXGRAPH_LIMIT_MAX)
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"invalid params: \"limit\" must be 1 to %d",
					CTXGRAPH_LIMIT_MAX);
	return 0;
}

static int
param_cursor(json_t *params, const char **cursor, struct nb_ipc_error *err)
{
	*cursor = NULL;
	json_t *v = json_object_get(params, "cursor");
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"invalid params: \"cursor\" must be a string or null");
	*cursor = json_string_value(v);
	return 0;
}

static int
bad_cursor(struct nb_ipc_error *err)
{
	return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
				"invalid params: \"cursor\" is not one this method gave out");
}

/* Every method takes named params only: an object (or none). */
static int
check_params(json_t *params, const char *const *names, size_t n, struct nb_ipc_error *err)
{
	if (params && !json_is_object(params))
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"invalid params: params must be an object");
	return nb_ipc_params_check(params, names, n, err);
}

static int
store_failed(const struct nb_err *e, struct nb_ipc_error *err)
{
	log_err("%s", e->msg);
	return nb_ipc_error_set(err, CTXGRAPH_ERR_FAILED, "%s", e->msg);
}

/* ---- replies ---- */

static json_t *
entry_json(const struct ctxgraph_entry *en)
{
	json_error_t jerr;
	json_t *value =
		json_loadb(en->value, en->value_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!value)
		return NULL;
	return json_pack("{s:s,s:s,s:s,s:o,s:I,s:I}", "hash", en->hash, "agent", en->agent, "key",
			 en->key, "value", value, "created_at", (json_int_t)en->created_at, "seq",
			 (json_int_t)en->seq);
}

/* A page being filled: at most @limit entries and PAGE_BUDGET bytes. */
struct page {
	json_t *entries;
	int64_t limit;
	size_t bytes;
	bool more;   /* there is at least one more entry after the last one added */
	bool by_key; /* the cursor is the last key (ctx.query), else the last seq */
	char last_key[CTXGRAPH_KEY_MAX + 1];
	int64_t last_seq;
	bool failed;
};

static int
page_row(const struct ctxgraph_entry *en, void *data)
{
	struct page *p = data;
	size_t n = json_array_size(p->entries);
	/* Key and agent may double when escaped (only '"' and '\' are); the value is already in
	 * the form it will be sent in. */
	size_t cost = 2 * strlen(en->key) + 2 * strlen(en->agent) + en->value_len + 200;
	if ((int64_t)n >= p->limit || (n > 0 && p->bytes + cost > PAGE_BUDGET)) {
		p->more = true;
		return 1;
	}
	json_t *j = entry_json(en);
	if (!j || json_array_append_new(p->entries, j) < 0) {
		p->failed = true; /* out of memory, or a stored value that is not JSON */
		return -EIO;
	}
	p->bytes += cost;
	snprintf(p->last_key, sizeof(p->last_key), "%s", en->key);
	p->last_seq = en->seq;
	return 0;
}

/* {entries, cursor}: the cursor is null on the last page. Takes p->entries. */
static json_t *
page_result(struct page *p)
{
	json_t *cursor = json_null();
	if (p->more) {
		char c[CTXGRAPH_CURSOR_MAX];
		if (p->by_key)
			ctxgraph_cursor_from_key(p->last_key, c);
		else
			ctxgraph_cursor_from_seq(p->last_seq, c);
		cursor = json_string(c);
	}
	return json_pack("{s:o,s:o}", "entries", p->entries, "cursor", cursor);
}

/* ---- methods ---- */

#define G(call) ((struct ctxgraph *)nb_ipc_call_data(call))

/* Methods for the operator only. An agent that calls one is refused and audited. */
static int
operator_only(struct ctxgraph *g, struct nb_ipc_call *call, struct caller *c,
	      struct nb_ipc_error *err)
{
	int r = caller_of(g, call, c, err);
	if (r < 0)
		return r;
	if (c->reg)
		return deny(g, c, nb_ipc_call_method(call), "ctx.admin", nb_ipc_call_method(call),
			    err, "%s is for the operator (the control socket), not for agents",
			    nb_ipc_call_method(call));
	return 0;
}

/* A JSON array of strings into a NULL-terminated borrowed vector (*out, free() it). */
static int
string_list(json_t *params, const char *name, const char ***out, size_t *n,
	    struct nb_ipc_error *err)
{
	json_t *arr = NULL;
	*out = NULL;
	*n = 0;
	int r = nb_ipc_param_json(params, name, NB_IPC_NAMED_ONLY, JSON_ARRAY, false, &arr, err);
	if (r < 0)
		return r;
	size_t len = arr ? json_array_size(arr) : 0;
	if (len > CTXGRAPH_PREFIXES_MAX)
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"invalid params: \"%s\": at most %d prefixes", name,
					CTXGRAPH_PREFIXES_MAX);
	const char **v = calloc(len + 1, sizeof(*v));
	if (!v)
		return nb_ipc_error_set(err, NB_IPC_INTERNAL_ERROR, "out of memory");
	for (size_t i = 0; i < len; i++) {
		json_t *s = json_array_get(arr, i);
		if (!json_is_string(s) || strlen(json_string_value(s)) != json_string_length(s)) {
			free(v);
			return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
						"invalid params: \"%s\"[%zu] must be a string",
						name, i);
		}
		v[i] = json_string_value(s);
	}
	*out = v;
	*n = len;
	return 0;
}

static json_t *
strv_json(char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static int
m_agent_register(struct nb_ipc_call *call, json_t *params, json_t **result,
		 struct nb_ipc_error *err)
{
	static const char *const names[] = { "name", "read", "write", "uid", "rate", "burst" };
	struct ctxgraph *g = G(call);
	struct caller c;
	const char *name = NULL;
	int64_t uid = -1, rate = 0, burst = 0;
	int r = operator_only(g, call, &c, err);
	if (r == 0)
		r = check_params(params, names, NB_ARRAY_SIZE(names), err);
	if (r == 0)
		r = nb_ipc_param_string(params, "name", NB_IPC_NAMED_ONLY, true, &name, err);
	if (r >= 0)
		r = nb_ipc_param_int(params, "uid", NB_IPC_NAMED_ONLY, false, &uid, err);
	if (r >= 0)
		r = nb_ipc_param_int(params, "rate", NB_IPC_NAMED_ONLY, false, &rate, err);
	if (r >= 0)
		r = nb_ipc_param_int(params, "burst", NB_IPC_NAMED_ONLY, false, &burst, err);
	if (r < 0)
		return r;
	if (json_object_get(params, "uid") && (uid < 0 || uid > (int64_t)UINT32_MAX - 1))
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"invalid params: \"uid\" must be a uid");
	if (json_object_get(params, "rate") && (rate < 1 || rate > CTXGRAPH_RATE_MAX))
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"invalid params: \"rate\" must be 1 to %d writes a second",
					CTXGRAPH_RATE_MAX);
	if (json_object_get(params, "burst") && (burst < 1 || burst > CTXGRAPH_RATE_MAX))
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"invalid params: \"burst\" must be 1 to %d",
					CTXGRAPH_RATE_MAX);
	_cleanup_free_ const char **rd = NULL, **wr = NULL;
	struct ctxgraph_agent_opts o = { .has_uid = uid >= 0,
					 .uid = (uid_t)(uid >= 0 ? uid : 0),
					 .rate = rate,
					 .burst = burst };
	r = string_list(params, "read", &rd, &o.n_read, err);
	if (r == 0)
		r = string_list(params, "write", &wr, &o.n_write, err);
	if (r < 0)
		return r;
	o.read = rd;
	o.write = wr;
	struct nb_err e = { 0 };
	const char *path = NULL;
	bool created = false;
	if (ctxgraph_agent_register(g, name, &o, &path, &created, &e) < 0)
		return nb_ipc_error_set(
			err, e.code == EINVAL ? NB_IPC_INVALID_PARAMS : CTXGRAPH_ERR_FAILED, "%s",
			e.msg);
	*result = json_pack("{s:s?,s:b}", "path", path, "created", created);
	return NB_IPC_OK;
}

static int
m_agent_unregister(struct nb_ipc_call *call, json_t *params, json_t **result,
		   struct nb_ipc_error *err)
{
	static const char *const names[] = { "name" };
	struct ctxgraph *g = G(call);
	struct caller c;
	const char *name = NULL;
	int r = operator_only(g, call, &c, err);
	if (r == 0)
		r = check_params(params, names, NB_ARRAY_SIZE(names), err);
	if (r == 0)
		r = nb_ipc_param_string(params, "name", NB_IPC_NAMED_ONLY, true, &name, err);
	if (r < 0)
		return r;
	struct nb_err e = { 0 };
	if (ctxgraph_agent_unregister(g, name, &e) < 0)
		return nb_ipc_error_set(err, CTXGRAPH_ERR_NOT_FOUND, "%s", e.msg);
	*result = json_object();
	return NB_IPC_OK;
}

static int
m_agent_list(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	struct ctxgraph *g = G(call);
	struct caller c;
	int r = operator_only(g, call, &c, err);
	if (r == 0)
		r = check_params(params, NULL, 0, err);
	if (r < 0)
		return r;
	json_t *arr = json_array();
	for (struct reg *reg = g->regs; arr && reg; reg = reg->next) {
		if (!reg->live)
			continue;
		json_t *a = json_pack("{s:s,s:s?,s:o,s:o,s:I,s:I}", "name", reg->name, "path",
				      reg->path, "read", strv_json(reg->read, reg->n_read), "write",
				      strv_json(reg->write, reg->n_write), "rate",
				      (json_int_t)reg->rate, "burst", (json_int_t)reg->burst);
		if (a && reg->has_uid)
			json_object_set_new(a, "uid", json_integer((json_int_t)reg->uid));
		json_array_append_new(arr, a);
	}
	*result = json_pack("{s:o}", "agents", arr);
	return NB_IPC_OK;
}

/* One entry of a write, checked and hashed; owns its canonical value. */
struct pending {
	const char *key;
	char *value;
	size_t value_len;
	char hash[NB_SHA256_HEX_LEN + 1];
};

/*
 * Checks one {key, value} for @writer (the agent the entry will be stored under) on behalf of
 * @c: key rules, the write ACL, the value's form and size; computes its hash.
 */
static int
prepare_entry(struct ctxgraph *g, const struct caller *c, const char *method, const char *writer,
	      json_t *obj, struct pending *p, struct nb_ipc_error *err)
{
	const char *key;
	json_t *value = json_object_get(obj, "value");
	int r = param_key(obj, "key", false, &key, err);
	if (r < 0)
		return r;
	if (!value)
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"invalid params: \"value\" is missing");
	/* Why a write ACL: an agent writes only where its manifest lets it, so others can trust
	 * what they read under a prefix to come from the agents allowed to write there. */
	if (c->reg && !under_any(key, c->reg->write, c->reg->n_write))
		return deny(g, c, method, "ctx.write", key, err,
			    "agent %s may not write key \"%.64s\": it is not under its write "
			    "prefixes",
			    c->name, key);
	struct nb_err e = { 0 };
	r = ctxgraph_value_canonical(value, &p->value, &p->value_len, &e);
	if (r < 0)
		return nb_ipc_error_set(
			err, r == -E2BIG ? CTXGRAPH_ERR_TOO_LARGE : NB_IPC_INVALID_PARAMS,
			"invalid value for key \"%.64s\": %s", key, e.msg);
	p->key = key;
	if (ctxgraph_entry_hash(writer, key, p->value, p->value_len, p->hash) < 0)
		return nb_ipc_error_set(err, NB_IPC_INTERNAL_ERROR, "cannot hash the entry");
	return 0;
}

/* The write rate, per agent. Refusals are logged at most once a second, not audited. */
static int
take_writes(struct ctxgraph *g, const struct caller *c, size_t n, struct nb_ipc_error *err)
{
	if (!c->reg)
		return 0; /* the operator is not limited */
	int64_t now = now_ns(g), retry = 0;
	struct reg *reg = c->reg;
	if (ctxgraph_bucket_take(&reg->writes, reg->rate, reg->burst, (double)n, now, &retry))
		return 0;
	reg->rate_refused++;
	if (now - reg->rate_logged_ns >= 1000000000 || reg->rate_logged_ns == 0) {
		log_info("%s: writes refused over the rate limit (%.0f/s, burst %.0f): %" PRIu64
			 " since the last report",
			 c->name, reg->rate, reg->burst, reg->rate_refused);
		reg->rate_logged_ns = now;
		reg->rate_refused = 0;
	}
	if (retry < 0)
		return nb_ipc_error_set(err, CTXGRAPH_ERR_RATE,
					"rate limited: a batch of %zu writes is more than agent "
					"%s's burst of %.0f",
					n, c->name, reg->burst);
	err->data = json_pack("{s:I}", "retry_after_ms", (json_int_t)retry);
	return nb_ipc_error_set(err, CTXGRAPH_ERR_RATE,
				"rate limited: agent %s may write %.0f entries a second (bursts of "
				"%.0f); retry in %" PRId64 " ms",
				c->name, reg->rate, reg->burst, retry);
}

/* The agent entries are written as: the caller, or for the operator the "agent" param. */
static int
writer_of(const struct caller *c, json_t *params, const char **writer, struct nb_ipc_error *err)
{
	if (c->reg) {
		*writer = c->name;
		return 0;
	}
	const char *a = NULL;
	int r = nb_ipc_param_string(params, "agent", NB_IPC_NAMED_ONLY, true, &a, err);
	if (r < 0)
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"invalid params: on the control socket, \"agent\" (who the "
					"entry is written as) is required");
	if (!ctxgraph_name_valid(a))
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"invalid params: \"agent\": not an agent name");
	*writer = a;
	return 0;
}

static void
operator_wrote(struct ctxgraph *g, const struct caller *c, const char *method, const char *writer,
	       const char *key, const char *hash)
{
	/* Why audit: an entry the operator writes carries an agent's name; the record says who
	 * really wrote it. */
	if (!c->reg)
		decide(g, c, method, "ctx.write", key, "allowed",
		       "written by the operator as agent %s (hash %s)", writer, hash);
}

static int
m_write(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	static const char *const names[] = { "agent", "key", "value" };
	struct ctxgraph *g = G(call);
	struct caller c;
	const char *writer = NULL;
	int r = caller_of(g, call, &c, err);
	if (r == 0)
		r = check_params(params, names, NB_ARRAY_SIZE(names), err);
	if (r == 0)
		r = check_claim(g, &c, "ctx.write", params, err);
	if (r == 0)
		r = writer_of(&c, params, &writer, err);
	if (r == 0)
		r = take_writes(g, &c, 1, err);
	if (r < 0)
		return r;
	struct pending p = { 0 };
	r = prepare_entry(g, &c, "ctx.write", writer, params, &p, err);
	if (r < 0) {
		free(p.value);
		return r;
	}
	struct ctxgraph_put put = { .hash = p.hash,
				    .agent = writer,
				    .key = p.key,
				    .value = p.value,
				    .value_len = p.value_len,
				    .created_at = wall_ms(g) };
	struct nb_err e = { 0 };
	r = ctxgraph_store_put(g->store, &put, 1, &e);
	free(p.value);
	if (r < 0)
		return store_failed(&e, err);
	if (put.created)
		operator_wrote(g, &c, "ctx.write", writer, p.key, p.hash);
	*result = json_pack("{s:s,s:b,s:I,s:I}", "hash", p.hash, "created", put.created, "seq",
			    (json_int_t)put.seq, "created_at", (json_int_t)put.stored_at);
	return NB_IPC_OK;
}

static int
m_write_batch(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	static const char *const names[] = { "agent", "entries" };
	static const char *const entry_names[] = { "agent", "key", "value" };
	struct ctxgraph *g = G(call);
	struct caller c;
	const char *writer = NULL;
	json_t *entries = NULL;
	int r = caller_of(g, call, &c, err);
	if (r == 0)
		r = check_params(params, names, NB_ARRAY_SIZE(names), err);
	if (r == 0)
		r = check_claim(g, &c, "ctx.write_batch", params, err);
	if (r == 0)
		r = writer_of(&c, params, &writer, err);
	if (r == 0)
		r = nb_ipc_param_json(params, "entries", NB_IPC_NAMED_ONLY, JSON_ARRAY, true,
				      &entries, err);
	if (r < 0)
		return r;
	size_t n = json_array_size(entries);
	if (n == 0 || n > CTXGRAPH_BATCH_MAX)
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"invalid params: \"entries\" must hold 1 to %d entries",
					CTXGRAPH_BATCH_MAX);
	/* Every entry is checked before anything is stored: one bad entry, nothing written. */
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_array_get(entries, i);
		if (!json_is_object(o))
			return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
						"invalid params: entries[%zu] must be an object",
						i);
		r = check_params(o, entry_names, NB_ARRAY_SIZE(entry_names), err);
		if (r == 0)
			r = check_claim(g, &c, "ctx.write_batch", o, err);
		if (r == 0 && !c.reg && json_object_get(o, "agent"))
			r = nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					     "invalid params: entries[%zu]: give \"agent\" once, "
					     "for the batch",
					     i);
		if (r < 0)
			return r;
	}
	r = take_writes(g, &c, n, err);
	if (r < 0)
		return r;
	struct pending *p = calloc(n, sizeof(*p));
	struct ctxgraph_put *puts = calloc(n, sizeof(*puts));
	int64_t now = wall_ms(g);
	for (size_t i = 0; r == 0 && p && puts && i < n; i++) {
		r = prepare_entry(g, &c, "ctx.write_batch", writer, json_array_get(entries, i),
				  &p[i], err);
		puts[i] = (struct ctxgraph_put){ .hash = p[i].hash,
						 .agent = writer,
						 .key = p[i].key,
						 .value = p[i].value,
						 .value_len = p[i].value_len,
						 .created_at = now };
	}
	if (r == 0 && (!p || !puts))
		r = nb_ipc_error_set(err, NB_IPC_INTERNAL_ERROR, "out of memory");
	struct nb_err e = { 0 };
	int created = 0;
	if (r == 0) {
		created = ctxgraph_store_put(g->store, puts, n, &e);
		if (created < 0)
			r = store_failed(&e, err);
	}
	/* Why arrays, not an object per entry: a batch exists to be cheap, and a hundred small
	 * objects cost more to build and parse (both ends) than the rest of the reply. */
	json_t *hashes = r == 0 ? json_array() : NULL, *seqs = r == 0 ? json_array() : NULL;
	for (size_t i = 0; hashes && seqs && i < n; i++) {
		json_array_append_new(hashes, json_string_nocheck(p[i].hash));
		json_array_append_new(seqs, json_integer((json_int_t)puts[i].seq));
	}
	/* One record for the operator's batch, not one per entry. */
	if (r == 0 && created > 0 && !c.reg)
		decide(g, &c, "ctx.write_batch", "ctx.write", p[0].key, "allowed",
		       "written by the operator as agent %s: %d new of %zu entries (the first: "
		       "hash %s)",
		       writer, created, n, p[0].hash);
	for (size_t i = 0; p && i < n; i++)
		free(p[i].value);
	free(p);
	free(puts);
	if (r < 0) {
		json_decref(hashes);
		json_decref(seqs);
		return r;
	}
	*result = json_pack("{s:i,s:o,s:o}", "created", created, "hashes", hashes, "seqs", seqs);
	return NB_IPC_OK;
}

/*
 * The scope for reading @key (ctx.read, ctx.history): everything under a read prefix, else only
 * the caller's own entries (*own_only).
 */
static struct ctxgraph_scope
key_scope(const struct caller *c, const char *key, bool *own_only)
{
	*own_only = false;
	if (!c->reg || under_any(key, c->reg->read, c->reg->n_read))
		return (struct ctxgraph_scope){ .all = true };
	*own_only = true;
	return (struct ctxgraph_scope){ .agent = c->name };
}

static int
m_read(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	static const char *const names[] = { "agent", "key" };
	struct ctxgraph *g = G(call);
	struct caller c;
	const char *key = NULL;
	int r = caller_of(g, call, &c, err);
	if (r == 0)
		r = check_params(params, names, NB_ARRAY_SIZE(names), err);
	if (r == 0)
		r = check_claim(g, &c, "ctx.read", params, err);
	if (r == 0 && !c.reg && json_object_get(params, "agent"))
		r = nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
				     "invalid params: \"agent\" is not a parameter of ctx.read "
				     "on the control socket");
	if (r == 0)
		r = param_key(params, "key", false, &key, err);
	if (r < 0)
		return r;
	bool own_only;
	struct ctxgraph_scope scope = key_scope(&c, key, &own_only);
	struct page p = { .entries = json_array(), .limit = 1 };
	struct nb_err e = { 0 };
	r = ctxgraph_store_latest(g->store, key, &scope, page_row, &p, &e);
	json_t *entries = p.entries;
	if (r < 0 || p.failed) {
		json_decref(entries);
		return p.failed ? nb_ipc_error_set(err, NB_IPC_INTERNAL_ERROR,
						   "cannot build the reply")
				: store_failed(&e, err);
	}
	if (r == 0) {
		json_decref(entries);
		/* Outside its read prefixes an agent reads its own entries; if it has none there,
		 * the read is one it may not make at all. */
		if (own_only)
			return deny(g, &c, "ctx.read", "ctx.read", key, err,
				    "agent %s may not read key \"%.64s\": it is not under its read "
				    "prefixes",
				    c.name, key);
		return nb_ipc_error_set(err, CTXGRAPH_ERR_NOT_FOUND, "no entry with key \"%.64s\"",
					key);
	}
	*result = json_incref(json_array_get(entries, 0));
	json_decref(entries);
	return NB_IPC_OK;
}

static int
m_query(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	static const char *const names[] = { "agent", "prefix", "limit", "cursor" };
	struct ctxgraph *g = G(call);
	struct caller c;
	const char *prefix = NULL, *cursor = NULL;
	int64_t limit;
	int r = caller_of(g, call, &c, err);
	if (r == 0)
		r = check_params(params, names, NB_ARRAY_SIZE(names), err);
	if (r == 0)
		r = check_claim(g, &c, "ctx.query", params, err);
	if (r == 0 && !c.reg && json_object_get(params, "agent"))
		r = nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
				     "invalid params: \"agent\" is not a parameter of ctx.query "
				     "on the control socket");
	if (r == 0)
		r = param_key(params, "prefix", true, &prefix, err);
	if (r == 0)
		r = param_limit(params, &limit, err);
	if (r == 0)
		r = param_cursor(params, &cursor, err);
	if (r < 0)
		return r;
	char after[CTXGRAPH_KEY_MAX + 1];
	if (cursor && ctxgraph_cursor_key(cursor, after) < 0)
		return bad_cursor(err);
	/*
	 * The scope: everything when the whole query lies under a read prefix; else the caller's
	 * own entries plus those under the read prefixes that lie inside the query (a read prefix
	 * that neither contains nor lies inside the query cannot match any of its keys).
	 */
	struct ctxgraph_scope scope = { .all = true };
	const char *inside[CTXGRAPH_PREFIXES_MAX];
	if (c.reg && !under_any(prefix, c.reg->read, c.reg->n_read)) {
		size_t n = 0;
		for (size_t i = 0; i < c.reg->n_read; i++)
			if (ctxgraph_prefix_match(c.reg->read[i], prefix))
				inside[n++] = c.reg->read[i];
		scope = (struct ctxgraph_scope){ .agent = c.name,
						 .prefixes = inside,
						 .n_prefixes = n };
	}
	struct page p = { .entries = json_array(), .limit = limit, .by_key = true };
	struct nb_err e = { 0 };
	r = ctxgraph_store_prefix(g->store, prefix, cursor ? after : NULL, &scope, limit + 1,
				  page_row, &p, &e);
	if (r < 0 || p.failed || !p.entries) {
		json_decref(p.entries);
		return p.failed || !p.entries ? nb_ipc_error_set(err, NB_IPC_INTERNAL_ERROR,
								 "cannot build the reply")
					      : store_failed(&e, err);
	}
	if (r == 0 && !cursor && !scope.all && scope.n_prefixes == 0) {
		json_decref(p.entries);
		return deny(g, &c, "ctx.query", "ctx.query", prefix, err,
			    "agent %s may not query prefix \"%.64s\": no read prefix of its lies "
			    "there",
			    c.name, prefix);
	}
	*result = page_result(&p);
	return NB_IPC_OK;
}

static int
m_history(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	static const char *const names[] = { "agent", "key", "limit", "cursor" };
	struct ctxgraph *g = G(call);
	struct caller c;
	const char *key = NULL, *cursor = NULL;
	int64_t limit, after = 0;
	int r = caller_of(g, call, &c, err);
	if (r == 0)
		r = check_params(params, names, NB_ARRAY_SIZE(names), err);
	if (r == 0)
		r = check_claim(g, &c, "ctx.history", params, err);
	if (r == 0 && !c.reg && json_object_get(params, "agent"))
		r = nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
				     "invalid params: \"agent\" is not a parameter of ctx.history "
				     "on the control socket");
	if (r == 0)
		r = param_key(params, "key", false, &key, err);
	if (r == 0)
		r = param_limit(params, &limit, err);
	if (r == 0)
		r = param_cursor(params, &cursor, err);
	if (r < 0)
		return r;
	if (cursor && ctxgraph_cursor_seq(cursor, &after) < 0)
		return bad_cursor(err);
	bool own_only;
	struct ctxgraph_scope scope = key_scope(&c, key, &own_only);
	struct page p = { .entries = json_array(), .limit = limit };
	struct nb_err e = { 0 };
	r = ctxgraph_store_history(g->store, key, after, &scope, limit + 1, page_row, &p, &e);
	if (r < 0 || p.failed || !p.entries) {
		json_decref(p.entries);
		return p.failed || !p.entries ? nb_ipc_error_set(err, NB_IPC_INTERNAL_ERROR,
								 "cannot build the reply")
					      : store_failed(&e, err);
	}
	if (r == 0 && !cursor && own_only) {
		json_decref(p.entries);
		return deny(g, &c, "ctx.history", "ctx.history", key, err,
			    "agent %s may not read key \"%.64s\": it is not under its read "
			    "prefixes",
			    c.name, key);
	}
	*result = page_result(&p);
	return NB_IPC_OK;
}

static int
m_by_agent(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	static const char *const names[] = { "agent", "limit", "cursor" };
	struct ctxgraph *g = G(call);
	struct caller c;
	const char *agent = NULL, *cursor = NULL;
	int64_t limit, after = 0;
	int r = caller_of(g, call, &c, err);
	if (r == 0)
		r = check_params(params, names, NB_ARRAY_SIZE(names), err);
	/* Here "agent" is whose entries to list, not a claim of who is asking. */
	if (r == 0)
		r = nb_ipc_param_string(params, "agent", NB_IPC_NAMED_ONLY, true, &agent, err);
	if (r >= 0)
		r = param_limit(params, &limit, err);
	if (r == 0)
		r = param_cursor(params, &cursor, err);
	if (r < 0)
		return r;
	if (!ctxgraph_name_valid(agent))
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"invalid params: \"agent\": not an agent name");
	if (cursor && ctxgraph_cursor_seq(cursor, &after) < 0)
		return bad_cursor(err);
	struct ctxgraph_scope scope = { .all = true };
	if (c.reg && strcmp(agent, c.name) != 0) {
		if (c.reg->n_read == 0)
			return deny(g, &c, "ctx.by_agent", "ctx.by_agent", agent, err,
				    "agent %s has no read prefixes: it may list only its own "
				    "entries",
				    c.name);
		scope = (struct ctxgraph_scope){ .prefixes = (const char *const *)c.reg->read,
						 .n_prefixes = c.reg->n_read };
	}
	struct page p = { .entries = json_array(), .limit = limit };
	struct nb_err e = { 0 };
	r = ctxgraph_store_by_agent(g->store, agent, after, &scope, limit + 1, page_row, &p, &e);
	if (r < 0 || p.failed || !p.entries) {
		json_decref(p.entries);
		return p.failed || !p.entries ? nb_ipc_error_set(err, NB_IPC_INTERNAL_ERROR,
								 "cannot build the reply")
					      : store_failed(&e, err);
	}
	*result = page_result(&p);
	return NB_IPC_OK;
}

static int
m_stats(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	struct ctxgraph *g = G(call);
	struct caller c;
	int r = operator_only(g, call, &c, err);
	if (r == 0)
		r = check_params(params, NULL, 0, err);
	if (r < 0)
		return r;
	int64_t n = 0;
	struct nb_err e = { 0 };
	if (ctxgraph_store_count(g->store, &n, &e) < 0)
		return store_failed(&e, err);
	*result = json_pack("{s:I,s:i}", "entries", (json_int_t)n, "agents", (int)g->n_live);
	return NB_IPC_OK;
}

/* ---- lifecycle ---- */

struct nb_ipc_server *
ctxgraph_server(struct ctxgraph *g)
{
	return g->srv;
}

int
ctxgraph_feed_as(struct ctxgraph *g, bool operator, const char * agent)
{
	if (operator) {
		g->feed = &g->control;
		return 0;
	}
	if (!agent) {
		g->feed = NULL;
		return 0;
	}
	struct reg *reg = reg_find(g, agent);
	if (!reg)
		return -ENOENT;
	g->feed = reg;
	return 0;
}

int
ctxgraph_new(struct ctxgraph_store *store, const struct ctxgraph_config *cfg, struct ctxgraph **out,
	     struct nb_err *e)
{
	*out = NULL;
	struct ctxgraph *g = calloc(1, sizeof(*g));
	if (!g)
		return nb_err_set(e, ENOMEM, "out of memory");
	g->store = store;
	g->hooks = cfg->hooks;
	g->rate = cfg->write_rate ? cfg->write_rate : CTXGRAPH_DEFAULT_RATE;
	g->burst = cfg->write_burst ? cfg->write_burst : CTXGRAPH_DEFAULT_BURST;
	g->control.kind = REG_CONTROL;
	g->control.live = true;
	snprintf(g->control.name, sizeof(g->control.name), "operator");
	int r = 0;
	if (g->rate < 1 || g->rate > CTXGRAPH_RATE_MAX || g->burst < 1 ||
	    g->burst > CTXGRAPH_RATE_MAX) {
		r = nb_err_set(e, EINVAL, "write rate and burst: 1 to %d", CTXGRAPH_RATE_MAX);
		goto fail;
	}
	/* Idle agent connections cost a slot each; an agent that opens and forgets them is
	 * evicted by lib/ipc when the server is full, so no idle timeout is needed. */
	struct nb_ipc_server_opts o = { .max_clients = 1024, .allow_peer = allow_peer };
	g->srv = nb_ipc_server_new(&o, e);
	if (!g->srv) {
		r = -(e && e->code ? e->code : ENOMEM);
		goto fail;
	}
	static const struct {
		const char *name;
		nb_ipc_handler_fn fn;
	} methods[] = {
		{ "agent.register", m_agent_register },
		{ "agent.unregister", m_agent_unregister },
		{ "agent.list", m_agent_list },
		{ "ctx.write", m_write },
		{ "ctx.write_batch", m_write_batch },
		{ "ctx.read", m_read },
		{ "ctx.query", m_query },
		{ "ctx.history", m_history },
		{ "ctx.by_agent", m_by_agent },
		{ "ctx.stats", m_stats },
	};
	for (size_t i = 0; r == 0 && i < NB_ARRAY_SIZE(methods); i++)
		r = nb_ipc_server_add_method(g->srv, methods[i].name, methods[i].fn, g, e);
	if (r < 0)
		goto fail;
	if (cfg->run_dir) {
		if (asprintf(&g->control_path, "%s/ctxgraph.sock", cfg->run_dir) < 0 ||
		    asprintf(&g->agent_dir, "%s/ctxgraph", cfg->run_dir) < 0) {
			r = nb_err_set(e, ENOMEM, "out of memory");
			goto fail;
		}
		/* The control socket first: it fails if another ctxgraph serves this run dir,
		 * before anything of that one's is touched. */
		r = nb_ipc_server_listen(g->srv, g->control_path, 0600, (gid_t)-1, &g->control, e);
		if (r == 0)
			r = make_agent_dir(g->agent_dir, e);
		if (r < 0)
			goto fail;
		clear_stale_sockets(g->agent_dir);
	}
	*out = g;
	return 0;
fail:
	ctxgraph_free(g);
	return r;
}

void
ctxgraph_free(struct ctxgraph *g)
{
	if (!g)
		return;
	/* The server first: it removes the socket files it made and drops every connection,
	 * after which no tag points into the registrations. */
	nb_ipc_server_free(g->srv);
	while (g->regs) {
		struct reg *reg = g->regs;
		g->regs = reg->next;
		strv_free_n(reg->read, reg->n_read);
		strv_free_n(reg->write, reg->n_write);
		free(reg->path);
		free(reg);
	}
	free(g->control_path);
	free(g->agent_dir);
	free(g);
}
