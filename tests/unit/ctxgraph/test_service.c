/*
 * Unit tests for ctxgraph's service (src/ctxgraph/service.c): its methods driven through lib/ipc's
 * nb_ipc_server_feed() (the same framing and dispatch a socket read runs) against an in-memory
 * store, with a fake clock and an audit hook that records what it is given.
 *
 * Covered: limits on keys and values, the write rate, write and read ACLs (refused and audited),
 * a forged agent id (refused and audited), operator-only methods, idempotent writes and the hash,
 * batches (all or nothing), pages with cursors and the one-message size cap, the audit cap.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h> /* cmocka.h needs these first */
#include <cmocka.h>

#include "cleanup.h"
#include "ctxgraph.h"
#include "log.h"

/* ---- fixture ---- */

struct audit_rec {
	char action[32], object[300], verdict[16], reason[300];
	json_t *detail;
};

struct fixture {
	struct ctxgraph_store *store;
	struct ctxgraph *g;
	int64_t now_ns, wall_ms;
	struct audit_rec audits[256];
	size_t n_audits;
};

static void
on_audit(void *data, const char *action, const char *object, const char *verdict,
	 const char *reason, json_t *detail)
{
	struct fixture *f = data;
	if (f->n_audits == NB_ARRAY_SIZE(f->audits))
		return;
	struct audit_rec *a = &f->audits[f->n_audits++];
	snprintf(a->action, sizeof(a->action), "%s", action);
	snprintf(a->object, sizeof(a->object), "%s", object);
	snprintf(a->verdict, sizeof(a->verdict), "%s", verdict);
	snprintf(a->reason, sizeof(a->reason), "%s", reason);
	a->detail = detail ? json_incref(detail) : NULL;
}

static int64_t
fake_now(void *data)
{
	return ((struct fixture *)data)->now_ns;
}

static int64_t
fake_wall(void *data)
{
	return ((struct fixture *)data)->wall_ms;
}

static void
reg(struct fixture *f, const char *name, const char *const *rd, size_t nr, const char *const *wr,
    size_t nw, int64_t rate, int64_t burst)
{
	struct ctxgraph_agent_opts o = {
		.read = rd, .n_read = nr, .write = wr, .n_write = nw, .rate = rate, .burst = burst
	};
	struct nb_err e = { 0 };
	if (ctxgraph_agent_register(f->g, name, &o, NULL, NULL, &e) < 0)
		fail_msg("register %s: %s", name, e.msg);
}

static int
setup(void **state)
{
	nb_log_set_level(NB_LOG_ERR);
	struct fixture *f = calloc(1, sizeof(*f));
	struct nb_err e = { 0 };
	if (ctxgraph_store_open(":memory:", &f->store, &e) < 0)
		return -1;
	f->now_ns = 1000000000;
	f->wall_ms = 1700000000000;
	struct ctxgraph_config cfg = {
		.hooks = { .audit = on_audit,
			   .audit_data = f,
			   .now_ns = fake_now,
			   .wall_ms = fake_wall,
			   .clock_data = f },
	};
	if (ctxgraph_new(f->store, &cfg, &f->g, &e) < 0)
		return -1;
	static const char *const alice_r[] = { "shared/" };
	static const char *const alice_w[] = { "shared/", "alice/" };
	static const char *const bob_r[] = { "shared/", "alice/pub/" };
	static const char *const bob_w[] = { "shared/", "bob/" };
	reg(f, "alice", alice_r, 1, alice_w, 2, 0, 0);
	reg(f, "bob", bob_r, 2, bob_w, 2, 0, 0);
	reg(f, "mute", NULL, 0, NULL, 0, 0, 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	ctxgraph_free(f->g);
	ctxgraph_store_close(f->store);
	for (size_t i = 0; i < f->n_audits; i++)
		json_decref(f->audits[i].detail);
	free(f);
	return 0;
}

/*
 * Calls @method with @params (JSON text, formatted) as @who ("operator", an agent's name, or NULL
 * for a connection without identity). Returns the response object (new reference).
 */
static json_t *call(struct fixture *f, const char *who, const char *method, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static json_t *
call(struct fixture *f, const char *who, const char *method, const char *fmt, ...)
{
	bool op = who && strcmp(who, "operator") == 0;
	assert_int_equal(ctxgraph_feed_as(f->g, op, op ? NULL : who), 0);
	char params[70000];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(params, sizeof(params), fmt, ap);
	va_end(ap);
	json_error_t jerr;
	json_t *p = json_loads(params, 0, &jerr);
	if (!p)
		fail_msg("bad params in the test: %s: %s", params, jerr.text);
	json_t *req = json_pack("{s:s,s:i,s:s,s:o}", "jsonrpc", "2.0", "id", 7, "method", method,
				"params", p);
	char *line = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	size_t n = strlen(line);
	char *buf = malloc(n + 2);
	memcpy(buf, line, n);
	buf[n] = '\n';
	free(line);
	struct nb_ipc_peer peer = { .pid = 1, .uid = 0, .gid = 0 };
	char *out = NULL;
	size_t len = 0;
	assert_int_equal(
		nb_ipc_server_feed(ctxgraph_server(f->g), &peer, buf, n + 1, 0, &out, &len), 0);
	free(buf);
	assert_true(len > 0 && out[len - 1] == '\n');
	json_t *resp = json_loadb(out, len, 0, &jerr);
	free(out);
	assert_non_null(resp);
	return resp;
}

/* The result of a successful call (borrowed from @resp). */
static json_t *
ok(json_t *resp)
{
	json_t *r = json_object_get(resp, "result");
	if (!r) {
		char *s = json_dumps(resp, 0);
		fail_msg("expected a result, got %s", s);
	}
	return r;
}

/* Asserts @resp is an error with @code whose message holds @text; frees @resp. */
static void
expect_error(json_t *resp, int code, const char *text)
{
	json_t *err = json_object_get(resp, "error");
	if (!err) {
		char *s = json_dumps(resp, 0);
		fail_msg("expected error %d, got %s", code, s);
	}
	assert_int_equal(json_integer_value(json_object_get(err, "code")), code);
	const char *msg = json_string_value(json_object_get(err, "message"));
	if (text && !strstr(msg, text))
		fail_msg("error message '%s' lacks '%s'", msg, text);
	json_decref(resp);
}

static int64_t
entries(struct fixture *f)
{
	json_t *r = call(f, "operator", "ctx.stats", "{}");
	int64_t n = json_integer_value(json_object_get(ok(r), "entries"));
	json_decref(r);
	return n;
}

static const struct audit_rec *
last_audit(struct fixture *f)
{
	assert_true(f->n_audits > 0);
	return &f->audits[f->n_audits - 1];
}

/* ---- tests ---- */

static void
test_write_read_hash(void **state)
{
	struct fixture *f = *state;
	json_t *w = call(f, "alice", "ctx.write",
			 "{\"key\":\"alice/n\",\"value\":{\"b\":2,\"a\":\"x\"}}");
	const char *hash = json_string_value(json_object_get(ok(w), "hash"));
	/* SHA-256("alice" 0x00 "alice/n" 0x00 '{"a":"x","b":2}'), independently. */
	char want[NB_SHA256_HEX_LEN + 1];
	uint8_t d[NB_SHA256_LEN];
	static const char pre[] = "alice\0alice/n\0{\"a\":\"x\",\"b\":2}";
	assert_int_equal(nb_sha256(pre, sizeof(pre) - 1, d), 0);
	nb_hex(d, sizeof(d), want);
	assert_string_equal(hash, want);
	assert_true(json_is_true(json_object_get(ok(w), "created")));
	/* The same write again: the same hash, nothing new. */
	json_t *w2 = call(f, "alice", "ctx.write",
			  "{\"key\":\"alice/n\",\"value\":{\"a\":\"x\",\"b\":2}}");
	assert_string_equal(json_string_value(json_object_get(ok(w2), "hash")), want);
	assert_true(json_is_false(json_object_get(ok(w2), "created")));
	assert_int_equal(entries(f), 1);
	json_t *r = call(f, "alice", "ctx.read", "{\"key\":\"alice/n\"}");
	assert_string_equal(json_string_value(json_object_get(ok(r), "agent")), "alice");
	assert_string_equal(json_string_value(json_object_get(ok(r), "hash")), want);
	assert_int_equal(json_integer_value(json_object_get(ok(r), "created_at")), 1700000000000);
	json_t *want_value = json_pack("{s:s,s:i}", "a", "x", "b", 2);
	assert_true(json_equal(json_object_get(ok(r), "value"), want_value));
	json_decref(want_value);
	json_decref(w);
	json_decref(w2);
	json_decref(r);
	expect_error(call(f, "alice", "ctx.read", "{\"key\":\"shared/none\"}"),
		     CTXGRAPH_ERR_NOT_FOUND, "no entry");
}

static void
test_limits(void **state)
{
	struct fixture *f = *state;
	char key[CTXGRAPH_KEY_MAX + 2] = "alice/";
	memset(key + 6, 'k', sizeof(key) - 7);
	key[sizeof(key) - 1] = '\0';
	expect_error(call(f, "alice", "ctx.write", "{\"key\":\"%s\",\"value\":1}", key),
		     CTXGRAPH_ERR_TOO_LARGE, "at most 256");
	key[CTXGRAPH_KEY_MAX] = '\0';
	json_decref(call(f, "alice", "ctx.write", "{\"key\":\"%s\",\"value\":1}", key));
	expect_error(call(f, "alice", "ctx.write", "{\"key\":\"alice/\\u001b[2J\",\"value\":1}"),
		     NB_IPC_INVALID_PARAMS, "control character");
	expect_error(call(f, "alice", "ctx.write", "{\"key\":\"alice/\\u0085\",\"value\":1}"),
		     NB_IPC_INVALID_PARAMS, "control character");
	expect_error(call(f, "alice", "ctx.write", "{\"key\":\"\",\"value\":1}"),
		     NB_IPC_INVALID_PARAMS, "empty");
	expect_error(call(f, "alice", "ctx.write", "{\"key\":\"alice/r\",\"value\":{\"a\":[1.5]}}"),
		     NB_IPC_INVALID_PARAMS, "floating point");
	expect_error(call(f, "alice", "ctx.write", "{\"key\":\"alice/r\"}"), NB_IPC_INVALID_PARAMS,
		     "value");
	expect_error(call(f, "alice", "ctx.write", "{\"key\":\"alice/r\",\"value\":1,\"x\":1}"),
		     NB_IPC_INVALID_PARAMS, "unknown parameter");
	/* Values: 16384 bytes of canonical JSON pass, one more does not. */
	char *v = malloc(CTXGRAPH_VALUE_MAX + 1);
	memset(v, 'v', CTXGRAPH_VALUE_MAX - 1);
	v[CTXGRAPH_VALUE_MAX - 2] = '\0';
	json_decref(call(f, "alice", "ctx.write", "{\"key\":\"alice/big\",\"value\":\"%s\"}", v));
	v[CTXGRAPH_VALUE_MAX - 2] = 'v';
	v[CTXGRAPH_VALUE_MAX - 1] = '\0';
	expect_error(call(f, "alice", "ctx.write", "{\"key\":\"alice/big\",\"value\":\"%s\"}", v),
		     CTXGRAPH_ERR_TOO_LARGE, "16384");
	free(v);
	assert_int_equal(entries(f), 2);
	/* Pages: at most 1000. */
	expect_error(call(f, "alice", "ctx.query", "{\"prefix\":\"alice/\",\"limit\":1001}"),
		     NB_IPC_INVALID_PARAMS, "limit");
	expect_error(call(f, "alice", "ctx.query", "{\"prefix\":\"alice/\",\"limit\":0}"),
		     NB_IPC_INVALID_PARAMS, "limit");
	expect_error(call(f, "alice", "ctx.query", "{\"prefix\":\"alice/\",\"cursor\":\"s1\"}"),
		     NB_IPC_INVALID_PARAMS, "cursor");
	expect_error(call(f, "alice", "ctx.history", "{\"key\":\"alice/x\",\"cursor\":\"k61\"}"),
		     NB_IPC_INVALID_PARAMS, "cursor");
	/* Nothing here was an ACL matter: nothing audited. */
	assert_int_equal(f->n_audits, 0);
}

static void
test_rate_limit(void **state)
{
	struct fixture *f = *state;
	static const char *const w[] = { "r/" };
	reg(f, "fast", NULL, 0, w, 1, 10, 5);
	for (int i = 0; i < 5; i++)
		json_decref(call(f, "fast", "ctx.write", "{\"key\":\"r/%d\",\"value\":%d}", i, i));
	json_t *r = call(f, "fast", "ctx.write", "{\"key\":\"r/x\",\"value\":0}");
	json_t *data = json_object_get(json_object_get(r, "error"), "data");
	int64_t retry = json_integer_value(json_object_get(data, "retry_after_ms"));
	assert_true(retry > 0 && retry <= 101);
	expect_error(r, CTXGRAPH_ERR_RATE, "10 entries a second");
	/* Idempotent repeats count too: the request is the cost. */
	expect_error(call(f, "fast", "ctx.write", "{\"key\":\"r/0\",\"value\":0}"),
		     CTXGRAPH_ERR_RATE, "rate limited");
	/* 100 ms later one write fits. */
	f->now_ns += 100000000;
	json_decref(call(f, "fast", "ctx.write", "{\"key\":\"r/y\",\"value\":0}"));
	expect_error(call(f, "fast", "ctx.write", "{\"key\":\"r/z\",\"value\":0}"),
		     CTXGRAPH_ERR_RATE, NULL);
	/* A batch takes as many tokens as entries; one larger than the burst never fits. */
	f->now_ns += 10LL * 1000000000;
	expect_error(
		call(f, "fast", "ctx.write_batch",
		     "{\"entries\":[{\"key\":\"r/1\",\"value\":1},{\"key\":\"r/2\",\"value\":1},"
		     "{\"key\":\"r/3\",\"value\":1},{\"key\":\"r/4\",\"value\":1},"
		     "{\"key\":\"r/5\",\"value\":1},{\"key\":\"r/6\",\"value\":1}]}"),
		CTXGRAPH_ERR_RATE, "burst of 5");
	json_decref(call(
		f, "fast", "ctx.write_batch",
		"{\"entries\":[{\"key\":\"r/a\",\"value\":1},{\"key\":\"r/b\",\"value\":1}]}"));
	assert_int_equal(entries(f), 8);
	/* Other agents have their own bucket; the operator has none. */
	json_decref(call(f, "alice", "ctx.write", "{\"key\":\"alice/1\",\"value\":1}"));
	for (int i = 0; i < 300; i++)
		json_decref(call(f, "operator", "ctx.write",
				 "{\"agent\":\"fast\",\"key\":\"op/%d\",\"value\":1}", i));
	assert_int_equal(entries(f), 309);
}

static void
test_acl_write(void **state)
{
	struct fixture *f = *state;
	expect_error(call(f, "alice", "ctx.write", "{\"key\":\"bob/x\",\"value\":1}"),
		     CTXGRAPH_ERR_DENIED, "not under its write prefixes");
	const struct audit_rec *a = last_audit(f);
	assert_string_equal(a->action, "ctx.write");
	assert_string_equal(a->object, "bob/x");
	assert_string_equal(a->verdict, "denied");
	assert_string_equal(json_string_value(json_object_get(a->detail, "agent")), "alice");
	/* A prefix is bytes: "shared" alone is not under "shared/". */
	expect_error(call(f, "alice", "ctx.write", "{\"key\":\"shared\",\"value\":1}"),
		     CTXGRAPH_ERR_DENIED, NULL);
	/* An agent with no write prefixes writes nothing. */
	expect_error(call(f, "mute", "ctx.write", "{\"key\":\"m\",\"value\":1}"),
		     CTXGRAPH_ERR_DENIED, NULL);
	/* A batch with one entry out of bounds writes none of them. */
	expect_error(call(f, "alice", "ctx.write_batch",
			  "{\"entries\":[{\"key\":\"alice/1\",\"value\":1},"
			  "{\"key\":\"bob/1\",\"value\":1}]}"),
		     CTXGRAPH_ERR_DENIED, "bob/1");
	assert_int_equal(entries(f), 0);
	json_t *b = call(f, "alice", "ctx.write_batch",
			 "{\"entries\":[{\"key\":\"alice/1\",\"value\":1},"
			 "{\"key\":\"shared/1\",\"value\":{\"x\":null}},"
			 "{\"key\":\"alice/1\",\"value\":1}]}");
	assert_int_equal(json_integer_value(json_object_get(ok(b), "created")), 2);
	json_t *hashes = json_object_get(ok(b), "hashes");
	json_t *seqs = json_object_get(ok(b), "seqs");
	assert_int_equal(json_array_size(hashes), 3);
	assert_true(json_equal(json_array_get(hashes, 0), json_array_get(hashes, 2)));
	assert_true(json_equal(json_array_get(seqs, 0), json_array_get(seqs, 2)));
	assert_int_equal(json_integer_value(json_array_get(seqs, 1)), 2);
	json_decref(b);
	assert_int_equal(entries(f), 2);
}

static void
test_acl_read(void **state)
{
	struct fixture *f = *state;
	json_decref(call(f, "bob", "ctx.write", "{\"key\":\"bob/secret\",\"value\":\"b\"}"));
	json_decref(call(f, "bob", "ctx.write", "{\"key\":\"shared/doc\",\"value\":\"b1\"}"));
	json_decref(call(f, "alice", "ctx.write", "{\"key\":\"alice/pub/a\",\"value\":\"a\"}"));
	json_decref(call(f, "alice", "ctx.write", "{\"key\":\"alice/priv\",\"value\":\"a\"}"));
	size_t before = f->n_audits;
	/* Outside its read prefixes, not its own: refused and audited. */
	expect_error(call(f, "alice", "ctx.read", "{\"key\":\"bob/secret\"}"), CTXGRAPH_ERR_DENIED,
		     "not under its read prefixes");
	assert_string_equal(last_audit(f)->action, "ctx.read");
	assert_string_equal(last_audit(f)->object, "bob/secret");
	expect_error(call(f, "alice", "ctx.history", "{\"key\":\"bob/secret\"}"),
		     CTXGRAPH_ERR_DENIED, NULL);
	expect_error(call(f, "alice", "ctx.query", "{\"prefix\":\"bob/\"}"), CTXGRAPH_ERR_DENIED,
		     "no read prefix");
	assert_int_equal(f->n_audits, before + 3);
	/* Its own entries it reads wherever they are. */
	json_t *mine = call(f, "alice", "ctx.read", "{\"key\":\"alice/priv\"}");
	assert_string_equal(json_string_value(json_object_get(ok(mine), "agent")), "alice");
	json_decref(mine);
	json_t *q = call(f, "alice", "ctx.query", "{\"prefix\":\"\"}");
	json_t *es = json_object_get(ok(q), "entries");
	/* alice/priv, alice/pub/a (own), shared/doc (read prefix); not bob/secret. */
	assert_int_equal(json_array_size(es), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(es, 2), "key")),
			    "shared/doc");
	json_decref(q);
	/* bob reads alice/pub/ (a read prefix of his) but not alice/priv. */
	json_t *r = call(f, "bob", "ctx.read", "{\"key\":\"alice/pub/a\"}");
	assert_string_equal(json_string_value(json_object_get(ok(r), "agent")), "alice");
	json_decref(r);
	expect_error(call(f, "bob", "ctx.read", "{\"key\":\"alice/priv\"}"), CTXGRAPH_ERR_DENIED,
		     NULL);
	json_t *ba = call(f, "bob", "ctx.by_agent", "{\"agent\":\"alice\"}");
	assert_int_equal(json_array_size(json_object_get(ok(ba), "entries")), 1);
	json_decref(ba);
	/* An agent without read prefixes lists only itself. */
	expect_error(call(f, "mute", "ctx.by_agent", "{\"agent\":\"alice\"}"), CTXGRAPH_ERR_DENIED,
		     "only its own");
	json_t *own = call(f, "mute", "ctx.by_agent", "{\"agent\":\"mute\"}");
	assert_int_equal(json_array_size(json_object_get(ok(own), "entries")), 0);
	json_decref(own);
	/* Inside a read prefix, nothing there is just "not found", not a refusal. */
	before = f->n_audits;
	expect_error(call(f, "alice", "ctx.read", "{\"key\":\"shared/none\"}"),
		     CTXGRAPH_ERR_NOT_FOUND, NULL);
	assert_int_equal(f->n_audits, before);
	/* The operator reads everything. */
	json_t *all = call(f, "operator", "ctx.query", "{\"prefix\":\"\"}");
	assert_int_equal(json_array_size(json_object_get(ok(all), "entries")), 4);
	json_decref(all);
}

static void
test_forged_agent(void **state)
{
	struct fixture *f = *state;
	expect_error(call(f, "alice", "ctx.write",
			  "{\"agent\":\"bob\",\"key\":\"shared/x\",\"value\":1}"),
		     CTXGRAPH_ERR_DENIED, "may not claim to be agent bob");
	const struct audit_rec *a = last_audit(f);
	assert_string_equal(a->action, "ctx.forge");
	assert_string_equal(a->object, "bob");
	assert_string_equal(a->verdict, "denied");
	assert_string_equal(json_string_value(json_object_get(a->detail, "agent")), "alice");
	assert_int_equal(entries(f), 0);
	/* In a batch, at the top or in one entry. */
	expect_error(call(f, "alice", "ctx.write_batch",
			  "{\"agent\":\"bob\",\"entries\":[{\"key\":\"shared/x\",\"value\":1}]}"),
		     CTXGRAPH_ERR_DENIED, "claim");
	expect_error(call(f, "alice", "ctx.write_batch",
			  "{\"entries\":[{\"key\":\"shared/x\",\"value\":1,\"agent\":\"bob\"}]}"),
		     CTXGRAPH_ERR_DENIED, "claim");
	expect_error(call(f, "alice", "ctx.read", "{\"agent\":\"bob\",\"key\":\"shared/x\"}"),
		     CTXGRAPH_ERR_DENIED, "claim");
	assert_int_equal(entries(f), 0);
	/* A claimed name with control characters reaches the audit record cleaned. */
	expect_error(call(f, "alice", "ctx.write",
			  "{\"agent\":\"b\\u001b[31m\",\"key\":\"shared/x\",\"value\":1}"),
		     CTXGRAPH_ERR_DENIED, NULL);
	assert_string_equal(last_audit(f)->object, "b?[31m");
	/* Claiming to be itself is fine. */
	json_t *w = call(f, "alice", "ctx.write",
			 "{\"agent\":\"alice\",\"key\":\"shared/x\",\"value\":1}");
	json_t *rd = call(f, "operator", "ctx.read", "{\"key\":\"shared/x\"}");
	assert_string_equal(json_string_value(json_object_get(ok(w), "hash")),
			    json_string_value(json_object_get(ok(rd), "hash")));
	json_decref(rd);
	json_decref(w);
	/* Operator writes need the agent, and are audited as the operator's. */
	expect_error(call(f, "operator", "ctx.write", "{\"key\":\"k\",\"value\":1}"),
		     NB_IPC_INVALID_PARAMS, "required");
	json_decref(
		call(f, "operator", "ctx.write", "{\"agent\":\"bob\",\"key\":\"k\",\"value\":1}"));
	assert_string_equal(last_audit(f)->verdict, "allowed");
	assert_non_null(strstr(last_audit(f)->reason, "operator as agent bob"));
}

static void
test_operator_only(void **state)
{
	struct fixture *f = *state;
	expect_error(call(f, "alice", "agent.register",
			  "{\"name\":\"alice\",\"read\":[\"\"],\"write\":[\"\"]}"),
		     CTXGRAPH_ERR_DENIED, "operator");
	assert_string_equal(last_audit(f)->action, "ctx.admin");
	expect_error(call(f, "alice", "agent.unregister", "{\"name\":\"bob\"}"),
		     CTXGRAPH_ERR_DENIED, NULL);
	expect_error(call(f, "alice", "ctx.stats", "{}"), CTXGRAPH_ERR_DENIED, NULL);
	/* A connection with no identity gets nothing. */
	expect_error(call(f, NULL, "ctx.read", "{\"key\":\"shared/x\"}"), CTXGRAPH_ERR_DENIED,
		     "no identity");
	/* The operator registers (without a run dir: no socket) and updates. */
	json_t *r = call(f, "operator", "agent.register",
			 "{\"name\":\"carol\",\"read\":[\"a%%\"],\"write\":[\"c/\"],\"rate\":5}");
	assert_true(json_is_true(json_object_get(ok(r), "created")));
	json_decref(r);
	r = call(f, "operator", "agent.register", "{\"name\":\"carol\",\"write\":[\"d/\"]}");
	assert_true(json_is_false(json_object_get(ok(r), "created")));
	json_decref(r);
	json_decref(call(f, "carol", "ctx.write", "{\"key\":\"d/1\",\"value\":1}"));
	expect_error(call(f, "carol", "ctx.write", "{\"key\":\"c/1\",\"value\":1}"),
		     CTXGRAPH_ERR_DENIED, NULL);
	json_t *l = call(f, "operator", "agent.list", "{}");
	assert_int_equal(json_array_size(json_object_get(ok(l), "agents")), 4);
	json_decref(l);
	expect_error(call(f, "operator", "agent.register", "{\"name\":\"../x\"}"),
		     NB_IPC_INVALID_PARAMS, "agent name");
	expect_error(call(f, "operator", "agent.register", "{\"name\":\"x\",\"write\":[\"\\n\"]}"),
		     NB_IPC_INVALID_PARAMS, "control character");
	json_decref(call(f, "operator", "agent.unregister", "{\"name\":\"carol\"}"));
	assert_int_equal(ctxgraph_feed_as(f->g, false, "carol"), -ENOENT);
	expect_error(call(f, "operator", "agent.unregister", "{\"name\":\"carol\"}"),
		     CTXGRAPH_ERR_NOT_FOUND, NULL);
}

static void
test_pages(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 25; i++)
		json_decref(call(f, "alice", "ctx.write", "{\"key\":\"shared/%02d\",\"value\":%d}",
				 i, i));
	for (int i = 0; i < 7; i++)
		json_decref(call(f, "alice", "ctx.write", "{\"key\":\"shared/05\",\"value\":%d}",
				 100 + i));
	/* ctx.query: pages of 10, by key, the latest per key. */
	const char *cursor = NULL;
	json_t *prev = NULL;
	int seen = 0, pages = 0;
	do {
		json_t *q = cursor ? call(f, "bob", "ctx.query",
					  "{\"prefix\":\"shared/\",\"limit\":10,\"cursor\":\"%s\"}",
					  cursor)
				   : call(f, "bob", "ctx.query",
					  "{\"prefix\":\"shared/\",\"limit\":10}");
		json_t *es = json_object_get(ok(q), "entries");
		for (size_t i = 0; i < json_array_size(es); i++, seen++) {
			char want[32];
			snprintf(want, sizeof(want), "shared/%02d", seen);
			assert_string_equal(
				json_string_value(json_object_get(json_array_get(es, i), "key")),
				want);
			if (seen == 5)
				assert_int_equal(json_integer_value(json_object_get(
							 json_array_get(es, i), "value")),
						 106);
		}
		json_decref(prev);
		prev = q;
		cursor = json_string_value(json_object_get(ok(q), "cursor"));
		pages++;
	} while (cursor);
	json_decref(prev);
	assert_int_equal(seen, 25);
	assert_int_equal(pages, 3);
	/* ctx.history: oldest first, in pages of 3. */
	json_t *h = call(f, "bob", "ctx.history", "{\"key\":\"shared/05\",\"limit\":3}");
	json_t *es = json_object_get(ok(h), "entries");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(es, 0), "value")), 5);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(es, 1), "value")), 100);
	json_t *h2 = call(f, "bob", "ctx.history",
			  "{\"key\":\"shared/05\",\"limit\":3,\"cursor\":\"%s\"}",
			  json_string_value(json_object_get(ok(h), "cursor")));
	es = json_object_get(ok(h2), "entries");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(es, 0), "value")), 102);
	json_decref(h);
	json_decref(h2);
	/* A page never outgrows one message: ten 15 KiB values come in several pages. */
	char *v = malloc(15000);
	memset(v, 'x', 14999);
	v[14999] = '\0';
	for (int i = 0; i < 10; i++)
		json_decref(call(f, "alice", "ctx.write",
				 "{\"key\":\"alice/big/%d\",\"value\":\"%s\"}", i, v));
	free(v);
	int total = 0;
	pages = 0;
	json_t *q = call(f, "alice", "ctx.query", "{\"prefix\":\"alice/big/\",\"limit\":1000}");
	for (;;) {
		total += (int)json_array_size(json_object_get(ok(q), "entries"));
		pages++;
		const char *c = json_string_value(json_object_get(ok(q), "cursor"));
		if (!c)
			break;
		json_t *next =
			call(f, "alice", "ctx.query",
			     "{\"prefix\":\"alice/big/\",\"limit\":1000,\"cursor\":\"%s\"}", c);
		json_decref(q);
		q = next;
	}
	json_decref(q);
	assert_int_equal(total, 10);
	assert_true(pages >= 3);
}

static void
test_audit_cap(void **state)
{
	struct fixture *f = *state;
	/* A loop of refused reads: the audit gets a burst, then a trickle, not the flood. */
	for (int i = 0; i < 500; i++)
		expect_error(call(f, "mute", "ctx.read", "{\"key\":\"x/%d\"}", i),
			     CTXGRAPH_ERR_DENIED, NULL);
	assert_int_equal(f->n_audits, 50);
	f->now_ns += 1000000000;
	expect_error(call(f, "mute", "ctx.read", "{\"key\":\"x\"}"), CTXGRAPH_ERR_DENIED, NULL);
	assert_int_equal(f->n_audits, 51);
	/* The record that gets through says how many were left out. */
	assert_int_equal(json_integer_value(json_object_get(last_audit(f)->detail, "suppressed")),
			 450);
	/* Another agent's refusals are audited regardless. */
	expect_error(call(f, "alice", "ctx.read", "{\"key\":\"x\"}"), CTXGRAPH_ERR_DENIED, NULL);
	assert_int_equal(f->n_audits, 52);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_read_hash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acl_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acl_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged_agent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_operator_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_cap, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
