/*
 * ctx.c: `nullctl ctx write|read|query|history|by-agent`, against ctxgraph rather than nulld.
 *
 * Which socket: ctxgraph's control socket is ctxgraph.sock in the directory of nulld's control
 * socket (src/ctxgraph/main.c), so nullctl takes the nulld socket it resolved (--socket,
 * --state-dir, $NULLBOX_SOCKET or the default) and replaces the file name. Only root (or
 * ctxgraph's own uid) may use it; on it the operator sees every entry.
 *
 * The contract (docs/CTXGRAPH.md):
 *   ctx.write     {agent, key, value}             -> {hash, created, seq, created_at}
 *   ctx.read      {key}                           -> ENTRY
 *   ctx.query     {prefix, limit?, cursor?}       -> {entries: [ENTRY], cursor}
 *   ctx.history   {key, limit?, cursor?}          -> {entries: [ENTRY], cursor}
 *   ctx.by_agent  {agent, limit?, cursor?}        -> {entries: [ENTRY], cursor}
 * ENTRY = {hash, agent, key, value, created_at (ms since the epoch), seq}; a null cursor ends
 * the pages. Keys and values are an agent's words: everything shown is escaped (output.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "json.h"
#include "nullctl.h"

/* Entries per page asked of ctxgraph (its maximum). */
#define CTX_PAGE 1000

/* ---- connection ---- */

static int
ctx_call(struct ctl *c, const char *method, json_t *params, json_t **result)
{
	return ctl_service_call(c, "ctxgraph", "use ctxgraph's control socket", method, params,
				result);
}

static int
unexpected(const char *method)
{
	return ctl_fail("unexpected reply from ctxgraph to '%s' (is it a different version?)",
			method);
}

/* ---- entries ---- */

/* "2026-11-25T04:07:58Z" for @ms since the epoch. */
static const char *
iso_time(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (ms < 0 || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "-");
	return buf;
}

/* The entry's value as compact JSON (malloc'd), or NULL. */
static char *
value_text(const json_t *en)
{
	json_t *v = json_object_get(en, "value");
	return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

static const char *const entry_heads[] = { "SEQ", "CREATED", "AGENT", "KEY", "VALUE" };
static const size_t entry_max[] = { 0, 0, 24, 48, 60 };

static void
entry_row(struct ctl_table *t, const json_t *en)
{
	char seq[24], created[32];
	snprintf(seq, sizeof(seq), "%" PRId64, ctl_json_int(en, "seq", 0));
	iso_time(ctl_json_int(en, "created_at", -1), created, sizeof(created));
	_cleanup_free_ char *value = value_text(en);
	const char *cells[] = { seq, created, ctl_json_str(en, "agent"), ctl_json_str(en, "key"),
				value };
	ctl_table_add(t, cells);
}

static void
print_kv(const char *key, const char *value)
{
	printf("%-12s", key);
	ctl_print_escaped(stdout, value);
	fputc('\n', stdout);
}

/*
 * Calls @method with @params page after page (following the cursor) until the last page or
 * @max entries (-1: no limit), printing each entry: a JSON line each with --json, else a table.
 */
static int
list_entries(struct ctl *c, const char *method, json_t *params, int64_t max)
{
	struct ctl_table *t = c->json ? NULL : ctl_table_new(5, entry_heads, entry_max);
	int64_t shown = 0;
	int r = CTL_EXIT_OK;
	for (;;) {
		int64_t want = max < 0 || max - shown > CTX_PAGE ? CTX_PAGE : max - shown;
		json_object_set_new(params, "limit", json_integer(want));
		_cleanup_json_ json_t *res = NULL;
		r = ctx_call(c, method, params, &res);
		if (r)
			break;
		json_t *es = json_object_get(res, "entries");
		json_t *cursor = json_object_get(res, "cursor");
		if (!json_is_array(es) ||
		    (cursor && !json_is_null(cursor) && !json_is_string(cursor))) {
			r = unexpected(method);
			break;
		}
		size_t i;
		json_t *en;
		json_array_foreach(es, i, en)
		{
			if (c->json)
				ctl_print_json(en);
			else
				entry_row(t, en);
			shown++;
		}
		if (!json_is_string(cursor) || (max >= 0 && shown >= max))
			break;
		json_object_set(params, "cursor", cursor);
	}
	if (t) {
		if (r == CTL_EXIT_OK && shown == 0)
			puts("(none)");
		else if (r == CTL_EXIT_OK)
			ctl_table_print(t, stdout);
		ctl_table_free(t);
	}
	return r;
}

/* ---- commands ---- */

/* json_pack refuses strings that are not UTF-8: so does ctxgraph, for keys and names. */
static int
not_utf8(const char *cmd)
{
	return ctl_fail("%s: the arguments must be valid UTF-8", cmd);
}

int
ctl_cmd_ctx_write(struct ctl *c, const struct ctl_args *a)
{
	json_error_t jerr;
	json_t *value = json_loads(a->pos[2], JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (!value)
		return ctl_fail("ctx write: the value is not JSON: %s (at character %d); a string "
				"needs its quotes, e.g. '\"text\"'",
				jerr.text, jerr.position);
	_cleanup_json_ json_t *params = json_pack("{s:s,s:s,s:o}", "agent", a->pos[0], "key",
						  a->pos[1], "value", value),
			      *res = NULL;
	if (!params)
		return not_utf8("ctx write");
	int r = ctx_call(c, "ctx.write", params, &res);
	if (r)
		return r;
	if (c->json) {
		ctl_print_json(res);
		return CTL_EXIT_OK;
	}
	const char *hash = ctl_json_str(res, "hash");
	if (!hash)
		return unexpected("ctx.write");
	bool created = json_is_true(json_object_get(res, "created"));
	printf("%s ", created ? "wrote" : "already there:");
	ctl_print_escaped(stdout, hash);
	printf(" (seq %" PRId64 ")\n", ctl_json_int(res, "seq", 0));
	return CTL_EXIT_OK;
}

int
ctl_cmd_ctx_read(struct ctl *c, const struct ctl_args *a)
{
	_cleanup_json_ json_t *params = json_pack("{s:s}", "key", a->pos[0]), *res = NULL;
	if (!params)
		return not_utf8("ctx read");
	int r = ctx_call(c, "ctx.read", params, &res);
	if (r)
		return r;
	if (c->json) {
		ctl_print_json(res);
		return CTL_EXIT_OK;
	}
	if (!json_is_object(res) || !ctl_json_str(res, "hash"))
		return unexpected("ctx.read");
	char buf[32];
	_cleanup_free_ char *value = value_text(res);
	print_kv("key:", ctl_json_str(res, "key"));
	print_kv("agent:", ctl_json_str(res, "agent"));
	print_kv("hash:", ctl_json_str(res, "hash"));
	snprintf(buf, sizeof(buf), "%" PRId64, ctl_json_int(res, "seq", 0));
	print_kv("seq:", buf);
	print_kv("created:", iso_time(ctl_json_int(res, "created_at", -1), buf, sizeof(buf)));
	print_kv("value:", value);
	return CTL_EXIT_OK;
}

int
ctl_cmd_ctx_query(struct ctl *c, const struct ctl_args *a)
{
	if (a->limit == 0)
		return ctl_fail("ctx query: --limit must be at least 1");
	_cleanup_json_ json_t *params = json_pack("{s:s}", "prefix", a->n_pos ? a->pos[0] : "");
	if (!params)
		return not_utf8("ctx query");
	return list_entries(c, "ctx.query", params, a->limit);
}

int
ctl_cmd_ctx_history(struct ctl *c, const struct ctl_args *a)
{
	_cleanup_json_ json_t *params = json_pack("{s:s}", "key", a->pos[0]);
	if (!params)
		return not_utf8("ctx history");
	return list_entries(c, "ctx.history", params, -1);
}

int
ctl_cmd_ctx_by_agent(struct ctl *c, const struct ctl_args *a)
{
	_cleanup_json_ json_t *params = json_pack("{s:s}", "agent", a->pos[0]);
	if (!params)
		return not_utf8("ctx by-agent");
	return list_entries(c, "ctx.by_agent", params, -1);
}
