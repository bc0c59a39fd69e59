/*
 * vault.c: the vault file and the secrets in memory (vault.h has the format and the contracts).
 *
 * Sections:
 *   locked memory   wd_secure_alloc/free: private pages, mlock, MADV_DONTDUMP, wiped on free
 *   kdf             Argon2id (libargon2) or PBKDF2-SHA256 (libcrypto), bounded by wd_kdf_limits
 *   names, hosts    what a secret may be called and which hosts it may be bound to
 *   secrets         the sorted array of secrets, and the JSON inside the ciphertext
 *   format          header, AES-256-GCM seal and open, parse
 *   file            open (or create), save by temp file + fsync + rename + fsync of the dir
 *   changes         set, delete, bind: applied, written, undone if the write fails
 */
#include "vault.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#ifdef WD_HAVE_ARGON2
#include <argon2.h>
#endif

#include "cleanup.h"
#include "json.h"
#include "log.h"

#define WD_VAULT_TMP_FILE "vault.tmp"

struct wd_vault {
	char *dir;  /* the directory holding the file; NULL: in memory only */
	char *path; /* dir/vault */
	struct wd_kdf kdf;
	uint8_t salt[WD_VAULT_SALT_LEN];
	uint8_t *key;		   /* WD_VAULT_KEY_LEN bytes of locked memory */
	struct wd_secret *secrets; /* sorted by name (strcmp) */
	size_t n, cap;
};

/* ---- locked memory ---- */

/* In front of what wd_secure_alloc() returns: the mapping's size. 16 bytes keep alignment. */
struct secure_hdr {
	size_t map_len;
	size_t pad;
};

static bool secure_locked_all = true;

void *
wd_secure_alloc(size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	if (n > SIZE_MAX - sizeof(struct secure_hdr) - page) {
		errno = ENOMEM;
		return NULL;
	}
	size_t len = (n + sizeof(struct secure_hdr) + page - 1) / page * page;
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	/*
	 * Why pages of their own: mlock has no reference count, so unlocking one buffer would
	 * unlock a neighbour sharing its page. Locked pages never reach swap; DONTDUMP keeps them
	 * out of core files. A non-root warden may hit RLIMIT_MEMLOCK: the memory is then still
	 * private and wiped, and warden says so at startup.
	 */
	if (mlock(m, len) < 0)
		secure_locked_all = false;
	(void)madvise(m, len, MADV_DONTDUMP);
	struct secure_hdr *h = m;
	h->map_len = len;
	return h + 1;
}

void
wd_secure_free(void *p)
{
	if (!p)
		return;
	int saved = errno;
	struct secure_hdr *h = (struct secure_hdr *)p - 1;
	size_t len = h->map_len;
	OPENSSL_cleanse(h, len);
	munlock(h, len);
	munmap(h, len);
	errno = saved;
}

bool
wd_secure_all_locked(void)
{
	return secure_locked_all;
}

/* ---- kdf ---- */

#ifdef WD_HAVE_ARGON2
struct wd_kdf wd_kdf_default = { .id = WD_KDF_ARGON2ID, .t = 3, .m = 64 * 1024, .p = 1 };
#else
struct wd_kdf wd_kdf_default = { .id = WD_KDF_PBKDF2_SHA256, .t = 600000 };
#endif

struct wd_kdf_limits wd_kdf_limits = {
	.argon2_t_min = 1,
	.argon2_t_max = 16,
	.argon2_m_min = 8,
	.argon2_m_max = 1024 * 1024, /* 1 GiB */
	.argon2_p_min = 1,
	.argon2_p_max = 16,
	.pbkdf2_min = 1,
	.pbkdf2_max = 10000000,
};

bool
wd_kdf_have_argon2(void)
{
#ifdef WD_HAVE_ARGON2
	return true;
#else
	return false;
#endif
}

const char *
wd_kdf_name(uint8_t id)
{
	switch (id) {
	case WD_KDF_ARGON2ID:
		return "argon2id";
	case WD_KDF_PBKDF2_SHA256:
		return "pbkdf2-sha256";
	default:
		return "unknown";
	}
}

static bool
in_range(uint32_t v, uint32_t lo, uint32_t hi)
{
	return v >= lo && v <= hi;
}

/* Whether this build can run @k within wd_kdf_limits; @label names the file. */
static int
kdf_check(const struct wd_kdf *k, const char *label, struct nb_err *e)
{
	const struct wd_kdf_limits *l = &wd_kdf_limits;
	switch (k->id) {
	case WD_KDF_ARGON2ID:
		if (!wd_kdf_have_argon2())
			return nb_err_set(e, EPROTONOSUPPORT,
					  "%s: the key is derived with Argon2id, and this warden "
					  "was built without libargon2",
					  label);
		if (!in_range(k->t, l->argon2_t_min, l->argon2_t_max) ||
		    !in_range(k->m, l->argon2_m_min, l->argon2_m_max) ||
		    !in_range(k->p, l->argon2_p_min, l->argon2_p_max) || k->m < 8 * k->p)
			return nb_err_set(e, EINVAL,
					  "%s: corrupt header: Argon2id parameters out of bounds "
					  "(t=%u m=%u KiB p=%u)",
					  label, k->t, k->m, k->p);
		return 0;
	case WD_KDF_PBKDF2_SHA256:
		if (!in_range(k->t, l->pbkdf2_min, l->pbkdf2_max) || k->m != 0 || k->p != 0)
			return nb_err_set(e, EINVAL,
					  "%s: corrupt header: PBKDF2 parameters out of bounds "
					  "(iterations %u, m %u, p %u)",
					  label, k->t, k->m, k->p);
		return 0;
	default:
		return nb_err_set(e, EPROTONOSUPPORT,
				  "%s: unknown key derivation %u (written by a newer warden?)",
				  label, k->id);
	}
}

/* Derives the AES key from the master key into @key (locked memory of the caller). */
static int
kdf_derive(const struct wd_kdf *k, const uint8_t *pass, size_t pass_len,
	   const uint8_t salt[WD_VAULT_SALT_LEN], uint8_t key[WD_VAULT_KEY_LEN], const char *label,
	   struct nb_err *e)
{
	if (pass_len == 0 || pass_len > WD_PASSPHRASE_MAX)
		return nb_err_set(e, EINVAL, "%s: the master key must be 1 to %d bytes", label,
				  WD_PASSPHRASE_MAX);
	int r = kdf_check(k, label, e);
	if (r < 0)
		return r;
	if (k->id == WD_KDF_PBKDF2_SHA256) {
		if (PKCS5_PBKDF2_HMAC((const char *)pass, (int)pass_len, salt, WD_VAULT_SALT_LEN,
				      (int)k->t, EVP_sha256(), WD_VAULT_KEY_LEN, key) != 1)
			return nb_err_set(e, EIO, "%s: PBKDF2 failed (libcrypto)", label);
		return 0;
	}
#ifdef WD_HAVE_ARGON2
	int ar = argon2id_hash_raw(k->t, k->m, k->p, pass, pass_len, salt, WD_VAULT_SALT_LEN, key,
				   WD_VAULT_KEY_LEN);
	if (ar == ARGON2_MEMORY_ALLOCATION_ERROR)
		return nb_err_set(e, ENOMEM, "%s: Argon2id: cannot allocate %u KiB", label, k->m);
	if (ar != ARGON2_OK)
		return nb_err_set(e, EIO, "%s: Argon2id: %s", label, argon2_error_message(ar));
	return 0;
#else
	return nb_err_set(e, EPROTONOSUPPORT, "%s: built without libargon2", label);
#endif
}

/*
 * Makes @e's message printable ASCII: messages quote what a client or a file said (a host, a
 * JSON error near some bytes), and they end up in logs and on terminals. Returns @r.
 */
static int
msg_clean(struct nb_err *e, int r)
{
	for (char *p = e ? e->msg : NULL; p && *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	return r;
}

/* ---- names, hosts ---- */

bool
wd_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > WD_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
			  (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

static bool
all_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/*
 * The manifest's rules for `[capabilities.network] allow` (lib/manifest.c), without the port: a
 * secret is bound to a host, whatever port egress sees it on. Names only, never addresses,
 * because egress matches the name the agent asked for and resolves it itself; a bound IP literal
 * would send the secret wherever that address routes.
 */
static int host_normalise(const char *s, char out[WD_HOST_MAX + 3], struct nb_err *e);

int
wd_host_normalise(const char *s, char out[WD_HOST_MAX + 3], struct nb_err *e)
{
	return msg_clean(e, host_normalise(s, out, e));
}

static int
host_normalise(const char *s, char out[WD_HOST_MAX + 3], struct nb_err *e)
{
	size_t n = strlen(s);
	struct in_addr a4;
	struct in6_addr a6;
	if (n == 0)
		return nb_err_set(e, EINVAL, "empty host name");
	/* Quote at most 64 bytes: the message must stay short and the rest is not needed. */
	if (strstr(s, "://"))
		return nb_err_set(e, EINVAL, "%.64s: a host name, not a URL: remove the scheme", s);
	if (strchr(s, '/'))
		return nb_err_set(e, EINVAL, "%.64s: a host name, not a URL: remove the path", s);
	if (strcmp(s, "*") == 0)
		return nb_err_set(e, EINVAL,
				  "\"*\" would send the secret to every host; name them");
	if (s[0] == '[' || inet_pton(AF_INET6, s, &a6) == 1 || inet_aton(s, &a4))
		return nb_err_set(e, EINVAL, "%.64s: IP addresses are not allowed, name a host", s);
	if (strchr(s, ':'))
		return nb_err_set(e, EINVAL, "%.64s: a host name without a port", s);
	bool wildcard = strncmp(s, "*.", 2) == 0;
	const char *name = wildcard ? s + 2 : s;
	if (strchr(name, '*'))
		return nb_err_set(e, EINVAL, "%.64s: '*' is only allowed as a leading \"*.\"", s);
	if (strlen(name) > WD_HOST_MAX)
		return nb_err_set(e, EINVAL, "%.64s...: host name longer than %d characters", s,
				  WD_HOST_MAX);
	size_t labels = 0;
	const char *last = name;
	for (const char *l = name;;) {
		const char *dot = strchr(l, '.');
		size_t len = dot ? (size_t)(dot - l) : strlen(l);
		labels++;
		if (len == 0)
			return nb_err_set(e, EINVAL, "%.64s: empty label in host name", s);
		if (len > 63)
			return nb_err_set(e, EINVAL, "%.64s: label longer than 63 characters", s);
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)l[i];
			if (c >= 0x80)
				return nb_err_set(
					e, EINVAL,
					"%.64s: non-ASCII host name; write it in its xn-- "
					"(punycode) form",
					s);
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '-'))
				return nb_err_set(e, EINVAL,
						  "%.64s: invalid character in host name (allowed: "
						  "letters, digits, '-', '.')",
						  s);
		}
		if (l[0] == '-' || l[len - 1] == '-')
			return nb_err_set(e, EINVAL,
					  "%.64s: a label must not start or end with '-'", s);
		last = l;
		if (!dot)
			break;
		l = dot + 1;
	}
	/* A name whose last label is all digits reads as an address to some resolvers. */
	if (all_digits(last, strlen(last)))
		return nb_err_set(e, EINVAL, "%.64s: the last label must not be all digits", s);
	/* "*.com" would bind the secret to a whole top-level domain. */
	if (wildcard && labels < 2)
		return nb_err_set(e, EINVAL,
				  "%.64s: a wildcard must cover a domain of at least two labels, "
				  "e.g. *.example.com",
				  s);
	for (size_t i = 0; i <= n; i++)
		out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
	return 0;
}

bool
wd_host_match(const char *pattern, const char *host)
{
	char h[WD_HOST_MAX + 2];
	size_t n = strlen(host);
	if (n > 0 && host[n - 1] == '.')
		n--;
	if (n == 0 || n > WD_HOST_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		h[i] = (host[i] >= 'A' && host[i] <= 'Z') ? (char)(host[i] - 'A' + 'a') : host[i];
	h[n] = '\0';
	if (strncmp(pattern, "*.", 2) != 0)
		return strcmp(pattern, h) == 0;
	const char *suffix = pattern + 1; /* ".example.com" */
	size_t sn = strlen(suffix);
	return n > sn && strcmp(h + n - sn, suffix) == 0;
}

/* ---- secrets ---- */

const char *
wd_inject_name(enum wd_inject i)
{
	return i == WD_INJECT_ENV ? "env" : "placeholder";
}

int
wd_inject_parse(const char *s)
{
	if (strcmp(s, "placeholder") == 0)
		return WD_INJECT_PLACEHOLDER;
	if (strcmp(s, "env") == 0)
		return WD_INJECT_ENV;
	return -1;
}

static void
hosts_free(char **hosts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(hosts[i]);
	free(hosts);
}

static void
secret_clear(struct wd_secret *s)
{
	wd_secure_free(s->value);
	hosts_free(s->hosts, s->n_hosts);
	OPENSSL_cleanse(s, sizeof(*s));
}

/* The index of @name, or -(insertion point) - 1. */
static ssize_t
secret_index(const struct wd_vault *v, const char *name)
{
	size_t lo = 0, hi = v->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v->secrets[mid].name, name);
		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(ssize_t)lo - 1;
}

/* Inserts @s (taken over) at @at; the caller checked the limit. Returns 0 or -ENOMEM. */
static int
secret_insert(struct wd_vault *v, size_t at, const struct wd_secret *s)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 8;
		struct wd_secret *ns = realloc(v->secrets, cap * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		v->secrets = ns;
		v->cap = cap;
	}
	memmove(&v->secrets[at + 1], &v->secrets[at], (v->n - at) * sizeof(*s));
	v->secrets[at] = *s;
	v->n++;
	return 0;
}

/* Removes the secret at @at into *out (the caller owns it then). */
static void
secret_remove(struct wd_vault *v, size_t at, struct wd_secret *out)
{
	*out = v->secrets[at];
	memmove(&v->secrets[at], &v->secrets[at + 1], (v->n - at - 1) * sizeof(*out));
	v->n--;
	OPENSSL_cleanse(&v->secrets[v->n], sizeof(*out));
}

/* A strict UTF-8 check (no overlong forms, surrogates or code points past U+10FFFF). */
static bool
utf8_valid(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t len;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			len = 2, cp = c & 0x1F, min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			len = 3, cp = c & 0x0F, min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			len = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += len;
	}
	return true;
}

/* A value must be text an environment variable and a JSON string can carry. */
static int
value_check(const char *value, size_t len, struct nb_err *e)
{
	if (len == 0)
		return nb_err_set(e, EINVAL, "the value is empty");
	if (len > WD_VALUE_MAX)
		return nb_err_set(e, EINVAL, "the value is longer than %d bytes (%zu)",
				  WD_VALUE_MAX, len);
	if (memchr(value, '\0', len))
		return nb_err_set(e, EINVAL, "the value holds a NUL byte");
	if (!utf8_valid((const unsigned char *)value, len))
		return nb_err_set(e, EINVAL, "the value is not valid UTF-8 text");
	return 0;
}

/* A locked, NUL-terminated copy of @len bytes of @value. */
static char *
value_dup(const char *value, size_t len)
{
	char *p = wd_secure_alloc(len + 1);
	if (p)
		memcpy(p, value, len);
	return p;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Normalises @n host patterns into a new sorted array without duplicates (*out, *n_out).
 * Returns 0, -EINVAL with @e naming the bad host, or -ENOMEM.
 */
static int
hosts_build(const char *const *in, size_t n, char ***out, size_t *n_out, struct nb_err *e)
{
	if (n > WD_HOSTS_MAX)
		return nb_err_set(e, EINVAL, "more than %d hosts", WD_HOSTS_MAX);
	char **h = calloc(n ? n : 1, sizeof(*h));
	if (!h)
		return nb_err_set(e, ENOMEM, "out of memory");
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		char norm[WD_HOST_MAX + 3];
		int r = wd_host_normalise(in[i], norm, e);
		if (r < 0 || !(h[k++] = strdup(norm))) {
			hosts_free(h, k);
			return r < 0 ? r : nb_err_set(e, ENOMEM, "out of memory");
		}
	}
	qsort(h, k, sizeof(*h), cmp_str);
	size_t w = 0;
	for (size_t i = 0; i < k; i++) {
		if (w > 0 && strcmp(h[w - 1], h[i]) == 0)
			free(h[i]);
		else
			h[w++] = h[i];
	}
	*out = h;
	*n_out = w;
	return 0;
}

/*
 * The JSON inside the ciphertext: {"secrets":[{"name":N,"value":V,"inject":I,"hosts":[H...]}]}
 * in name order. Written here by hand, straight into locked memory, so no copy of a value lands
 * on the ordinary heap on the way to the disk.
 */
static size_t
json_str_len_max(size_t n)
{
	return 2 + 6 * n; /* quotes, and every byte as \u00XX at worst */
}

static char *
json_put_str(char *o, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			*o++ = '\\';
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		} else {
			*o++ = (char)c;
		}
	}
	*o++ = '"';
	return o;
}

static char *
json_put(char *o, const char *lit)
{
	size_t n = strlen(lit);
	memcpy(o, lit, n);
	return o + n;
}

/* The plaintext of @v in locked memory (*out, wd_secure_free()) and its length. */
static int
plaintext_build(const struct wd_vault *v, char **out, size_t *len, struct nb_err *e)
{
	size_t max = 32;
	for (size_t i = 0; i < v->n; i++) {
		const struct wd_secret *s = &v->secrets[i];
		max += 64 + json_str_len_max(strlen(s->name)) + json_str_len_max(s->value_len);
		for (size_t k = 0; k < s->n_hosts; k++)
			max += 1 + json_str_len_max(strlen(s->hosts[k]));
	}
	char *buf = wd_secure_alloc(max);
	if (!buf)
		return nb_err_set(e, ENOMEM, "out of memory");
	char *o = json_put(buf, "{\"secrets\":[");
	for (size_t i = 0; i < v->n; i++) {
		const struct wd_secret *s = &v->secrets[i];
		o = json_put(o, i ? ",{\"name\":" : "{\"name\":");
		o = json_put_str(o, s->name, strlen(s->name));
		o = json_put(o, ",\"value\":");
		o = json_put_str(o, s->value, s->value_len);
		o = json_put(o, ",\"inject\":");
		o = json_put_str(o, wd_inject_name(s->inject), strlen(wd_inject_name(s->inject)));
		o = json_put(o, ",\"hosts\":[");
		for (size_t k = 0; k < s->n_hosts; k++) {
			if (k)
				*o++ = ',';
			o = json_put_str(o, s->hosts[k], strlen(s->hosts[k]));
		}
		o = json_put(o, "]}");
	}
	o = json_put(o, "]}");
	*len = (size_t)(o - buf);
	*out = buf;
	return 0;
}

/* Reads one secret object of the plaintext into @s. */
static int
secret_from_json(json_t *o, struct wd_secret *s, const char *label, size_t idx, struct nb_err *e)
{
	static const char *const keys[] = { "name", "value", "inject", "hosts" };
	const char *k;
	json_t *x;
	if (!json_is_object(o))
		return nb_err_set(e, EINVAL, "%s: secret %zu is not an object", label, idx);
	json_object_foreach(o, k, x)
	{
		bool known = false;
		for (size_t i = 0; i < NB_ARRAY_SIZE(keys); i++)
			known = known || strcmp(k, keys[i]) == 0;
		if (!known)
			return nb_err_set(e, EINVAL, "%s: secret %zu: unknown member \"%.32s\"",
					  label, idx, k);
	}
	json_t *name = json_object_get(o, "name"), *value = json_object_get(o, "value");
	json_t *inject = json_object_get(o, "inject"), *hosts = json_object_get(o, "hosts");
	if (!json_is_string(name) || !wd_name_valid(json_string_value(name)) ||
	    json_string_length(name) != strlen(json_string_value(name)))
		return nb_err_set(e, EINVAL, "%s: secret %zu: missing or invalid name", label, idx);
	const char *n = json_string_value(name);
	if (!json_is_string(value))
		return nb_err_set(e, EINVAL, "%s: secret %s: missing value", label, n);
	struct nb_err ve = { 0 };
	if (value_check(json_string_value(value), json_string_length(value), &ve) < 0)
		return nb_err_set(e, EINVAL, "%s: secret %s: %s", label, n, ve.msg);
	int inj = json_is_string(inject) ? wd_inject_parse(json_string_value(inject)) : -1;
	if (inj < 0)
		return nb_err_set(e, EINVAL, "%s: secret %s: missing or unknown inject mode", label,
				  n);
	if (!json_is_array(hosts) || json_array_size(hosts) > WD_HOSTS_MAX)
		return nb_err_set(e, EINVAL, "%s: secret %s: hosts must be an array of at most %d",
				  label, n, WD_HOSTS_MAX);
	const char *list[WD_HOSTS_MAX];
	size_t nh = json_array_size(hosts);
	for (size_t i = 0; i < nh; i++) {
		json_t *h = json_array_get(hosts, i);
		if (!json_is_string(h))
			return nb_err_set(e, EINVAL, "%s: secret %s: a host is not a string", label,
					  n);
		list[i] = json_string_value(h);
	}
	*s = (struct wd_secret){ .inject = (enum wd_inject)inj };
	snprintf(s->name, sizeof(s->name), "%s", n);
	struct nb_err he = { 0 };
	int r = hosts_build(list, nh, &s->hosts, &s->n_hosts, &he);
	if (r < 0)
		return nb_err_set(e, -r, "%s: secret %s: %s", label, n, he.msg);
	s->value_len = json_string_length(value);
	if (!(s->value = value_dup(json_string_value(value), s->value_len))) {
		hosts_free(s->hosts, s->n_hosts);
		return nb_err_set(e, ENOMEM, "out of memory");
	}
	return 0;
}

/* Fills the empty vault @v from the decrypted @pt. */
static int
plaintext_parse(struct wd_vault *v, const char *pt, size_t len, const char *label, struct nb_err *e)
{
	json_error_t jerr;
	_cleanup_json_ json_t *root = json_loadb(pt, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return nb_err_set(e, EINVAL, "%s: the decrypted content is not JSON: %s", label,
				  jerr.text);
	json_t *list = json_object_get(root, "secrets");
	if (!json_is_object(root) || json_object_size(root) != 1 || !json_is_array(list))
		return nb_err_set(e, EINVAL, "%s: the decrypted content has no \"secrets\" array",
				  label);
	if (json_array_size(list) > WD_SECRETS_MAX)
		return nb_err_set(e, EINVAL, "%s: more than %d secrets", label, WD_SECRETS_MAX);
	size_t i;
	json_t *o;
	json_array_foreach(list, i, o)
	{
		struct wd_secret s;
		int r = secret_from_json(o, &s, label, i, e);
		if (r < 0)
			return r;
		ssize_t at = secret_index(v, s.name);
		if (at >= 0) {
			secret_clear(&s);
			return nb_err_set(e, EINVAL, "%s: secret %s appears twice", label,
					  v->secrets[at].name);
		}
		if (secret_insert(v, (size_t)(-at - 1), &s) < 0) {
			secret_clear(&s);
			return nb_err_set(e, ENOMEM, "out of memory");
		}
	}
	return 0;
}

/* ---- format ---- */

static void
put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint16_t
get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void
evp_ctx_freep(EVP_CIPHER_CTX **c)
{
	EVP_CIPHER_CTX_free(*c);
}

/* AES-256-GCM of @pt under @key with a fresh nonce, as a complete file image. */
static int
seal_with_key(const struct wd_kdf *kdf, const uint8_t salt[WD_VAULT_SALT_LEN],
	      const uint8_t key[WD_VAULT_KEY_LEN], const uint8_t *pt, size_t len, uint8_t **out,
	      size_t *out_len, struct nb_err *e)
{
	if (len > WD_PLAINTEXT_MAX)
		return nb_err_set(e, EFBIG, "the vault would be larger than %u bytes",
				  WD_PLAINTEXT_MAX);
	size_t total = WD_VAULT_HEADER_LEN + len + WD_VAULT_TAG_LEN;
	_cleanup_free_ uint8_t *f = malloc(total);
	if (!f)
		return nb_err_set(e, ENOMEM, "out of memory");
	memcpy(f, WD_VAULT_MAGIC, WD_VAULT_MAGIC_LEN);
	put_be16(f + 8, WD_VAULT_VERSION);
	f[10] = kdf->id;
	f[11] = 0;
	put_be32(f + 12, kdf->t);
	put_be32(f + 16, kdf->m);
	put_be32(f + 20, kdf->p);
	memcpy(f + 24, salt, WD_VAULT_SALT_LEN);
	/*
	 * A fresh random nonce per write: the key stays the same for the vault's life (it is
	 * derived once, at unlock), and GCM is broken by a nonce used twice under one key. 96
	 * random bits are safe for far more writes than a vault will ever see (NIST: 2^32).
	 */
	uint8_t *nonce = f + 40;
	if (RAND_bytes(nonce, WD_VAULT_NONCE_LEN) != 1)
		return nb_err_set(e, EIO, "cannot get random bytes for the nonce (libcrypto)");
	put_be32(f + 52, (uint32_t)len);

	__attribute__((cleanup(evp_ctx_freep))) EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, n2 = 0;
	if (!c || EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, WD_VAULT_NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(c, NULL, NULL, key, nonce) != 1 ||
	    EVP_EncryptUpdate(c, NULL, &n, f, WD_VAULT_HEADER_LEN) != 1 ||
	    (len > 0 && EVP_EncryptUpdate(c, f + WD_VAULT_HEADER_LEN, &n, pt, (int)len) != 1) ||
	    EVP_EncryptFinal_ex(c, f + WD_VAULT_HEADER_LEN + (len > 0 ? n : 0), &n2) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, WD_VAULT_TAG_LEN,
				f + WD_VAULT_HEADER_LEN + len) != 1)
		return nb_err_set(e, EIO, "AES-256-GCM encryption failed (libcrypto)");
	*out = steal_ptr(&f);
	*out_len = total;
	return 0;
}

static struct wd_vault *
vault_alloc(void)
{
	struct wd_vault *v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	if (!(v->key = wd_secure_alloc(WD_VAULT_KEY_LEN))) {
		free(v);
		return NULL;
	}
	return v;
}

static void
vault_freep(struct wd_vault **v)
{
	wd_vault_free(*v);
}

static void
secure_freep(void *p)
{
	wd_secure_free(*(void **)p);
}

int
wd_vault_seal(const struct wd_kdf *kdf, const uint8_t salt[WD_VAULT_SALT_LEN], const uint8_t *pass,
	      size_t pass_len, const uint8_t *plaintext, size_t len, uint8_t **out, size_t *out_len,
	      struct nb_err *e)
{
	__attribute__((cleanup(secure_freep))) uint8_t *key = wd_secure_alloc(WD_VAULT_KEY_LEN);
	if (!key)
		return nb_err_set(e, ENOMEM, "out of memory");
	int r = kdf_derive(kdf, pass, pass_len, salt, key, "new vault", e);
	if (r < 0)
		return r;
	return seal_with_key(kdf, salt, key, plaintext, len, out, out_len, e);
}

static int vault_parse(const uint8_t *buf, size_t len, const char *label, const uint8_t *pass,
		       size_t pass_len, struct wd_vault **out, struct nb_err *e);

int
wd_vault_parse(const uint8_t *buf, size_t len, const char *label, const uint8_t *pass,
	       size_t pass_len, struct wd_vault **out, struct nb_err *e)
{
	return msg_clean(e, vault_parse(buf, len, label, pass, pass_len, out, e));
}

static int
vault_parse(const uint8_t *buf, size_t len, const char *label, const uint8_t *pass, size_t pass_len,
	    struct wd_vault **out, struct nb_err *e)
{
	*out = NULL;
	size_t mlen = len < WD_VAULT_MAGIC_LEN ? len : WD_VAULT_MAGIC_LEN;
	if (len == 0)
		return nb_err_set(e, EINVAL, "%s: empty file (truncated)", label);
	if (memcmp(buf, WD_VAULT_MAGIC, mlen) != 0)
		return nb_err_set(e, EINVAL, "%s: not a NullBox vault (bad magic)", label);
	if (len < 10)
		return nb_err_set(e, EINVAL, "%s: truncated (%zu bytes, shorter than the header)",
				  label, len);
	uint16_t version = get_be16(buf + 8);
	if (version == 0)
		return nb_err_set(e, EINVAL, "%s: corrupt header: format version 0", label);
	if (version > WD_VAULT_VERSION)
		return nb_err_set(e, EPROTONOSUPPORT,
				  "%s: format version %u is newer than this warden reads (%d): "
				  "upgrade warden; the file is left as it is",
				  label, version, WD_VAULT_VERSION);
	if (len < WD_VAULT_HEADER_LEN)
		return nb_err_set(e, EINVAL, "%s: truncated (%zu bytes, shorter than the header)",
				  label, len);
	struct wd_kdf kdf = { .id = buf[10],
			      .t = get_be32(buf + 12),
			      .m = get_be32(buf + 16),
			      .p = get_be32(buf + 20) };
	if (buf[11] != 0)
		return nb_err_set(e, EINVAL, "%s: corrupt header: reserved byte is %u", label,
				  buf[11]);
	int r = kdf_check(&kdf, label, e);
	if (r < 0)
		return r;
	uint32_t ct_len = get_be32(buf + 52);
	if (ct_len > WD_PLAINTEXT_MAX)
		return nb_err_set(e, EINVAL, "%s: corrupt header: ciphertext length %u", label,
				  ct_len);
	size_t want = WD_VAULT_HEADER_LEN + (size_t)ct_len + WD_VAULT_TAG_LEN;
	if (len < want)
		return nb_err_set(e, EINVAL, "%s: truncated (%zu bytes, the header says %zu)",
				  label, len, want);
	if (len > want)
		return nb_err_set(e, EINVAL, "%s: corrupt: %zu bytes after the end the header says",
				  label, len - want);

	__attribute__((cleanup(vault_freep))) struct wd_vault *v = vault_alloc();
	if (!v)
		return nb_err_set(e, ENOMEM, "out of memory");
	v->kdf = kdf;
	memcpy(v->salt, buf + 24, WD_VAULT_SALT_LEN);
	r = kdf_derive(&kdf, pass, pass_len, v->salt, v->key, label, e);
	if (r < 0)
		return r;

	__attribute__((cleanup(secure_freep))) char *pt = wd_secure_alloc((size_t)ct_len + 1);
	__attribute__((cleanup(evp_ctx_freep))) EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (!pt || !c)
		return nb_err_set(e, ENOMEM, "out of memory");
	int n = 0, n2 = 0;
	const uint8_t *ct = buf + WD_VAULT_HEADER_LEN;
	if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, WD_VAULT_NONCE_LEN, NULL) != 1 ||
	    EVP_DecryptInit_ex(c, NULL, NULL, v->key, buf + 40) != 1 ||
	    EVP_DecryptUpdate(c, NULL, &n, buf, WD_VAULT_HEADER_LEN) != 1 ||
	    (ct_len > 0 && EVP_DecryptUpdate(c, (uint8_t *)pt, &n, ct, (int)ct_len) != 1) ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, WD_VAULT_TAG_LEN, (void *)(ct + ct_len)) !=
		    1)
		return nb_err_set(e, EIO, "%s: AES-256-GCM setup failed (libcrypto)", label);
	/*
	 * Nothing of the plaintext is looked at before the tag checks: until then it is whatever
	 * an attacker wrote. GCM cannot tell a wrong key from an altered file; both land here.
	 */
	if (EVP_DecryptFinal_ex(c, (uint8_t *)pt + (ct_len > 0 ? n : 0), &n2) != 1)
		return nb_err_set(e, EBADMSG,
				  "%s: wrong master key, or the file was altered (authentication "
				  "failed)",
				  label);
	r = plaintext_parse(v, pt, ct_len, label, e);
	if (r < 0)
		return r;
	*out = steal_ptr(&v);
	return 0;
}

int
wd_vault_new(const struct wd_kdf *kdf, const uint8_t *pass, size_t pass_len, struct wd_vault **out,
	     struct nb_err *e)
{
	*out = NULL;
	__attribute__((cleanup(vault_freep))) struct wd_vault *v = vault_alloc();
	if (!v)
		return nb_err_set(e, ENOMEM, "out of memory");
	v->kdf = kdf ? *kdf : wd_kdf_default;
	if (RAND_bytes(v->salt, WD_VAULT_SALT_LEN) != 1)
		return nb_err_set(e, EIO, "cannot get random bytes for the salt (libcrypto)");
	int r = kdf_derive(&v->kdf, pass, pass_len, v->salt, v->key, "new vault", e);
	if (r < 0)
		return r;
	*out = steal_ptr(&v);
	return 0;
}

int
wd_vault_serialise(const struct wd_vault *v, uint8_t **out, size_t *len, struct nb_err *e)
{
	__attribute__((cleanup(secure_freep))) char *pt = NULL;
	size_t n = 0;
	int r = plaintext_build(v, &pt, &n, e);
	if (r < 0)
		return r;
	return seal_with_key(&v->kdf, v->salt, v->key, (const uint8_t *)pt, n, out, len, e);
}

void
wd_vault_free(struct wd_vault *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++)
		secret_clear(&v->secrets[i]);
	free(v->secrets);
	wd_secure_free(v->key);
	free(v->dir);
	free(v->path);
	OPENSSL_cleanse(v, sizeof(*v));
	free(v);
}

const char *
wd_vault_path(const struct wd_vault *v)
{
	return v->path;
}

const struct wd_kdf *
wd_vault_kdf(const struct wd_vault *v)
{
	return &v->kdf;
}

size_t
wd_vault_count(const struct wd_vault *v)
{
	return v->n;
}

const struct wd_secret *
wd_vault_at(const struct wd_vault *v, size_t i)
{
	return i < v->n ? &v->secrets[i] : NULL;
}

const struct wd_secret *
wd_vault_find(const struct wd_vault *v, const char *name)
{
	ssize_t i = secret_index(v, name);
	return i >= 0 ? &v->secrets[i] : NULL;
}

/* ---- file ---- */

/* Reads all of @fd (at most @max bytes) into *out (malloc'ed). */
static int
read_all(int fd, size_t max, uint8_t **out, size_t *len, const char *label, struct nb_err *e)
{
	size_t cap = 4096, n = 0;
	_cleanup_free_ uint8_t *buf = malloc(cap);
	if (!buf)
		return nb_err_set(e, ENOMEM, "out of memory");
	for (;;) {
		if (n == cap) {
			if (cap > max)
				return nb_err_set(e, EFBIG, "%s: larger than a vault can be",
						  label);
			uint8_t *nb = realloc(buf, cap * 2);
			if (!nb)
				return nb_err_set(e, ENOMEM, "out of memory");
			buf = nb;
			cap *= 2;
		}
		ssize_t k = read(fd, buf + n, cap - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return nb_err_setp(e, errno, "%s: read", label);
		if (k == 0)
			break;
		n += (size_t)k;
	}
	*out = steal_ptr(&buf);
	*len = n;
	return 0;
}

/* Our directory: ours, a directory, nobody else's to read or write. */
static int
dir_prepare(const char *dir, struct nb_err *e)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return nb_err_setp(e, errno, "%s: mkdir", dir);
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return nb_err_setp(e, errno, "%s", dir);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return nb_err_setp(e, errno, "%s: stat", dir);
	/* Whoever owns the directory can swap the vault under us: it must be warden's user. */
	if (st.st_uid != geteuid())
		return nb_err_set(e, EPERM, "%s: owned by uid %u, not by warden's uid %u", dir,
				  (unsigned)st.st_uid, (unsigned)geteuid());
	if ((st.st_mode & 07777) != 0700) {
		log_warn("%s: mode %04o narrowed to 0700", dir, (unsigned)(st.st_mode & 07777));
		if (fchmod(fd, 0700) < 0)
			return nb_err_setp(e, errno, "%s: chmod 0700", dir);
	}
	return 0;
}

int
wd_vault_open(const char *dir, const uint8_t *pass, size_t pass_len, struct wd_vault **out,
	      bool *created, struct nb_err *e)
{
	*out = NULL;
	if (created)
		*created = false;
	int r = dir_prepare(dir, e);
	if (r < 0)
		return r;
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/%s", dir, WD_VAULT_FILE) < 0)
		return nb_err_set(e, ENOMEM, "out of memory");

	struct wd_vault *v = NULL;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && errno != ENOENT)
		return nb_err_setp(e, errno, "%s", path);
	if (fd < 0) {
		/* No file yet: the first start. Anything else there is never replaced. */
		r = wd_vault_new(NULL, pass, pass_len, &v, e);
		if (r < 0)
			return r;
	} else {
		struct stat st;
		if (fstat(fd, &st) < 0)
			return nb_err_setp(e, errno, "%s: stat", path);
		if (!S_ISREG(st.st_mode))
			return nb_err_set(e, EINVAL, "%s: not a regular file", path);
		if (st.st_uid != geteuid())
			return nb_err_set(e, EPERM, "%s: owned by uid %u, not by warden's uid %u",
					  path, (unsigned)st.st_uid, (unsigned)geteuid());
		if ((st.st_mode & 07777) != 0600) {
			log_warn("%s: mode %04o narrowed to 0600", path,
				 (unsigned)(st.st_mode & 07777));
			if (fchmod(fd, 0600) < 0)
				return nb_err_setp(e, errno, "%s: chmod 0600", path);
		}
		_cleanup_free_ uint8_t *buf = NULL;
		size_t len = 0;
		r = read_all(fd, WD_VAULT_HEADER_LEN + WD_PLAINTEXT_MAX + WD_VAULT_TAG_LEN, &buf,
			     &len, path, e);
		if (r < 0)
			return r;
		r = wd_vault_parse(buf, len, path, pass, pass_len, &v, e);
		if (r < 0)
			return r;
	}
	if (!(v->dir = strdup(dir))) {
		wd_vault_free(v);
		return nb_err_set(e, ENOMEM, "out of memory");
	}
	v->path = steal_ptr(&path);
	if (fd < 0) {
		r = wd_vault_save(v, e);
		if (r < 0) {
			wd_vault_free(v);
			return r;
		}
		if (created)
			*created = true;
	}
	*out = v;
	return 0;
}

static int
write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int
wd_vault_save(struct wd_vault *v, struct nb_err *e)
{
	if (!v->dir)
		return nb_err_set(e, EINVAL, "this vault has no file");
	_cleanup_free_ uint8_t *img = NULL;
	size_t len = 0;
	int r = wd_vault_serialise(v, &img, &len, e);
	if (r < 0)
		return r;
	_cleanup_close_ int dfd = open(v->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return nb_err_setp(e, errno, "%s", v->dir);
	/* A temporary file left by a crash mid-write holds nothing the vault does not. */
	if (unlinkat(dfd, WD_VAULT_TMP_FILE, 0) < 0 && errno != ENOENT)
		return nb_err_setp(e, errno, "%s/%s: unlink", v->dir, WD_VAULT_TMP_FILE);
	int fd = openat(dfd, WD_VAULT_TMP_FILE,
			O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return nb_err_setp(e, errno, "%s/%s: create", v->dir, WD_VAULT_TMP_FILE);
	const char *step = "write";
	r = fchmod(fd, 0600) < 0 ? -errno : 0;
	if (r == 0)
		r = write_all(fd, img, len);
	/*
	 * fsync before rename: otherwise a crash can leave the new name pointing at a file whose
	 * data never reached the disk, and the vault is lost. ENOSPC can also first show here.
	 */
	if (r == 0 && fsync(fd) < 0)
		r = -errno, step = "fsync";
	if (close(fd) < 0 && r == 0)
		r = -errno, step = "close";
	if (r == 0 && renameat(dfd, WD_VAULT_TMP_FILE, dfd, WD_VAULT_FILE) < 0)
		r = -errno, step = "rename";
	if (r < 0) {
		unlinkat(dfd, WD_VAULT_TMP_FILE, 0);
		return nb_err_setp(e, -r, "%s/%s: %s (the vault was not changed)", v->dir,
				   WD_VAULT_TMP_FILE, step);
	}
	/* The rename itself is in the directory: without this a crash may undo it. */
	if (fsync(dfd) < 0)
		return nb_err_setp(e, errno, "%s: fsync", v->dir);
	return 0;
}

/* ---- changes ---- */

/*
 * Writes the file when there is one. A missing directory comes back as EIO: the callers' ENOENT
 * means "no such secret".
 */
static int
persist(struct wd_vault *v, struct nb_err *e)
{
	int r = v->dir ? wd_vault_save(v, e) : 0;
	if (r == -ENOENT) {
		e->code = EIO;
		r = -EIO;
	}
	return r;
}

int
wd_vault_set(struct wd_vault *v, const char *name, const char *value, size_t value_len, int inject,
	     bool *created, struct nb_err *e)
{
	if (created)
		*created = false;
	if (!wd_name_valid(name))
		return nb_err_set(e, EINVAL,
				  "invalid secret name (letters, digits and '_', not starting "
				  "with a digit, at most %d)",
				  WD_NAME_MAX);
	int r = value_check(value, value_len, e);
	if (r < 0)
		return r;
	if (inject > WD_INJECT_ENV)
		return nb_err_set(e, EINVAL, "inject must be placeholder or env");
	char *copy = value_dup(value, value_len);
	if (!copy)
		return nb_err_set(e, ENOMEM, "out of memory");
	ssize_t at = secret_index(v, name);
	if (at < 0) {
		if (v->n >= WD_SECRETS_MAX) {
			wd_secure_free(copy);
			return nb_err_set(e, ENOSPC, "the vault holds %d secrets already",
					  WD_SECRETS_MAX);
		}
		struct wd_secret s = { .value = copy,
				       .value_len = value_len,
				       .inject = inject < 0 ? WD_INJECT_PLACEHOLDER
							    : (enum wd_inject)inject };
		snprintf(s.name, sizeof(s.name), "%s", name);
		size_t pos = (size_t)(-at - 1);
		if (secret_insert(v, pos, &s) < 0) {
			wd_secure_free(copy);
			return nb_err_set(e, ENOMEM, "out of memory");
		}
		r = persist(v, e);
		if (r < 0) {
			struct wd_secret gone;
			secret_remove(v, pos, &gone);
			secret_clear(&gone);
			return r;
		}
		if (created)
			*created = true;
		return 0;
	}
	struct wd_secret *s = &v->secrets[at];
	char *old = s->value;
	size_t old_len = s->value_len;
	enum wd_inject old_inject = s->inject;
	s->value = copy;
	s->value_len = value_len;
	if (inject >= 0)
		s->inject = (enum wd_inject)inject;
	r = persist(v, e);
	if (r < 0) {
		s->value = old;
		s->value_len = old_len;
		s->inject = old_inject;
		wd_secure_free(copy);
		return r;
	}
	wd_secure_free(old);
	return 0;
}

int
wd_vault_delete(struct wd_vault *v, const char *name, struct nb_err *e)
{
	ssize_t at = wd_name_valid(name) ? secret_index(v, name) : -1;
	if (at < 0)
		return nb_err_set(e, ENOENT, "no secret named %.*s", WD_NAME_MAX, name);
	struct wd_secret gone;
	secret_remove(v, (size_t)at, &gone);
	int r = persist(v, e);
	if (r < 0) {
		/* Putting it back cannot fail: the array still has the room it had. */
		secret_insert(v, (size_t)at, &gone);
		return r;
	}
	secret_clear(&gone);
	return 0;
}

int
wd_vault_bind(struct wd_vault *v, const char *name, const char *const *hosts, size_t n_hosts,
	      struct nb_err *e)
{
	ssize_t at = wd_name_valid(name) ? secret_index(v, name) : -1;
	if (at < 0)
		return nb_err_set(e, ENOENT, "no secret named %.*s", WD_NAME_MAX, name);
	char **nh = NULL;
	size_t nn = 0;
	int r = hosts_build(hosts, n_hosts, &nh, &nn, e);
	if (r < 0)
		return r;
	struct wd_secret *s = &v->secrets[at];
	char **oh = s->hosts;
	size_t on = s->n_hosts;
	s->hosts = nh;
	s->n_hosts = nn;
	r = persist(v, e);
	if (r < 0) {
		s->hosts = oh;
		s->n_hosts = on;
		hosts_free(nh, nn);
		return r;
	}
	hosts_free(oh, on);
	return 0;
}
