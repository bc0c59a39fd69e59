/*
 * commands.c: one function per nullctl command. Each builds the request of the contract with
 * nulld (src/nulld/control.c serves it), sends it, and prints the reply: as JSON lines with
 * --json, else as text for people.
 *
 * Sections:
 *   units      the UNIT object (a service or an agent) as a table row, key: value lines, or a
 *              one-line "started web (pid 42)"
 *   status     status
 *   agent      agent start|stop|restart|pause|resume|status|list|logs
 *   audit      audit, audit verify
 *   misc       service restart, shutdown
 *
 * The contract (method, params -> result):
 *   status           {}                                  -> {pid, uptime_ms, state_dir, pid1,
 *                                                            services: [UNIT], agents: [UNIT]}
 *   agent.start      {manifest: ABS, name?}              -> UNIT
 *   agent.stop|restart|pause|resume|status  {name}       -> UNIT
 *   agent.list       {}                                  -> {agents: [UNIT]}
 *   agent.logs       {name, lines, follow}               -> {data}; with follow no reply, but
 *                                                           "log" notifications {name, data}
 *   audit.query      {agent?, verdict?, limit?, follow?} -> {records: [REC]}; with follow then
 *                                                           "audit" notifications {record: REC}
 *                                                           (nulld sends the existing records as
 *                                                           an "audit.records" {records}
 *                                                           notification instead; both are read)
 *   audit.verify     {}                                  -> {ok, records, first_bad, reason}
 *   service.restart  {name}                              -> UNIT
 *   shutdown         {}                                  -> {}
 * UNIT = {name, state, pid, since_ms, failures, restarts, last_exit, [manifest, health]}.
 * REC  = {seq, time, actor, action, object, verdict, reason, detail?, prev, hash}.
 * Members are read leniently (absent: "-"), so a newer nulld with more members still prints.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "json.h"
#include "nullctl.h"

/* ---- units ---- */

static const char *const unit_service_heads[] = { "NAME",  "STATE",    "PID",
						  "SINCE", "RESTARTS", "LAST EXIT" };
static const char *const unit_agent_heads[] = { "NAME",	 "STATE",    "PID",
						"SINCE", "RESTARTS", "HEALTH" };
static const size_t unit_max[] = { 32, 12, 0, 0, 0, 40 };

static void
unit_row(struct ctl_table *t, const json_t *u, bool agent)
{
	char pid[24] = "-", since[24] = "-", restarts[24];
	int64_t p = ctl_json_int(u, "pid", 0), s = ctl_json_int(u, "since_ms", -1);
	if (p > 0)
		snprintf(pid, sizeof(pid), "%" PRId64, p);
	if (s >= 0)
		ctl_duration((uint64_t)s, since, sizeof(since));
	snprintf(restarts, sizeof(restarts), "%" PRId64, ctl_json_int(u, "restarts", 0));
	const char *cells[] = { ctl_json_str(u, "name"),
				ctl_json_str(u, "state"),
				pid,
				since,
				restarts,
				ctl_json_str(u, agent ? "health" : "last_exit") };
	ctl_table_add(t, cells);
}

/* A table of the UNITs in @arr, or "(none)". */
static void
print_units(const json_t *arr, bool agent)
{
	if (!json_is_array(arr) || json_array_size(arr) == 0) {
		puts("(none)");
		return;
	}
	struct ctl_table *t =
		ctl_table_new(6, agent ? unit_agent_heads : unit_service_heads, unit_max);
	size_t i;
	json_t *u;
	json_array_foreach(arr, i, u) unit_row(t, u, agent);
	ctl_table_print(t, stdout);
	ctl_table_free(t);
}

static bool
state_in(const char *state, const char *const *expected)
{
	for (; state && *expected; expected++)
		if (strcmp(state, *expected) == 0)
			return true;
	return false;
}

/*
 * "started web (pid 42)": @verb, the unit's name, its pid when it has one, and its state when
 * it is not one of @expected (say a start that ended in backoff at once).
 */
static void
print_unit_action(const char *verb, const json_t *u, const char *const *expected)
{
	const char *state = ctl_json_str(u, "state");
	int64_t pid = ctl_json_int(u, "pid", 0);
	bool show_state = state && !state_in(state, expected);
	printf("%s ", verb);
	ctl_print_escaped(stdout, ctl_json_str(u, "name"));
	if (show_state || pid > 0) {
		fputs(" (", stdout);
		if (show_state) {
			fputs("state ", stdout);
			ctl_print_escaped(stdout, state);
		}
		if (pid > 0)
			printf("%spid %" PRId64, show_state ? ", " : "", pid);
		fputs(")", stdout);
	}
	fputc('\n', stdout);
}

static void
print_kv(const char *key, const char *value)
{
	printf("%-11s", key);
	ctl_print_escaped(stdout, value);
	fputc('\n', stdout);
}

/* `agent status`: the known members in a fixed order, then any others nulld added. */
static void
print_unit_details(const json_t *u)
{
	static const char *const known[] = { "name",	 "manifest",  "state",
					     "pid",	 "since_ms",  "failures",
					     "restarts", "last_exit", "health" };
	char buf[32];
	int64_t pid = ctl_json_int(u, "pid", 0), since = ctl_json_int(u, "since_ms", -1);
	print_kv("name:", ctl_json_str(u, "name"));
	print_kv("manifest:", ctl_json_str(u, "manifest"));
	print_kv("state:", ctl_json_str(u, "state"));
	snprintf(buf, sizeof(buf), "%" PRId64, pid);
	print_kv("pid:", pid > 0 ? buf : NULL);
	print_kv("since:", since >= 0 ? ctl_duration((uint64_t)since, buf, sizeof(buf)) : NULL);
	snprintf(buf, sizeof(buf), "%" PRId64, ctl_json_int(u, "failures", 0));
	print_kv("failures:", buf);
	snprintf(buf, sizeof(buf), "%" PRId64, ctl_json_int(u, "restarts", 0));
	print_kv("restarts:", buf);
	print_kv("last exit:", ctl_json_str(u, "last_exit"));
	print_kv("health:", ctl_json_str(u, "health"));

	const char *key;
	json_t *v;
	json_object_foreach((json_t *)u, key, v)
	{
		bool seen = false;
		for (size_t k = 0; k < NB_ARRAY_SIZE(known); k++)
			seen = seen || strcmp(key, known[k]) == 0;
		if (seen || json_is_null(v))
			continue;
		_cleanup_free_ char *text = json_is_string(v)
						    ? strdup(json_string_value(v))
						    : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		char label[64];
		snprintf(label, sizeof(label), "%s:", key);
		char *esc = ctl_escape(label, strlen(label), CTL_ESC_LINE, 40, NULL);
		print_kv(esc, text);
		free(esc);
	}
}

static int
unexpected_reply(const char *method)
{
	return ctl_fail("unexpected reply from nulld to '%s' (is it a different version?)", method);
}

/* Calls @method {name: NAME} and prints the UNIT it returns as "VERB NAME (pid N)". */
static int
unit_command(struct ctl *c, const char *method, const char *name, const char *verb,
	     const char *const *expected)
{
	_cleanup_json_ json_t *params = json_pack("{s:s}", "name", name), *res = NULL;
	int r = ctl_call(c, method, params, &res);
	if (r)
		return r;
	if (c->json) {
		ctl_print_json(res);
		return CTL_EXIT_OK;
	}
	if (!json_is_object(res))
		return unexpected_reply(method);
	print_unit_action(verb, res, expected);
	return CTL_EXIT_OK;
}

static const char *const running_states[] = { "up", "starting", NULL };

/* ---- status ---- */

int
ctl_cmd_status(struct ctl *c, const struct ctl_args *a)
{
	_cleanup_json_ json_t *params = json_object(), *res = NULL;
	int r = ctl_call(c, "status", params, &res);
	if (r)
		return r;
	if (c->json) {
		ctl_print_json(res);
		return CTL_EXIT_OK;
	}
	if (!json_is_object(res))
		return unexpected_reply("status");
	char up[32] = "-";
	int64_t uptime = ctl_json_int(res, "uptime_ms", -1);
	if (uptime >= 0)
		ctl_duration((uint64_t)uptime, up, sizeof(up));
	printf("nulld pid %" PRId64 ", up %s, state ", ctl_json_int(res, "pid", 0), up);
	ctl_print_escaped(stdout, ctl_json_str(res, "state_dir"));
	puts("\n\nSERVICES");
	print_units(json_object_get(res, "services"), false);
	puts("\nAGENTS");
	print_units(json_object_get(res, "agents"), true);
	return CTL_EXIT_OK;
}

/* ---- agent ---- */

int
ctl_cmd_agent_start(struct ctl *c, const struct ctl_args *a)
{
	/* nulld resolves nothing relative to the caller's directory (it has its own), so the
	 * path goes out absolute, symlinks resolved as this user sees them. */
	char abs[PATH_MAX];
	if (!realpath(a->pos[0], abs))
		return ctl_fail("%s: %s", a->pos[0], strerror(errno));
	_cleanup_json_ json_t *params = json_pack("{s:s}", "manifest", abs), *res = NULL;
	if (a->name)
		json_object_set_new(params, "name", json_string(a->name));
	int r = ctl_call(c, "agent.start", params, &res);
	if (r)
		return r;
	if (c->json) {
		ctl_print_json(res);
		return CTL_EXIT_OK;
	}
	if (!json_is_object(res))
		return unexpected_reply("agent.start");
	print_unit_action("started", res, running_states);
	return CTL_EXIT_OK;
}

int
ctl_cmd_agent_stop(struct ctl *c, const struct ctl_args *a)
{
	static const char *const down[] = { "down", NULL };
	return unit_command(c, "agent.stop", a->pos[0], "stopped", down);
}

int
ctl_cmd_agent_restart(struct ctl *c, const struct ctl_args *a)
{
	return unit_command(c, "agent.restart", a->pos[0], "restarted", running_states);
}

int
ctl_cmd_agent_pause(struct ctl *c, const struct ctl_args *a)
{
	static const char *const paused[] = { "paused", NULL };
	return unit_command(c, "agent.pause", a->pos[0], "paused", paused);
}

int
ctl_cmd_agent_resume(struct ctl *c, const struct ctl_args *a)
{
	return unit_command(c, "agent.resume", a->pos[0], "resumed", running_states);
}

int
ctl_cmd_agent_status(struct ctl *c, const struct ctl_args *a)
{
	_cleanup_json_ json_t *params = json_pack("{s:s}", "name", a->pos[0]), *res = NULL;
	int r = ctl_call(c, "agent.status", params, &res);
	if (r)
		return r;
	if (c->json) {
		ctl_print_json(res);
		return CTL_EXIT_OK;
	}
	if (!json_is_object(res))
		return unexpected_reply("agent.status");
	print_unit_details(res);
	return CTL_EXIT_OK;
}

int
ctl_cmd_agent_list(struct ctl *c, const struct ctl_args *a)
{
	_cleanup_json_ json_t *params = json_object(), *res = NULL;
	int r = ctl_call(c, "agent.list", params, &res);
	if (r)
		return r;
	if (c->json) {
		ctl_print_json(res);
		return CTL_EXIT_OK;
	}
	if (!json_is_object(res))
		return unexpected_reply("agent.list");
	print_units(json_object_get(res, "agents"), true);
	return CTL_EXIT_OK;
}

/* Follow streams end on SIGINT/SIGTERM with exit 0. Exiting from the handler leaves no window
 * between "check a flag" and "block in read" for a signal to be lost in; output is flushed
 * after every piece, so nothing waits in a buffer. */
static void
on_stop_signal(int sig)
{
	(void)sig;
	_exit(CTL_EXIT_OK);
}

static void
exit_on_signals(void)
{
	struct sigaction sa = { .sa_handler = on_stop_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* Prints log data: as it is for a pipe or with --raw; escaped (lines kept) on a terminal. */
static void
print_log_data(const json_t *data, bool raw)
{
	if (!json_is_string(data))
		return;
	const char *s = json_string_value(data);
	size_t len = json_string_length(data);
	if (raw) {
		fwrite(s, 1, len, stdout);
	} else {
		char *esc = ctl_escape(s, len, CTL_ESC_TEXT, 0, NULL);
		fputs(esc, stdout);
		free(esc);
	}
	fflush(stdout);
}

/* True if @msg is the response to request @id (an error with id null answers it too: the
 * server could not read the id, or refused the connection). */
static bool
is_response(const json_t *msg, int64_t id)
{
	json_t *mid = json_object_get(msg, "id");
	return (json_is_integer(mid) && json_integer_value(mid) == id) ||
	       (json_is_null(mid) && json_object_get(msg, "error"));
}

/* The response @msg carries a JSON-RPC error: print its message. Returns CTL_EXIT_FAIL. */
static int
response_error(const json_t *msg)
{
	json_t *err = json_object_get(msg, "error");
	const char *m = ctl_json_str(err, "message");
	return ctl_fail("%s", m && m[0] ? m : "nulld refused the request");
}

/* What lib/ipc's stream reader said when the stream ended without a signal. */
static int
stream_ended(struct ctl *c, const char *method, int r, const struct nb_err *e)
{
	if (r == -ECONNRESET || r == -EPIPE)
		return ctl_fail("nulld closed the connection");
	return ctl_report_ipc_error(c, method, r, e);
}

static int
follow_logs(struct ctl *c, const json_t *params, bool raw)
{
	int r = ctl_connect(c);
	if (r)
		return r;
	exit_on_signals();
	struct nb_err e = { 0 };
	int64_t id;
	r = nb_ipc_send_request(c->client, "agent.logs", params, c->timeout_ms, &id, &e);
	if (r < 0)
		return ctl_report_ipc_error(c, "agent.logs", r, &e);
	for (;;) {
		_cleanup_json_ json_t *msg = NULL;
		r = nb_ipc_read_message(c->client, -1, &msg, &e);
		if (r < 0)
			return stream_ended(c, "agent.logs", r, &e);
		if (is_response(msg, id)) {
			if (json_object_get(msg, "error"))
				return response_error(msg);
			/* The contract has no final reply: one means nulld ended the stream. */
			json_t *res = json_object_get(msg, "result");
			if (c->json && json_is_object(res) && json_object_get(res, "data"))
				ctl_print_json(res);
			else if (!c->json)
				print_log_data(json_object_get(res, "data"), raw);
			return ctl_fail("nulld ended the stream");
		}
		const char *method = ctl_json_str(msg, "method");
		json_t *p = json_object_get(msg, "params");
		if (!method || strcmp(method, "log") != 0 || !json_is_object(p))
			continue;
		if (c->json)
			ctl_print_json(p);
		else
			print_log_data(json_object_get(p, "data"), raw);
	}
}

int
ctl_cmd_agent_logs(struct ctl *c, const struct ctl_args *a)
{
	_cleanup_json_ json_t *params = json_pack("{s:s,s:I,s:b}", "name", a->pos[0], "lines",
						  (json_int_t)(a->lines >= 0 ? a->lines : 100),
						  "follow", a->follow),
			      *res = NULL;
	/* Agent output is the agent's to choose, escape sequences included: a terminal gets it
	 * escaped unless --raw; a pipe or file gets the bytes (the reader chose to handle them). */
	bool raw = a->raw || !isatty(STDOUT_FILENO);
	if (a->follow)
		return follow_logs(c, params, raw);
	int r = ctl_call(c, "agent.logs", params, &res);
	if (r)
		return r;
	if (c->json) {
		ctl_print_json(res);
		return CTL_EXIT_OK;
	}
	if (!json_is_object(res))
		return unexpected_reply("agent.logs");
	print_log_data(json_object_get(res, "data"), raw);
	return CTL_EXIT_OK;
}

/* ---- audit ---- */

static const char *const audit_heads[] = {
	"TIME", "ACTOR", "ACTION", "OBJECT", "VERDICT", "REASON"
};
static const size_t audit_max[] = { 30, 24, 24, 40, 10, 72 };
/* Widths for a stream, whose later rows cannot widen what is already printed. */
static const size_t audit_min[] = { 24, 16, 16, 28, 8, 0 };

static void
audit_row(struct ctl_table *t, const json_t *rec)
{
	if (!json_is_object(rec))
		return;
	const char *cells[] = { ctl_json_str(rec, "time"),    ctl_json_str(rec, "actor"),
				ctl_json_str(rec, "action"),  ctl_json_str(rec, "object"),
				ctl_json_str(rec, "verdict"), ctl_json_str(rec, "reason") };
	ctl_table_add(t, cells);
}

/* Prints records (an array of REC, or one REC) as JSON lines or table rows. */
static void
print_records(struct ctl *c, struct ctl_table *t, const json_t *recs)
{
	size_t i;
	json_t *rec;
	if (json_is_object(recs)) {
		if (c->json)
			ctl_print_json(recs);
		else
			audit_row(t, recs);
	}
	json_array_foreach(recs, i, rec)
	{
		if (c->json)
			ctl_print_json(rec);
		else
			audit_row(t, rec);
	}
}

static int
follow_audit(struct ctl *c, const json_t *params)
{
	int r = ctl_connect(c);
	if (r)
		return r;
	exit_on_signals();
	struct nb_err e = { 0 };
	int64_t id;
	r = nb_ipc_send_request(c->client, "audit.query", params, c->timeout_ms, &id, &e);
	if (r < 0)
		return ctl_report_ipc_error(c, "audit.query", r, &e);
	struct ctl_table *t = ctl_table_new(6, audit_heads, audit_max);
	bool started = false;
	for (;;) {
		_cleanup_json_ json_t *msg = NULL;
		r = nb_ipc_read_message(c->client, -1, &msg, &e);
		if (r < 0) {
			ctl_table_free(t);
			return stream_ended(c, "audit.query", r, &e);
		}
		json_t *res = json_object_get(msg, "result");
		bool end = false;
		if (is_response(msg, id)) {
			if (json_object_get(msg, "error")) {
				ctl_table_free(t);
				return response_error(msg);
			}
			/* The records that exist come in the result; a result without them ends
			 * the stream (nulld going away). */
			end = !json_is_array(json_object_get(res, "records"));
			print_records(c, t, json_object_get(res, "records"));
		} else {
			/* "audit" {record} for each new record; nulld sends the records that
			 * exist as "audit.records" {records} (the contract: in the result). */
			const char *method = ctl_json_str(msg, "method");
			json_t *p = json_object_get(msg, "params");
			if (!method || !json_is_object(p) ||
			    (strcmp(method, "audit") != 0 && strcmp(method, "audit.records") != 0))
				continue;
			print_records(c, t, json_object_get(p, "record"));
			print_records(c, t, json_object_get(p, "records"));
		}
		if (!c->json) {
			/* The first batch sets the widths, at least audit_min; rows after it are
			 * cut to them so the columns stay straight. */
			if (!started)
				ctl_table_freeze(t, audit_min);
			ctl_table_print(t, stdout);
		}
		started = true;
		if (end) {
			ctl_table_free(t);
			return ctl_fail("nulld ended the stream");
		}
	}
}

int
ctl_cmd_audit(struct ctl *c, const struct ctl_args *a)
{
	_cleanup_json_ json_t *params = json_object(), *res = NULL;
	if (a->agent)
		json_object_set_new(params, "agent", json_string(a->agent));
	if (a->verdict)
		json_object_set_new(params, "verdict", json_string(a->verdict));
	if (a->limit >= 0)
		json_object_set_new(params, "limit", json_integer(a->limit));
	if (a->follow) {
		json_object_set_new(params, "follow", json_true());
		return follow_audit(c, params);
	}
	int r = ctl_call(c, "audit.query", params, &res);
	if (r)
		return r;
	json_t *recs = json_object_get(res, "records");
	if (!json_is_array(recs))
		return unexpected_reply("audit.query");
	if (!c->json && json_array_size(recs) == 0) {
		puts("(no records)");
		return CTL_EXIT_OK;
	}
	struct ctl_table *t = ctl_table_new(6, audit_heads, audit_max);
	print_records(c, t, recs);
	if (!c->json)
		ctl_table_print(t, stdout);
	ctl_table_free(t);
	return CTL_EXIT_OK;
}

int
ctl_cmd_audit_verify(struct ctl *c, const struct ctl_args *a)
{
	_cleanup_json_ json_t *params = json_object(), *res = NULL;
	int r = ctl_call(c, "audit.verify", params, &res);
	if (r)
		return r;
	json_t *ok = json_object_get(res, "ok");
	if (!json_is_boolean(ok))
		return unexpected_reply("audit.verify");
	if (c->json) {
		ctl_print_json(res);
		return json_is_true(ok) ? CTL_EXIT_OK : CTL_EXIT_FAIL;
	}
	if (json_is_true(ok)) {
		printf("audit log OK: %" PRId64 " records\n", ctl_json_int(res, "records", 0));
		return CTL_EXIT_OK;
	}
	int64_t bad = ctl_json_int(res, "first_bad", -1);
	if (bad >= 0)
		printf("audit log BROKEN at record %" PRId64 ": ", bad);
	else
		fputs("audit log BROKEN: ", stdout);
	ctl_print_escaped(stdout, ctl_json_str(res, "reason"));
	fputc('\n', stdout);
	return CTL_EXIT_FAIL;
}

/* ---- misc ---- */

int
ctl_cmd_service_restart(struct ctl *c, const struct ctl_args *a)
{
	return unit_command(c, "service.restart", a->pos[0], "restarted service", running_states);
}

int
ctl_cmd_shutdown(struct ctl *c, const struct ctl_args *a)
{
	int r = ctl_connect(c);
	if (r)
		return r;
	_cleanup_json_ json_t *params = json_object(), *res = NULL;
	struct nb_err e = { 0 };
	r = nb_ipc_call(c->client, "shutdown", params, c->timeout_ms, &res, &e);
	/* A nulld that closes the connection as it goes down has done what was asked. */
	if (r == -ECONNRESET || r == -EPIPE)
		r = 0;
	if (r < 0)
		return ctl_report_ipc_error(c, "shutdown", r, &e);
	if (c->json && res)
		ctl_print_json(res);
	else if (c->json)
		puts("{}");
	else
		puts("nulld is shutting down");
	return CTL_EXIT_OK;
}

int
ctl_service_connect(struct ctl *c, const char *service, const char *who_may)
{
	if (c->client)
		return 0;
	char path[PATH_MAX + 64];
	const char *slash = strrchr(c->socket_path, '/');
	if (!slash)
		snprintf(path, sizeof(path), "%s.sock", service);
	else
		snprintf(path, sizeof(path), "%.*s/%s.sock", (int)(slash - c->socket_path),
			 c->socket_path, service);
	struct nb_err e = { 0 };
	c->client = nb_ipc_connect(path, c->timeout_ms, &e);
	if (c->client)
		return 0;
	if (e.code == ENOENT || e.code == ECONNREFUSED)
		return ctl_fail("%s is not running (%s %s); it runs under nulld (see `nullctl "
				"status`) or as `%s --state-dir DIR`",
				service, e.code == ENOENT ? "no socket at" : "nothing listens on",
				path, service);
	if (e.code == EACCES || e.code == EPERM)
		return ctl_fail("%s (only root may %s)", e.msg, who_may);
	return ctl_fail("%s", e.msg[0] ? e.msg : strerror(e.code));
}

int
ctl_service_call(struct ctl *c, const char *service, const char *who_may, const char *method,
		 json_t *params, json_t **result)
{
	int r = ctl_service_connect(c, service, who_may);
	if (r)
		return r;
	struct nb_err e = { 0 };
	r = nb_ipc_call(c->client, method, params, c->timeout_ms, result, &e);
	if (r == 0)
		return 0;
	const struct nb_ipc_error *rpc = nb_ipc_client_last_error(c->client);
	if (rpc && rpc->code == NB_IPC_METHOD_NOT_FOUND)
		return ctl_fail("%s does not know '%s' (is it older than nullctl?)", service,
				method);
	if (rpc && rpc->code != 0)
		return ctl_fail("%s", rpc->message[0] ? rpc->message : e.msg);
	if (r == -ETIMEDOUT)
		return ctl_fail("no reply from %s to '%s' within %d s (see --timeout)", service,
				method, c->timeout_ms / 1000);
	if (r == -ECONNRESET || r == -EPIPE)
		return ctl_fail("%s closed the connection during '%s'", service, method);
	return ctl_fail("%s: %s", method, e.msg[0] ? e.msg : strerror(-r));
}
