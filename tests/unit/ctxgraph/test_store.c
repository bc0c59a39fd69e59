/*
 * Unit tests for ctxgraph's storage (src/ctxgraph/store.c) and its pure helpers (entry.c): round
 * trip, idempotent writes, history order, prefix queries with cursors, '%' and '_' in keys taken
 * literally, scopes, all-or-nothing batches, immutability, schema versions, and entries that are
 * still there after the file is reopened. Real SQLite files in a fresh temporary directory, or
 * an in-memory database.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h> /* cmocka.h needs these first */
#include <cmocka.h>

#include "cleanup.h"
#include "ctxgraph.h"
#include "store.h"

/* ---- helpers ---- */

struct fixture {
	char dir[64];
	char path[128];
	struct ctxgraph_store *s;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/nb-ctxgraph-test.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/ctxgraph.db", f->dir);
	struct nb_err e = { 0 };
	if (ctxgraph_store_open(f->path, &f->s, &e) < 0) {
		fprintf(stderr, "%s\n", e.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *w)
{
	return remove(p);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	ctxgraph_store_close(f->s);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Stores one entry the way the service does: canonical value, hash; returns the put. */
static struct ctxgraph_put
put(struct ctxgraph_store *s, const char *agent, const char *key, const char *json,
    int64_t created_at)
{
	json_error_t jerr;
	json_t *v = json_loads(json, JSON_DECODE_ANY, &jerr);
	assert_non_null(v);
	char *canon = NULL;
	size_t len = 0;
	struct nb_err e = { 0 };
	assert_int_equal(ctxgraph_value_canonical(v, &canon, &len, &e), 0);
	json_decref(v);
	static char hash[NB_SHA256_HEX_LEN + 1];
	assert_int_equal(ctxgraph_entry_hash(agent, key, canon, len, hash), 0);
	struct ctxgraph_put p = { .hash = hash,
				  .agent = agent,
				  .key = key,
				  .value = canon,
				  .value_len = len,
				  .created_at = created_at };
	int r = ctxgraph_store_put(s, &p, 1, &e);
	if (r < 0)
		fail_msg("put: %s", e.msg);
	free(canon);
	p.value = NULL;
	p.hash = NULL;
	return p;
}

/* Rows collected by a read, as "agent|key|value|seq" lines. */
struct rows {
	char text[8192];
	int n;
	char hash[NB_SHA256_HEX_LEN + 1];
	int64_t created_at;
};

static int
collect(const struct ctxgraph_entry *en, void *data)
{
	struct rows *r = data;
	size_t o = strlen(r->text);
	snprintf(r->text + o, sizeof(r->text) - o, "%s|%s|%.*s|%" PRId64 "\n", en->agent, en->key,
		 (int)en->value_len, en->value, en->seq);
	snprintf(r->hash, sizeof(r->hash), "%s", en->hash);
	r->created_at = en->created_at;
	r->n++;
	return 0;
}

static const struct ctxgraph_scope ALL = { .all = true };

static int64_t
count(struct ctxgraph_store *s)
{
	int64_t n = -1;
	assert_int_equal(ctxgraph_store_count(s, &n, NULL), 0);
	return n;
}

/* ---- tests ---- */

static void
test_round_trip(void **state)
{
	struct fixture *f = *state;
	struct ctxgraph_put p = put(f->s, "alice", "notes/1", "{\"b\":2,\"a\":\"x\"}", 1234);
	assert_true(p.created);
	assert_int_equal(p.seq, 1);
	struct rows r = { 0 };
	struct nb_err e = { 0 };
	assert_int_equal(ctxgraph_store_latest(f->s, "notes/1", &ALL, collect, &r, &e), 1);
	assert_string_equal(r.text, "alice|notes/1|{\"a\":\"x\",\"b\":2}|1\n");
	/* The hash is SHA-256(agent 0x00 key 0x00 canonical JSON), computed independently. */
	assert_string_equal(r.hash,
			    "d3fb7aa88efbce0328f8dded7671bc925f87b17e833a969f8d74b856048a8162");
	assert_int_equal(r.created_at, 1234);
	struct rows none = { 0 };
	assert_int_equal(ctxgraph_store_latest(f->s, "notes/2", &ALL, collect, &none, &e), 0);
}

static void
test_idempotent(void **state)
{
	struct fixture *f = *state;
	struct ctxgraph_put a = put(f->s, "alice", "k", "{\"x\":[1,2,3]}", 1000);
	/* The same entry again, with keys in another order and later: the same hash, not a
	 * second row, and the first one's seq and time. */
	struct ctxgraph_put b = put(f->s, "alice", "k", "{ \"x\" : [1, 2, 3] }", 2000);
	assert_true(a.created);
	assert_false(b.created);
	assert_int_equal(a.seq, b.seq);
	assert_int_equal(b.stored_at, 1000);
	assert_int_equal(count(f->s), 1);
	/* Another writer of the same key and value is another entry. */
	struct ctxgraph_put c = put(f->s, "bob", "k", "{\"x\":[1,2,3]}", 3000);
	assert_true(c.created);
	assert_int_equal(count(f->s), 2);
}

static void
test_history_order(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 5; i++) {
		char v[32];
		snprintf(v, sizeof(v), "%d", i);
		put(f->s, i % 2 ? "bob" : "alice", "doc", v, 100 + i);
		put(f->s, "alice", "other", v, 100 + i);
	}
	struct rows r = { 0 };
	struct nb_err e = { 0 };
	assert_int_equal(ctxgraph_store_history(f->s, "doc", 0, &ALL, 100, collect, &r, &e), 5);
	assert_string_equal(r.text, "alice|doc|0|1\nbob|doc|1|3\nalice|doc|2|5\nbob|doc|3|7\n"
				    "alice|doc|4|9\n");
	/* Pages: after seq 3, two at a time. */
	struct rows p = { 0 };
	assert_int_equal(ctxgraph_store_history(f->s, "doc", 3, &ALL, 2, collect, &p, &e), 2);
	assert_string_equal(p.text, "alice|doc|2|5\nbob|doc|3|7\n");
	/* The latest is the last written. */
	struct rows l = { 0 };
	assert_int_equal(ctxgraph_store_latest(f->s, "doc", &ALL, collect, &l, &e), 1);
	assert_string_equal(l.text, "alice|doc|4|9\n");
	/* By agent, oldest first. */
	struct rows b = { 0 };
	assert_int_equal(ctxgraph_store_by_agent(f->s, "bob", 0, &ALL, 100, collect, &b, &e), 2);
	assert_string_equal(b.text, "bob|doc|1|3\nbob|doc|3|7\n");
}

static void
test_prefix_cursor(void **state)
{
	struct fixture *f = *state;
	static const char *const keys[] = { "a/5", "a/1", "b/1", "a/3", "a/2", "a/4", "a", "ab" };
	for (size_t i = 0; i < NB_ARRAY_SIZE(keys); i++)
		put(f->s, "alice", keys[i], "1", 1);
	put(f->s, "bob", "a/1", "2", 2); /* a newer version of a/1 */
	struct nb_err e = { 0 };
	struct rows r = { 0 };
	/* First page: in key order, the latest per key. */
	assert_int_equal(ctxgraph_store_prefix(f->s, "a/", NULL, &ALL, 2, collect, &r, &e), 2);
	assert_string_equal(r.text, "bob|a/1|2|9\nalice|a/2|1|5\n");
	/* The cursor is the last key: the next pages continue after it. */
	struct rows r2 = { 0 };
	assert_int_equal(ctxgraph_store_prefix(f->s, "a/", "a/2", &ALL, 2, collect, &r2, &e), 2);
	assert_string_equal(r2.text, "alice|a/3|1|4\nalice|a/4|1|6\n");
	struct rows r3 = { 0 };
	assert_int_equal(ctxgraph_store_prefix(f->s, "a/", "a/4", &ALL, 2, collect, &r3, &e), 1);
	assert_string_equal(r3.text, "alice|a/5|1|1\n");
	struct rows r4 = { 0 };
	assert_int_equal(ctxgraph_store_prefix(f->s, "a/", "a/5", &ALL, 2, collect, &r4, &e), 0);
	/* "a" covers a, a/..., ab; the empty prefix covers everything. */
	struct rows r5 = { 0 };
	assert_int_equal(ctxgraph_store_prefix(f->s, "a", NULL, &ALL, 100, collect, &r5, &e), 7);
	struct rows r6 = { 0 };
	assert_int_equal(ctxgraph_store_prefix(f->s, "", NULL, &ALL, 100, collect, &r6, &e), 8);
}

static void
test_like_wildcards(void **state)
{
	struct fixture *f = *state;
	static const char *const keys[] = { "x%y", "x_y", "xay", "xby", "x%", "x\\y", "x%%", "y%" };
	for (size_t i = 0; i < NB_ARRAY_SIZE(keys); i++)
		put(f->s, "alice", keys[i], "1", 1);
	struct nb_err e = { 0 };
	struct rows r = { 0 };
	/* '%' is a percent sign, not "anything". */
	assert_int_equal(ctxgraph_store_prefix(f->s, "x%", NULL, &ALL, 100, collect, &r, &e), 3);
	assert_string_equal(r.text, "alice|x%|1|5\nalice|x%%|1|7\nalice|x%y|1|1\n");
	/* '_' is an underscore, not "any one character". */
	struct rows u = { 0 };
	assert_int_equal(ctxgraph_store_prefix(f->s, "x_", NULL, &ALL, 100, collect, &u, &e), 1);
	assert_string_equal(u.text, "alice|x_y|1|2\n");
	/* A backslash is not an escape either. */
	struct rows b = { 0 };
	assert_int_equal(ctxgraph_store_prefix(f->s, "x\\", NULL, &ALL, 100, collect, &b, &e), 1);
	/* A key with '%' read exactly, and a cursor holding one. */
	struct rows l = { 0 };
	assert_int_equal(ctxgraph_store_latest(f->s, "x%", &ALL, collect, &l, &e), 1);
	struct rows c = { 0 };
	assert_int_equal(ctxgraph_store_prefix(f->s, "x%", "x%%", &ALL, 100, collect, &c, &e), 1);
	assert_string_equal(c.text, "alice|x%y|1|1\n");
}

static void
test_utf8_prefix(void **state)
{
	struct fixture *f = *state;
	/* Multi-byte keys: a prefix that ends inside a character is still a byte prefix, and the
	 * [P, P || 0xFF) range holds the largest code point too. */
	put(f->s, "alice", "caf\xc3\xa9/1", "1", 1);
	put(f->s, "alice", "caf\xc3\xa9\xf4\x8f\xbf\xbf", "1", 1);
	put(f->s, "alice", "cafe", "1", 1);
	struct nb_err e = { 0 };
	struct rows r = { 0 };
	assert_int_equal(
		ctxgraph_store_prefix(f->s, "caf\xc3\xa9", NULL, &ALL, 100, collect, &r, &e), 2);
	struct rows r2 = { 0 };
	assert_int_equal(ctxgraph_store_prefix(f->s, "caf", NULL, &ALL, 100, collect, &r2, &e), 3);
}

static void
test_scope(void **state)
{
	struct fixture *f = *state;
	put(f->s, "alice", "shared/1", "1", 1);
	put(f->s, "bob", "shared/2", "2", 1);
	put(f->s, "bob", "private/bob", "3", 1);
	put(f->s, "alice", "private/alice", "4", 1);
	put(f->s, "bob", "shared/1", "5", 1); /* newer than alice's */
	const char *const rd[] = { "shared/" };
	struct ctxgraph_scope alice = { .agent = "alice", .prefixes = rd, .n_prefixes = 1 };
	struct ctxgraph_scope own = { .agent = "alice" };
	struct nb_err e = { 0 };
	struct rows r = { 0 };
	assert_int_equal(ctxgraph_store_prefix(f->s, "", NULL, &alice, 100, collect, &r, &e), 3);
	assert_string_equal(r.text,
			    "alice|private/alice|4|4\nbob|shared/1|5|5\nbob|shared/2|2|2\n");
	/* Own only: the latest *visible* shared/1 is alice's, not bob's newer one. */
	struct rows o = { 0 };
	assert_int_equal(ctxgraph_store_latest(f->s, "shared/1", &own, collect, &o, &e), 1);
	assert_string_equal(o.text, "alice|shared/1|1|1\n");
	struct rows h = { 0 };
	assert_int_equal(ctxgraph_store_history(f->s, "private/bob", 0, &own, 10, collect, &h, &e),
			 0);
	/* By agent with only the read prefixes: bob's shared entries, not his private one. */
	struct ctxgraph_scope shared = { .prefixes = rd, .n_prefixes = 1 };
	struct rows b = { 0 };
	assert_int_equal(ctxgraph_store_by_agent(f->s, "bob", 0, &shared, 10, collect, &b, &e), 2);
	assert_string_equal(b.text, "bob|shared/2|2|2\nbob|shared/1|5|5\n");
	/* Nothing visible at all. */
	struct ctxgraph_scope none = { 0 };
	struct rows n = { 0 };
	assert_int_equal(ctxgraph_store_prefix(f->s, "", NULL, &none, 10, collect, &n, &e), 0);
	/* Every shape up to the maximum number of prefixes prepares and runs. */
	const char *many[CTXGRAPH_STORE_MAX_PREFIXES];
	for (size_t i = 0; i < NB_ARRAY_SIZE(many); i++)
		many[i] = i == NB_ARRAY_SIZE(many) - 1 ? "private/" : "zz";
	struct ctxgraph_scope m = { .agent = NULL,
				    .prefixes = many,
				    .n_prefixes = NB_ARRAY_SIZE(many) };
	struct rows mr = { 0 };
	assert_int_equal(ctxgraph_store_prefix(f->s, "", NULL, &m, 10, collect, &mr, &e), 2);
	m.n_prefixes++;
	assert_int_equal(ctxgraph_store_prefix(f->s, "", NULL, &m, 10, collect, &mr, &e), -EINVAL);
}

static void
test_batch_all_or_nothing(void **state)
{
	struct fixture *f = *state;
	struct ctxgraph_put items[3] = {
		{ .hash = "h1", .agent = "a", .key = "k1", .value = "1", .value_len = 1 },
		{ .hash = "h2", .agent = "a", .key = "k2", .value = "2", .value_len = 1 },
		/* NOT NULL fails on the third: the first two must not stay. */
		{ .hash = "h3", .agent = NULL, .key = "k3", .value = "3", .value_len = 1 },
	};
	struct nb_err e = { 0 };
	assert_true(ctxgraph_store_put(f->s, items, 3, &e) < 0);
	assert_int_equal(count(f->s), 0);
	items[2].agent = "a";
	assert_int_equal(ctxgraph_store_put(f->s, items, 3, &e), 3);
	assert_int_equal(count(f->s), 3);
	/* Again: all ignored, the same seqs. */
	int64_t seq1 = items[0].seq;
	assert_int_equal(ctxgraph_store_put(f->s, items, 3, &e), 0);
	assert_int_equal(items[0].seq, seq1);
	assert_false(items[2].created);
}

static void
test_immutable_and_durable(void **state)
{
	struct fixture *f = *state;
	put(f->s, "alice", "k", "\"v\"", 1);
	ctxgraph_store_close(f->s);
	f->s = NULL;
	/* Another SQLite client cannot change or remove an entry: the triggers refuse. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	char *msg = NULL;
	assert_int_not_equal(sqlite3_exec(db, "UPDATE entries SET value = '1'", NULL, NULL, &msg),
			     SQLITE_OK);
	assert_non_null(strstr(msg, "immutable"));
	sqlite3_free(msg);
	assert_int_not_equal(sqlite3_exec(db, "DELETE FROM entries", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);
	/* Reopened: still there. */
	struct nb_err e = { 0 };
	assert_int_equal(ctxgraph_store_open(f->path, &f->s, &e), 0);
	assert_int_equal(count(f->s), 1);
	struct ctxgraph_put p = put(f->s, "alice", "k2", "1", 2);
	assert_int_equal(p.seq, 2);
}

static void
test_newer_schema_refused(void **state)
{
	struct fixture *f = *state;
	ctxgraph_store_close(f->s);
	f->s = NULL;
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct nb_err e = { 0 };
	assert_int_equal(ctxgraph_store_open(f->path, &f->s, &e), -EPROTO);
	assert_null(f->s);
	assert_non_null(strstr(e.msg, "newer"));
	/* A symlink in the database's place is refused. */
	char link[160];
	snprintf(link, sizeof(link), "%s/link.db", f->dir);
	assert_int_equal(symlink(f->path, link), 0);
	assert_true(ctxgraph_store_open(link, &f->s, &e) < 0);
	assert_null(f->s);
}

static void
test_memory_store(void **state)
{
	struct ctxgraph_store *s = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(ctxgraph_store_open(":memory:", &s, &e), 0);
	put(s, "a", "k", "[]", 1);
	assert_int_equal(count(s), 1);
	ctxgraph_store_close(s);
}

/* ---- entry.c ---- */

static void
test_keys(void **state)
{
	char why[160], k[CTXGRAPH_KEY_MAX + 2];
	memset(k, 'k', sizeof(k) - 1);
	k[sizeof(k) - 1] = '\0';
	assert_int_equal(ctxgraph_key_check(k, CTXGRAPH_KEY_MAX + 1, false, why, sizeof(why)),
			 -E2BIG);
	k[CTXGRAPH_KEY_MAX] = '\0';
	assert_int_equal(ctxgraph_key_check(k, CTXGRAPH_KEY_MAX, false, why, sizeof(why)), 0);
	assert_int_equal(ctxgraph_key_check("", 0, false, why, sizeof(why)), -EINVAL);
	assert_int_equal(ctxgraph_key_check("", 0, true, why, sizeof(why)), 0);
	assert_int_equal(ctxgraph_key_check("a\nb", 3, false, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "control character"));
	assert_int_equal(ctxgraph_key_check("a\x7f", 2, false, why, sizeof(why)), -EINVAL);
	assert_int_equal(ctxgraph_key_check("a\xc2\x85", 3, false, why, sizeof(why)), -EINVAL);
	assert_int_equal(ctxgraph_key_check("a\xff", 2, false, why, sizeof(why)), -EINVAL);
	assert_int_equal(ctxgraph_key_check("a\xed\xa0\x80", 4, false, why, sizeof(why)), -EINVAL);
	assert_int_equal(ctxgraph_key_check("a\0b", 3, false, why, sizeof(why)), -EINVAL);
	assert_int_equal(ctxgraph_key_check("caf\xc3\xa9 %_*", 9, false, why, sizeof(why)), 0);
	assert_true(ctxgraph_name_valid("web-1_A"));
	assert_false(ctxgraph_name_valid(""));
	assert_false(ctxgraph_name_valid("../x"));
	assert_false(ctxgraph_name_valid("a b"));
	char clip[8];
	ctxgraph_text_clip("ab\x1b[31mcdefgh", clip, sizeof(clip));
	assert_string_equal(clip, "ab?[31m");
	ctxgraph_text_clip("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", clip, sizeof(clip));
	assert_string_equal(clip, "\xc3\xa9\xc3\xa9\xc3\xa9"); /* never half a character */
}

static void
test_values(void **state)
{
	struct nb_err e = { 0 };
	char *out = NULL;
	size_t len = 0;
	json_t *real = json_pack("{s:[i,f]}", "a", 1, 1.5);
	assert_int_equal(ctxgraph_value_canonical(real, &out, &len, &e), -EINVAL);
	json_decref(real);
	/* The limit counts the canonical form: 16384 bytes pass, 16385 do not. */
	char *big = malloc(CTXGRAPH_VALUE_MAX);
	memset(big, 'v', CTXGRAPH_VALUE_MAX - 2);
	big[CTXGRAPH_VALUE_MAX - 2] = '\0';
	json_t *s = json_string(big);
	assert_int_equal(ctxgraph_value_canonical(s, &out, &len, &e), 0);
	assert_int_equal(len, CTXGRAPH_VALUE_MAX);
	free(out);
	json_decref(s);
	big[CTXGRAPH_VALUE_MAX - 2] = 'v';
	big[CTXGRAPH_VALUE_MAX - 1] = '\0';
	s = json_string(big);
	assert_int_equal(ctxgraph_value_canonical(s, &out, &len, &e), -E2BIG);
	assert_null(out);
	json_decref(s);
	free(big);
}

static void
test_cursors(void **state)
{
	char c[CTXGRAPH_CURSOR_MAX], key[CTXGRAPH_KEY_MAX + 1];
	ctxgraph_cursor_from_key("a/%_\xc3\xa9", c);
	assert_int_equal(ctxgraph_cursor_key(c, key), 0);
	assert_string_equal(key, "a/%_\xc3\xa9");
	int64_t seq;
	ctxgraph_cursor_from_seq(42, c);
	assert_int_equal(ctxgraph_cursor_seq(c, &seq), 0);
	assert_int_equal(seq, 42);
	static const char *const bad_key[] = { "", "k", "k0", "kzz", "s1", "k0a0", "k00" };
	for (size_t i = 0; i < NB_ARRAY_SIZE(bad_key); i++)
		assert_int_equal(ctxgraph_cursor_key(bad_key[i], key), -EINVAL);
	static const char *const bad_seq[] = {
		"", "s", "s-1", "s1x", "k1", "s99999999999999999999"
	};
	for (size_t i = 0; i < NB_ARRAY_SIZE(bad_seq); i++)
		assert_int_equal(ctxgraph_cursor_seq(bad_seq[i], &seq), -EINVAL);
}

static void
test_bucket(void **state)
{
	struct ctxgraph_bucket b = { 0 };
	int64_t retry = 0, t = 1000000000;
	/* Full at first: a burst of 5, then refused with the time until one token is back. */
	for (int i = 0; i < 5; i++)
		assert_true(ctxgraph_bucket_take(&b, 10, 5, 1, t, &retry));
	assert_false(ctxgraph_bucket_take(&b, 10, 5, 1, t, &retry));
	assert_true(retry > 0 && retry <= 101);
	/* 100 ms at 10/s: one token. */
	t += 100000000;
	assert_true(ctxgraph_bucket_take(&b, 10, 5, 1, t, &retry));
	assert_false(ctxgraph_bucket_take(&b, 10, 5, 1, t, &retry));
	/* Never more than the burst, however long the pause. */
	t += 3600LL * 1000000000;
	assert_true(ctxgraph_bucket_take(&b, 10, 5, 5, t, &retry));
	assert_false(ctxgraph_bucket_take(&b, 10, 5, 1, t, &retry));
	/* More than the burst at once: never. */
	assert_false(ctxgraph_bucket_take(&b, 10, 5, 6, t + 10LL * 1000000000, &retry));
	assert_int_equal(retry, -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefix_cursor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_like_wildcards, setup, teardown),
		cmocka_unit_test_setup_teardown(test_utf8_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scope, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_all_or_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_immutable_and_durable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test(test_memory_store),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_cursors),
		cmocka_unit_test(test_bucket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
