/*
 * manifest.c: AGENT.toml, parsed by toml.c and checked field by field into struct nb_manifest.
 *
 * Sections: messages and type checks - names, hosts and paths (the security-relevant parsing) -
 * one function per table ([agent], [capabilities] and its sub-tables, [tools]) - reading the
 * file and the public entry points.
 *
 * Every refusal is "FILE:LINE: FIELD: REASON" with EINVAL. The walk goes through each table's
 * entries in file order, so the first problem in the file is the one reported, and anything
 * the schema does not name is refused rather than ignored: a typo in a limit must not silently
 * fall back to a default.
 */
#include "manifest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "toml.h"

#define FIELD_SIZE 320
#define VERSION_MAX 128
#define CREDENTIAL_NAME_MAX 128
#define HEALTH_PATH_MAX 1024
#define HOST_MAX 253
#define LABEL_MAX 63

struct ctx {
	const char *file;
	struct nb_err *e;
	struct nb_manifest *m;
};

/* ---- messages and type checks ----------------------------------------------------------- */

static int bad(struct ctx *c, unsigned line, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
bad(struct ctx *c, unsigned line, const char *field, const char *fmt, ...)
{
	char reason[320];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	return nb_err_set(c->e, EINVAL, "%s:%u: %s: %s", c->file, line, field, reason);
}

static int
oom(struct ctx *c)
{
	return nb_err_set(c->e, ENOMEM, "%s: out of memory", c->file);
}

/* Long fields are cut with "..." at the end: a message must still fit in struct nb_err. */
static void
mark_cut(char *out, int n)
{
	if (n >= FIELD_SIZE)
		memcpy(out + FIELD_SIZE - 4, "...", 4);
}

/* "prefix.key", with the key quoted if it is not bare (it may hold anything). */
static void
field_key(char *out, const char *prefix, const char *key)
{
	char k[128];
	nb_toml_format_key(k, sizeof(k), key);
	mark_cut(out, snprintf(out, FIELD_SIZE, "%s%s%s", prefix, *prefix ? "." : "", k));
}

static void
field_index(char *out, const char *prefix, size_t i)
{
	mark_cut(out, snprintf(out, FIELD_SIZE, "%s[%zu]", prefix, i));
}

static const char *
a_type(enum nb_toml_type t)
{
	switch (t) {
	case NB_TOML_TABLE:
		return "a table";
	case NB_TOML_ARRAY:
		return "an array";
	case NB_TOML_STRING:
		return "a string";
	case NB_TOML_INTEGER:
		return "an integer";
	case NB_TOML_BOOLEAN:
		return "a boolean";
	}
	return "a value";
}

static int
want(struct ctx *c, const struct nb_toml_node *v, enum nb_toml_type t, const char *field)
{
	if (v->type == t)
		return 0;
	return bad(c, v->line, field, "expected %s, got %s", a_type(t), a_type(v->type));
}

static int
unknown(struct ctx *c, const struct nb_toml_entry *en, const char *field, const char *known)
{
	const struct nb_toml_node *v = en->value;
	bool table = v->type == NB_TOML_TABLE && v->table.origin != NB_TOML_INLINE;
	return bad(c, en->line, field, "unknown %s (expected one of: %s)", table ? "table" : "key",
		   known);
}

static int
missing(struct ctx *c, const struct nb_toml_node *table, const char *field)
{
	return bad(c, table->line, field, "missing required key");
}

static int
get_bool(struct ctx *c, const struct nb_toml_node *v, const char *field, bool *out)
{
	int r = want(c, v, NB_TOML_BOOLEAN, field);
	if (r < 0)
		return r;
	*out = v->boolean;
	return 0;
}

static int
get_int(struct ctx *c, const struct nb_toml_node *v, const char *field, int64_t min, int64_t max,
	int64_t *out)
{
	int r = want(c, v, NB_TOML_INTEGER, field);
	if (r < 0)
		return r;
	if (v->integer < min || v->integer > max) {
		if (max == INT64_MAX)
			return bad(c, v->line, field, "must be at least %lld (got %lld)",
				   (long long)min, (long long)v->integer);
		return bad(c, v->line, field, "must be between %lld and %lld (got %lld)",
			   (long long)min, (long long)max, (long long)v->integer);
	}
	*out = v->integer;
	return 0;
}

static bool
has_control(const char *s)
{
	for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
		if (*u < 0x20 || *u == 0x7F)
			return true;
		/* C1 controls, U+0080..U+009F, encoded as C2 80..C2 9F. */
		if (u[0] == 0xC2 && u[1] >= 0x80 && u[1] <= 0x9F)
			return true;
	}
	return false;
}

/* A non-empty string without control characters, at most @max bytes; *out is a copy. */
static int
get_text(struct ctx *c, const struct nb_toml_node *v, const char *field, size_t max, char **out)
{
	int r = want(c, v, NB_TOML_STRING, field);
	if (r < 0)
		return r;
	size_t n = strlen(v->string);
	if (n == 0)
		return bad(c, v->line, field, "must not be empty");
	if (n > max)
		return bad(c, v->line, field, "longer than %zu bytes", max);
	if (has_control(v->string))
		return bad(c, v->line, field, "must not contain control characters");
	*out = strdup(v->string);
	return *out ? 0 : oom(c);
}

/* ---- names, hosts, paths ---------------------------------------------------------------- */

static bool
is_name_char(int ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '-';
}

/* The (UTF-8) character at @s, quoted and escaped for a message. */
static void
describe_char(char *out, size_t size, const char *s)
{
	unsigned char c = (unsigned char)s[0];
	size_t n = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
	char one[5] = { 0 };
	memcpy(one, s, strnlen(s, n));
	nb_toml_format_string(out, size, one, 1);
}

/*
 * Agent and tool names: [A-Za-z0-9_-], 1..64. They end up in cgroup and socket paths, audit
 * records and log lines, so nothing that could separate, escape or hide is let through.
 */
static int
check_name(struct ctx *c, unsigned line, const char *field, const char *s)
{
	char ch[32];
	size_t n = strlen(s);
	if (n == 0)
		return bad(c, line, field, "must not be empty");
	for (size_t i = 0; i < n; i++) {
		if (!is_name_char((unsigned char)s[i])) {
			describe_char(ch, sizeof(ch), s + i);
			return bad(
				c, line, field,
				"invalid character %s at position %zu (allowed: A-Z a-z 0-9 _ -)",
				ch, i + 1);
		}
	}
	if (n > NB_AGENT_NAME_MAX)
		return bad(c, line, field, "longer than %d characters (%zu)", NB_AGENT_NAME_MAX, n);
	return 0;
}

/* Credential names become environment variable names: [A-Za-z_][A-Za-z0-9_]*. */
static int
check_credential_name(struct ctx *c, unsigned line, const char *field, const char *s)
{
	size_t n = strlen(s);
	if (n == 0)
		return bad(c, line, field, "must not be empty");
	if (n > CREDENTIAL_NAME_MAX)
		return bad(c, line, field, "longer than %d characters", CREDENTIAL_NAME_MAX);
	for (size_t i = 0; i < n; i++) {
		int ch = (unsigned char)s[i];
		bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_' ||
			  (i > 0 && ch >= '0' && ch <= '9');
		if (!ok)
			return bad(c, line, field,
				   "not a valid variable name (letters, digits and '_', not "
				   "starting with a digit)");
	}
	return 0;
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
 * One `allow` entry: "host", "*.domain", either optionally with ":port". Only names are
 * accepted, never addresses: egress resolves names itself and checks what they resolve to
 * (no loopback, private ranges or cloud metadata), which an IP literal would bypass. Lower-cased,
 * because DNS names compare case-insensitively and egress compares bytes.
 */
static int
parse_allow(struct ctx *c, unsigned line, const char *field, const char *s,
	    struct nb_net_allow *out)
{
	static const char ip_reason[] = "IP addresses are not allowed, name a host";
	struct in6_addr a6;
	struct in_addr a4;
	size_t n = strlen(s);

	if (n == 0)
		return bad(c, line, field, "must not be empty");
	if (strstr(s, "://"))
		return bad(c, line, field, "a host name, not a URL: remove the scheme");
	if (strchr(s, '/'))
		return bad(c, line, field, "a host name, not a URL: remove the path");
	if (strcmp(s, "*") == 0 || strncmp(s, "*:", 2) == 0)
		return bad(c, line, field, "\"*\" alone would allow every host; name the hosts");
	if (s[0] == '[' || inet_pton(AF_INET6, s, &a6) == 1)
		return bad(c, line, field, "%s", ip_reason);

	const char *colon = strchr(s, ':');
	size_t hlen = colon ? (size_t)(colon - s) : n;
	uint16_t port = 0;
	if (colon) {
		const char *p = colon + 1;
		size_t plen = n - hlen - 1;
		if (strchr(p, ':'))
			return bad(c, line, field, "more than one ':'");
		if (!all_digits(p, plen))
			return bad(c, line, field, "port must be a number between 1 and 65535");
		if (plen > 5 || atoi(p) < 1 || atoi(p) > 65535)
			return bad(c, line, field, "port must be between 1 and 65535 (got %.16s)",
				   p);
		port = (uint16_t)atoi(p);
	}
	if (hlen == 0)
		return bad(c, line, field, "empty host name");

	_cleanup_free_ char *host = strndup(s, hlen);
	if (!host)
		return oom(c);
	/* inet_aton also takes "127.1", "0x7f.1" and "2130706433", which some resolvers do too. */
	if (inet_aton(host, &a4))
		return bad(c, line, field, "%s", ip_reason);

	bool wildcard = strncmp(host, "*.", 2) == 0;
	char *name = wildcard ? host + 2 : host;
	if (strchr(name, '*'))
		return bad(c, line, field, "'*' is only allowed as a leading \"*.\"");
	size_t nlen = strlen(name);
	if (nlen > HOST_MAX)
		return bad(c, line, field, "host name longer than %d characters", HOST_MAX);

	size_t labels = 0;
	const char *last = name;
	for (const char *l = name;; labels++) {
		const char *dot = strchr(l, '.');
		size_t llen = dot ? (size_t)(dot - l) : strlen(l);
		if (llen == 0)
			return bad(c, line, field, "empty label in host name");
		if (llen > LABEL_MAX)
			return bad(c, line, field, "label longer than %d characters", LABEL_MAX);
		for (size_t i = 0; i < llen; i++) {
			int ch = (unsigned char)l[i];
			if (ch >= 0x80)
				return bad(c, line, field,
					   "non-ASCII host name; write it in its xn-- (punycode) "
					   "form");
			if (!is_name_char(ch) || ch == '_')
				return bad(c, line, field,
					   "invalid character in host name (allowed: letters, "
					   "digits, '-', '.')");
		}
		if (l[0] == '-' || l[llen - 1] == '-')
			return bad(c, line, field, "a label must not start or end with '-'");
		last = l;
		if (!dot)
			break;
		l = dot + 1;
	}
	labels++;
	/* A name whose last label is all digits is an address in some resolver's eyes. */
	if (all_digits(last, strlen(last)))
		return bad(c, line, field,
			   "the last label must not be all digits (it reads as an "
			   "IP address)");
	/* "*.com" would open a whole top-level domain. */
	if (wildcard && labels < 2)
		return bad(c, line, field,
			   "a wildcard must cover a domain of at least two labels, e.g. "
			   "*.example.com");
	for (char *p = host; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	out->host = steal_ptr(&host);
	out->wildcard = wildcard;
	out->port = port;
	return 0;
}

/*
 * Normalises absolute path @s into *out: "//", "/./" and a trailing '/' collapse. With
 * @dotdot, ".." removes the previous component (lexically); without it, ".." is refused
 * (-EINVAL). Returns 0, -EINVAL or -ENOMEM.
 */
static int
normalise(const char *s, bool dotdot, char **out)
{
	size_t n = strlen(s);
	_cleanup_free_ char *r = malloc(n + 2);
	if (!r)
		return -ENOMEM;
	size_t len = 0;
	for (const char *p = s; *p;) {
		while (*p == '/')
			p++;
		const char *q = p;
		while (*q && *q != '/')
			q++;
		size_t clen = (size_t)(q - p);
		if (clen == 0 || (clen == 1 && p[0] == '.')) {
			/* nothing */
		} else if (clen == 2 && p[0] == '.' && p[1] == '.') {
			if (!dotdot)
				return -EINVAL;
			while (len > 0 && r[len - 1] != '/')
				len--;
			if (len > 0)
				len--;
		} else {
			r[len++] = '/';
			memcpy(r + len, p, clen);
			len += clen;
		}
		p = q;
	}
	if (len == 0)
		r[len++] = '/';
	r[len] = '\0';
	*out = steal_ptr(&r);
	return 0;
}

/*
 * A `filesystem.read` or `.write` entry. ".." is refused rather than resolved: what it points at
 * depends on symlinks at mount time, and the cage must bind exactly what the manifest names.
 */
static int
parse_fs_path(struct ctx *c, unsigned line, const char *field, const char *s, char **out)
{
	if (s[0] == '\0')
		return bad(c, line, field, "must not be empty");
	if (s[0] != '/')
		return bad(c, line, field, "must be an absolute path (starting with '/')");
	if (has_control(s))
		return bad(c, line, field, "must not contain newlines or control characters");
	if (strlen(s) >= PATH_MAX)
		return bad(c, line, field, "longer than %d bytes", PATH_MAX - 1);
	int r = normalise(s, false, out);
	if (r == -EINVAL)
		return bad(c, line, field, "must not contain '..'");
	if (r < 0)
		return oom(c);
	if (strcmp(*out, "/") == 0) {
		free(*out);
		*out = NULL;
		return bad(c, line, field,
			   "\"/\" would grant the whole file system; name the directories");
	}
	return 0;
}

/* ---- arrays of strings ------------------------------------------------------------------ */

/* An array of strings, each checked by @check into a new string; NULL-terminated *out. */
typedef int (*item_fn)(struct ctx *c, unsigned line, const char *field, const char *s, char **out);

static int
get_strv(struct ctx *c, const struct nb_toml_node *v, const char *field, item_fn check, char ***out)
{
	char f[FIELD_SIZE];
	int r = want(c, v, NB_TOML_ARRAY, field);
	if (r < 0)
		return r;
	_cleanup_strv_ char **list = calloc(v->array.n + 1, sizeof(char *));
	if (!list)
		return oom(c);
	for (size_t i = 0; i < v->array.n; i++) {
		const struct nb_toml_node *it = v->array.items[i];
		field_index(f, field, i);
		r = want(c, it, NB_TOML_STRING, f);
		if (r < 0)
			return r;
		r = check(c, it->line, f, it->string, &list[i]);
		if (r < 0)
			return r;
		for (size_t j = 0; j < i; j++)
			if (strcmp(list[i], list[j]) == 0)
				return bad(c, it->line, f, "duplicate entry (same as [%zu])", j);
	}
	nb_strv_free(*out);
	*out = steal_ptr(&list);
	return 0;
}

static int
credential_item(struct ctx *c, unsigned line, const char *field, const char *s, char **out)
{
	int r = check_credential_name(c, line, field, s);
	if (r < 0)
		return r;
	*out = strdup(s);
	return *out ? 0 : oom(c);
}

/* ---- tables ----------------------------------------------------------------------------- */

static int
want_table(struct ctx *c, const struct nb_toml_entry *en, const char *field)
{
	return want(c, en->value, NB_TOML_TABLE, field);
}

static int
load_agent(struct ctx *c, const struct nb_toml_entry *te)
{
	struct nb_manifest *m = c->m;
	char f[FIELD_SIZE];
	bool has_name = false, has_version = false, has_runtime = false, has_entry = false;
	int r = want_table(c, te, "agent");
	if (r < 0)
		return r;
	const struct nb_toml_node *t = te->value;
	for (size_t i = 0; i < t->table.n; i++) {
		const struct nb_toml_entry *en = &t->table.entries[i];
		const struct nb_toml_node *v = en->value;
		field_key(f, "agent", en->key);
		if (strcmp(en->key, "name") == 0) {
			r = want(c, v, NB_TOML_STRING, f);
			if (r < 0)
				return r;
			r = check_name(c, v->line, f, v->string);
			if (r < 0)
				return r;
			snprintf(m->name, sizeof(m->name), "%s", v->string);
			has_name = true;
		} else if (strcmp(en->key, "version") == 0) {
			r = get_text(c, v, f, VERSION_MAX, &m->version);
			if (r < 0)
				return r;
			has_version = true;
		} else if (strcmp(en->key, "runtime") == 0) {
			r = want(c, v, NB_TOML_STRING, f);
			if (r < 0)
				return r;
			if (strcmp(v->string, "binary") == 0) {
				m->runtime = NB_RUNTIME_BINARY;
			} else if (strcmp(v->string, "python") == 0) {
				m->runtime = NB_RUNTIME_PYTHON;
			} else {
				char got[96];
				nb_toml_format_string(got, sizeof(got), v->string, 32);
				return bad(c, v->line, f,
					   "must be \"binary\" or \"python\" (got %s)", got);
			}
			has_runtime = true;
		} else if (strcmp(en->key, "entry") == 0) {
			r = get_text(c, v, f, PATH_MAX - 1, &m->entry);
			if (r < 0)
				return r;
			has_entry = true;
		} else if (strcmp(en->key, "restart") == 0) {
			r = want(c, v, NB_TOML_STRING, f);
			if (r < 0)
				return r;
			if (strcmp(v->string, "always") == 0) {
				m->restart = NB_RESTART_ALWAYS;
			} else if (strcmp(v->string, "on-failure") == 0) {
				m->restart = NB_RESTART_ON_FAILURE;
			} else if (strcmp(v->string, "never") == 0) {
				m->restart = NB_RESTART_NEVER;
			} else {
				char got[96];
				nb_toml_format_string(got, sizeof(got), v->string, 32);
				return bad(
					c, v->line, f,
					"must be \"always\", \"on-failure\" or \"never\" (got %s)",
					got);
			}
		} else {
			return unknown(c, en, f, "name, version, runtime, entry, restart");
		}
	}
	if (!has_name)
		return missing(c, t, "agent.name");
	if (!has_version)
		return missing(c, t, "agent.version");
	if (!has_runtime)
		return missing(c, t, "agent.runtime");
	if (!has_entry)
		return missing(c, t, "agent.entry");
	return 0;
}

static int
load_network(struct ctx *c, const struct nb_toml_entry *te)
{
	struct nb_manifest *m = c->m;
	char f[FIELD_SIZE], fi[FIELD_SIZE];
	int r = want_table(c, te, "capabilities.network");
	if (r < 0)
		return r;
	const struct nb_toml_node *t = te->value;
	for (size_t i = 0; i < t->table.n; i++) {
		const struct nb_toml_entry *en = &t->table.entries[i];
		const struct nb_toml_node *v = en->value;
		field_key(f, "capabilities.network", en->key);
		if (strcmp(en->key, "allow") != 0)
			return unknown(c, en, f, "allow");
		r = want(c, v, NB_TOML_ARRAY, f);
		if (r < 0)
			return r;
		m->net_allow = calloc(v->array.n ? v->array.n : 1, sizeof(*m->net_allow));
		if (!m->net_allow)
			return oom(c);
		for (size_t k = 0; k < v->array.n; k++) {
			const struct nb_toml_node *it = v->array.items[k];
			struct nb_net_allow *a = &m->net_allow[k];
			field_index(fi, f, k);
			r = want(c, it, NB_TOML_STRING, fi);
			if (r < 0)
				return r;
			r = parse_allow(c, it->line, fi, it->string, a);
			if (r < 0)
				return r;
			m->n_net_allow++;
			for (size_t j = 0; j < k; j++)
				if (strcmp(m->net_allow[j].host, a->host) == 0 &&
				    m->net_allow[j].port == a->port)
					return bad(c, it->line, fi,
						   "duplicate entry (same as [%zu])", j);
		}
	}
	return 0;
}

static int
load_filesystem(struct ctx *c, const struct nb_toml_entry *te)
{
	struct nb_manifest *m = c->m;
	char f[FIELD_SIZE];
	int r = want_table(c, te, "capabilities.filesystem");
	if (r < 0)
		return r;
	const struct nb_toml_node *t = te->value;
	for (size_t i = 0; i < t->table.n; i++) {
		const struct nb_toml_entry *en = &t->table.entries[i];
		field_key(f, "capabilities.filesystem", en->key);
		if (strcmp(en->key, "read") == 0)
			r = get_strv(c, en->value, f, parse_fs_path, &m->fs_read);
		else if (strcmp(en->key, "write") == 0)
			r = get_strv(c, en->value, f, parse_fs_path, &m->fs_write);
		else
			return unknown(c, en, f, "read, write");
		if (r < 0)
			return r;
	}
	return 0;
}

/* A ctxgraph key prefix: "" (every key) or up to 256 bytes without control characters. */
static int
parse_ctx_prefix(struct ctx *c, unsigned line, const char *field, const char *s, char **out)
{
	if (has_control(s))
		return bad(c, line, field, "must not contain newlines or control characters");
	if (strlen(s) > 256)
		return bad(c, line, field, "longer than 256 bytes");
	*out = strdup(s);
	return *out ? 0 : oom(c);
}

static int
load_ctxgraph(struct ctx *c, const struct nb_toml_entry *te)
{
	struct nb_manifest *m = c->m;
	char f[FIELD_SIZE];
	int r = want_table(c, te, "capabilities.ctxgraph");
	if (r < 0)
		return r;
	const struct nb_toml_node *t = te->value;
	for (size_t i = 0; i < t->table.n; i++) {
		const struct nb_toml_entry *en = &t->table.entries[i];
		field_key(f, "capabilities.ctxgraph", en->key);
		if (strcmp(en->key, "read") == 0)
			r = get_strv(c, en->value, f, parse_ctx_prefix, &m->ctx_read);
		else if (strcmp(en->key, "write") == 0)
			r = get_strv(c, en->value, f, parse_ctx_prefix, &m->ctx_write);
		else
			return unknown(c, en, f, "read, write");
		if (r < 0)
			return r;
	}
	return 0;
}

static int
load_health(struct ctx *c, const struct nb_toml_entry *te)
{
	struct nb_health_check *h = &c->m->health;
	char f[FIELD_SIZE];
	bool has_port = false;
	int64_t i = 0;
	int r = want_table(c, te, "capabilities.health_check");
	if (r < 0)
		return r;
	const struct nb_toml_node *t = te->value;
	for (size_t k = 0; k < t->table.n; k++) {
		const struct nb_toml_entry *en = &t->table.entries[k];
		const struct nb_toml_node *v = en->value;
		field_key(f, "capabilities.health_check", en->key);
		if (strcmp(en->key, "port") == 0) {
			r = get_int(c, v, f, 1, 65535, &i);
			h->port = (uint16_t)i;
			has_port = true;
		} else if (strcmp(en->key, "path") == 0) {
			char *p = NULL;
			r = get_text(c, v, f, HEALTH_PATH_MAX, &p);
			if (r < 0)
				return r;
			free(h->path);
			h->path = p;
			/* It goes into an HTTP request line: a space or CRLF would forge one. */
			if (p[0] != '/')
				return bad(c, v->line, f, "must start with '/'");
			if (strchr(p, ' '))
				return bad(c, v->line, f, "must not contain spaces");
		} else if (strcmp(en->key, "interval_secs") == 0) {
			r = get_int(c, v, f, 1, 86400, &i);
			h->interval_secs = (uint32_t)i;
		} else if (strcmp(en->key, "max_failures") == 0) {
			r = get_int(c, v, f, 1, 1000, &i);
			h->max_failures = (uint32_t)i;
		} else {
			return unknown(c, en, f, "port, path, interval_secs, max_failures");
		}
		if (r < 0)
			return r;
	}
	if (!has_port)
		return missing(c, t, "capabilities.health_check.port");
	h->present = true;
	return 0;
}

static int
load_capabilities(struct ctx *c, const struct nb_toml_entry *te)
{
	struct nb_manifest *m = c->m;
	char f[FIELD_SIZE];
	int64_t i = 0;
	int r = want_table(c, te, "capabilities");
	if (r < 0)
		return r;
	const struct nb_toml_node *t = te->value;
	for (size_t k = 0; k < t->table.n; k++) {
		const struct nb_toml_entry *en = &t->table.entries[k];
		const struct nb_toml_node *v = en->value;
		const char *key = en->key;
		field_key(f, "capabilities", key);
		if (strcmp(key, "shell") == 0) {
			r = get_bool(c, v, f, &m->shell);
		} else if (strcmp(key, "credential_refs") == 0) {
			r = get_strv(c, v, f, credential_item, &m->credential_refs);
		} else if (strcmp(key, "max_cpu_percent") == 0) {
			r = get_int(c, v, f, 1, 100, &i);
			m->max_cpu_percent = (uint32_t)i;
		} else if (strcmp(key, "max_memory_mb") == 0) {
			r = get_int(c, v, f, 1, 1048576, &i);
			m->max_memory_mb = (uint64_t)i;
		} else if (strcmp(key, "max_pids") == 0) {
			r = get_int(c, v, f, 1, 65536, &i);
			m->max_pids = (uint32_t)i;
		} else if (strcmp(key, "max_api_calls_per_hour") == 0) {
			r = get_int(c, v, f, 0, INT64_MAX, &i);
			m->max_api_calls_per_hour = (uint64_t)i;
		} else if (strcmp(key, "network") == 0) {
			r = load_network(c, en);
		} else if (strcmp(key, "filesystem") == 0) {
			r = load_filesystem(c, en);
		} else if (strcmp(key, "health_check") == 0) {
			r = load_health(c, en);
		} else if (strcmp(key, "ctxgraph") == 0) {
			r = load_ctxgraph(c, en);
		} else {
			return unknown(c, en, f,
				       "shell, credential_refs, max_cpu_percent, max_memory_mb, "
				       "max_pids, max_api_calls_per_hour, network, filesystem, "
				       "health_check, ctxgraph");
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static int
load_tools(struct ctx *c, const struct nb_toml_entry *te)
{
	struct nb_manifest *m = c->m;
	char f[FIELD_SIZE], fr[FIELD_SIZE];
	int r = want_table(c, te, "tools");
	if (r < 0)
		return r;
	const struct nb_toml_node *t = te->value;
	m->tools = calloc(t->table.n ? t->table.n : 1, sizeof(*m->tools));
	if (!m->tools)
		return oom(c);
	for (size_t k = 0; k < t->table.n; k++) {
		const struct nb_toml_entry *en = &t->table.entries[k];
		const struct nb_toml_node *v = en->value;
		bool has_risk = false;
		field_key(f, "tools", en->key);
		r = check_name(c, en->line, f, en->key);
		if (r < 0)
			return r;
		if (v->type != NB_TOML_TABLE)
			return bad(c, v->line, f,
				   "expected a table like { risk = \"low\" }, got %s",
				   a_type(v->type));
		struct nb_tool *tool = &m->tools[m->n_tools];
		tool->name = strdup(en->key);
		if (!tool->name)
			return oom(c);
		m->n_tools++;
		for (size_t j = 0; j < v->table.n; j++) {
			const struct nb_toml_entry *ren = &v->table.entries[j];
			const struct nb_toml_node *rv = ren->value;
			field_key(fr, f, ren->key);
			if (strcmp(ren->key, "risk") != 0)
				return unknown(c, ren, fr, "risk");
			r = want(c, rv, NB_TOML_STRING, fr);
			if (r < 0)
				return r;
			static const char *const names[] = { "low", "medium", "high", "critical" };
			size_t x = 0;
			while (x < NB_ARRAY_SIZE(names) && strcmp(rv->string, names[x]) != 0)
				x++;
			if (x == NB_ARRAY_SIZE(names)) {
				char got[96];
				nb_toml_format_string(got, sizeof(got), rv->string, 32);
				return bad(c, rv->line, fr,
					   "must be \"low\", \"medium\", \"high\" or \"critical\" "
					   "(got %s)",
					   got);
			}
			tool->risk = (enum nb_risk)x;
			has_risk = true;
		}
		if (!has_risk) {
			field_key(fr, f, "risk");
			return missing(c, v, fr);
		}
	}
	return 0;
}

static int
load_root(struct ctx *c, const struct nb_toml_node *root)
{
	char f[FIELD_SIZE];
	bool has_agent = false;
	for (size_t i = 0; i < root->table.n; i++) {
		const struct nb_toml_entry *en = &root->table.entries[i];
		int r;
		field_key(f, "", en->key);
		if (strcmp(en->key, "agent") == 0) {
			r = load_agent(c, en);
			has_agent = true;
		} else if (strcmp(en->key, "capabilities") == 0) {
			r = load_capabilities(c, en);
		} else if (strcmp(en->key, "tools") == 0) {
			r = load_tools(c, en);
		} else {
			r = unknown(c, en, f, "agent, capabilities, tools");
		}
		if (r < 0)
			return r;
	}
	if (!has_agent)
		return bad(c, 1, "agent", "missing required table [agent]");
	return 0;
}

/* ---- entry points ----------------------------------------------------------------------- */

/* @dir is taken over (freed on failure too). */
static int
parse_into(const char *path, const char *buf, size_t len, char *dir, struct nb_manifest *m,
	   struct nb_err *e)
{
	struct ctx c = { .file = path, .e = e, .m = m };
	memset(m, 0, sizeof(*m));
	m->dir = dir;
	m->path = strdup(path);
	m->credential_refs = calloc(1, sizeof(char *));
	m->fs_read = calloc(1, sizeof(char *));
	m->fs_write = calloc(1, sizeof(char *));
	m->ctx_read = calloc(1, sizeof(char *));
	m->ctx_write = calloc(1, sizeof(char *));
	m->health.path = strdup("/health");
	if (!m->path || !m->credential_refs || !m->fs_read || !m->fs_write || !m->ctx_read ||
	    !m->ctx_write || !m->health.path) {
		nb_manifest_free(m);
		return oom(&c);
	}
	m->max_cpu_percent = 25;
	m->max_memory_mb = 256;
	m->max_pids = 64;
	m->health.interval_secs = 10;
	m->health.max_failures = 3;

	_cleanup_toml_ struct nb_toml_node *root = NULL;
	int r = nb_toml_parse(path, buf, len, &root, e);
	if (r >= 0)
		r = load_root(&c, root);
	if (r < 0)
		nb_manifest_free(m);
	return r;
}

/* The directory part of @path, made absolute against the cwd and normalised, without I/O. */
static int
lexical_dir(const char *path, char **out, struct nb_err *e)
{
	const char *slash = strrchr(path, '/');
	_cleanup_free_ char *dir = NULL;
	_cleanup_free_ char *joined = NULL;
	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return nb_err_set(e, ENOMEM, "%s: out of memory", path);
	if (dir[0] != '/') {
		_cleanup_free_ char *cwd = getcwd(NULL, 0);
		if (!cwd)
			return nb_err_setp(e, errno, "%s: cannot get the current directory", path);
		if (asprintf(&joined, "%s/%s", cwd, dir) < 0) {
			joined = NULL;
			return nb_err_set(e, ENOMEM, "%s: out of memory", path);
		}
	}
	if (normalise(joined ? joined : dir, true, out) < 0)
		return nb_err_set(e, ENOMEM, "%s: out of memory", path);
	return 0;
}

int
nb_manifest_parse(const char *path, const char *buf, size_t len, struct nb_manifest *m,
		  struct nb_err *e)
{
	char *dir = NULL;
	memset(m, 0, sizeof(*m));
	int r = lexical_dir(path, &dir, e);
	if (r < 0)
		return r;
	return parse_into(path, buf, len, dir, m, e);
}

int
nb_manifest_load(const char *path, struct nb_manifest *m, struct nb_err *e)
{
	memset(m, 0, sizeof(*m));
	/* O_NONBLOCK: a FIFO planted at the path must not hang the loader before fstat(). */
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return nb_err_setp(e, errno, "%s: cannot open", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return nb_err_setp(e, errno, "%s: cannot stat", path);
	if (!S_ISREG(st.st_mode))
		return nb_err_set(e, EINVAL, "%s: not a regular file", path);

	/* One byte past the limit is enough for the parser to refuse an oversized file. */
	const size_t limit = NB_TOML_MAX_SIZE + 1;
	size_t cap = st.st_size > 0 && (size_t)st.st_size < limit ? (size_t)st.st_size + 1 : 4096;
	size_t len = 0;
	_cleanup_free_ char *buf = malloc(cap);
	if (!buf)
		return nb_err_set(e, ENOMEM, "%s: out of memory", path);
	for (;;) {
		if (len == cap) {
			if (cap == limit)
				break;
			cap = cap * 2 < limit ? cap * 2 : limit;
			char *nbuf = realloc(buf, cap);
			if (!nbuf)
				return nb_err_set(e, ENOMEM, "%s: out of memory", path);
			buf = nbuf;
		}
		ssize_t k = read(fd, buf + len, cap - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return nb_err_setp(e, errno, "%s: cannot read", path);
		if (k == 0)
			break;
		len += (size_t)k;
	}

	const char *slash = strrchr(path, '/');
	_cleanup_free_ char *dirpart = !slash	       ? strdup(".")
				       : slash == path ? strdup("/")
						       : strndup(path, (size_t)(slash - path));
	if (!dirpart)
		return nb_err_set(e, ENOMEM, "%s: out of memory", path);
	char *dir = realpath(dirpart, NULL);
	if (!dir)
		return nb_err_setp(e, errno, "%s: cannot resolve its directory", path);
	return parse_into(path, buf, len, dir, m, e);
}

void
nb_manifest_free(struct nb_manifest *m)
{
	if (!m)
		return;
	free(m->path);
	free(m->dir);
	free(m->version);
	free(m->entry);
	nb_strv_free(m->credential_refs);
	for (size_t i = 0; i < m->n_net_allow; i++)
		free(m->net_allow[i].host);
	free(m->net_allow);
	nb_strv_free(m->fs_read);
	nb_strv_free(m->fs_write);
	nb_strv_free(m->ctx_read);
	nb_strv_free(m->ctx_write);
	free(m->health.path);
	for (size_t i = 0; i < m->n_tools; i++)
		free(m->tools[i].name);
	free(m->tools);
	memset(m, 0, sizeof(*m));
}

const char *
nb_runtime_name(enum nb_runtime r)
{
	switch (r) {
	case NB_RUNTIME_BINARY:
		return "binary";
	case NB_RUNTIME_PYTHON:
		return "python";
	}
	return "unknown";
}

const char *
nb_risk_name(enum nb_risk r)
{
	switch (r) {
	case NB_RISK_LOW:
		return "low";
	case NB_RISK_MEDIUM:
		return "medium";
	case NB_RISK_HIGH:
		return "high";
	case NB_RISK_CRITICAL:
		return "critical";
	}
	return "unknown";
}
