/*
 * entry.c: the pure parts of ctxgraph (see ctxgraph.h): names, keys, values, the entry hash,
 * cursors and token buckets. No I/O, and no state but a reused digest context: unit tests and
 * the fuzzer call them as is.
 */
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "cleanup.h"
#include "ctxgraph.h"

bool
ctxgraph_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > CTXGRAPH_NAME_MAX)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return false;
	return true;
}

int
ctxgraph_key_check(const char *key, size_t len, bool prefix, char *why, size_t size)
{
	const char *what = prefix ? "prefix" : "key";
	if (len == 0 && !prefix) {
		snprintf(why, size, "the key is empty");
		return -EINVAL;
	}
	if (len > CTXGRAPH_KEY_MAX) {
		snprintf(why, size, "the %s is %zu bytes long; at most %d are allowed", what, len,
			 CTXGRAPH_KEY_MAX);
		return -E2BIG;
	}
	if (strlen(key) != len) {
		snprintf(why, size, "the %s holds a NUL character", what);
		return -EINVAL;
	}
	/*
	 * Why no control characters: keys end up in logs, audit records and on operators'
	 * terminals (nullctl escapes them, other tools may not), and valid UTF-8 is what makes the
	 * [P, P || 0xFF) prefix ranges of the store exact.
	 */
	const unsigned char *s = (const unsigned char *)key;
	for (size_t i = 0; i < len;) {
		uint32_t cp = 0;
		size_t k = nb_utf8_seq(s + i, len - i, &cp);
		if (k == 0) {
			snprintf(why, size, "the %s is not valid UTF-8 (at byte %zu)", what, i);
			return -EINVAL;
		}
		if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
			snprintf(why, size, "the %s holds a control character (U+%04X at byte %zu)",
				 what, (unsigned)cp, i);
			return -EINVAL;
		}
		i += k;
	}
	return 0;
}

void
ctxgraph_text_clip(const char *in, char *out, size_t size)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t n = strlen(in), i = 0, o = 0;
	while (i < n) {
		uint32_t cp = 0;
		size_t k = nb_utf8_seq(s + i, n - i, &cp);
		const char *piece = in + i;
		size_t plen = k;
		if (k == 0 || cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
			piece = "?";
			plen = 1;
			k = k ? k : 1;
		}
		if (o + plen >= size)
			break;
		memcpy(out + o, piece, plen);
		o += plen;
		i += k;
	}
	out[o] = '\0';
}

int
ctxgraph_value_canonical(const json_t *v, char **out, size_t *len, struct nb_err *e)
{
	int r = nb_json_canonical(v, out, len, e);
	if (r < 0)
		return r;
	if (*len > CTXGRAPH_VALUE_MAX) {
		size_t n = *len;
		free(*out);
		*out = NULL;
		return nb_err_set(
			e, E2BIG,
			"the value is %zu bytes as canonical JSON; at most %d are allowed", n,
			CTXGRAPH_VALUE_MAX);
	}
	return 0;
}

/*
 * One digest context, fetched and allocated once: a write's hash is on the hot path of every
 * batch, and OpenSSL 3 otherwise looks the algorithm up and allocates a context per call.
 * ctxgraph is single-threaded (so is everything that calls this).
 */
static EVP_MD_CTX *
sha256_ctx(void)
{
	static EVP_MD_CTX *ctx;
	static EVP_MD *md;
	if (!md && !(md = EVP_MD_fetch(NULL, "SHA256", NULL)))
		return NULL;
	if (!ctx)
		ctx = EVP_MD_CTX_new();
	return ctx && EVP_DigestInit_ex2(ctx, md, NULL) == 1 ? ctx : NULL;
}

int
ctxgraph_entry_hash(const char *agent, const char *key, const char *value, size_t value_len,
		    char out[NB_SHA256_HEX_LEN + 1])
{
	EVP_MD_CTX *ctx = sha256_ctx();
	uint8_t d[NB_SHA256_LEN];
	unsigned n = 0;
	/* The NULs are part of the input: strlen + 1 bytes of agent and key. */
	if (!ctx || EVP_DigestUpdate(ctx, agent, strlen(agent) + 1) != 1 ||
	    EVP_DigestUpdate(ctx, key, strlen(key) + 1) != 1 ||
	    EVP_DigestUpdate(ctx, value, value_len) != 1 || EVP_DigestFinal_ex(ctx, d, &n) != 1 ||
	    n != NB_SHA256_LEN)
		return -EIO;
	nb_hex(d, sizeof(d), out);
	return 0;
}

bool
ctxgraph_prefix_match(const char *key, const char *prefix)
{
	return strncmp(key, prefix, strlen(prefix)) == 0;
}

void
ctxgraph_cursor_from_key(const char *key, char *out)
{
	size_t n = strlen(key);
	if (n > CTXGRAPH_KEY_MAX)
		n = CTXGRAPH_KEY_MAX; /* never: keys are checked before they are stored */
	out[0] = 'k';
	nb_hex((const uint8_t *)key, n, out + 1);
}

void
ctxgraph_cursor_from_seq(int64_t seq, char *out)
{
	snprintf(out, CTXGRAPH_CURSOR_MAX, "s%" PRId64, seq);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
ctxgraph_cursor_key(const char *cursor, char *key)
{
	size_t n = strlen(cursor);
	if (n < 3 || cursor[0] != 'k' || (n - 1) % 2 != 0 || (n - 1) / 2 > CTXGRAPH_KEY_MAX)
		return -EINVAL;
	size_t o = 0;
	for (size_t i = 1; i < n; i += 2) {
		int hi = hexval(cursor[i]), lo = hexval(cursor[i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		key[o++] = (char)(hi << 4 | lo);
	}
	key[o] = '\0';
	char why[128];
	/* Only a key could have been stored, so only a key is a cursor. */
	return ctxgraph_key_check(key, o, false, why, sizeof(why)) < 0 ? -EINVAL : 0;
}

int
ctxgraph_cursor_seq(const char *cursor, int64_t *seq)
{
	if (cursor[0] != 's' || cursor[1] < '0' || cursor[1] > '9' || strlen(cursor) > 20)
		return -EINVAL;
	int64_t v = 0;
	for (const char *p = cursor + 1; *p; p++) {
		if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (*p - '0');
	}
	*seq = v;
	return 0;
}

bool
ctxgraph_bucket_take(struct ctxgraph_bucket *b, double rate, double burst, double n, int64_t now_ns,
		     int64_t *retry_ms)
{
	if (!b->primed) {
		b->primed = true;
		b->tokens = burst;
		b->last_ns = now_ns;
	}
	if (now_ns > b->last_ns) {
		b->tokens += (double)(now_ns - b->last_ns) * rate / 1e9;
		if (b->tokens > burst)
			b->tokens = burst;
		b->last_ns = now_ns;
	}
	if (n <= b->tokens) {
		b->tokens -= n;
		return true;
	}
	if (retry_ms) {
		if (n > burst)
			*retry_ms = -1;
		else
			*retry_ms = (int64_t)((n - b->tokens) * 1000.0 / rate) + 1;
	}
	return false;
}
