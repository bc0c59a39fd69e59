/*
 * Unit tests for lib/audit.c, on real files in a fresh temporary directory per test.
 *
 * The tamper tests build a 100-record log, change it the way an attacker (or a crash) would, and
 * expect nb_audit_verify() to name the exact record and reason. Records an attacker without the
 * key could forge are built here independently of the library (canonical JSON via jansson, SHA-256
 * via libcrypto), following docs/AUDIT.md, so the format is pinned by the tests as well.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/params.h>

#include <setjmp.h> /* cmocka.h needs these first */
#include <cmocka.h>

#include "audit.h"
#include "cleanup.h"
#include "json.h"

#define GENESIS_HEX "a878878e22713b2e22717f8f02c8552779da960dc11461d63eb08c22f596df9f"

static const uint8_t KEY[NB_AUDIT_KEY_LEN] = {
	1,  2,	3,  4,	5,  6,	7,  8,	9,  10, 11, 12, 13, 14, 15, 16,
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
};

/* ---- fixtures and helpers ---- */

static int
setup(void **state)
{
	char *dir = strdup("/tmp/nb-audit-test.XXXXXX");
	if (!dir || !mkdtemp(dir))
		return -1;
	*state = dir;
	return 0;
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static int
teardown(void **state)
{
	char *dir = *state;
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
	return 0;
}

static char *
path_in(const char *dir, const char *name)
{
	char *p;
	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&buf, &n);
	char chunk[4096];
	size_t k;
	while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, k, m);
	fclose(f);
	fclose(m);
	if (len)
		*len = n;
	return buf;
}

static void
spit(const char *path, const char *data, size_t len, const char *mode)
{
	FILE *f = fopen(path, mode);
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static const char *const actors[] = { "agent-a", "agent-b", "egress", "warden" };

/* Appends @n records through the library, as nulld would. */
static void
fill(const char *dir, int n)
{
	struct nb_err e = { 0 };
	struct nb_audit *log = NULL;
	assert_int_equal(nb_audit_open(dir, KEY, NULL, &log, &e), 0);
	for (int i = 0; i < n; i++) {
		uint64_t first = nb_audit_seq(log);
		_cleanup_json_ json_t *detail = NULL;
		if (i % 3 == 0)
			detail = json_pack("{s:i, s:s, s:[i, b, n]}", "i", i, "path", "/etc/passwd",
					   "list", i, 1);
		char obj[64];
		snprintf(obj, sizeof(obj), "net:example-%d.com:443", i);
		uint64_t seq = 0;
		int r = nb_audit_append(log, actors[i % 4], i % 5 ? "net.connect" : "agent.start",
					obj, (enum nb_audit_verdict)(i % 3),
					i % 2 ? "not in the allowlist" : "manifest allows it",
					detail, &seq, &e);
		if (r != 0)
			fail_msg("append %d: %s", i, e.msg);
		assert_int_equal(seq, first + 1);
	}
	assert_int_equal(nb_audit_close(log, &e), 0);
}

struct lines {
	char **v;
	size_t n;
};

static void
lines_free(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* The log's lines (without '\n'); the log must end in '\n'. */
static struct lines
lines_read(const char *dir)
{
	_cleanup_free_ char *p = path_in(dir, NB_AUDIT_LOG_NAME);
	size_t len;
	_cleanup_free_ char *s = slurp(p, &len);
	assert_non_null(s);
	assert_true(len == 0 || s[len - 1] == '\n');
	struct lines l = { 0 };
	char *save = NULL;
	for (char *t = strtok_r(s, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
		l.v = realloc(l.v, (l.n + 1) * sizeof(*l.v));
		l.v[l.n++] = strdup(t);
	}
	return l;
}

static void
lines_write(const char *dir, const struct lines *l)
{
	_cleanup_free_ char *p = path_in(dir, NB_AUDIT_LOG_NAME);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	for (size_t i = 0; i < l->n; i++)
		fprintf(f, "%s\n", l->v[i]);
	assert_int_equal(fclose(f), 0);
}

/* Replaces the first @from in @s by @to (must be present); frees @s. */
static char *
subst(char *s, const char *from, const char *to)
{
	char *at = strstr(s, from);
	if (!at)
		fail_msg("'%s' not in %s", from, s);
	char *out;
	assert_true(asprintf(&out, "%.*s%s%s", (int)(at - s), s, to, at + strlen(from)) > 0);
	free(s);
	return out;
}

static void
hex_to_bytes(const char *hex, uint8_t out[32])
{
	for (int i = 0; i < 32; i++) {
		unsigned v;
		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

/*
 * What an attacker without the key can do: give the record in @line the seq @seq and the prev
 * @prev_hex, and recompute its hash per docs/AUDIT.md. Returns the new line; frees @line.
 */
static char *
rehash(char *line, uint64_t seq, const char *prev_hex)
{
	json_error_t je;
	_cleanup_json_ json_t *j = json_loads(line, 0, &je);
	assert_non_null(j);
	free(line);
	json_object_del(j, "hash");
	json_object_set_new(j, "seq", json_integer((json_int_t)seq));
	json_object_set_new(j, "prev", json_string(prev_hex));
	struct nb_err e = { 0 };
	_cleanup_free_ char *body = NULL;
	size_t len = 0;
	assert_int_equal(nb_json_canonical(j, &body, &len, &e), 0);
	uint8_t prev[32], d[32];
	hex_to_bytes(prev_hex, prev);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned dn = 0;
	assert_true(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
		    EVP_DigestUpdate(ctx, body, len) == 1 && EVP_DigestUpdate(ctx, prev, 32) == 1 &&
		    EVP_DigestFinal_ex(ctx, d, &dn) == 1);
	EVP_MD_CTX_free(ctx);
	char hex[65];
	nb_hex(d, 32, hex);
	json_object_set_new(j, "hash", json_string(hex));
	char *out = NULL;
	assert_int_equal(nb_json_canonical(j, &out, NULL, &e), 0);
	return out;
}

/* The "hash" value of a record line (64 hex digits, NUL-terminated into @out). */
static void
hash_of(const char *line, char out[65])
{
	const char *p = strstr(line, "\"hash\":\"");
	assert_non_null(p);
	memcpy(out, p + 8, 64);
	out[64] = '\0';
}

static void
expect_bad(const char *dir, const uint8_t *key, enum nb_audit_problem problem, uint64_t first_bad,
	   const char *msg)
{
	struct nb_audit_report rep;
	struct nb_err e = { 0 };
	int r = nb_audit_verify(dir, key, 0, &rep, &e);
	if (r != -EBADMSG || rep.problem != problem || rep.first_bad != first_bad ||
	    strncmp(rep.msg, msg, strlen(msg)) != 0)
		fail_msg("verify: r=%d problem=%d first_bad=%" PRIu64 " msg='%s'; expected problem "
			 "%d first_bad %" PRIu64 " msg '%s...'",
			 r, rep.problem, rep.first_bad, rep.msg, problem, first_bad, msg);
	assert_string_equal(e.msg, rep.msg);
	assert_int_equal(e.code, EBADMSG);
}

static void
expect_ok(const char *dir, const uint8_t *key, uint64_t records)
{
	struct nb_audit_report rep;
	struct nb_err e = { 0 };
	int r = nb_audit_verify(dir, key, 0, &rep, &e);
	if (r != 0)
		fail_msg("verify: %d %s", r, e.msg);
	assert_int_equal(rep.problem, NB_AUDIT_OK);
	assert_int_equal(rep.records, records);
	assert_int_equal(rep.first_bad, 0);
	assert_int_equal(rep.head_checked, key != NULL);
	assert_string_equal(rep.msg, "");
}

/* Opening for append must fail with -EBADMSG and @msg in the message, leaving files as they were.
 */
static void
expect_open_refused(const char *dir, const uint8_t *key, const char *msg)
{
	_cleanup_free_ char *lp = path_in(dir, NB_AUDIT_LOG_NAME);
	_cleanup_free_ char *hp = path_in(dir, NB_AUDIT_HEAD_NAME);
	size_t ln = 0, hn = 0;
	_cleanup_free_ char *before_log = slurp(lp, &ln);
	_cleanup_free_ char *before_head = slurp(hp, &hn);
	struct nb_audit *log = NULL;
	struct nb_err e = { 0 };
	int r = nb_audit_open(dir, key, NULL, &log, &e);
	if (r != -EBADMSG || !strstr(e.msg, msg))
		fail_msg("open: r=%d '%s'; expected -EBADMSG with '%s'", r, e.msg, msg);
	assert_null(log);
	assert_non_null(strstr(e.msg, "nullctl audit verify"));
	size_t ln2 = 0, hn2 = 0;
	_cleanup_free_ char *after_log = slurp(lp, &ln2);
	_cleanup_free_ char *after_head = slurp(hp, &hn2);
	assert_int_equal(!before_log, !after_log);
	assert_int_equal(!before_head, !after_head);
	if (before_log) {
		assert_int_equal(ln, ln2);
		assert_memory_equal(before_log, after_log, ln);
	}
	if (before_head) {
		assert_int_equal(hn, hn2);
		assert_memory_equal(before_head, after_head, hn);
	}
}

/* ---- writing, reopening, the format ---- */

static void
test_append_reopen_verify(void **state)
{
	const char *dir = *state;
	fill(dir, 100);
	expect_ok(dir, KEY, 100);
	fill(dir, 25);
	expect_ok(dir, KEY, 125);
	expect_ok(dir, NULL, 125);
	/* The log file itself can be named, too. */
	_cleanup_free_ char *lp = path_in(dir, NB_AUDIT_LOG_NAME);
	expect_ok(lp, KEY, 125);

	struct lines l = lines_read(dir);
	assert_int_equal(l.n, 125);
	/* Record 1 links to the documented genesis; the head signs the last record. */
	assert_non_null(strstr(l.v[0], "\"prev\":\"" GENESIS_HEX "\""));
	assert_non_null(strstr(l.v[0], "\"seq\":1,"));
	char last[65];
	hash_of(l.v[124], last);
	_cleanup_free_ char *hp = path_in(dir, NB_AUDIT_HEAD_NAME);
	_cleanup_free_ char *head = slurp(hp, NULL);
	assert_non_null(head);
	char want_prefix[128];
	snprintf(want_prefix, sizeof(want_prefix), "{\"hash\":\"%s\",\"mac\":\"", last);
	assert_memory_equal(head, want_prefix, strlen(want_prefix));
	assert_non_null(strstr(head, "\",\"seq\":125}\n"));
	lines_free(&l);

	struct stat st;
	assert_int_equal(stat(lp, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(hp, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	struct nb_audit *log = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(nb_audit_open(dir, KEY, NULL, &log, &e), 0);
	assert_int_equal(nb_audit_seq(log), 125);
	char hex[65];
	nb_audit_last_hash(log, hex);
	assert_string_equal(hex, last);
	assert_int_equal(nb_audit_close(log, &e), 0);
}

/* The record's hash, recomputed here from the documented definition, is what the library wrote. */
static void
test_hash_definition(void **state)
{
	const char *dir = *state;
	uint8_t g[32];
	char gh[65];
	nb_audit_genesis(g);
	nb_hex(g, 32, gh);
	assert_string_equal(gh, GENESIS_HEX);

	fill(dir, 3);
	struct lines l = lines_read(dir);
	char prev[65] = GENESIS_HEX;
	for (size_t i = 0; i < l.n; i++) {
		char *again = rehash(strdup(l.v[i]), i + 1, prev);
		assert_string_equal(again, l.v[i]);
		free(again);
		hash_of(l.v[i], prev);
	}
	/* The head's MAC: HMAC-SHA256(key, "3:<hash of record 3>"). */
	char msg[80];
	snprintf(msg, sizeof(msg), "3:%s", prev);
	uint8_t mac[32];
	size_t ml = 32;
	EVP_MAC *hm = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *c = EVP_MAC_CTX_new(hm);
	OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
				OSSL_PARAM_construct_end() };
	assert_int_equal(EVP_MAC_init(c, KEY, 32, params), 1);
	assert_int_equal(EVP_MAC_update(c, (const unsigned char *)msg, strlen(msg)), 1);
	assert_int_equal(EVP_MAC_final(c, mac, &ml, sizeof(mac)), 1);
	EVP_MAC_CTX_free(c);
	EVP_MAC_free(hm);
	char machex[65], want[256];
	nb_hex(mac, 32, machex);
	snprintf(want, sizeof(want), "{\"hash\":\"%s\",\"mac\":\"%s\",\"seq\":3}\n", prev, machex);
	_cleanup_free_ char *hp = path_in(dir, NB_AUDIT_HEAD_NAME);
	_cleanup_free_ char *head = slurp(hp, NULL);
	assert_string_equal(head, want);
	lines_free(&l);
}

static void
test_chain_check_api(void **state)
{
	const char *dir = *state;
	fill(dir, 5);
	struct lines l = lines_read(dir);
	struct nb_audit_chain c;
	struct nb_err e = { 0 };
	nb_audit_chain_init(&c);
	for (size_t i = 0; i < l.n; i++)
		assert_int_equal(nb_audit_chain_check(&c, l.v[i], strlen(l.v[i]), &e), 0);
	assert_int_equal(c.seq, 5);
	/* Out of order: record 5 again is refused and @c is left as it was. */
	struct nb_audit_chain before = c;
	assert_int_equal(nb_audit_chain_check(&c, l.v[4], strlen(l.v[4]), &e), -EBADMSG);
	assert_string_equal(e.msg, "record 6: seq 5, expected 6 (deleted or reordered?)");
	assert_memory_equal(&before, &c, sizeof(c));
	/* Not NUL-terminated: only @len bytes count. */
	nb_audit_chain_init(&c);
	char *copy = malloc(strlen(l.v[0]));
	memcpy(copy, l.v[0], strlen(l.v[0]));
	assert_int_equal(nb_audit_chain_check(&c, copy, strlen(l.v[0]), &e), 0);
	free(copy);
	lines_free(&l);
}

/* ---- tampering: each one names the record ---- */

static void
test_edit_fields(void **state)
{
	const char *dir = *state;
	fill(dir, 100);
	_cleanup_free_ char *lp = path_in(dir, NB_AUDIT_LOG_NAME);
	size_t n;
	_cleanup_free_ char *orig = slurp(lp, &n);

	struct {
		const char *from, *to;
	} edits[] = {
		{ "\"actor\":\"agent-a\"", "\"actor\":\"agent-b\"" },
		{ "\"verdict\":\"denied\"", "\"verdict\":\"allowed\"" },
		{ "\"reason\":\"manifest allows it\"", "\"reason\":\"manifest allowed it\"" },
		{ "\"object\":\"net:example-16.com:443\"",
		  "\"object\":\"net:example-61.com:443\"" },
	};
	for (size_t i = 0; i < NB_ARRAY_SIZE(edits); i++) {
		spit(lp, orig, n, "w");
		struct lines l = lines_read(dir);
		/* Record 17 (i = 16 in fill()): agent-a, denied, "manifest allows it". */
		l.v[16] = subst(l.v[16], edits[i].from, edits[i].to);
		lines_write(dir, &l);
		lines_free(&l);
		expect_bad(dir, KEY, NB_AUDIT_BAD_RECORD, 17, "record 17: hash mismatch (edited?)");
		expect_bad(dir, NULL, NB_AUDIT_BAD_RECORD, 17,
			   "record 17: hash mismatch (edited?)");
	}
}

static void
test_edit_hash(void **state)
{
	const char *dir = *state;
	fill(dir, 100);
	struct lines l = lines_read(dir);
	char h[65], h2[65];
	hash_of(l.v[16], h);
	memcpy(h2, h, 65);
	h2[10] = h2[10] == '0' ? '1' : '0';
	l.v[16] = subst(l.v[16], h, h2);
	lines_write(dir, &l);
	lines_free(&l);
	expect_bad(dir, KEY, NB_AUDIT_BAD_RECORD, 17, "record 17: hash mismatch (edited?)");
}

/* Edit record 17 and recompute its hash: record 18's prev no longer links. */
static void
test_edit_and_rehash(void **state)
{
	const char *dir = *state;
	fill(dir, 100);
	struct lines l = lines_read(dir);
	char prev[65];
	hash_of(l.v[15], prev);
	l.v[16] = subst(l.v[16], "\"verdict\":\"denied\"", "\"verdict\":\"allowed\"");
	l.v[16] = rehash(l.v[16], 17, prev);
	lines_write(dir, &l);
	expect_bad(dir, KEY, NB_AUDIT_BAD_RECORD, 18,
		   "record 18: prev does not match the hash of record 17");

	/* Rehash everything after it too: the chain is whole again; only the head catches it. */
	for (size_t i = 17; i < l.n; i++) {
		hash_of(l.v[i - 1], prev);
		l.v[i] = rehash(l.v[i], i + 1, prev);
	}
	lines_write(dir, &l);
	expect_ok(dir, NULL, 100);
	expect_bad(dir, KEY, NB_AUDIT_HEAD_MISMATCH, 100,
		   "record 100: the signed head has a different hash for it");
	expect_open_refused(dir, KEY, "log rewritten?");
	lines_free(&l);
}

static void
test_delete_record(void **state)
{
	const char *dir = *state;
	fill(dir, 100);
	struct lines l = lines_read(dir);
	free(l.v[16]);
	memmove(l.v + 16, l.v + 17, (l.n - 17) * sizeof(*l.v));
	l.n--;
	lines_write(dir, &l);
	lines_free(&l);
	expect_bad(dir, KEY, NB_AUDIT_BAD_RECORD, 17,
		   "record 17: seq 18, expected 17 (deleted or reordered?)");
}

static void
test_delete_first_record(void **state)
{
	const char *dir = *state;
	fill(dir, 10);
	struct lines l = lines_read(dir);
	free(l.v[0]);
	memmove(l.v, l.v + 1, (l.n - 1) * sizeof(*l.v));
	l.n--;
	/* Renumber so seq starts at 1 again: then prev still points at the deleted record. */
	for (size_t i = 0; i < l.n; i++) {
		char from[32], to[32];
		snprintf(from, sizeof(from), "\"seq\":%zu,", i + 2);
		snprintf(to, sizeof(to), "\"seq\":%zu,", i + 1);
		l.v[i] = subst(l.v[i], from, to);
	}
	char prev[65];
	memcpy(prev, strstr(l.v[0], "\"prev\":\"") + 8, 64);
	prev[64] = '\0';
	l.v[0] = rehash(l.v[0], 1, prev);
	lines_write(dir, &l);
	lines_free(&l);
	expect_bad(dir, KEY, NB_AUDIT_BAD_RECORD, 1, "record 1: prev is not the genesis hash");
}

static void
test_swap_records(void **state)
{
	const char *dir = *state;
	fill(dir, 100);
	struct lines l = lines_read(dir);
	char *t = l.v[16];
	l.v[16] = l.v[17];
	l.v[17] = t;
	lines_write(dir, &l);
	lines_free(&l);
	expect_bad(dir, KEY, NB_AUDIT_BAD_RECORD, 17,
		   "record 17: seq 18, expected 17 (deleted or reordered?)");
}

static void
test_insert_forged(void **state)
{
	const char *dir = *state;
	fill(dir, 100);
	struct lines l = lines_read(dir);
	l.v = realloc(l.v, (l.n + 1) * sizeof(*l.v));
	memmove(l.v + 17, l.v + 16, (l.n - 16) * sizeof(*l.v));
	l.n++;
	/* A naive forgery: record 16 copied with another verdict, inserted as line 17. */
	l.v[16] = subst(strdup(l.v[15]), "\"seq\":16,", "\"seq\":17,");
	lines_write(dir, &l);
	expect_bad(dir, KEY, NB_AUDIT_BAD_RECORD, 17, "record 17: hash mismatch (edited?)");

	/* A careful one, with a correct seq, prev and hash: the original record 17 then breaks. */
	char prev[65];
	hash_of(l.v[15], prev);
	l.v[16] = rehash(l.v[16], 17, prev);
	lines_write(dir, &l);
	lines_free(&l);
	expect_bad(dir, KEY, NB_AUDIT_BAD_RECORD, 18,
		   "record 18: seq 17, expected 18 (deleted or reordered?)");
}

static void
test_truncate_records(void **state)
{
	const char *dir = *state;
	fill(dir, 100);
	struct lines l = lines_read(dir);
	l.n -= 2;
	lines_write(dir, &l);
	l.n += 2;
	lines_free(&l);
	expect_bad(dir, KEY, NB_AUDIT_TRUNCATED, 99,
		   "log ends at record 98 but the signed head says 100 (truncated?)");
	/* Without the key, a truncated log cannot be told from a short one. */
	expect_ok(dir, NULL, 98);
	expect_open_refused(dir, KEY, "log ends at record 98 but the signed head says 100");

	/* All of it. */
	_cleanup_free_ char *lp = path_in(dir, NB_AUDIT_LOG_NAME);
	assert_int_equal(truncate(lp, 0), 0);
	expect_bad(dir, KEY, NB_AUDIT_TRUNCATED, 1,
		   "log ends at record 0 but the signed head says 100 (truncated?)");
	expect_open_refused(dir, KEY, "log ends at record 0 but the signed head says 100");
}

static void
test_truncate_mid_line(void **state)
{
	const char *dir = *state;
	fill(dir, 100);
	_cleanup_free_ char *lp = path_in(dir, NB_AUDIT_LOG_NAME);
	struct stat st;
	assert_int_equal(stat(lp, &st), 0);
	assert_int_equal(truncate(lp, st.st_size - 40), 0);
	struct nb_audit_report rep;
	struct nb_err e = { 0 };
	assert_int_equal(nb_audit_verify(dir, KEY, 0, &rep, &e), -EBADMSG);
	assert_int_equal(rep.problem, NB_AUDIT_PARTIAL_LINE);
	assert_int_equal(rep.first_bad, 100);
	assert_int_equal(rep.records, 99);
	assert_non_null(strstr(rep.msg, "record 100: incomplete last line ("));
	assert_non_null(strstr(rep.msg, "bytes without a newline"));
	expect_open_refused(dir, KEY, "the last record is incomplete");
}

/* Someone without the key appends a record with a valid hash chain; the head does not move. */
static void
append_forged(const char *dir, uint64_t seq, const char *prev_hex)
{
	char *line = strdup("{\"action\":\"agent.start\",\"actor\":\"agent-a\",\"hash\":\"x\","
			    "\"object\":\"agent:evil\",\"prev\":\"x\",\"reason\":\"looks legit\","
			    "\"seq\":1,\"time\":\"2024-01-01T00:00:00.000000Z\","
			    "\"verdict\":\"allowed\"}");
	line = rehash(line, seq, prev_hex);
	_cleanup_free_ char *lp = path_in(dir, NB_AUDIT_LOG_NAME);
	_cleanup_free_ char *nl = NULL;
	assert_true(asprintf(&nl, "%s\n", line) > 0);
	spit(lp, nl, strlen(nl), "a");
	free(line);
}

static void
test_append_without_key(void **state)
{
	const char *dir = *state;
	fill(dir, 100);
	struct lines l = lines_read(dir);
	char prev[65];
	hash_of(l.v[99], prev);
	lines_free(&l);
	append_forged(dir, 101, prev);
	l = lines_read(dir);
	hash_of(l.v[100], prev);
	lines_free(&l);
	append_forged(dir, 102, prev);

	expect_ok(dir, NULL, 102); /* the chain itself is fine */
	expect_bad(dir, KEY, NB_AUDIT_UNSIGNED_TAIL, 101,
		   "records after the signed head: the log has 102 records but the head signs 100 "
		   "(appended without the key?)");
	expect_open_refused(dir, KEY, "records after the signed head");
}

static void
test_forged_head(void **state)
{
	const char *dir = *state;
	fill(dir, 100);
	_cleanup_free_ char *hp = path_in(dir, NB_AUDIT_HEAD_NAME);
	_cleanup_free_ char *head = slurp(hp, NULL);
	/* Flip one digit of the MAC. */
	char *mac = strstr(head, "\"mac\":\"") + 7;
	mac[5] = mac[5] == 'a' ? 'b' : 'a';
	spit(hp, head, strlen(head), "w");
	expect_bad(dir, KEY, NB_AUDIT_HEAD_INVALID, 0,
		   "head MAC invalid (head file forged, or the wrong key?)");
	expect_open_refused(dir, KEY, "head MAC invalid");

	/* A head that is not even well-formed. */
	spit(hp, "{\"seq\":1}\n", 10, "w");
	expect_bad(dir, KEY, NB_AUDIT_HEAD_INVALID, 0, "head: expected {\"hash\",\"mac\",\"seq\"}");
	spit(hp, "{\"hash\":\"", 9, "w");
	expect_bad(dir, KEY, NB_AUDIT_HEAD_INVALID, 0, "head: empty or incomplete");
}

static void
test_wrong_key(void **state)
{
	const char *dir = *state;
	fill(dir, 10);
	uint8_t other[NB_AUDIT_KEY_LEN];
	memcpy(other, KEY, sizeof(other));
	other[31] ^= 1;
	expect_bad(dir, other, NB_AUDIT_HEAD_INVALID, 0,
		   "head MAC invalid (head file forged, or the wrong key?)");
	expect_open_refused(dir, other, "head MAC invalid");
	expect_ok(dir, KEY, 10);
}

static void
test_empty_and_missing(void **state)
{
	const char *dir = *state;
	/* Nothing at all: nothing was recorded. */
	expect_ok(dir, KEY, 0);
	expect_ok(dir, NULL, 0);
	/* An empty log without a head. */
	_cleanup_free_ char *lp = path_in(dir, NB_AUDIT_LOG_NAME);
	spit(lp, "", 0, "w");
	expect_ok(dir, KEY, 0);
	/* A fresh writer signs the empty log (seq 0, genesis), so deleting it later shows. */
	assert_int_equal(unlink(lp), 0);
	fill(dir, 0);
	_cleanup_free_ char *hp = path_in(dir, NB_AUDIT_HEAD_NAME);
	_cleanup_free_ char *head = slurp(hp, NULL);
	assert_non_null(head);
	assert_non_null(strstr(head, "{\"hash\":\"" GENESIS_HEX "\","));
	assert_non_null(strstr(head, ",\"seq\":0}\n"));
	expect_ok(dir, KEY, 0);
}

static void
test_head_without_log(void **state)
{
	const char *dir = *state;
	fill(dir, 3);
	_cleanup_free_ char *lp = path_in(dir, NB_AUDIT_LOG_NAME);
	assert_int_equal(unlink(lp), 0);
	expect_bad(dir, KEY, NB_AUDIT_TRUNCATED, 1,
		   "there is no log but the signed head says 3 records (log deleted?)");
	expect_open_refused(dir, KEY, "there is no log but a head");
	assert_int_equal(access(lp, F_OK), -1); /* and no empty log was created */
}

static void
test_log_without_head(void **state)
{
	const char *dir = *state;
	fill(dir, 3);
	_cleanup_free_ char *hp = path_in(dir, NB_AUDIT_HEAD_NAME);
	assert_int_equal(unlink(hp), 0);
	expect_bad(dir, KEY, NB_AUDIT_NO_HEAD, 1,
		   "the log has 3 records but there is no signed head (head deleted?)");
	expect_ok(dir, NULL, 3);
	expect_open_refused(dir, KEY, "no signed head");
}

static void
test_hostile_lines(void **state)
{
	const char *dir = *state;
	fill(dir, 3);
	_cleanup_free_ char *lp = path_in(dir, NB_AUDIT_LOG_NAME);
	size_t n;
	_cleanup_free_ char *orig = slurp(lp, &n);
	struct {
		const char *line, *msg;
	} cases[] = {
		{ "\x1b]2;pwned\x07\x1b[2J", "record 4: not valid JSON (column " },
		{ "[1,2]", "record 4: not a JSON object" },
		{ "{\"seq\":4,\"seq\":4}", "record 4: not valid JSON (column" },
		{ "{\"seq\":4,\"\\u001b[31mevil\":1}", "record 4: unexpected field \"?[31mevil\"" },
		{ "{\"seq\":4}", "record 4: missing field \"action\"" },
		{ "{\"action\":\"a\",\"actor\":\"a\",\"hash\":\"\",\"object\":\"o\",\"prev\":\"\","
		  "\"reason\":\"r\",\"seq\":4.0,\"time\":\"\",\"verdict\":\"allowed\"}",
		  "record 4: field \"seq\": expected a positive integer" },
		{ "{\"action\":\"a\",\"actor\":\"a\",\"hash\":\"\",\"object\":\"o\",\"prev\":\"\","
		  "\"reason\":\"r\",\"seq\":4,\"time\":\"2024-13-01T00:00:00.000000Z\","
		  "\"verdict\":\"allowed\"}",
		  "record 4: field \"time\": expected RFC 3339" },
		{ "{\"action\":\"a\",\"actor\":\"a\\u001b[0m\",\"hash\":\"\",\"object\":\"o\","
		  "\"prev\":\"\",\"reason\":\"r\",\"seq\":4,\"time\":\"2024-12-01T00:00:00.000000Z\","
		  "\"verdict\":\"allowed\"}",
		  "record 4: field \"actor\": control characters are not allowed" },
		{ "{\"action\":\"a\",\"actor\":\"a\",\"hash\":\"\",\"object\":\"o\",\"prev\":\"\","
		  "\"reason\":\"r\",\"seq\":4,\"time\":\"2024-12-01T00:00:00.000000Z\","
		  "\"verdict\":\"maybe\"}",
		  "record 4: field \"verdict\": expected \"allowed\", \"denied\" or \"deferred\"" },
		{ "{\"action\":\"a\",\"actor\":\"a\",\"detail\":{\"x\":1.5},\"hash\":\"\",\"object\":"
		  "\"o\",\"prev\":\"\",\"reason\":\"r\",\"seq\":4,\"time\":\"2024-12-01T00:00:00."
		  "000000Z\",\"verdict\":\"allowed\"}",
		  "record 4: field \"detail\": floating point numbers are not allowed" },
		{ "{\"action\":\"a\",\"actor\":\"a\",\"hash\":\"ABC\",\"object\":\"o\",\"prev\":\"\","
		  "\"reason\":\"r\",\"seq\":4,\"time\":\"2024-12-01T00:00:00.000000Z\","
		  "\"verdict\":\"allowed\"}",
		  "record 4: field \"prev\": expected 64 lower-case hex digits" },
	};
	for (size_t i = 0; i < NB_ARRAY_SIZE(cases); i++) {
		spit(lp, orig, n, "w");
		spit(lp, cases[i].line, strlen(cases[i].line), "a");
		spit(lp, "\n", 1, "a");
		expect_bad(dir, KEY, NB_AUDIT_BAD_RECORD, 4, cases[i].msg);
		struct nb_audit_report rep;
		nb_audit_verify(dir, KEY, 0, &rep, NULL);
		for (const char *c = rep.msg; *c; c++)
			assert_true(*c >= 0x20 && *c < 0x7f);
	}

	/* Valid content, other spelling: not canonical. */
	spit(lp, orig, n, "w");
	struct lines l = lines_read(dir);
	l.v[1] = subst(l.v[1], "\"seq\":2,", "\"seq\": 2,");
	lines_write(dir, &l);
	lines_free(&l);
	expect_bad(dir, KEY, NB_AUDIT_BAD_RECORD, 2,
		   "record 2: not in canonical form (re-serialised or hand-edited?)");

	/* A line over the cap. */
	spit(lp, orig, n, "w");
	char *big = malloc(NB_AUDIT_LINE_MAX + 10);
	memset(big, 'x', NB_AUDIT_LINE_MAX + 9);
	big[NB_AUDIT_LINE_MAX + 9] = '\n';
	spit(lp, big, NB_AUDIT_LINE_MAX + 10, "a");
	free(big);
	expect_bad(dir, KEY, NB_AUDIT_BAD_RECORD, 4,
		   "record 4: line longer than 65535 bytes (not a record)");
}

/* ---- one writer; refusals ---- */

static void
test_second_writer(void **state)
{
	const char *dir = *state;
	struct nb_audit *a = NULL, *b = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(nb_audit_open(dir, KEY, NULL, &a, &e), 0);
	assert_int_equal(nb_audit_append(a, "nulld", "agent.start", "agent:x", NB_AUDIT_ALLOWED,
					 "ok", NULL, NULL, &e),
			 0);
	assert_int_equal(nb_audit_open(dir, KEY, NULL, &b, &e), -EWOULDBLOCK);
	assert_null(b);
	assert_non_null(strstr(e.msg, "is locked by another writer"));
	/* Another process too. */
	pid_t pid = fork();
	if (pid == 0) {
		struct nb_audit *c = NULL;
		_exit(nb_audit_open(dir, KEY, NULL, &c, &e) == -EWOULDBLOCK ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(nb_audit_close(a, &e), 0);
	assert_int_equal(nb_audit_open(dir, KEY, NULL, &b, &e), 0);
	assert_int_equal(nb_audit_seq(b), 1);
	assert_int_equal(nb_audit_close(b, &e), 0);
	expect_ok(dir, KEY, 1);
}

static void
test_full_verify_on_open(void **state)
{
	const char *dir = *state;
	fill(dir, 20);
	struct lines l = lines_read(dir);
	l.v[4] = subst(l.v[4], "\"actor\":\"agent-a\"", "\"actor\":\"agent-z\"");
	lines_write(dir, &l);
	lines_free(&l);
	/* The tail is fine, so a plain open appends (which hides nothing)... */
	struct nb_audit *log = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(nb_audit_open(dir, KEY, NULL, &log, &e), 0);
	assert_int_equal(nb_audit_close(log, &e), 0);
	/* ...while full_verify refuses. */
	struct nb_audit_opts o = { .full_verify = true };
	assert_int_equal(nb_audit_open(dir, KEY, &o, &log, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "record 5: hash mismatch (edited?)"));
	assert_null(log);
}

static void
test_insecure_log_refused(void **state)
{
	const char *dir = *state;
	fill(dir, 1);
	_cleanup_free_ char *lp = path_in(dir, NB_AUDIT_LOG_NAME);
	assert_int_equal(chmod(lp, 0666), 0);
	struct nb_audit *log = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(nb_audit_open(dir, KEY, NULL, &log, &e), -EPERM);
	assert_non_null(strstr(e.msg, "writable only by it"));
	/* A symlink in place of the log is not followed. */
	assert_int_equal(chmod(lp, 0600), 0);
	_cleanup_free_ char *moved = path_in(dir, "elsewhere");
	assert_int_equal(rename(lp, moved), 0);
	assert_int_equal(symlink(moved, lp), 0);
	assert_true(nb_audit_open(dir, KEY, NULL, &log, &e) < 0);
	assert_null(log);
}

/* ---- the key ---- */

static void
test_key_file(void **state)
{
	const char *dir = *state;
	_cleanup_free_ char *kp = path_in(dir, NB_AUDIT_KEY_NAME);
	uint8_t k1[NB_AUDIT_KEY_LEN], k2[NB_AUDIT_KEY_LEN], zero[NB_AUDIT_KEY_LEN] = { 0 };
	struct nb_err e = { 0 };
	assert_int_equal(nb_audit_key_load(kp, 0, k1, &e), -ENOENT);
	mode_t old = umask(0);
	assert_int_equal(nb_audit_key_load(kp, NB_AUDIT_KEY_CREATE, k1, &e), 0);
	umask(old);
	struct stat st;
	assert_int_equal(lstat(kp, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, NB_AUDIT_KEY_LEN);
	assert_memory_not_equal(k1, zero, sizeof(k1));
	assert_int_equal(nb_audit_key_load(kp, NB_AUDIT_KEY_CREATE, k2, &e), 0);
	assert_memory_equal(k1, k2, sizeof(k1));
	/* No temp file left behind. */
	_cleanup_free_ char *tmp = NULL;
	assert_true(asprintf(&tmp, "%s.tmp.%ld", kp, (long)getpid()) > 0);
	assert_int_equal(access(tmp, F_OK), -1);

	/* A log written with the loaded key verifies with it. */
	struct nb_audit *log = NULL;
	assert_int_equal(nb_audit_open(dir, k1, NULL, &log, &e), 0);
	assert_int_equal(nb_audit_append(log, "nulld", "boot", "host", NB_AUDIT_ALLOWED, "start",
					 NULL, NULL, &e),
			 0);
	assert_int_equal(nb_audit_close(log, &e), 0);
	expect_ok(dir, k2, 1);

	assert_int_equal(chmod(kp, 0644), 0);
	assert_int_equal(nb_audit_key_load(kp, 0, k2, &e), -EPERM);
	assert_string_equal(
		e.msg + strlen(e.msg) -
			strlen("has mode 0644: it must not be "
			       "accessible to group or others (chmod 600)"),
		"has mode 0644: it must not be accessible to group or others (chmod 600)");
	assert_memory_equal(k2, zero, sizeof(k2)); /* wiped on error */
	assert_int_equal(chmod(kp, 0640), 0);
	assert_int_equal(nb_audit_key_load(kp, NB_AUDIT_KEY_CREATE, k2, &e), -EPERM);
	assert_int_equal(chmod(kp, 0600), 0);

	/* Wrong size. */
	_cleanup_free_ char *shortp = path_in(dir, "short.key");
	spit(shortp, "abc", 3, "w");
	assert_int_equal(chmod(shortp, 0600), 0);
	assert_int_equal(nb_audit_key_load(shortp, 0, k2, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "is 3 bytes, expected 32"));

	/* A symlink to a good key is refused. */
	_cleanup_free_ char *link = path_in(dir, "link.key");
	assert_int_equal(symlink(kp, link), 0);
	assert_int_equal(nb_audit_key_load(link, 0, k2, &e), -EPERM);
	assert_non_null(strstr(e.msg, "is a symlink"));
	/* Owner check: a key owned by someone else (needs root to arrange). */
	if (geteuid() == 0) {
		assert_int_equal(chown(kp, 65534, 65534), 0);
		assert_int_equal(nb_audit_key_load(kp, 0, k2, &e), -EPERM);
		assert_non_null(strstr(e.msg, "is owned by uid 65534"));
	} else {
		print_message("note: key owner check not exercised (needs root to chown)\n");
	}
}

/* ---- field validation ---- */

static void
expect_invalid(struct nb_audit *log, const char *actor, const char *action, const char *object,
	       int verdict, const char *reason, json_t *detail, const char *msg)
{
	struct nb_err e = { 0 };
	uint64_t seq = 99;
	uint64_t before = nb_audit_seq(log);
	int r = nb_audit_append(log, actor, action, object, (enum nb_audit_verdict)verdict, reason,
				detail, &seq, &e);
	if (r != -EINVAL || strcmp(e.msg, msg) != 0)
		fail_msg("append: %d '%s', expected -EINVAL '%s'", r, e.msg, msg);
	assert_int_equal(seq, 0);
	assert_int_equal(nb_audit_seq(log), before);
}

static void
test_field_validation(void **state)
{
	const char *dir = *state;
	struct nb_audit *log = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(nb_audit_open(dir, KEY, NULL, &log, &e), 0);
	expect_invalid(log, "", "a", "o", 0, "r", NULL, "audit: actor: must not be empty");
	expect_invalid(log, NULL, "a", "o", 0, "r", NULL, "audit: actor: missing");
	expect_invalid(log, "x", "a", "o", 0, "red \x1b[31m", NULL,
		       "audit: reason: control characters are not allowed");
	expect_invalid(log, "x", "a\n", "o", 0, "r", NULL,
		       "audit: action: control characters are not allowed");
	expect_invalid(log, "x", "a", "o\xc2\x9b", 0, "r", NULL,
		       "audit: object: control characters are not allowed");
	expect_invalid(log, "x\x7f", "a", "o", 0, "r", NULL,
		       "audit: actor: control characters are not allowed");
	expect_invalid(log, "x", "a", "\xff\xfe", 0, "r", NULL, "audit: object: not valid UTF-8");
	expect_invalid(log, "x", "a", "\xed\xa0\x80", 0, "r", NULL,
		       "audit: object: not valid UTF-8"); /* a UTF-16 surrogate */
	char big[NB_AUDIT_FIELD_MAX + 2];
	memset(big, 'o', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	expect_invalid(log, "x", "a", big, 0, "r", NULL, "audit: object: longer than 4096 bytes");
	big[NB_AUDIT_FIELD_MAX] = '\0';
	expect_invalid(log, "x", "a", "o", 3, "r", NULL, "audit: verdict: unknown value 3");
	expect_invalid(log, "x", "a", "o", -1, "r", NULL, "audit: verdict: unknown value -1");

	_cleanup_json_ json_t *arr = json_array();
	expect_invalid(log, "x", "a", "o", 0, "r", arr, "audit: detail: must be a JSON object");
	_cleanup_json_ json_t *real = json_pack("{s:{s:f}}", "a", "b", 1.5);
	expect_invalid(log, "x", "a", "o", 0, "r", real,
		       "audit: detail: floating point numbers are not allowed");
	_cleanup_json_ json_t *nul = json_pack("{s:s#}", "a", "x\0y", 3);
	expect_invalid(log, "x", "a", "o", 0, "r", nul, "audit: detail: U+0000 in a string");
	_cleanup_json_ json_t *deep = json_object();
	json_t *cur = deep;
	for (int i = 0; i < NB_AUDIT_DETAIL_DEPTH_MAX; i++) {
		json_t *next = json_object();
		json_object_set_new(cur, "d", next);
		cur = next;
	}
	expect_invalid(log, "x", "a", "o", 0, "r", deep, "audit: detail: nested too deeply");
	_cleanup_json_ json_t *huge = json_object();
	for (int i = 0; i < 20; i++) {
		char k[8];
		snprintf(k, sizeof(k), "k%d", i);
		json_object_set_new(huge, k, json_string(big));
	}
	struct nb_err e2 = { 0 };
	assert_int_equal(nb_audit_append(log, "x", "a", "o", 0, "r", huge, NULL, &e2), -EINVAL);
	assert_non_null(strstr(e2.msg, "the limit is 65536"));

	/* At the limits, and control characters inside detail strings: accepted and verifiable. */
	_cleanup_json_ json_t *ok = json_pack("{s:s, s:{s:[s, i, b, n]}}", "ctl", "bell\a esc\x1b",
					      "nested", "x", "\xe2\x80\xa8", -5, 0);
	json_object_del(json_object_get(deep, "d"), "d"); /* now depth 2 */
	assert_int_equal(nb_audit_append(log, big, "a", "o", NB_AUDIT_DEFERRED, "r", ok, NULL, &e),
			 0);
	assert_int_equal(nb_audit_append(log, "x", "a", "o", NB_AUDIT_DENIED, "r", deep, NULL, &e),
			 0);
	assert_int_equal(nb_audit_append(log, "\xc3\xa9t\xc3\xa9", "a", "\xf0\x9f\x94\x92", 0, "r",
					 NULL, NULL, &e),
			 0);
	assert_int_equal(nb_audit_close(log, &e), 0);
	expect_ok(dir, KEY, 3);
}

/* A record of exactly NB_AUDIT_LINE_MAX bytes with its '\n' is written, reopened and verified. */
static void
test_line_at_limit(void **state)
{
	const char *dir = *state;
	struct nb_err e = { 0 };
	size_t n0 = 0;
	for (int pass = 0; pass < 2; pass++) {
		_cleanup_free_ char *sub = NULL;
		assert_true(asprintf(&sub, "%s/pass%d", dir, pass) > 0);
		assert_int_equal(mkdir(sub, 0700), 0);
		struct nb_audit *log = NULL;
		assert_int_equal(nb_audit_open(sub, KEY, NULL, &log, &e), 0);
		/* Pass 0 measures a record with a 100-byte string; pass 1 fills it to the limit. */
		size_t len = pass == 0 ? 100 : 100 + (NB_AUDIT_LINE_MAX - 1 - n0);
		char *s = malloc(len + 2);
		memset(s, 's', len + 1);
		s[len + 1] = '\0';
		_cleanup_json_ json_t *d = json_pack("{s:s#}", "x", s, (int)len + 1);
		if (pass == 1)
			assert_int_equal(nb_audit_append(log, "a", "b", "c", NB_AUDIT_ALLOWED, "r",
							 d, NULL, &e),
					 -EINVAL);
		json_object_set_new(d, "x", json_stringn(s, len));
		free(s);
		/* A record before it, so the long one does not start at offset 0. */
		assert_int_equal(
			nb_audit_append(log, "a", "b", "c", NB_AUDIT_ALLOWED, "r", NULL, NULL, &e),
			0);
		assert_int_equal(
			nb_audit_append(log, "a", "b", "c", NB_AUDIT_ALLOWED, "r", d, NULL, &e), 0);
		assert_int_equal(nb_audit_close(log, &e), 0);
		struct lines l = lines_read(sub);
		assert_int_equal(l.n, 2);
		if (pass == 0)
			n0 = strlen(l.v[1]);
		else
			assert_int_equal(strlen(l.v[1]) + 1, NB_AUDIT_LINE_MAX);
		lines_free(&l);
		if (pass == 1) {
			fill(sub, 1); /* reopens: the tail window must hold the whole line */
			fill(sub, 1); /* and again, with the long line no longer last */
			expect_ok(sub, KEY, 4);
		}
	}
}

/* ---- crashes and recovery ---- */

static void
test_partial_last_line_and_recover(void **state)
{
	const char *dir = *state;
	fill(dir, 5);
	_cleanup_free_ char *lp = path_in(dir, NB_AUDIT_LOG_NAME);
	const char partial[] = "{\"action\":\"agent.st";
	spit(lp, partial, strlen(partial), "a");
	struct nb_audit_report rep;
	struct nb_err e = { 0 };
	assert_int_equal(nb_audit_verify(dir, KEY, 0, &rep, &e), -EBADMSG);
	assert_int_equal(rep.problem, NB_AUDIT_PARTIAL_LINE);
	assert_int_equal(rep.first_bad, 6);
	assert_int_equal(rep.records, 5);
	assert_string_equal(rep.msg, "record 6: incomplete last line (19 bytes without a newline: "
				     "a crash during an append, or truncated mid-record?)");
	expect_open_refused(dir, KEY, "the last record is incomplete");

	/* The documented recovery: the bytes are moved aside and the chain says so. */
	assert_int_equal(nb_audit_recover(dir, KEY, &rep, &e), 0);
	assert_int_equal(rep.problem, NB_AUDIT_PARTIAL_LINE);
	assert_int_equal(rep.first_bad, 6);
	assert_non_null(strstr(rep.msg, "moved 19 bytes (0 complete lines) after the signed record "
					"5 to audit.log.tail-5-"));
	expect_ok(dir, KEY, 6);
	struct lines l = lines_read(dir);
	assert_non_null(strstr(l.v[5], "\"action\":\"audit.recover\""));
	assert_non_null(strstr(l.v[5], "\"actor\":\"nullbox-audit\""));
	assert_non_null(strstr(l.v[5], "\"bytes\":19,"));
	lines_free(&l);
	char *name = strstr(rep.msg, "audit.log.tail-");
	char saved_name[64];
	sscanf(name, "%63[^;]", saved_name);
	_cleanup_free_ char *sp = path_in(dir, saved_name);
	size_t sn;
	_cleanup_free_ char *saved = slurp(sp, &sn);
	assert_non_null(saved);
	assert_int_equal(sn, strlen(partial));
	assert_memory_equal(saved, partial, sn);

	/* Writing goes on. */
	fill(dir, 2);
	expect_ok(dir, KEY, 8);
	/* Nothing to do on a good log. */
	assert_int_equal(nb_audit_recover(dir, KEY, &rep, &e), 0);
	assert_int_equal(rep.problem, NB_AUDIT_OK);
	assert_non_null(strstr(rep.msg, "nothing to recover"));
	expect_ok(dir, KEY, 8);
}

/* A crash after the record was written but before the head was replaced. */
static void
test_unsigned_tail_recover(void **state)
{
	const char *dir = *state;
	fill(dir, 4);
	struct lines l = lines_read(dir);
	char prev[65];
	hash_of(l.v[3], prev);
	lines_free(&l);
	append_forged(dir, 5, prev);
	struct nb_audit_report rep;
	struct nb_err e = { 0 };
	assert_int_equal(nb_audit_recover(dir, KEY, &rep, &e), 0);
	assert_int_equal(rep.problem, NB_AUDIT_UNSIGNED_TAIL);
	assert_non_null(strstr(rep.msg, "(1 complete lines) after the signed record 4"));
	expect_ok(dir, KEY, 5);
	l = lines_read(dir);
	assert_non_null(strstr(l.v[4], "\"action\":\"audit.recover\""));
	lines_free(&l);
}

/* Recovery refuses what is not a crash. */
static void
test_recover_refuses_tampering(void **state)
{
	const char *dir = *state;
	fill(dir, 10);
	_cleanup_free_ char *lp = path_in(dir, NB_AUDIT_LOG_NAME);
	size_t n;
	_cleanup_free_ char *orig = slurp(lp, &n);
	struct nb_audit_report rep;
	struct nb_err e = { 0 };

	struct lines l = lines_read(dir);
	l.v[2] = subst(l.v[2], "\"verdict\":\"deferred\"", "\"verdict\":\"allowed\"");
	lines_write(dir, &l);
	lines_free(&l);
	assert_int_equal(nb_audit_recover(dir, KEY, &rep, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "refusing, a signed record is bad: record 3: hash mismatch"));
	assert_int_equal(rep.problem, NB_AUDIT_BAD_RECORD);
	assert_int_equal(rep.first_bad, 3);

	spit(lp, orig, n, "w");
	l = lines_read(dir);
	l.n = 8;
	lines_write(dir, &l);
	l.n = 10;
	lines_free(&l);
	assert_int_equal(nb_audit_recover(dir, KEY, &rep, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "log ends at record 8 but the signed head says 10"));

	spit(lp, orig, n, "w");
	uint8_t other[NB_AUDIT_KEY_LEN] = { 0 };
	assert_int_equal(nb_audit_recover(dir, other, &rep, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "head MAC invalid"));
	expect_ok(dir, KEY, 10);
	assert_int_equal(access(lp, F_OK), 0);
}

static void
test_recover_without_log(void **state)
{
	const char *dir = *state;
	struct nb_audit_report rep;
	struct nb_err e = { 0 };
	/* Nothing there: nothing to do, and nothing created. */
	assert_int_equal(nb_audit_recover(dir, KEY, &rep, &e), 0);
	assert_string_equal(rep.msg, "nothing to recover: there is no log");
	_cleanup_free_ char *lp = path_in(dir, NB_AUDIT_LOG_NAME);
	assert_int_equal(access(lp, F_OK), -1);
	/* A deleted log is not a crash. */
	fill(dir, 2);
	assert_int_equal(unlink(lp), 0);
	assert_int_equal(nb_audit_recover(dir, KEY, &rep, &e), -EBADMSG);
	assert_string_equal(e.msg, "audit: recover: refusing: there is no log but the signed head "
				   "says 2 records (log deleted?)");
	assert_int_equal(access(lp, F_OK), -1);
}

/* ---- sync policies ---- */

static void
test_batch_mode(void **state)
{
	const char *dir = *state;
	struct nb_audit_opts o = { .sync = NB_AUDIT_SYNC_BATCH, .batch_ms = 200 };
	struct nb_audit *log = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(nb_audit_open(dir, KEY, &o, &log, &e), 0);
	assert_int_equal(nb_audit_flush_due(log), -1);
	for (int i = 0; i < 10; i++)
		assert_int_equal(
			nb_audit_append(log, "a", "b", "c", NB_AUDIT_ALLOWED, "d", NULL, NULL, &e),
			0);
	long due = nb_audit_flush_due(log);
	assert_true(due > 0 && due <= 200);
	/* Written but not signed yet: a static verify says so. */
	expect_bad(dir, KEY, NB_AUDIT_UNSIGNED_TAIL, 1,
		   "records after the signed head: the log has 10 records but the head signs 0");
	assert_int_equal(nb_audit_flush(log, &e), 0);
	assert_int_equal(nb_audit_flush_due(log), -1);
	expect_ok(dir, KEY, 10);
	/* An append that finds the oldest pending record older than batch_ms syncs. */
	assert_int_equal(nb_audit_append(log, "a", "b", "c", NB_AUDIT_ALLOWED, "d", NULL, NULL, &e),
			 0);
	struct timespec ts = { 0, 250 * 1000000 };
	nanosleep(&ts, NULL);
	assert_int_equal(nb_audit_flush_due(log), 0);
	assert_int_equal(nb_audit_append(log, "a", "b", "c", NB_AUDIT_ALLOWED, "d", NULL, NULL, &e),
			 0);
	assert_int_equal(nb_audit_flush_due(log), -1);
	expect_ok(dir, KEY, 12);
	/* close flushes */
	assert_int_equal(nb_audit_append(log, "a", "b", "c", NB_AUDIT_ALLOWED, "d", NULL, NULL, &e),
			 0);
	assert_int_equal(nb_audit_close(log, &e), 0);
	expect_ok(dir, KEY, 13);

	struct nb_audit_opts bad = { .sync = NB_AUDIT_SYNC_BATCH, .batch_ms = 5000 };
	assert_int_equal(nb_audit_open(dir, KEY, &bad, &log, &e), -EINVAL);
}

/* verify --live while a writer appends in another process: never a false alarm. */
static void
test_live_verify(void **state)
{
	const char *dir = *state;
	fill(dir, 1);
	int go[2];
	assert_int_equal(pipe(go), 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct nb_audit *log = NULL;
		struct nb_err e = { 0 };
		if (nb_audit_open(dir, KEY, NULL, &log, &e) < 0)
			_exit(2);
		close(go[0]);
		close(go[1]);
		for (int i = 0; i < 400; i++)
			if (nb_audit_append(log, "agent-a", "net.connect", "x", NB_AUDIT_DENIED,
					    "no", NULL, NULL, &e) < 0)
				_exit(3);
		_exit(nb_audit_close(log, &e) < 0 ? 4 : 0);
	}
	close(go[1]);
	char c;
	assert_int_equal(read(go[0], &c, 1), 0); /* the child holds the lock now */
	close(go[0]);
	int runs = 0, status = 0;
	for (;;) {
		struct nb_audit_report rep;
		struct nb_err e = { 0 };
		int r = nb_audit_verify(dir, KEY, NB_AUDIT_VERIFY_LIVE, &rep, &e);
		if (r != 0)
			fail_msg("live verify %d: %s", runs, e.msg);
		runs++;
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	expect_ok(dir, KEY, 401);
	print_message("live verify: %d runs during 400 appends, no false alarm\n", runs);
}

/* ---- reading ---- */

static void
test_iter_filter(void **state)
{
	const char *dir = *state;
	fill(dir, 100);
	struct nb_audit_iter *it = NULL;
	struct nb_err e = { 0 };
	struct nb_audit_record rec;

	struct nb_audit_filter f = { .actor = "agent-b",
				     .verdicts = 1u << NB_AUDIT_DENIED | 1u << NB_AUDIT_DEFERRED };
	assert_int_equal(nb_audit_iter_open(dir, &f, 0, &it, &e), 0);
	int n = 0;
	int r;
	while ((r = nb_audit_iter_next(it, &rec, &e)) == 1) {
		assert_string_equal(rec.actor, "agent-b");
		assert_int_not_equal(rec.verdict, NB_AUDIT_ALLOWED);
		int i = (int)rec.seq - 1;
		assert_int_equal(i % 4, 1);
		assert_int_equal(rec.verdict, i % 3);
		assert_int_equal(!!rec.detail, i % 3 == 0);
		assert_int_equal(strlen(rec.time), 27);
		assert_int_equal(strlen(rec.hash), 64);
		assert_int_equal(rec.line[rec.line_len], '\n');
		n++;
	}
	assert_int_equal(r, 0);
	/* i = 1..99 with i % 4 == 1 and i % 3 != 0 */
	int want = 0;
	for (int i = 0; i < 100; i++)
		want += i % 4 == 1 && i % 3 != 0;
	assert_int_equal(n, want);
	nb_audit_iter_free(it);

	/* All records; then a tampered log stops at the bad record. */
	struct lines l = lines_read(dir);
	l.v[49] = subst(l.v[49], "\"reason\":\"", "\"reason\":\"X");
	lines_write(dir, &l);
	lines_free(&l);
	assert_int_equal(nb_audit_iter_open(dir, NULL, 0, &it, &e), 0);
	n = 0;
	while ((r = nb_audit_iter_next(it, &rec, &e)) == 1)
		assert_int_equal(rec.seq, (uint64_t)++n);
	assert_int_equal(n, 49);
	assert_int_equal(r, -EBADMSG);
	assert_string_equal(e.msg, "record 50: hash mismatch (edited?)");
	assert_int_equal(nb_audit_iter_next(it, &rec, &e), -EBADMSG); /* sticky */
	nb_audit_iter_free(it);

	/* No log: empty, unless following. */
	_cleanup_free_ char *empty = path_in(dir, "empty");
	assert_int_equal(mkdir(empty, 0700), 0);
	assert_int_equal(nb_audit_iter_open(empty, NULL, 0, &it, &e), 0);
	assert_int_equal(nb_audit_iter_next(it, &rec, &e), 0);
	nb_audit_iter_free(it);
	assert_int_equal(nb_audit_iter_open(empty, NULL, NB_AUDIT_ITER_FOLLOW, &it, &e), -ENOENT);
}

static void
test_iter_follow(void **state)
{
	const char *dir = *state;
	fill(dir, 3);
	struct nb_audit_iter *it = NULL;
	struct nb_err e = { 0 };
	struct nb_audit_record rec;
	struct nb_audit_filter f = { .verdicts = 1u << NB_AUDIT_DENIED };
	assert_int_equal(nb_audit_iter_open(dir, &f, NB_AUDIT_ITER_FOLLOW, &it, &e), 0);
	assert_true(nb_audit_iter_fd(it) >= 0);
	assert_int_equal(nb_audit_iter_next(it, &rec, &e), 1); /* record 2: denied */
	assert_int_equal(rec.seq, 2);
	assert_int_equal(nb_audit_iter_next(it, &rec, &e), 0);
	assert_int_equal(nb_audit_iter_wait(it, 50, &e), 0); /* nothing new */

	struct nb_audit *log = NULL;
	assert_int_equal(nb_audit_open(dir, KEY, NULL, &log, &e), 0);
	assert_int_equal(nb_audit_append(log, "agent-x", "net.connect", "evil.example:443",
					 NB_AUDIT_DENIED, "not allowed", NULL, NULL, &e),
			 0);
	assert_int_equal(nb_audit_iter_wait(it, 2000, &e), 1);
	assert_int_equal(nb_audit_iter_next(it, &rec, &e), 1);
	assert_int_equal(rec.seq, 4);
	assert_string_equal(rec.actor, "agent-x");
	assert_string_equal(rec.object, "evil.example:443");
	assert_int_equal(nb_audit_close(log, &e), 0);

	/* A partial line while following is "not yet", not an error. */
	_cleanup_free_ char *lp = path_in(dir, NB_AUDIT_LOG_NAME);
	spit(lp, "{\"act", 5, "a");
	assert_int_equal(nb_audit_iter_next(it, &rec, &e), 0);
	nb_audit_iter_free(it);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_append_reopen_verify),
		T(test_hash_definition),
		T(test_chain_check_api),
		T(test_edit_fields),
		T(test_edit_hash),
		T(test_edit_and_rehash),
		T(test_delete_record),
		T(test_delete_first_record),
		T(test_swap_records),
		T(test_insert_forged),
		T(test_truncate_records),
		T(test_truncate_mid_line),
		T(test_append_without_key),
		T(test_forged_head),
		T(test_wrong_key),
		T(test_empty_and_missing),
		T(test_head_without_log),
		T(test_log_without_head),
		T(test_hostile_lines),
		T(test_second_writer),
		T(test_full_verify_on_open),
		T(test_insecure_log_refused),
		T(test_key_file),
		T(test_field_validation),
		T(test_line_at_limit),
		T(test_partial_last_line_and_recover),
		T(test_unsigned_tail_recover),
		T(test_recover_refuses_tampering),
		T(test_recover_without_log),
		T(test_batch_mode),
		T(test_live_verify),
		T(test_iter_filter),
		T(test_iter_follow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
