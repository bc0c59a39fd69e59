/*
 * server.c: warden's JSON-RPC methods (the contract is in warden.h).
 *
 * Sections:
 *   audit     records handed to nulld (audit.append) or, standalone, logged
 *   peers     who may call what
 *   methods   vault.set, vault.list, vault.delete, vault.bind, vault.get
 *
 * Who may call: uid 0 only, checked with SO_PEERCRED (the kernel's record of who connect()ed, which
 * a client cannot forge). Why uid 0 is the boundary today: the peers that need values are nulld
 * (for inject = "env") and egress (to swap placeholders), and both run as root; nullctl is run
 * by root to manage the vault. Agents run as unprivileged uids inside cages and never reach this
 * socket (0600, root's). Telling nulld from egress from another root process would need their
 * pids checked against nulld's units; root can read the vault's memory anyway, so that would not
 * be a boundary against root, only against mistakes. docs/WARDEN.md says more.
 *
 * Values never reach a log line or an audit record: only names, hosts, agents and verdicts do.
 */
#include "warden.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include "cleanup.h"
#include "json.h"
#include "log.h"

static struct warden *
W(struct nb_ipc_call *call)
{
	return nb_ipc_call_data(call);
}

/* ---- audit ---- */

void
warden_audit_close(struct warden *w)
{
	if (!w->audit)
		return;
	if (w->epfd >= 0)
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, nb_ipc_client_fd(w->audit), NULL);
	nb_ipc_client_free(w->audit);
	w->audit = NULL;
}

static int
audit_connect(struct warden *w, struct nb_err *e)
{
	w->audit = nb_ipc_connect(w->nulld_socket, 1000, e);
	if (!w->audit)
		return -(e->code ? e->code : EIO);
	if (w->epfd >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WD_EV_AUDIT };
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, nb_ipc_client_fd(w->audit), &ev) < 0) {
			int r = nb_err_setp(e, errno, "epoll_ctl");
			warden_audit_close(w);
			return r;
		}
	}
	return 0;
}

void
warden_audit_drain(struct warden *w)
{
	while (w->audit) {
		_cleanup_json_ json_t *m = NULL;
		struct nb_err e = { 0 };
		int r = nb_ipc_read_message(w->audit, 0, &m, &e);
		if (r == -ETIMEDOUT)
			return;
		if (r < 0) {
			log_warn("audit connection to nulld: %s (reconnecting at the next record)",
				 e.msg);
			warden_audit_close(w);
			return;
		}
		json_t *err = json_object_get(m, "error");
		if (err) {
			w->audit_refused++;
			log_err("nulld refused an audit record: %s",
				json_string_value(json_object_get(err, "message"))
					?: "(no message)");
		}
	}
}

/*
 * One audit record. Under nulld it is handed to nulld's control socket as an audit.append
 * request, and the reply is read later (warden_audit_drain): waiting for it here would deadlock
 * against a nulld that is itself waiting on warden (nulld reads secrets for "env" injection).
 * The request is in nulld's socket before the caller gets its answer; nulld names the actor from
 * warden's pid, so a record cannot claim to be from anyone else. Standalone: a log line.
 * Takes @detail. Returns 0, or -EIO when the record could not be handed to nulld.
 */
static int audit(struct warden *w, const char *action, const char *object, bool allowed,
		 json_t *detail, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int
audit(struct warden *w, const char *action, const char *object, bool allowed, json_t *detail,
      const char *fmt, ...)
{
	_cleanup_json_ json_t *d = detail;
	char reason[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	const char *verdict = allowed ? "allowed" : "denied";
	if (!w->nulld_socket) {
		log_info("audit: %s %s %s: %s", action, object, verdict, reason);
		return 0;
	}
	_cleanup_json_ json_t *params =
		json_pack("{s:s, s:s, s:s, s:s}", "action", action, "object", object, "verdict",
			  verdict, "reason", reason);
	if (!params || (d && json_object_set(params, "detail", d) < 0))
		return -ENOMEM;
	struct nb_err e = { 0 };
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!w->audit && audit_connect(w, &e) < 0)
			continue;
		if (nb_ipc_send_request(w->audit, "audit.append", params, 1000, NULL, &e) == 0) {
			w->audit_sent++;
			return 0;
		}
		warden_audit_close(w);
	}
	log_err("cannot hand an audit record (%s %s %s) to nulld at %s: %s", action, object,
		verdict, w->nulld_socket, e.msg);
	return -EIO;
}

/* ---- peers ---- */

static void
peer_str(struct nb_ipc_call *call, char *buf, size_t len)
{
	const struct nb_ipc_peer *p = nb_ipc_call_peer(call);
	snprintf(buf, len, "uid %u pid %d", (unsigned)p->uid, (int)p->pid);
}

static bool
peer_is_root(struct nb_ipc_call *call)
{
	return nb_ipc_call_peer(call)->uid == 0;
}

/* {"peer": "uid U pid P", ...} for the audit record's detail. */
static json_t *
detail_new(struct nb_ipc_call *call)
{
	char who[64];
	peer_str(call, who, sizeof(who));
	return json_pack("{s:s}", "peer", who);
}

/* Refuses a change from a non-root peer, audited as @action denied. */
static int
deny_non_root(struct nb_ipc_call *call, const char *action, const char *name,
	      struct nb_ipc_error *err)
{
	char who[64];
	peer_str(call, who, sizeof(who));
	audit(W(call), action, name, false, detail_new(call), "%s is not root", who);
	log_warn("%s %s refused: %s is not root", action, name, who);
	return nb_ipc_error_set(err, WD_ERR_DENIED,
				"only root (nulld, egress, nullctl as root) may use the vault; "
				"this peer is %s",
				who);
}

/* Agent names as nulld accepts them: [A-Za-z0-9_-]{1,64}. */
static bool
agent_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return false;
	return true;
}

static json_t *
hosts_json(const struct wd_secret *s)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < s->n_hosts; i++)
		json_array_append_new(a, json_string(s->hosts[i]));
	return a;
}

/* The JSON-RPC error for a failed vault change. */
static int
change_error(struct nb_ipc_error *err, const struct nb_err *e)
{
	int code = e->code == EINVAL   ? NB_IPC_INVALID_PARAMS
		   : e->code == ENOENT ? WD_ERR_NOT_FOUND
				       : WD_ERR_FAILED;
	return nb_ipc_error_set(err, code, "%s", e->msg);
}

/* ---- methods ---- */

static int
m_set(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	static const char *const names[] = { "name", "value", "inject" };
	const char *name = NULL, *inject_s = NULL;
	json_t *value = NULL;
	int r = nb_ipc_params_check(params, names, 3, err);
	if (r == 0)
		r = nb_ipc_param_string(params, "name", 0, true, &name, err);
	if (r >= 0)
		r = nb_ipc_param_json(params, "value", 1, JSON_STRING, true, &value, err);
	if (r >= 0)
		r = nb_ipc_param_string(params, "inject", 2, false, &inject_s, err);
	if (r < 0)
		return r;
	if (!wd_name_valid(name))
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"name: not a valid secret name ([A-Za-z_][A-Za-z0-9_]*, "
					"at most %d)",
					WD_NAME_MAX);
	int inject = inject_s ? wd_inject_parse(inject_s) : -1;
	if (inject_s && inject < 0)
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"inject: \"placeholder\" or \"env\", not \"%.32s\"",
					inject_s);
	if (!peer_is_root(call))
		return deny_non_root(call, "secret.set", name, err);
	struct warden *w = W(call);
	struct nb_err e = { 0 };
	bool created = false;
	r = wd_vault_set(w->vault, name, json_string_value(value), json_string_length(value),
			 inject, &created, &e);
	if (r < 0) {
		if (e.code != EINVAL)
			log_err("secret %s: set failed: %s", name, e.msg);
		return change_error(err, &e);
	}
	const struct wd_secret *s = wd_vault_find(w->vault, name);
	char who[64];
	peer_str(call, who, sizeof(who));
	log_info("secret %s %s (inject %s) by %s", name, created ? "created" : "replaced",
		 wd_inject_name(s->inject), who);
	/* The issue asks for a warning in the audit log whenever a real value goes to agents. */
	audit(w, "secret.set", name, true, detail_new(call), "%s by %s%s",
	      created ? "created" : "replaced", who,
	      s->inject == WD_INJECT_ENV ? "; inject env: agents get the real value, not a "
					   "placeholder"
					 : "");
	*result = json_pack("{s:s, s:s, s:o, s:b}", "name", name, "inject",
			    wd_inject_name(s->inject), "hosts", hosts_json(s), "created", created);
	return NB_IPC_OK;
}

static int
m_list(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	int r = nb_ipc_params_check(params, NULL, 0, err);
	if (r < 0)
		return r;
	if (!peer_is_root(call)) {
		char who[64];
		peer_str(call, who, sizeof(who));
		return nb_ipc_error_set(err, WD_ERR_DENIED,
					"only root may use the vault; this peer is %s", who);
	}
	struct warden *w = W(call);
	json_t *list = json_array();
	for (size_t i = 0; list && i < wd_vault_count(w->vault); i++) {
		const struct wd_secret *s = wd_vault_at(w->vault, i);
		/* Names, modes and hosts only: a value never leaves warden except through get. */
		json_array_append_new(list,
				      json_pack("{s:s, s:s, s:o}", "name", s->name, "inject",
						wd_inject_name(s->inject), "hosts", hosts_json(s)));
	}
	*result = json_pack("{s:o}", "secrets", list);
	return NB_IPC_OK;
}

static int
m_delete(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	static const char *const names[] = { "name" };
	const char *name = NULL;
	int r = nb_ipc_params_check(params, names, 1, err);
	if (r == 0)
		r = nb_ipc_param_string(params, "name", 0, true, &name, err);
	if (r < 0)
		return r;
	if (!wd_name_valid(name))
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"name: not a valid secret name");
	if (!peer_is_root(call))
		return deny_non_root(call, "secret.delete", name, err);
	struct warden *w = W(call);
	struct nb_err e = { 0 };
	if (wd_vault_delete(w->vault, name, &e) < 0)
		return change_error(err, &e);
	char who[64];
	peer_str(call, who, sizeof(who));
	log_info("secret %s deleted by %s", name, who);
	audit(w, "secret.delete", name, true, detail_new(call), "deleted by %s", who);
	*result = json_pack("{s:s}", "name", name);
	return NB_IPC_OK;
}

static int
m_bind(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	static const char *const names[] = { "name", "hosts" };
	const char *name = NULL;
	json_t *hosts = NULL;
	int r = nb_ipc_params_check(params, names, 2, err);
	if (r == 0)
		r = nb_ipc_param_string(params, "name", 0, true, &name, err);
	if (r >= 0)
		r = nb_ipc_param_json(params, "hosts", 1, JSON_ARRAY, true, &hosts, err);
	if (r < 0)
		return r;
	if (!wd_name_valid(name))
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"name: not a valid secret name");
	size_t n = json_array_size(hosts);
	if (n > WD_HOSTS_MAX)
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS, "hosts: more than %d",
					WD_HOSTS_MAX);
	const char *list[WD_HOSTS_MAX];
	for (size_t i = 0; i < n; i++) {
		if (!json_is_string(json_array_get(hosts, i)))
			return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
						"hosts: item %zu is not a string", i);
		list[i] = json_string_value(json_array_get(hosts, i));
	}
	if (!peer_is_root(call))
		return deny_non_root(call, "secret.bind", name, err);
	struct warden *w = W(call);
	struct nb_err e = { 0 };
	if (wd_vault_bind(w->vault, name, list, n, &e) < 0)
		return change_error(err, &e);
	const struct wd_secret *s = wd_vault_find(w->vault, name);
	char to[384] = "", who[64];
	for (size_t i = 0; i < s->n_hosts; i++) {
		size_t at = strlen(to);
		snprintf(to + at, sizeof(to) - at, "%s%s", i ? ", " : "", s->hosts[i]);
	}
	peer_str(call, who, sizeof(who));
	log_info("secret %s bound to [%s] by %s", name, to, who);
	audit(w, "secret.bind", name, true, detail_new(call), "to [%s] by %s", to, who);
	*result = json_pack("{s:s, s:o}", "name", name, "hosts", hosts_json(s));
	return NB_IPC_OK;
}

/*
 * vault.get: the one method that returns a value. Allowed when the peer is root and either
 *   - @host is given and the secret is bound to it (egress, swapping a placeholder), or
 *   - no @host is given and the secret's inject mode is "env" (nulld, filling an agent's
 *     environment).
 * Why a placeholder secret needs a host: its value is only ever meant to leave the host inside a
 * request to a bound host, so a read without one is not something the system does; refusing it
 * means a confused caller cannot get the value out for an unbound destination.
 * Every call that names a valid secret is audited, allowed or denied, and an allowed read whose
 * record cannot be handed to nulld is refused.
 */
static int
m_get(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	static const char *const names[] = { "name", "host", "agent" };
	const char *name = NULL, *host = NULL, *agent = NULL;
	int r = nb_ipc_params_check(params, names, 3, err);
	if (r == 0)
		r = nb_ipc_param_string(params, "name", 0, true, &name, err);
	if (r >= 0)
		r = nb_ipc_param_string(params, "host", 1, false, &host, err);
	if (r >= 0)
		r = nb_ipc_param_string(params, "agent", 2, false, &agent, err);
	if (r < 0)
		return r;
	if (!wd_name_valid(name))
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"name: not a valid secret name");
	char h[WD_HOST_MAX + 3] = "";
	struct nb_err e = { 0 };
	if (host && (wd_host_normalise(host, h, &e) < 0 || h[0] == '*'))
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS, "host: %s",
					h[0] == '*' ? "a host name, not a pattern" : e.msg);
	if (agent && !agent_valid(agent))
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"agent: not a valid agent name");

	struct warden *w = W(call);
	char why[512] = "", whom[400];
	snprintf(whom, sizeof(whom), "%s%s%s%s", host ? "for " : "for env injection", host ? h : "",
		 agent ? " by " : "", agent ? agent : "");
	json_t *detail = detail_new(call);
	if (host)
		json_object_set_new(detail, "host", json_string(h));
	if (agent)
		json_object_set_new(detail, "agent", json_string(agent));

	const struct wd_secret *s = wd_vault_find(w->vault, name);
	if (!peer_is_root(call)) {
		char who[64];
		peer_str(call, who, sizeof(who));
		snprintf(why, sizeof(why), "%s: %s is not root", whom, who);
	} else if (!s) {
		snprintf(why, sizeof(why), "%s: no secret named %s", whom, name);
	} else if (host) {
		bool ok = false;
		for (size_t i = 0; !ok && i < s->n_hosts; i++)
			ok = wd_host_match(s->hosts[i], h);
		if (!ok)
			snprintf(why, sizeof(why), "%s: %s is not bound to %s", whom, name, h);
	} else if (s->inject != WD_INJECT_ENV) {
		snprintf(why, sizeof(why),
			 "%s: %s is injected as a placeholder; only a read for a bound host gets "
			 "its value",
			 whom, name);
	}
	if (why[0]) {
		audit(w, "secret.read", name, false, detail, "%s", why);
		log_warn("secret %s: read refused: %s", name, why);
		return nb_ipc_error_set(err,
					s || !peer_is_root(call) ? WD_ERR_DENIED : WD_ERR_NOT_FOUND,
					"%s", why);
	}
	/* Fail closed: a read nobody can later find in the audit log does not happen. */
	if (audit(w, "secret.read", name, true, detail, "%s", whom) < 0)
		return nb_ipc_error_set(err, WD_ERR_FAILED,
					"the read could not be audited (nulld at %s is not "
					"answering), so it is refused",
					w->nulld_socket);
	*result = json_pack("{s:s, s:s%, s:s}", "name", name, "value", s->value, s->value_len,
			    "inject", wd_inject_name(s->inject));
	if (!*result)
		return nb_ipc_error_set(err, NB_IPC_INTERNAL_ERROR, "out of memory");
	return NB_IPC_OK;
}

int
warden_methods_add(struct warden *w, struct nb_err *e)
{
	static const struct {
		const char *name;
		nb_ipc_handler_fn fn;
	} methods[] = {
		{ "vault.set", m_set },	  { "vault.list", m_list }, { "vault.delete", m_delete },
		{ "vault.bind", m_bind }, { "vault.get", m_get },
	};
	for (size_t i = 0; i < NB_ARRAY_SIZE(methods); i++) {
		int r = nb_ipc_server_add_method(w->srv, methods[i].name, methods[i].fn, w, e);
		if (r < 0)
			return r;
	}
	return 0;
}
