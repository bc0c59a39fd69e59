/*
 * fuzz_ctxgraph.c: libFuzzer target for ctxgraph's request handler (src/ctxgraph/service.c and
 * store.c) behind lib/ipc's framing, through nb_ipc_server_feed(), against an in-memory SQLite
 * store made fresh for every input (so a crash replays from its input alone).
 *
 * Input: byte 0 picks who is calling (operator, agent alice, agent bob, nobody), byte 1 the read
 * size (0: all at once), the rest is what that client sends. The clock is fake and advances on
 * every look, so the rate limiter's refusals are reached and reproducible.
 *
 * After each input the harness checks:
 *   - what the server wrote: whole lines, each a JSON-RPC 2.0 response (or notification), error
 *     messages without control characters, at most one response per line sent;
 *   - every entry any reply carries: its hash is SHA-256(agent 0 key 0 canonical value), and an
 *     agent caller is only ever shown entries it may see (its own, or under a read prefix);
 *   - the store: an agent caller has only written entries as itself, under its write prefixes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctxgraph.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_ctxgraph: %s:%d: check failed: %s\n", __FILE__,      \
				__LINE__, #cond);                                                  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

struct agent_def {
	const char *name;
	const char *const *read, *const *write;
	size_t n_read, n_write;
};

static const char *const alice_r[] = { "shared/", "alice/pub/" };
static const char *const alice_w[] = { "shared/", "alice/" };
static const char *const bob_r[] = { "shared/", "a%", "x_" };
static const char *const bob_w[] = { "bob/", "a%" };

static const struct agent_def agents[] = {
	{ "alice", alice_r, alice_w, 2, 2 },
	{ "bob", bob_r, bob_w, 3, 2 },
};

static int64_t clock_ns;
static unsigned audits;

static int64_t
fake_now(void *data)
{
	clock_ns += 7000000; /* 7 ms a look */
	return clock_ns;
}

static int64_t
fake_wall(void *data)
{
	return 1700000000000 + clock_ns / 1000000;
}

static void
on_audit(void *data, const char *action, const char *object, const char *verdict,
	 const char *reason, json_t *detail)
{
	CHECK(action && object && verdict && reason);
	CHECK(strcmp(verdict, "allowed") == 0 || strcmp(verdict, "denied") == 0);
	for (const unsigned char *p = (const unsigned char *)object; *p; p++)
		CHECK(*p >= 0x20 && *p != 0x7F);
	audits++;
}

static const struct agent_def *caller; /* NULL: operator or nobody */

static bool
visible(const char *agent, const char *key)
{
	if (!caller)
		return true;
	if (strcmp(agent, caller->name) == 0)
		return true;
	for (size_t i = 0; i < caller->n_read; i++)
		if (ctxgraph_prefix_match(key, caller->read[i]))
			return true;
	return false;
}

static void
check_text(const char *s)
{
	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		CHECK(*c >= 0x20 && *c != 0x7F && !(c[0] == 0xC2 && c[1] >= 0x80 && c[1] <= 0x9F));
}

/* An entry in a reply: well formed, hash right, visible to the caller. */
static void
check_entry(json_t *en)
{
	const char *hash = json_string_value(json_object_get(en, "hash"));
	const char *agent = json_string_value(json_object_get(en, "agent"));
	const char *key = json_string_value(json_object_get(en, "key"));
	json_t *value = json_object_get(en, "value");
	CHECK(hash && agent && key && value);
	CHECK(json_is_integer(json_object_get(en, "seq")));
	CHECK(json_integer_value(json_object_get(en, "seq")) >= 1);
	CHECK(visible(agent, key));
	char *canon = NULL;
	size_t len = 0;
	CHECK(ctxgraph_value_canonical(value, &canon, &len, NULL) == 0);
	char want[NB_SHA256_HEX_LEN + 1];
	CHECK(ctxgraph_entry_hash(agent, key, canon, len, want) == 0);
	CHECK(strcmp(want, hash) == 0);
	free(canon);
}

static void
check_result(json_t *res)
{
	if (!json_is_object(res))
		return;
	if (json_object_get(res, "key") && json_object_get(res, "agent"))
		check_entry(res);
	json_t *es = json_object_get(res, "entries");
	size_t i;
	json_t *en;
	json_array_foreach(es, i, en)
	{
		check_entry(en);
	}
	json_t *hashes = json_object_get(res, "hashes");
	json_array_foreach(hashes, i, en)
	{
		CHECK(json_is_string(en) && json_string_length(en) == NB_SHA256_HEX_LEN);
	}
	CHECK(json_array_size(hashes) == json_array_size(json_object_get(res, "seqs")));
	json_t *cursor = json_object_get(res, "cursor");
	CHECK(!cursor || json_is_null(cursor) || json_is_string(cursor));
}

/* Checks one line the server wrote; returns 1 for a response, 0 for a notification. */
static int
check_line(const char *line, size_t len)
{
	CHECK(len + 1 <= NB_IPC_MAX_MSG);
	json_error_t jerr;
	json_t *m = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	CHECK(json_is_object(m));
	CHECK(strcmp(json_string_value(json_object_get(m, "jsonrpc")), "2.0") == 0);
	int response = 0;
	if (json_object_get(m, "method")) {
		CHECK(!json_object_get(m, "id"));
	} else {
		json_t *result = json_object_get(m, "result");
		json_t *error = json_object_get(m, "error");
		CHECK((result != NULL) != (error != NULL));
		if (error) {
			CHECK(json_is_integer(json_object_get(error, "code")));
			json_t *msg = json_object_get(error, "message");
			CHECK(json_is_string(msg));
			check_text(json_string_value(msg));
		} else {
			check_result(result);
		}
		response = 1;
	}
	json_decref(m);
	return response;
}

/* Every stored entry, for the store check. */
static int
check_stored(const struct ctxgraph_entry *en, void *data)
{
	CHECK(strlen(en->hash) == NB_SHA256_HEX_LEN);
	char want[NB_SHA256_HEX_LEN + 1];
	CHECK(ctxgraph_entry_hash(en->agent, en->key, en->value, en->value_len, want) == 0);
	CHECK(strcmp(want, en->hash) == 0);
	if (caller) {
		/* A fresh store per input, and only this caller: all of it is the caller's. */
		CHECK(strcmp(en->agent, caller->name) == 0);
		bool allowed = false;
		for (size_t i = 0; i < caller->n_write; i++)
			allowed = allowed || ctxgraph_prefix_match(en->key, caller->write[i]);
		CHECK(allowed);
	}
	CHECK(en->value_len <= CTXGRAPH_VALUE_MAX);
	return 0;
}

/* libFuzzer's entry point: feeds @data to a fresh service; aborts if a promise is broken. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	if (!quiet) {
		nb_log_set_level(NB_LOG_ERR);
		quiet = true;
	}
	if (size < 2)
		return 0;
	unsigned who = data[0] % 4;
	size_t chunk = data[1];
	data += 2;
	size -= 2;
	clock_ns = 1000000000;
	audits = 0;

	struct nb_err e = { 0 };
	struct ctxgraph_store *store = NULL;
	CHECK(ctxgraph_store_open(":memory:", &store, &e) == 0);
	struct ctxgraph_config cfg = {
		.hooks = { .audit = on_audit, .now_ns = fake_now, .wall_ms = fake_wall },
	};
	struct ctxgraph *g = NULL;
	CHECK(ctxgraph_new(store, &cfg, &g, &e) == 0);
	for (size_t i = 0; i < sizeof(agents) / sizeof(agents[0]); i++) {
		struct ctxgraph_agent_opts o = { .read = agents[i].read,
						 .n_read = agents[i].n_read,
						 .write = agents[i].write,
						 .n_write = agents[i].n_write,
						 .rate = 10,
						 .burst = 20 };
		CHECK(ctxgraph_agent_register(g, agents[i].name, &o, NULL, NULL, &e) == 0);
	}
	caller = who == 1 ? &agents[0] : who == 2 ? &agents[1] : NULL;
	CHECK(ctxgraph_feed_as(g, who == 0, caller ? caller->name : NULL) == 0);

	struct nb_ipc_peer peer = { .pid = 4242, .uid = 0, .gid = 0 };
	char *out = NULL;
	size_t len = 0;
	int r = nb_ipc_server_feed(ctxgraph_server(g), &peer, data, size, chunk, &out, &len);
	CHECK(r == 0 || r == 1 || r == -ENOMEM);
	if (r >= 0) {
		CHECK(out && strlen(out) == len);
		CHECK(len == 0 || out[len - 1] == '\n');
		size_t lines_in = 0;
		for (size_t i = 0; i < size; i++)
			lines_in += data[i] == '\n';
		size_t responses = 0;
		for (size_t start = 0; start < len;) {
			const char *nl = memchr(out + start, '\n', len - start);
			CHECK(nl);
			size_t end = (size_t)(nl - out);
			responses += (size_t)check_line(out + start, end - start);
			start = end + 1;
		}
		CHECK(responses <= lines_in + (r == 1));
	}
	free(out);
	/* Nobody (no identity) can have changed anything, nor been audited for it. */
	int64_t n = 0;
	CHECK(ctxgraph_store_count(store, &n, &e) == 0);
	if (who == 3)
		CHECK(n == 0 && audits == 0);
	struct ctxgraph_scope all = { .all = true };
	CHECK(ctxgraph_store_prefix(store, "", NULL, &all, 100000, check_stored, NULL, &e) >= 0);
	if (caller)
		CHECK(ctxgraph_store_by_agent(store, caller->name, 0, &all, 100000, check_stored,
					      NULL, &e) == n);
	ctxgraph_free(g);
	ctxgraph_store_close(store);
	return 0;
}
