/*
 * audit.c: the hash-chained, HMAC-headed audit log (format in docs/AUDIT.md).
 *
 * Sections: small helpers (time, UTF-8, messages that are safe to print) - one record: parse and
 * check a line, hash it - the head: MAC, read, atomic write - the key file - a streaming line
 * reader with a 64 KiB cap - the writer (open, append, flush, close) - verify - the iterator
 * (filter, follow) - crash recovery.
 *
 * Everything read from a log is hostile input: lines are capped, JSON is parsed by jansson with
 * duplicate keys refused, every field is checked for type and size, and no byte of a log is ever
 * copied raw into an error message (a log line could carry terminal escapes).
 */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "cleanup.h"

#define TIME_LEN 27 /* "2024-05-01T12:34:56.123456Z" */
#define HEAD_MAX 512
#define HEAD_TMP_NAME "audit.head.tmp"
#define LIVE_POLL_MS 20
/* Hashes of the most recent records a walk remembers, for a head re-read later (LIVE verify). */
#define HASH_RING 1024
#define RECOVER_ACTOR "nullbox-audit"

static const char *const verdict_names[] = { "allowed", "denied", "deferred" };

/* ---- small helpers ---- */

const char *
nb_audit_verdict_name(enum nb_audit_verdict v)
{
	if ((unsigned)v >= NB_ARRAY_SIZE(verdict_names))
		return NULL;
	return verdict_names[v];
}

int
nb_audit_verdict_parse(const char *s, enum nb_audit_verdict *out, struct nb_err *e)
{
	for (size_t i = 0; s && i < NB_ARRAY_SIZE(verdict_names); i++) {
		if (strcmp(s, verdict_names[i]) == 0) {
			*out = (enum nb_audit_verdict)i;
			return 0;
		}
	}
	return nb_err_set(e, EINVAL, "audit: verdict must be allowed, denied or deferred");
}

void
nb_audit_genesis(uint8_t out[NB_SHA256_LEN])
{
	/* nb_sha256 only fails if libcrypto cannot do SHA-256 at all; then nothing here works. */
	if (nb_sha256(NB_AUDIT_GENESIS_INPUT, strlen(NB_AUDIT_GENESIS_INPUT), out) < 0)
		abort();
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int
now_rfc3339(char out[TIME_LEN + 1], struct nb_err *e)
{
	struct timespec ts;
	struct tm tm;
	if (clock_gettime(CLOCK_REALTIME, &ts) < 0 || !gmtime_r(&ts.tv_sec, &tm))
		return nb_err_setp(e, errno ? errno : EINVAL, "audit: reading the clock");
	int n = snprintf(out, TIME_LEN + 1, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000);
	if (n != TIME_LEN)
		return nb_err_set(e, ERANGE, "audit: the clock is outside years 0000-9999");
	return 0;
}

static bool
digits(const char *s, size_t n, int lo, int hi)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	return v >= lo && v <= hi;
}

/* Exactly "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" with fields in range (second 60: leap seconds). */
static bool
time_valid(const char *s, size_t n)
{
	return n == TIME_LEN && digits(s, 4, 0, 9999) && s[4] == '-' && digits(s + 5, 2, 1, 12) &&
	       s[7] == '-' && digits(s + 8, 2, 1, 31) && s[10] == 'T' && digits(s + 11, 2, 0, 23) &&
	       s[13] == ':' && digits(s + 14, 2, 0, 59) && s[16] == ':' &&
	       digits(s + 17, 2, 0, 60) && s[19] == '.' && digits(s + 20, 6, 0, 999999) &&
	       s[26] == 'Z';
}

/* Strict UTF-8, as RFC 3629 and jansson have it: no overlongs, no surrogates, <= U+10FFFF. */
static bool
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i], cp, min;
		size_t k;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			k = 1, cp = c & 0x1F, min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			k = 2, cp = c & 0x0F, min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			k = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += k + 1;
	}
	return true;
}

/*
 * What is wrong with a top-level text field, or NULL. Control characters are refused because
 * these fields are shown to people by `nullctl audit`: a reason holding "\x1b]..." must not be
 * able to rewrite the operator's terminal or fake a line of output.
 */
static const char *
text_problem(const char *s, size_t n)
{
	if (n == 0)
		return "must not be empty";
	if (n > NB_AUDIT_FIELD_MAX)
		return "longer than 4096 bytes";
	if (!utf8_valid((const unsigned char *)s, n))
		return "not valid UTF-8";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7F ||
		    (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
		     (unsigned char)s[i + 1] <= 0x9F))
			return "control characters are not allowed";
	}
	return NULL;
}

/*
 * What is wrong with a detail value at nesting @depth (the detail object is 1), or NULL.
 * U+0000 is refused because jansson (and other parsers) refuse it on the way back in, so such a
 * record could be written but never verified. Reals are refused by the canonical form.
 */
static const char *
detail_problem(json_t *v, int depth)
{
	const char *k;
	json_t *c;
	size_t i;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if (depth > NB_AUDIT_DETAIL_DEPTH_MAX)
			return "nested too deeply";
		json_object_foreach(v, k, c)
		{
			if (!utf8_valid((const unsigned char *)k, strlen(k)))
				return "a key is not valid UTF-8";
			const char *p = detail_problem(c, depth + 1);
			if (p)
				return p;
		}
		return NULL;
	case JSON_ARRAY:
		if (depth > NB_AUDIT_DETAIL_DEPTH_MAX)
			return "nested too deeply";
		json_array_foreach(v, i, c)
		{
			const char *p = detail_problem(c, depth + 1);
			if (p)
				return p;
		}
		return NULL;
	case JSON_STRING:
		if (strlen(json_string_value(v)) != json_string_length(v))
			return "U+0000 in a string";
		if (!utf8_valid((const unsigned char *)json_string_value(v), json_string_length(v)))
			return "a string is not valid UTF-8";
		return NULL;
	case JSON_REAL:
		return "floating point numbers are not allowed";
	default:
		return NULL;
	}
}

/* Copies at most 40 bytes of @s into @out, printable ASCII only, so a message stays inert. */
static void
inert(char out[48], const char *s)
{
	size_t j = 0;
	for (size_t i = 0; s[i] && j < 40; i++)
		out[j++] = (s[i] >= 0x20 && s[i] < 0x7F) ? s[i] : '?';
	if (s[0] && strlen(s) > 40) {
		memcpy(out + j, "...", 3);
		j += 3;
	}
	out[j] = '\0';
}

static bool
hex_decode(const char *s, size_t n, uint8_t *out, size_t outlen)
{
	if (n != 2 * outlen)
		return false;
	for (size_t i = 0; i < n; i++) {
		int v;
		if (s[i] >= '0' && s[i] <= '9')
			v = s[i] - '0';
		else if (s[i] >= 'a' && s[i] <= 'f')
			v = s[i] - 'a' + 10;
		else
			return false; /* upper case is refused: there is one spelling of a hash */
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return true;
}

static int
write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			return -EIO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* ---- one record ---- */

enum field {
	F_ACTION,
	F_ACTOR,
	F_DETAIL,
	F_HASH,
	F_OBJECT,
	F_PREV,
	F_REASON,
	F_SEQ,
	F_TIME,
	F_VERDICT,
	F_N,
};
static const char *const field_names[F_N] = { "action", "actor",  "detail", "hash", "object",
					      "prev",	"reason", "seq",    "time", "verdict" };

/* A parsed record. The strings point into @j. */
struct rec {
	json_t *j;
	uint64_t seq;
	const char *time, *actor, *action, *object, *reason;
	enum nb_audit_verdict verdict;
	json_t *detail;
	uint8_t prev[NB_SHA256_LEN], hash[NB_SHA256_LEN];
	char prev_hex[NB_SHA256_HEX_LEN + 1], hash_hex[NB_SHA256_HEX_LEN + 1];
};

static void
rec_clear(struct rec *r)
{
	if (r->j)
		json_decref(r->j);
	memset(r, 0, sizeof(*r));
}

/* hash = SHA-256(@canon ‖ @prev): the record's canonical form without "hash", then 32 bytes. */
static int
record_hash(const char *canon, size_t len, const uint8_t prev[NB_SHA256_LEN],
	    uint8_t out[NB_SHA256_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
		 EVP_DigestUpdate(ctx, canon, len) == 1 &&
		 EVP_DigestUpdate(ctx, prev, NB_SHA256_LEN) == 1 &&
		 EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == NB_SHA256_LEN;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -EIO;
}

static int
get_text(json_t *j, enum field f, const char **out, struct nb_err *e)
{
	json_t *v = json_object_get(j, field_names[f]);
	if (!json_is_string(v))
		return nb_err_set(e, EBADMSG, "field \"%s\": expected a string", field_names[f]);
	const char *p = text_problem(json_string_value(v), json_string_length(v));
	if (p)
		return nb_err_set(e, EBADMSG, "field \"%s\": %s", field_names[f], p);
	*out = json_string_value(v);
	return 0;
}

static int
get_hash(json_t *j, enum field f, uint8_t out[NB_SHA256_LEN], char hex[NB_SHA256_HEX_LEN + 1],
	 struct nb_err *e)
{
	json_t *v = json_object_get(j, field_names[f]);
	if (!json_is_string(v) ||
	    !hex_decode(json_string_value(v), json_string_length(v), out, NB_SHA256_LEN))
		return nb_err_set(e, EBADMSG, "field \"%s\": expected 64 lower-case hex digits",
				  field_names[f]);
	memcpy(hex, json_string_value(v), NB_SHA256_HEX_LEN + 1);
	return 0;
}

/* Checks the fields of the parsed object r->j and fills @r. Returns 0 or -EBADMSG with @e set. */
static int
rec_fields(struct rec *r, struct nb_err *e)
{
	if (!json_is_object(r->j))
		return nb_err_set(e, EBADMSG, "not a JSON object");
	const char *k;
	json_t *v;
	json_object_foreach(r->j, k, v)
	{
		size_t f = 0;
		while (f < F_N && strcmp(k, field_names[f]) != 0)
			f++;
		if (f == F_N) {
			char name[48];
			inert(name, k);
			return nb_err_set(e, EBADMSG, "unexpected field \"%s\"", name);
		}
	}
	for (size_t f = 0; f < F_N; f++) {
		if (f != F_DETAIL && !json_object_get(r->j, field_names[f]))
			return nb_err_set(e, EBADMSG, "missing field \"%s\"", field_names[f]);
	}
	v = json_object_get(r->j, "seq");
	if (!json_is_integer(v) || json_integer_value(v) < 1)
		return nb_err_set(e, EBADMSG, "field \"seq\": expected a positive integer");
	r->seq = (uint64_t)json_integer_value(v);
	v = json_object_get(r->j, "time");
	if (!json_is_string(v) || !time_valid(json_string_value(v), json_string_length(v)))
		return nb_err_set(e, EBADMSG,
				  "field \"time\": expected RFC 3339 UTC with microseconds, "
				  "YYYY-MM-DDTHH:MM:SS.uuuuuuZ");
	r->time = json_string_value(v);
	int rc;
	if ((rc = get_text(r->j, F_ACTOR, &r->actor, e)) < 0 ||
	    (rc = get_text(r->j, F_ACTION, &r->action, e)) < 0 ||
	    (rc = get_text(r->j, F_OBJECT, &r->object, e)) < 0 ||
	    (rc = get_text(r->j, F_REASON, &r->reason, e)) < 0)
		return rc;
	v = json_object_get(r->j, "verdict");
	if (!json_is_string(v) ||
	    nb_audit_verdict_parse(json_string_value(v), &r->verdict, NULL) < 0)
		return nb_err_set(
			e, EBADMSG,
			"field \"verdict\": expected \"allowed\", \"denied\" or \"deferred\"");
	r->detail = json_object_get(r->j, "detail");
	if (r->detail) {
		const char *p = json_is_object(r->detail) ? detail_problem(r->detail, 1)
							  : "expected an object";
		if (p)
			return nb_err_set(e, EBADMSG, "field \"detail\": %s", p);
	}
	if ((rc = get_hash(r->j, F_PREV, r->prev, r->prev_hex, e)) < 0 ||
	    (rc = get_hash(r->j, F_HASH, r->hash, r->hash_hex, e)) < 0)
		return rc;
	return 0;
}

/*
 * Checks that @line is the canonical form of r->j and that the record's hash recomputes from its
 * own prev. Removes "hash" from r->j (its value is kept in r->hash_hex).
 */
static int
rec_canonical_hash(struct rec *r, const char *line, size_t len, struct nb_err *e)
{
	struct nb_err ce = { 0 };
	_cleanup_free_ char *full = NULL;
	size_t full_len = 0;
	/* One spelling per record, so the stored bytes are exactly what was hashed and signed. */
	if (nb_json_canonical(r->j, &full, &full_len, &ce) < 0 || full_len != len ||
	    memcmp(full, line, len) != 0)
		return nb_err_set(e, EBADMSG,
				  "not in canonical form (re-serialised or hand-edited?)");
	json_object_del(r->j, "hash");
	_cleanup_free_ char *body = NULL;
	size_t body_len = 0;
	uint8_t want[NB_SHA256_LEN];
	if (nb_json_canonical(r->j, &body, &body_len, &ce) < 0 ||
	    record_hash(body, body_len, r->prev, want) < 0)
		return nb_err_set(e, EIO, "hashing failed");
	if (memcmp(want, r->hash, NB_SHA256_LEN) != 0)
		return nb_err_set(e, EBADMSG, "hash mismatch (edited?)");
	return 0;
}

/*
 * Parses @line (@len bytes, no '\n') and checks it on its own: JSON, exactly the expected fields
 * with their types and limits, canonical form, and a hash that recomputes from the record's own
 * prev. The links to the record before (seq, prev) are the caller's. Returns 0 with @r filled
 * (free with rec_clear), or -EBADMSG (-EIO if hashing fails) with @e set to the reason, without
 * a "record N: " prefix; @r is then empty.
 */
static int
rec_parse(const char *line, size_t len, struct rec *r, struct nb_err *e)
{
	memset(r, 0, sizeof(*r));
	json_error_t je;
	/* Duplicate keys are refused: two verifiers must never read one line two ways. */
	r->j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (!r->j) {
		char why[48];
		inert(why, je.text);
		return nb_err_set(e, EBADMSG, "not valid JSON (column %d: %s)", je.column, why);
	}
	int rc = rec_fields(r, e);
	if (rc == 0)
		rc = rec_canonical_hash(r, line, len, e);
	if (rc < 0)
		rec_clear(r);
	return rc;
}

void
nb_audit_chain_init(struct nb_audit_chain *c)
{
	c->seq = 0;
	nb_audit_genesis(c->hash);
}

/* nb_audit_chain_check(), keeping the parsed record in @r for the caller (rec_clear it). */
static int
chain_check_rec(struct nb_audit_chain *c, const char *line, size_t len, struct rec *r,
		struct nb_err *e)
{
	uint64_t n = c->seq + 1;
	memset(r, 0, sizeof(*r));
	if (len >= NB_AUDIT_LINE_MAX)
		return nb_err_set(e, EBADMSG,
				  "record %" PRIu64 ": line longer than %d bytes (not a record)", n,
				  NB_AUDIT_LINE_MAX - 1);
	int rc = rec_parse(line, len, r, e);
	if (rc < 0)
		return nb_err_prefix(e, "record %" PRIu64, n);
	if (r->seq != n) {
		rc = nb_err_set(e, EBADMSG,
				"record %" PRIu64 ": seq %" PRIu64 ", expected %" PRIu64
				" (deleted or reordered?)",
				n, r->seq, n);
	} else if (memcmp(r->prev, c->hash, NB_SHA256_LEN) != 0) {
		if (n == 1)
			rc = nb_err_set(e, EBADMSG,
					"record 1: prev is not the genesis hash (records before "
					"it deleted?)");
		else
			rc = nb_err_set(e, EBADMSG,
					"record %" PRIu64 ": prev does not match the hash of "
					"record %" PRIu64 " (a record replaced or inserted?)",
					n, n - 1);
	} else {
		c->seq = n;
		memcpy(c->hash, r->hash, NB_SHA256_LEN);
		return 0;
	}
	rec_clear(r);
	return rc;
}

int
nb_audit_chain_check(struct nb_audit_chain *c, const char *line, size_t len, struct nb_err *e)
{
	struct rec r;
	int rc = chain_check_rec(c, line, len, &r, e);
	if (rc == 0)
		rec_clear(&r);
	return rc;
}

/* ---- the head ---- */

struct head {
	uint64_t seq;
	uint8_t hash[NB_SHA256_LEN];
	uint8_t mac[NB_SHA256_LEN];
	char hash_hex[NB_SHA256_HEX_LEN + 1];
};

/* mac = HMAC-SHA256(key, "SEQ:HASH"), SEQ in decimal, HASH in lower-case hex. */
static int
head_mac(const uint8_t key[NB_AUDIT_KEY_LEN], uint64_t seq, const char *hash_hex,
	 uint8_t out[NB_SHA256_LEN])
{
	char msg[96];
	int n = snprintf(msg, sizeof(msg), "%" PRIu64 ":%s", seq, hash_hex);
	unsigned int len = 0;
	if (!HMAC(EVP_sha256(), key, NB_AUDIT_KEY_LEN, (const unsigned char *)msg, (size_t)n, out,
		  &len) ||
	    len != NB_SHA256_LEN)
		return -EIO;
	return 0;
}

/* True when @h carries a valid MAC under @key. Compared in constant time. */
static bool
head_mac_ok(const uint8_t key[NB_AUDIT_KEY_LEN], const struct head *h)
{
	uint8_t want[NB_SHA256_LEN];
	if (head_mac(key, h->seq, h->hash_hex, want) < 0)
		return false;
	return CRYPTO_memcmp(want, h->mac, NB_SHA256_LEN) == 0;
}

/*
 * Reads audit.head from @dirfd. Returns 1 with @h filled, 0 if there is none, -EBADMSG with @e
 * set if it cannot be parsed ("head: ..."), or another negative errno.
 */
static int
head_read(int dirfd, struct head *h, struct nb_err *e)
{
	memset(h, 0, sizeof(*h));
	/* O_NONBLOCK: a FIFO planted as the head must not hang a verifier before fstat(). */
	_cleanup_close_ int fd =
		openat(dirfd, NB_AUDIT_HEAD_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return nb_err_setp(e, errno, "head: open %s", NB_AUDIT_HEAD_NAME);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return nb_err_setp(e, errno, "head: fstat");
	if (!S_ISREG(st.st_mode))
		return nb_err_set(e, EBADMSG, "head: %s is not a regular file (head file forged?)",
				  NB_AUDIT_HEAD_NAME);
	char buf[HEAD_MAX];
	size_t n = 0;
	for (;;) {
		ssize_t k = read(fd, buf + n, sizeof(buf) - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return nb_err_setp(e, errno, "head: read");
		if (k == 0)
			break;
		n += (size_t)k;
		if (n == sizeof(buf))
			return nb_err_set(e, EBADMSG,
					  "head: longer than %d bytes (head file forged?)",
					  HEAD_MAX);
	}
	if (n == 0 || buf[n - 1] != '\n')
		return nb_err_set(e, EBADMSG,
				  "head: empty or incomplete (no newline; head file damaged?)");
	json_error_t je;
	_cleanup_json_ json_t *j = json_loadb(buf, n - 1, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(j) || json_object_size(j) != 3)
		return nb_err_set(e, EBADMSG,
				  "head: expected {\"hash\",\"mac\",\"seq\"} (head file forged?)");
	json_t *seq = json_object_get(j, "seq");
	json_t *hash = json_object_get(j, "hash");
	json_t *mac = json_object_get(j, "mac");
	if (!json_is_integer(seq) || json_integer_value(seq) < 0 || !json_is_string(hash) ||
	    !json_is_string(mac) ||
	    !hex_decode(json_string_value(hash), json_string_length(hash), h->hash,
			NB_SHA256_LEN) ||
	    !hex_decode(json_string_value(mac), json_string_length(mac), h->mac, NB_SHA256_LEN))
		return nb_err_set(e, EBADMSG,
				  "head: wrong field types (seq: integer >= 0, hash and mac: 64 "
				  "lower-case hex digits; head file forged?)");
	struct nb_err ce = { 0 };
	_cleanup_free_ char *canon = NULL;
	size_t canon_len = 0;
	if (nb_json_canonical(j, &canon, &canon_len, &ce) < 0 || canon_len != n - 1 ||
	    memcmp(canon, buf, canon_len) != 0)
		return nb_err_set(e, EBADMSG, "head: not in canonical form (head file edited?)");
	h->seq = (uint64_t)json_integer_value(seq);
	memcpy(h->hash_hex, json_string_value(hash), NB_SHA256_HEX_LEN + 1);
	return 1;
}

/*
 * Replaces audit.head with one that signs (@seq, @hash): temp file, fsync, rename, fsync of the
 * directory, so after a crash the head is the old one or the new one, never a torn mix.
 */
static int
head_write(int dirfd, const uint8_t key[NB_AUDIT_KEY_LEN], uint64_t seq,
	   const uint8_t hash[NB_SHA256_LEN], struct nb_err *e)
{
	char hex[NB_SHA256_HEX_LEN + 1], machex[NB_SHA256_HEX_LEN + 1];
	uint8_t mac[NB_SHA256_LEN];
	nb_hex(hash, NB_SHA256_LEN, hex);
	if (head_mac(key, seq, hex, mac) < 0)
		return nb_err_set(e, EIO, "audit: head: HMAC failed");
	nb_hex(mac, NB_SHA256_LEN, machex);
	/* The canonical form written directly: keys in byte order, no spaces. */
	char text[HEAD_MAX];
	int n = snprintf(text, sizeof(text),
			 "{\"hash\":\"%s\",\"mac\":\"%s\",\"seq\":%" PRIu64 "}\n", hex, machex,
			 seq);
	/*
	 * Only the writer (holding the log's lock) gets here, so a fixed temp name is safe. A stale
	 * one is removed and the new one created O_EXCL|O_NOFOLLOW, so a planted symlink cannot
	 * redirect the write.
	 */
	if (unlinkat(dirfd, HEAD_TMP_NAME, 0) < 0 && errno != ENOENT)
		return nb_err_setp(e, errno, "audit: head: unlink stale %s", HEAD_TMP_NAME);
	_cleanup_close_ int fd = openat(dirfd, HEAD_TMP_NAME,
					O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return nb_err_setp(e, errno, "audit: head: create %s", HEAD_TMP_NAME);
	int r = write_all(fd, text, (size_t)n);
	if (r < 0)
		return nb_err_setp(e, -r, "audit: head: write %s", HEAD_TMP_NAME);
	if (fsync(fd) < 0)
		return nb_err_setp(e, errno, "audit: head: fsync %s", HEAD_TMP_NAME);
	if (close(steal_fd(&fd)) < 0)
		return nb_err_setp(e, errno, "audit: head: close %s", HEAD_TMP_NAME);
	if (renameat(dirfd, HEAD_TMP_NAME, dirfd, NB_AUDIT_HEAD_NAME) < 0)
		return nb_err_setp(e, errno, "audit: head: rename to %s", NB_AUDIT_HEAD_NAME);
	if (fsync(dirfd) < 0)
		return nb_err_setp(e, errno, "audit: head: fsync of the directory");
	return 0;
}

/* ---- the key file ---- */

static int
key_check_fd(int fd, const char *path, struct nb_err *e)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return nb_err_setp(e, errno, "audit key %s: fstat", path);
	if (!S_ISREG(st.st_mode))
		return nb_err_set(e, EPERM, "audit key %s: not a regular file", path);
	/* Whoever else can read the key can sign a forged head; whoever can write it, replace it.
	 */
	if (st.st_uid != geteuid())
		return nb_err_set(e, EPERM, "audit key %s is owned by uid %u, not %u", path,
				  (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & 077)
		return nb_err_set(e, EPERM,
				  "audit key %s has mode %04o: it must not be accessible to group "
				  "or others (chmod 600)",
				  path, (unsigned)(st.st_mode & 07777));
	if (st.st_size != NB_AUDIT_KEY_LEN)
		return nb_err_set(e, EINVAL, "audit key %s is %lld bytes, expected %d", path,
				  (long long)st.st_size, NB_AUDIT_KEY_LEN);
	return 0;
}

static int
key_read(const char *path, uint8_t key[NB_AUDIT_KEY_LEN], struct nb_err *e)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		int err = errno;
		if (err == ELOOP)
			return nb_err_set(e, EPERM, "audit key %s is a symlink: refused", path);
		return nb_err_setp(e, err, "audit key %s", path);
	}
	int r = key_check_fd(fd, path, e);
	if (r < 0)
		return r;
	ssize_t k;
	do
		k = read(fd, key, NB_AUDIT_KEY_LEN);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return nb_err_setp(e, errno, "audit key %s: read", path);
	if (k != NB_AUDIT_KEY_LEN)
		return nb_err_set(e, EINVAL, "audit key %s: short read", path);
	return 0;
}

static int
key_create(const char *path, struct nb_err *e)
{
	_cleanup_free_ char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0) {
		tmp = NULL;
		return nb_err_set(e, ENOMEM, "audit key %s: out of memory", path);
	}
	_cleanup_free_ char *dir = strdup(path);
	if (!dir)
		return nb_err_set(e, ENOMEM, "audit key %s: out of memory", path);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");

	uint8_t key[NB_AUDIT_KEY_LEN];
	size_t got = 0;
	while (got < sizeof(key)) {
		ssize_t k = getrandom(key + got, sizeof(key) - got, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return nb_err_setp(e, errno, "audit key %s: getrandom", path);
		got += (size_t)k;
	}
	(void)unlink(tmp);
	_cleanup_close_ int dfd = -1;
	_cleanup_close_ int fd =
		open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int r = 0;
	if (fd < 0) {
		r = nb_err_setp(e, errno, "audit key %s: create", tmp);
		goto out;
	}
	/* 0600 whatever the umask says. */
	if (fchmod(fd, 0600) < 0 || (r = write_all(fd, key, sizeof(key))) < 0 || fsync(fd) < 0) {
		r = nb_err_setp(e, r < 0 ? -r : errno, "audit key %s: write", tmp);
		goto out_unlink;
	}
	/* link(), not rename(): if another process created the key meanwhile, keep theirs. */
	if (link(tmp, path) < 0 && errno != EEXIST) {
		r = nb_err_setp(e, errno, "audit key %s: link", path);
		goto out_unlink;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		(void)fsync(dfd);
out_unlink:
	(void)unlink(tmp);
out:
	OPENSSL_cleanse(key, sizeof(key));
	return r;
}

int
nb_audit_key_load(const char *path, unsigned flags, uint8_t key[NB_AUDIT_KEY_LEN], struct nb_err *e)
{
	int r = key_read(path, key, e);
	if (r == -ENOENT && (flags & NB_AUDIT_KEY_CREATE)) {
		r = key_create(path, e);
		if (r == 0)
			r = key_read(path, key, e);
	}
	if (r < 0)
		OPENSSL_cleanse(key, NB_AUDIT_KEY_LEN);
	return r;
}

/* ---- a streaming line reader ---- */

struct lr {
	int fd;
	char *buf; /* NB_AUDIT_LINE_MAX bytes */
	size_t beg, end;
	uint64_t off; /* file offset of buf[beg] */
};

static int
lr_init(struct lr *r, int fd)
{
	r->fd = fd;
	r->beg = r->end = 0;
	r->off = 0;
	r->buf = malloc(NB_AUDIT_LINE_MAX);
	return r->buf ? 0 : -ENOMEM;
}

static void
lr_free(struct lr *r)
{
	free(r->buf);
	r->buf = NULL;
}

/*
 * The next line. Returns 1 with *@line and *@len (no '\n'; valid until the next call), 0 at the end
 * with nothing pending, -EBADMSG at the end with a partial line pending (lr_pending() bytes, kept:
 * a later call reads on, for following), -E2BIG for a line longer than the cap, or -errno.
 */
static int
lr_next(struct lr *r, const char **line, size_t *len)
{
	for (;;) {
		char *nl = memchr(r->buf + r->beg, '\n', r->end - r->beg);
		if (nl) {
			*line = r->buf + r->beg;
			*len = (size_t)(nl - *line);
			r->beg += *len + 1;
			r->off += *len + 1;
			return 1;
		}
		if (r->end - r->beg >= NB_AUDIT_LINE_MAX)
			return -E2BIG;
		if (r->beg > 0) {
			memmove(r->buf, r->buf + r->beg, r->end - r->beg);
			r->end -= r->beg;
			r->beg = 0;
		}
		ssize_t k = read(r->fd, r->buf + r->end, NB_AUDIT_LINE_MAX - r->end);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			return r->end > r->beg ? -EBADMSG : 0;
		r->end += (size_t)k;
	}
}

static size_t
lr_pending(const struct lr *r)
{
	return r->end - r->beg;
}

/* Opens @path's directory and names the log in it (see nb_audit_verify()). */
static int
resolve(const char *path, int *dirfd, char **logname, struct nb_err *e)
{
	struct stat st;
	*dirfd = -1;
	*logname = NULL;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		*dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (*dirfd < 0)
			return nb_err_setp(e, errno, "audit: %s", path);
		*logname = strdup(NB_AUDIT_LOG_NAME);
	} else {
		const char *slash = strrchr(path, '/');
		_cleanup_free_ char *dir =
			slash ? strndup(path, (size_t)(slash - path) + 1) : strdup(".");
		if (!dir || (slash && !slash[1]))
			return nb_err_set(e, dir ? EINVAL : ENOMEM, "audit: %s: not a log file",
					  path);
		*dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (*dirfd < 0)
			return nb_err_setp(e, errno, "audit: %s", dir);
		*logname = strdup(slash ? slash + 1 : path);
	}
	if (!*logname) {
		close(*dirfd);
		*dirfd = -1;
		return nb_err_set(e, ENOMEM, "audit: out of memory");
	}
	return 0;
}

/* Opens the log for reading. Returns the fd, -ENOENT if there is none, or -errno with @e set. */
static int
open_log_ro(int dirfd, const char *name, struct nb_err *e)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		return nb_err_setp(e, errno, "audit: open %s", name);
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return nb_err_set(e, EINVAL, "audit: %s is not a regular file", name);
	}
	return fd;
}

/* ---- the writer ---- */

struct nb_audit {
	char *dir;
	int dirfd;
	int fd; /* audit.log: O_RDWR | O_APPEND, flock'ed exclusively */
	uint8_t key[NB_AUDIT_KEY_LEN];
	enum nb_audit_sync sync;
	unsigned batch_ms;

	uint64_t seq;		     /* last record written */
	uint8_t hash[NB_SHA256_LEN]; /* its hash */
	uint64_t size;		     /* bytes in the log, as this writer knows them */
	uint64_t synced_seq;	     /* last record fdatasync'ed */
	uint64_t head_seq;	     /* last record the head signs */
	uint64_t pending_since;	     /* mono_ms() of the oldest record not yet signed */

	bool broken; /* appends refused after a failure that leaves durability unknown */
	char broken_why[sizeof(((struct nb_err *)0)->msg)];
};

#define REFUSE_HINT "run `nullctl audit verify`; see docs/AUDIT.md, recovery"

/*
 * Reads the head and the last record of an already locked log, and sets the writer's position.
 * Refuses (-EBADMSG) anything but a log whose last complete record the head signs.
 */
static int
load_tail(struct nb_audit *log, struct nb_err *e)
{
	const char *d = log->dir;
	struct stat st;
	if (fstat(log->fd, &st) < 0)
		return nb_err_setp(e, errno, "audit: %s/%s: fstat", d, NB_AUDIT_LOG_NAME);
	struct head h;
	int hr = head_read(log->dirfd, &h, e);
	if (hr < 0)
		return nb_err_prefix(e, "audit: %s: refusing to append (" REFUSE_HINT ")", d);
	if (hr > 0 && !head_mac_ok(log->key, &h))
		return nb_err_set(
			e, EBADMSG,
			"audit: %s: head MAC invalid (head file forged, or the wrong key?); "
			"refusing to append (" REFUSE_HINT ")",
			d);
	log->size = (uint64_t)st.st_size;
	if (st.st_size == 0) {
		uint8_t genesis[NB_SHA256_LEN];
		nb_audit_genesis(genesis);
		if (hr > 0 && (h.seq != 0 || memcmp(h.hash, genesis, NB_SHA256_LEN) != 0))
			return nb_err_set(
				e, EBADMSG,
				"audit: %s: log ends at record 0 but the signed head says "
				"%" PRIu64 " (truncated?); refusing to append (" REFUSE_HINT ")",
				d, h.seq);
		log->seq = log->synced_seq = log->head_seq = 0;
		memcpy(log->hash, genesis, NB_SHA256_LEN);
		if (hr == 0)
			return head_write(log->dirfd, log->key, 0, genesis, e);
		return 0;
	}
	if (hr == 0)
		return nb_err_set(
			e, EBADMSG,
			"audit: %s: the log has records but there is no signed head (head "
			"deleted?); refusing to append (" REFUSE_HINT ")",
			d);

	/* The longest line, plus one byte for the '\n' that ends the line before it. */
	size_t want = st.st_size <= NB_AUDIT_LINE_MAX ? (size_t)st.st_size : NB_AUDIT_LINE_MAX + 1;
	off_t from = st.st_size - (off_t)want;
	_cleanup_free_ char *buf = malloc(want);
	if (!buf)
		return nb_err_set(e, ENOMEM, "audit: out of memory");
	size_t got = 0;
	while (got < want) {
		ssize_t k = pread(log->fd, buf + got, want - got, from + (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return nb_err_setp(e, k < 0 ? errno : EIO, "audit: %s/%s: read", d,
					   NB_AUDIT_LOG_NAME);
		got += (size_t)k;
	}
	if (buf[want - 1] != '\n')
		return nb_err_set(e, EBADMSG,
				  "audit: %s: the last record is incomplete (no newline: a crash "
				  "during an append?); refusing to append (" REFUSE_HINT ")",
				  d);
	size_t start = want - 1;
	while (start > 0 && buf[start - 1] != '\n')
		start--;
	if (start == 0 && from > 0)
		return nb_err_set(e, EBADMSG,
				  "audit: %s: the last line is longer than %d bytes; refusing to "
				  "append (" REFUSE_HINT ")",
				  d, NB_AUDIT_LINE_MAX - 1);
	struct rec r;
	if (rec_parse(buf + start, want - 1 - start, &r, e) < 0)
		return nb_err_prefix(
			e, "audit: %s: last record: refusing to append (" REFUSE_HINT ")", d);
	uint64_t seq = r.seq;
	uint8_t hash[NB_SHA256_LEN];
	memcpy(hash, r.hash, sizeof(hash));
	rec_clear(&r);
	if (h.seq < seq)
		return nb_err_set(
			e, EBADMSG,
			"audit: %s: records after the signed head: the log ends at record "
			"%" PRIu64 " but the head signs %" PRIu64
			" (appended without the key, or a crash before the head was "
			"updated?); refusing to append (" REFUSE_HINT ")",
			d, seq, h.seq);
	if (h.seq > seq)
		return nb_err_set(e, EBADMSG,
				  "audit: %s: log ends at record %" PRIu64
				  " but the signed head says %" PRIu64
				  " (truncated?); refusing to append (" REFUSE_HINT ")",
				  d, seq, h.seq);
	if (memcmp(h.hash, hash, NB_SHA256_LEN) != 0)
		return nb_err_set(e, EBADMSG,
				  "audit: %s: the signed head's hash for record %" PRIu64
				  " differs from the log's (log rewritten?); refusing to append "
				  "(" REFUSE_HINT ")",
				  d, seq);
	log->seq = log->synced_seq = log->head_seq = seq;
	memcpy(log->hash, hash, NB_SHA256_LEN);
	return 0;
}

/*
 * Opens and locks the log in @dir; with @create, creates it when neither log nor head exist yet
 * (else a missing log is -ENOENT).
 */
static int
writer_open_locked(const char *dir, const uint8_t key[NB_AUDIT_KEY_LEN],
		   const struct nb_audit_opts *opts, bool create, struct nb_audit **out,
		   struct nb_err *e)
{
	*out = NULL;
	struct nb_audit_opts dflt = { 0 };
	if (!opts)
		opts = &dflt;
	if (opts->sync != NB_AUDIT_SYNC_EVERY && opts->sync != NB_AUDIT_SYNC_BATCH)
		return nb_err_set(e, EINVAL, "audit: unknown sync policy %d", (int)opts->sync);
	if (opts->sync == NB_AUDIT_SYNC_BATCH && opts->batch_ms > 1000)
		return nb_err_set(e, EINVAL, "audit: batch_ms must be 1..1000 (got %u)",
				  opts->batch_ms);
	if (!key)
		return nb_err_set(e, EINVAL, "audit: no key");

	struct nb_audit *log = calloc(1, sizeof(*log));
	if (!log)
		return nb_err_set(e, ENOMEM, "audit: out of memory");
	log->fd = log->dirfd = -1;
	memcpy(log->key, key, NB_AUDIT_KEY_LEN);
	log->sync = opts->sync;
	log->batch_ms = opts->batch_ms ? opts->batch_ms : 100;
	int r;
	log->dir = strdup(dir);
	if (!log->dir) {
		r = nb_err_set(e, ENOMEM, "audit: out of memory");
		goto fail;
	}
	log->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (log->dirfd < 0) {
		r = nb_err_setp(e, errno, "audit: %s", dir);
		goto fail;
	}
	const int flags = O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
	log->fd = openat(log->dirfd, NB_AUDIT_LOG_NAME, flags);
	if (log->fd < 0 && errno == ENOENT && create) {
		/* A head without a log: the log was deleted (unless the head signs nothing). */
		struct head h;
		r = head_read(log->dirfd, &h, e);
		if (r < 0) {
			nb_err_prefix(e, "audit: %s: refusing to start a log (" REFUSE_HINT ")",
				      dir);
			goto fail;
		}
		if (r > 0 && (!head_mac_ok(log->key, &h) || h.seq > 0)) {
			r = nb_err_set(e, EBADMSG,
				       "audit: %s: there is no log but a head (log deleted, or a "
				       "forged head?); refusing to start a new log (" REFUSE_HINT
				       ")",
				       dir);
			goto fail;
		}
		log->fd = openat(log->dirfd, NB_AUDIT_LOG_NAME, flags | O_CREAT | O_EXCL, 0600);
		if (log->fd < 0 && errno == EEXIST)
			log->fd = openat(log->dirfd, NB_AUDIT_LOG_NAME, flags);
	}
	if (log->fd < 0) {
		r = nb_err_setp(e, errno, "audit: %s/%s", dir, NB_AUDIT_LOG_NAME);
		goto fail;
	}
	/* One writer: two would interleave seq numbers and fork the chain. */
	if (flock(log->fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			r = nb_err_set(e, EWOULDBLOCK,
				       "audit: %s/%s is locked by another writer (is nulld already "
				       "running?)",
				       dir, NB_AUDIT_LOG_NAME);
		else
			r = nb_err_setp(e, errno, "audit: %s/%s: flock", dir, NB_AUDIT_LOG_NAME);
		goto fail;
	}
	struct stat st;
	if (fstat(log->fd, &st) < 0) {
		r = nb_err_setp(e, errno, "audit: %s/%s: fstat", dir, NB_AUDIT_LOG_NAME);
		goto fail;
	}
	/* Anyone else who may write the log can append records that look like ours. */
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022)) {
		r = nb_err_set(e, EPERM,
			       "audit: %s/%s must be a regular file owned by uid %u and writable "
			       "only by it",
			       dir, NB_AUDIT_LOG_NAME, (unsigned)geteuid());
		goto fail;
	}
	*out = log;
	return 0;
fail:
	nb_audit_close(log, NULL);
	return r;
}

int
nb_audit_open(const char *dir, const uint8_t key[NB_AUDIT_KEY_LEN],
	      const struct nb_audit_opts *opts, struct nb_audit **out, struct nb_err *e)
{
	struct nb_audit *log;
	*out = NULL;
	int r = writer_open_locked(dir, key, opts, true, &log, e);
	if (r < 0)
		return r;
	r = load_tail(log, e);
	if (r == 0 && opts && opts->full_verify) {
		/* Under our lock nobody appends, so the files are taken as they are. */
		struct nb_audit_report rep;
		r = nb_audit_verify(dir, key, 0, &rep, e);
		if (r < 0)
			nb_err_prefix(e, "audit: %s: refusing to append (" REFUSE_HINT ")", dir);
	}
	if (r < 0) {
		nb_audit_close(log, NULL);
		return r;
	}
	*out = log;
	return 0;
}

static void
mark_broken(struct nb_audit *log, const struct nb_err *e)
{
	log->broken = true;
	snprintf(log->broken_why, sizeof(log->broken_why), "%s", e->msg);
}

/* fdatasync the records written, then sign the head over the last one. */
static int
sync_now(struct nb_audit *log, struct nb_err *e)
{
	if (log->synced_seq < log->seq) {
		if (fdatasync(log->fd) < 0) {
			/*
			 * After a failed fdatasync the kernel may already have dropped the dirty
			 * pages and cleared the error, so nothing written since the last good sync
			 * can be vouched for: stop appending rather than sign it.
			 */
			int r = nb_err_setp(e, errno,
					    "audit: %s/%s: fdatasync failed after record %" PRIu64
					    "; no further appends",
					    log->dir, NB_AUDIT_LOG_NAME, log->seq);
			mark_broken(log, e);
			return r;
		}
		log->synced_seq = log->seq;
	}
	if (log->head_seq < log->seq) {
		int r = head_write(log->dirfd, log->key, log->seq, log->hash, e);
		if (r < 0)
			return nb_err_prefix(e,
					     "audit: record %" PRIu64
					     " is in the log but the signed "
					     "head was not updated (retried at the next append or "
					     "flush)",
					     log->seq);
		log->head_seq = log->seq;
	}
	return 0;
}

int
nb_audit_append(struct nb_audit *log, const char *actor, const char *action, const char *object,
		enum nb_audit_verdict verdict, const char *reason, json_t *detail,
		uint64_t *seq_out, struct nb_err *e)
{
	if (seq_out)
		*seq_out = 0;
	if (log->broken)
		return nb_err_set(e, EBADFD, "audit: writer stopped after an earlier failure: %s",
				  log->broken_why);
	const char *names[] = { "actor", "action", "object", "reason" };
	const char *vals[] = { actor, action, object, reason };
	for (size_t i = 0; i < NB_ARRAY_SIZE(vals); i++) {
		const char *p = vals[i] ? text_problem(vals[i], strlen(vals[i])) : "missing";
		if (p)
			return nb_err_set(e, EINVAL, "audit: %s: %s", names[i], p);
	}
	const char *vname = nb_audit_verdict_name(verdict);
	if (!vname)
		return nb_err_set(e, EINVAL, "audit: verdict: unknown value %d", (int)verdict);
	if (detail) {
		const char *p = json_is_object(detail) ? detail_problem(detail, 1)
						       : "must be a JSON object";
		if (p)
			return nb_err_set(e, EINVAL, "audit: detail: %s", p);
	}
	char when[TIME_LEN + 1];
	int r = now_rfc3339(when, e);
	if (r < 0)
		return r;
	char prev_hex[NB_SHA256_HEX_LEN + 1];
	nb_hex(log->hash, NB_SHA256_LEN, prev_hex);
	if (log->seq >= (uint64_t)INT64_MAX)
		return nb_err_set(e, EOVERFLOW, "audit: seq would overflow");
	uint64_t seq = log->seq + 1;

	_cleanup_json_ json_t *j =
		json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "seq", (json_int_t)seq,
			  "time", when, "actor", actor, "action", action, "object", object,
			  "verdict", vname, "reason", reason, "prev", prev_hex);
	if (!j || (detail && json_object_set(j, "detail", detail) < 0))
		return nb_err_set(e, ENOMEM, "audit: out of memory");
	_cleanup_free_ char *body = NULL;
	size_t body_len = 0;
	r = nb_json_canonical(j, &body, &body_len, e);
	if (r < 0)
		return nb_err_prefix(e, "audit");
	uint8_t hash[NB_SHA256_LEN];
	if (record_hash(body, body_len, log->hash, hash) < 0)
		return nb_err_set(e, EIO, "audit: hashing failed");
	char hash_hex[NB_SHA256_HEX_LEN + 1];
	nb_hex(hash, NB_SHA256_LEN, hash_hex);
	if (json_object_set_new(j, "hash", json_string(hash_hex)) < 0)
		return nb_err_set(e, ENOMEM, "audit: out of memory");
	_cleanup_free_ char *line = NULL;
	size_t len = 0;
	r = nb_json_canonical(j, &line, &len, e);
	if (r < 0)
		return nb_err_prefix(e, "audit");
	if (len + 1 > NB_AUDIT_LINE_MAX)
		return nb_err_set(e, EINVAL, "audit: record is %zu bytes, the limit is %d", len + 1,
				  NB_AUDIT_LINE_MAX);
	line[len] = '\n'; /* replaces the NUL: the line goes out in one write(2) */

	ssize_t k;
	do
		k = write(log->fd, line, len + 1);
	while (k < 0 && errno == EINTR);
	if (k != (ssize_t)(len + 1)) {
		int err = k < 0 ? errno : ENOSPC;
		if (k > 0) {
			/*
			 * A short write (disk full) left part of this record in the log. It is our
			 * own, under our lock, so cut it off again, but only if the file is exactly
			 * as long as we think: otherwise someone else wrote to it and the bytes
			 * are evidence, not ours to remove.
			 */
			struct stat st;
			if (fstat(log->fd, &st) < 0 ||
			    (uint64_t)st.st_size != log->size + (uint64_t)k ||
			    ftruncate(log->fd, (off_t)log->size) < 0) {
				r = nb_err_setp(e, err,
						"audit: %s/%s: short write left a partial record "
						"%" PRIu64,
						log->dir, NB_AUDIT_LOG_NAME, seq);
				mark_broken(log, e);
				return r;
			}
		}
		return nb_err_setp(e, err, "audit: %s/%s: write of record %" PRIu64, log->dir,
				   NB_AUDIT_LOG_NAME, seq);
	}
	if (log->head_seq == log->seq)
		log->pending_since = mono_ms();
	log->seq = seq;
	log->size += len + 1;
	memcpy(log->hash, hash, NB_SHA256_LEN);
	if (seq_out)
		*seq_out = seq;
	if (log->sync == NB_AUDIT_SYNC_EVERY || nb_audit_flush_due(log) == 0)
		return sync_now(log, e);
	return 0;
}

int
nb_audit_flush(struct nb_audit *log, struct nb_err *e)
{
	if (log->broken)
		return nb_err_set(e, EBADFD, "audit: writer stopped after an earlier failure: %s",
				  log->broken_why);
	return sync_now(log, e);
}

long
nb_audit_flush_due(const struct nb_audit *log)
{
	if (log->sync != NB_AUDIT_SYNC_BATCH || log->head_seq == log->seq || log->broken)
		return -1;
	uint64_t now = mono_ms();
	uint64_t due = log->pending_since + log->batch_ms;
	return now >= due ? 0 : (long)(due - now);
}

uint64_t
nb_audit_seq(const struct nb_audit *log)
{
	return log->seq;
}

void
nb_audit_last_hash(const struct nb_audit *log, char out[NB_SHA256_HEX_LEN + 1])
{
	nb_hex(log->hash, NB_SHA256_LEN, out);
}

int
nb_audit_close(struct nb_audit *log, struct nb_err *e)
{
	if (!log)
		return 0;
	int r = 0;
	if (log->fd >= 0 && !log->broken && log->head_seq < log->seq)
		r = sync_now(log, e);
	OPENSSL_cleanse(log->key, sizeof(log->key));
	if (log->fd >= 0)
		close(log->fd); /* releases the flock */
	if (log->dirfd >= 0)
		close(log->dirfd);
	free(log->dir);
	free(log);
	return r;
}

/* ---- verify ---- */

struct walker {
	struct lr lr;
	struct nb_audit_chain chain;
	uint8_t ring[HASH_RING][NB_SHA256_LEN]; /* hash of record s at ring[s % HASH_RING] */
	uint64_t stop_at;			/* stop after this record (0: read to the end) */
};

/* The hash of record @seq if the walk still knows it. */
static bool
walker_hash_at(const struct walker *w, uint64_t seq, uint8_t out[NB_SHA256_LEN])
{
	if (seq == 0) {
		nb_audit_genesis(out);
		return true;
	}
	if (seq > w->chain.seq || w->chain.seq - seq >= HASH_RING)
		return false;
	memcpy(out, w->ring[seq % HASH_RING], NB_SHA256_LEN);
	return true;
}

static void
report_set(struct nb_audit_report *rep, enum nb_audit_problem p, uint64_t first_bad,
	   const struct nb_err *e)
{
	rep->problem = p;
	rep->first_bad = first_bad;
	snprintf(rep->msg, sizeof(rep->msg), "%s", e->msg);
}

/*
 * Reads records until the end (or w->stop_at). Returns 0 at a clean end, 1 at an end with a
 * partial line pending, -EBADMSG at a bad record (@rep filled, @e set), or -errno.
 */
static int
walk(struct walker *w, struct nb_audit_report *rep, struct nb_err *e)
{
	for (;;) {
		if (w->stop_at && w->chain.seq >= w->stop_at)
			return 0;
		const char *line;
		size_t len;
		int r = lr_next(&w->lr, &line, &len);
		if (r == 0)
			return 0;
		if (r == -EBADMSG)
			return 1;
		if (r == -E2BIG) {
			nb_err_set(e, EBADMSG,
				   "record %" PRIu64 ": line longer than %d bytes (not a record)",
				   w->chain.seq + 1, NB_AUDIT_LINE_MAX - 1);
			report_set(rep, NB_AUDIT_BAD_RECORD, w->chain.seq + 1, e);
			return -EBADMSG;
		}
		if (r < 0)
			return nb_err_setp(e, -r, "audit: read");
		r = nb_audit_chain_check(&w->chain, line, len, e);
		if (r == -EBADMSG) {
			report_set(rep, NB_AUDIT_BAD_RECORD, w->chain.seq + 1, e);
			return r;
		}
		if (r < 0)
			return r;
		memcpy(w->ring[w->chain.seq % HASH_RING], w->chain.hash, NB_SHA256_LEN);
		rep->records = w->chain.seq;
		nb_hex(w->chain.hash, NB_SHA256_LEN, rep->last_hash);
	}
}

static int
report_partial(struct walker *w, struct nb_audit_report *rep, struct nb_err *e)
{
	nb_err_set(e, EBADMSG,
		   "record %" PRIu64 ": incomplete last line (%zu bytes without a newline: a crash "
		   "during an append, or truncated mid-record?)",
		   w->chain.seq + 1, lr_pending(&w->lr));
	report_set(rep, NB_AUDIT_PARTIAL_LINE, w->chain.seq + 1, e);
	return -EBADMSG;
}

static int verify_fail(struct nb_audit_report *rep, enum nb_audit_problem p, uint64_t first_bad,
		       struct nb_err *e, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int
verify_fail(struct nb_audit_report *rep, enum nb_audit_problem p, uint64_t first_bad,
	    struct nb_err *e, const char *fmt, ...)
{
	struct nb_err tmp = { 0 };
	va_list ap;
	va_start(ap, fmt);
	nb_err_vset(&tmp, EBADMSG, fmt, ap);
	va_end(ap);
	report_set(rep, p, first_bad, &tmp);
	if (e)
		*e = tmp;
	return -EBADMSG;
}

int
nb_audit_verify(const char *path, const uint8_t *key, unsigned flags, struct nb_audit_report *rep,
		struct nb_err *e)
{
	memset(rep, 0, sizeof(*rep));
	uint8_t genesis[NB_SHA256_LEN];
	nb_audit_genesis(genesis);
	nb_hex(genesis, NB_SHA256_LEN, rep->last_hash);
	const bool live = flags & NB_AUDIT_VERIFY_LIVE;
	const uint64_t deadline = mono_ms() + NB_AUDIT_LIVE_WAIT_MS;

	_cleanup_close_ int dirfd = -1;
	_cleanup_free_ char *logname = NULL;
	int r = resolve(path, &dirfd, &logname, e);
	if (r < 0)
		return r;

	/* The head is read before the log: a live writer makes a record durable, then signs it,
	 * so a log read after the head holds at least the records that head signs. */
	struct head h = { 0 };
	int hr = 0;
	struct nb_err head_err = { 0 };
	if (key) {
		rep->head_checked = true;
		hr = head_read(dirfd, &h, &head_err);
		if (hr < 0 && hr != -EBADMSG) {
			*e = head_err;
			return hr;
		}
	}

	_cleanup_close_ int fd = open_log_ro(dirfd, logname, e);
	if (fd < 0 && fd != -ENOENT)
		return fd;
	const bool nolog = fd == -ENOENT;
	_cleanup_free_ struct walker *w = calloc(1, sizeof(*w));
	if (!w || (!nolog && lr_init(&w->lr, fd) < 0))
		return nb_err_set(e, ENOMEM, "audit: out of memory");
	nb_audit_chain_init(&w->chain);

	for (;;) {
		if (!nolog) {
			r = walk(w, rep, e);
			if (r == 1 && live && mono_ms() < deadline) {
				sleep_ms(LIVE_POLL_MS); /* a writer may be mid-write */
				continue;
			}
			if (r == 1)
				r = report_partial(w, rep, e);
			if (r < 0) {
				lr_free(&w->lr);
				return r;
			}
		}
		const uint64_t n = w->chain.seq;
		if (!key)
			break;
		if (hr < 0) {
			r = verify_fail(rep, NB_AUDIT_HEAD_INVALID, 0, e, "%s", head_err.msg);
			break;
		}
		if (hr == 0) {
			if (n > 0)
				r = verify_fail(rep, NB_AUDIT_NO_HEAD, 1, e,
						"the log has %" PRIu64 " records but there is no "
						"signed head (head deleted?)",
						n);
			break;
		}
		rep->head_seq = h.seq;
		if (!head_mac_ok(key, &h)) {
			r = verify_fail(rep, NB_AUDIT_HEAD_INVALID, 0, e,
					"head MAC invalid (head file forged, or the wrong key?)");
			break;
		}
		if (h.seq > n) {
			if (nolog)
				r = verify_fail(rep, NB_AUDIT_TRUNCATED, 1, e,
						"there is no log but the signed head says %" PRIu64
						" records (log deleted?)",
						h.seq);
			else
				r = verify_fail(rep, NB_AUDIT_TRUNCATED, n + 1, e,
						"log ends at record %" PRIu64
						" but the signed head says %" PRIu64
						" (truncated?)",
						n, h.seq);
			break;
		}
		uint8_t at[NB_SHA256_LEN];
		if (walker_hash_at(w, h.seq, at) && memcmp(at, h.hash, NB_SHA256_LEN) != 0) {
			r = verify_fail(rep, NB_AUDIT_HEAD_MISMATCH, h.seq, e,
					"record %" PRIu64 ": the signed head has a different hash "
					"for it (log rewritten from here or before?)",
					h.seq);
			break;
		}
		if (h.seq == n)
			break;
		if (live && mono_ms() < deadline) {
			/* Give a live writer the time to sign what it wrote. */
			sleep_ms(LIVE_POLL_MS);
			struct head h2;
			int hr2 = head_read(dirfd, &h2, &head_err);
			if (hr2 < 0 && hr2 != -EBADMSG) {
				*e = head_err;
				r = hr2;
				break;
			}
			hr = hr2;
			if (hr2 > 0)
				h = h2;
			continue;
		}
		r = verify_fail(rep, NB_AUDIT_UNSIGNED_TAIL, h.seq + 1, e,
				"records after the signed head: the log has %" PRIu64
				" records but the head signs %" PRIu64
				" (appended without the key?)",
				n, h.seq);
		break;
	}
	if (!nolog)
		lr_free(&w->lr);
	return r;
}

/* ---- the iterator ---- */

struct nb_audit_iter {
	int fd;
	int ifd; /* inotify, following only */
	struct lr lr;
	struct nb_audit_chain chain;
	struct nb_audit_filter filter;
	char *actor;
	bool follow;
	struct rec cur;
	struct nb_err err; /* sticky */
};

void
nb_audit_iter_free(struct nb_audit_iter *it)
{
	if (!it)
		return;
	rec_clear(&it->cur);
	lr_free(&it->lr);
	if (it->fd >= 0)
		close(it->fd);
	if (it->ifd >= 0)
		close(it->ifd);
	free(it->actor);
	free(it);
}

int
nb_audit_iter_open(const char *path, const struct nb_audit_filter *filter, unsigned flags,
		   struct nb_audit_iter **out, struct nb_err *e)
{
	*out = NULL;
	struct nb_audit_iter *it = calloc(1, sizeof(*it));
	if (!it)
		return nb_err_set(e, ENOMEM, "audit: out of memory");
	it->fd = it->ifd = -1;
	it->follow = flags & NB_AUDIT_ITER_FOLLOW;
	nb_audit_chain_init(&it->chain);
	_cleanup_close_ int dirfd = -1;
	_cleanup_free_ char *logname = NULL;
	int r;
	if (filter) {
		it->filter = *filter;
		if (filter->actor && !(it->actor = strdup(filter->actor))) {
			r = nb_err_set(e, ENOMEM, "audit: out of memory");
			goto fail;
		}
		it->filter.actor = it->actor;
	}
	r = resolve(path, &dirfd, &logname, e);
	if (r < 0)
		goto fail;
	it->fd = open_log_ro(dirfd, logname, e);
	if (it->fd == -ENOENT) {
		if (it->follow) {
			r = nb_err_set(e, ENOENT, "audit: %s: no log yet", path);
			goto fail;
		}
		it->fd = -1;
	} else if (it->fd < 0) {
		r = it->fd;
		it->fd = -1;
		goto fail;
	}
	if (it->fd >= 0 && lr_init(&it->lr, it->fd) < 0) {
		r = nb_err_set(e, ENOMEM, "audit: out of memory");
		goto fail;
	}
	if (it->follow) {
		/* inotify on the file (by its /proc fd path, so it is the file we have open). */
		char p[64];
		snprintf(p, sizeof(p), "/proc/self/fd/%d", it->fd);
		it->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (it->ifd >= 0 && inotify_add_watch(it->ifd, p, IN_MODIFY | IN_ATTRIB) < 0) {
			close(it->ifd);
			it->ifd = -1; /* fall back to polling */
		}
	}
	*out = it;
	return 0;
fail:
	nb_audit_iter_free(it);
	return r;
}

static bool
matches(const struct nb_audit_filter *f, const struct rec *r)
{
	if (f->actor && strcmp(f->actor, r->actor) != 0)
		return false;
	if (f->verdicts && !(f->verdicts & (1u << r->verdict)))
		return false;
	return true;
}

static void
drain(int fd)
{
	char buf[4096];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

int
nb_audit_iter_next(struct nb_audit_iter *it, struct nb_audit_record *rec, struct nb_err *e)
{
	if (it->err.code) {
		if (e)
			*e = it->err;
		return -it->err.code;
	}
	if (it->fd < 0)
		return 0;
	if (it->ifd >= 0)
		drain(it->ifd);
	for (;;) {
		const char *line;
		size_t len;
		int r = lr_next(&it->lr, &line, &len);
		if (r == 0 || (r == -EBADMSG && it->follow))
			return 0;
		if (r == -EBADMSG)
			nb_err_set(&it->err, EBADMSG,
				   "record %" PRIu64 ": incomplete last line (%zu bytes without a "
				   "newline: a crash during an append, or truncated mid-record?)",
				   it->chain.seq + 1, lr_pending(&it->lr));
		else if (r == -E2BIG)
			nb_err_set(&it->err, EBADMSG,
				   "record %" PRIu64 ": line longer than %d bytes (not a record)",
				   it->chain.seq + 1, NB_AUDIT_LINE_MAX - 1);
		else if (r < 0)
			nb_err_setp(&it->err, -r, "audit: read");
		if (r < 0) {
			if (e)
				*e = it->err;
			return -it->err.code;
		}
		rec_clear(&it->cur);
		r = chain_check_rec(&it->chain, line, len, &it->cur, &it->err);
		if (r < 0) {
			if (e)
				*e = it->err;
			return r;
		}
		if (!matches(&it->filter, &it->cur))
			continue;
		const struct rec *c = &it->cur;
		*rec = (struct nb_audit_record){
			.seq = c->seq,
			.time = c->time,
			.actor = c->actor,
			.action = c->action,
			.object = c->object,
			.reason = c->reason,
			.verdict = c->verdict,
			.detail = c->detail,
			.hash = c->hash_hex,
			.prev = c->prev_hex,
			.line = line,
			.line_len = len,
		};
		return 1;
	}
}

int
nb_audit_iter_wait(struct nb_audit_iter *it, int timeout_ms, struct nb_err *e)
{
	if (!it->follow || it->fd < 0)
		return nb_err_set(e, EINVAL, "audit: not following a log");
	struct stat st;
	if (fstat(it->fd, &st) < 0)
		return nb_err_setp(e, errno, "audit: fstat");
	/* The log only grows; shorter than what was read means it was cut behind our back. */
	if ((uint64_t)st.st_size < it->lr.off + lr_pending(&it->lr))
		return nb_err_set(e, EBADMSG, "audit: the log shrank while following (truncated?)");
	if ((uint64_t)st.st_size > it->lr.off + lr_pending(&it->lr))
		return 1;
	if (it->ifd < 0) {
		/* No inotify: poll the size a few times a second. */
		int step = timeout_ms < 0 || timeout_ms > 250 ? 250 : timeout_ms;
		sleep_ms((unsigned)step);
		if (fstat(it->fd, &st) < 0)
			return nb_err_setp(e, errno, "audit: fstat");
		bool grew = (uint64_t)st.st_size != it->lr.off + lr_pending(&it->lr);
		/* Time left: report "may have grown" so the caller reads and calls again. */
		return grew || timeout_ms < 0 || timeout_ms > step;
	}
	struct pollfd p = { .fd = it->ifd, .events = POLLIN };
	int n = poll(&p, 1, timeout_ms);
	if (n < 0)
		return nb_err_setp(e, errno, "audit: poll");
	if (n > 0)
		drain(it->ifd);
	return n > 0;
}

int
nb_audit_iter_fd(const struct nb_audit_iter *it)
{
	return it->ifd;
}

/* ---- crash recovery ---- */

/* Copies [@from, end) of @fd to a new file @name in @dirfd, hashing it. */
static int
save_tail(int fd, int dirfd, const char *name, uint64_t from, uint64_t *bytes, uint64_t *lines,
	  char sha_hex[NB_SHA256_HEX_LEN + 1], struct nb_err *e)
{
	_cleanup_close_ int out =
		openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return nb_err_setp(e, errno, "audit: recover: create %s", name);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return nb_err_set(e, EIO, "audit: recover: sha256 failed");
	}
	char buf[65536];
	uint64_t off = from;
	*bytes = *lines = 0;
	int r = 0;
	for (;;) {
		ssize_t k = pread(fd, buf, sizeof(buf), (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = nb_err_setp(e, errno, "audit: recover: read");
			break;
		}
		if (k == 0)
			break;
		for (ssize_t i = 0; i < k; i++)
			*lines += buf[i] == '\n';
		if (EVP_DigestUpdate(ctx, buf, (size_t)k) != 1) {
			r = nb_err_set(e, EIO, "audit: recover: sha256 failed");
			break;
		}
		if ((r = write_all(out, buf, (size_t)k)) < 0) {
			r = nb_err_setp(e, -r, "audit: recover: write %s", name);
			break;
		}
		off += (uint64_t)k;
		*bytes += (uint64_t)k;
	}
	uint8_t d[NB_SHA256_LEN];
	unsigned int dn = 0;
	if (r == 0 && (EVP_DigestFinal_ex(ctx, d, &dn) != 1 || dn != NB_SHA256_LEN))
		r = nb_err_set(e, EIO, "audit: recover: sha256 failed");
	EVP_MD_CTX_free(ctx);
	if (r == 0 && fsync(out) < 0)
		r = nb_err_setp(e, errno, "audit: recover: fsync %s", name);
	if (r == 0 && fsync(dirfd) < 0)
		r = nb_err_setp(e, errno, "audit: recover: fsync of the directory");
	if (r < 0) {
		(void)unlinkat(dirfd, name, 0);
		return r;
	}
	nb_hex(d, NB_SHA256_LEN, sha_hex);
	return 0;
}

int
nb_audit_recover(const char *dir, const uint8_t key[NB_AUDIT_KEY_LEN], struct nb_audit_report *rep,
		 struct nb_err *e)
{
	memset(rep, 0, sizeof(*rep));
	rep->head_checked = true;
	struct nb_audit *log = NULL;
	_cleanup_free_ struct walker *w = NULL;
	_cleanup_json_ json_t *detail = NULL;
	int r = writer_open_locked(dir, key, NULL, false, &log, e);
	if (r == -ENOENT) {
		/* No log: fine if nothing was ever signed, else it was deleted (not a crash). */
		r = nb_audit_verify(dir, key, 0, rep, e);
		if (r < 0)
			return nb_err_prefix(e, "audit: recover: refusing");
		snprintf(rep->msg, sizeof(rep->msg), "nothing to recover: there is no log");
		return 0;
	}
	if (r < 0)
		return r;
	struct head h;
	r = head_read(log->dirfd, &h, e);
	if (r <= 0 || !head_mac_ok(key, &h)) {
		if (r == 0)
			r = nb_err_set(
				e, EBADMSG,
				"audit: recover: there is no signed head, so no record can be "
				"told apart from a forged one; refusing (move the log aside "
				"and keep it as evidence)");
		else if (r > 0)
			r = nb_err_set(e, EBADMSG,
				       "audit: recover: head MAC invalid (head file forged, or the "
				       "wrong key?); refusing");
		report_set(rep, NB_AUDIT_HEAD_INVALID, 0, e);
		goto out;
	}
	rep->head_seq = h.seq;

	w = calloc(1, sizeof(*w));
	if (!w || lr_init(&w->lr, log->fd) < 0) {
		r = nb_err_set(e, ENOMEM, "audit: out of memory");
		goto out;
	}
	nb_audit_chain_init(&w->chain);
	w->stop_at = h.seq;
	if (lseek(log->fd, 0, SEEK_SET) < 0) {
		r = nb_err_setp(e, errno, "audit: recover: lseek");
		goto out_lr;
	}
	nb_hex(w->chain.hash, NB_SHA256_LEN, rep->last_hash);
	r = h.seq > 0 ? walk(w, rep, e) : 0;
	/* What the head signs must be intact: a problem there is not a crash, and cutting would
	 * hide it. */
	if (r < 0) {
		nb_err_prefix(e, "audit: recover: refusing, a signed record is bad");
		goto out_lr;
	}
	if (w->chain.seq < h.seq) {
		r = nb_err_set(e, EBADMSG,
			       "audit: recover: log ends at record %" PRIu64
			       " but the signed head says %" PRIu64 " (truncated?); refusing",
			       w->chain.seq, h.seq);
		report_set(rep, NB_AUDIT_TRUNCATED, w->chain.seq + 1, e);
		goto out_lr;
	}
	if (memcmp(w->chain.hash, h.hash, NB_SHA256_LEN) != 0) {
		r = nb_err_set(e, EBADMSG,
			       "audit: recover: record %" PRIu64 ": the signed head has a "
			       "different hash for it (log rewritten?); refusing",
			       h.seq);
		report_set(rep, NB_AUDIT_HEAD_MISMATCH, h.seq, e);
		goto out_lr;
	}
	const uint64_t cut = w->lr.off;
	struct stat st;
	if (fstat(log->fd, &st) < 0) {
		r = nb_err_setp(e, errno, "audit: recover: fstat");
		goto out_lr;
	}
	if ((uint64_t)st.st_size == cut) {
		log->size = cut;
		log->seq = log->synced_seq = log->head_seq = h.seq;
		memcpy(log->hash, h.hash, NB_SHA256_LEN);
		snprintf(rep->msg, sizeof(rep->msg),
			 "nothing to recover: the log ends at the "
			 "signed record %" PRIu64,
			 h.seq);
		r = 0;
		goto out_lr;
	}

	char name[96], sha[NB_SHA256_HEX_LEN + 1];
	snprintf(name, sizeof(name), "%s.tail-%" PRIu64 "-%lld", NB_AUDIT_LOG_NAME, h.seq,
		 (long long)time(NULL));
	uint64_t bytes, lines;
	r = save_tail(log->fd, log->dirfd, name, cut, &bytes, &lines, sha, e);
	if (r < 0)
		goto out_lr;
	/* The tail is safe on disk first; only then is the log cut back to the signed record. */
	if (ftruncate(log->fd, (off_t)cut) < 0 || fdatasync(log->fd) < 0) {
		r = nb_err_setp(e, errno,
				"audit: recover: cutting the log back to %" PRIu64 " bytes", cut);
		goto out_lr;
	}
	log->size = cut;
	log->seq = log->synced_seq = log->head_seq = h.seq;
	memcpy(log->hash, h.hash, NB_SHA256_LEN);
	rep->problem = (bytes > 0 && lines > 0) ? NB_AUDIT_UNSIGNED_TAIL : NB_AUDIT_PARTIAL_LINE;
	rep->first_bad = h.seq + 1;
	rep->records = h.seq;

	detail = json_pack("{s:s, s:I, s:I, s:s, s:I}", "saved_to", name, "bytes",
			   (json_int_t)bytes, "lines", (json_int_t)lines, "sha256", sha,
			   "signed_seq", (json_int_t)h.seq);
	char reason[256];
	snprintf(reason, sizeof(reason),
		 "crash recovery: %" PRIu64 " bytes after the last signed record moved to %s",
		 bytes, name);
	uint64_t seq = 0;
	r = detail ? nb_audit_append(log, RECOVER_ACTOR, "audit.recover", NB_AUDIT_LOG_NAME,
				     NB_AUDIT_ALLOWED, reason, detail, &seq, e)
		   : nb_err_set(e, ENOMEM, "audit: out of memory");
	if (r < 0) {
		nb_err_prefix(e, "audit: recover: the tail was moved to %s, but", name);
		goto out_lr;
	}
	snprintf(rep->msg, sizeof(rep->msg),
		 "moved %" PRIu64 " bytes (%" PRIu64 " complete lines) after the signed record "
		 "%" PRIu64 " to %s; record %" PRIu64 " says so",
		 bytes, lines, h.seq, name, seq);
out_lr:
	lr_free(&w->lr);
out:;
	struct nb_err ce = { 0 };
	int rc = nb_audit_close(log, &ce);
	if (r == 0 && rc < 0) {
		*e = ce;
		r = rc;
	}
	return r;
}
