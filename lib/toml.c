/*
 * toml.c: the strict TOML subset parser declared in toml.h.
 *
 * Sections, in order:
 *   - errors and the dotted path of the key being parsed (for messages)
 *   - whole-buffer checks: UTF-8 and control characters, before any parsing
 *   - the tree: nodes, tables, lookup, free
 *   - formatting keys and strings so that user input is safe to print
 *   - lexing: white space, comments, newlines, keys, strings, bare values (integers, booleans)
 *   - values: arrays, inline tables, key/value pairs
 *   - table headers and the statement loop
 *
 * The input is a (pointer, length) pair that need not be NUL-terminated: every read goes
 * through a bound check against ps->end. Recursion (arrays and inline tables) is bounded by
 * NB_TOML_MAX_DEPTH, so hostile input cannot exhaust the stack.
 */
#include "toml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

#define PATH_SIZE 256

struct parser {
	const char *name; /* for messages */
	const char *p;	  /* next byte to read */
	const char *end;  /* one past the last byte */
	unsigned line;	  /* line of *p */
	struct nb_err *e;
	struct nb_toml_node *root;
	struct nb_toml_node *cur; /* the table key/value lines go into */
	char cur_path[PATH_SIZE]; /* dotted path of cur; "" for the root */
	char path[PATH_SIZE];	  /* key being parsed; pathlen 0 = not known yet ("syntax") */
	size_t pathlen;
};

static inline bool
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static inline bool
is_bare(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' ||
	       c == '-';
}

/* ---- errors and paths ------------------------------------------------------------------- */

static int fail(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(struct parser *ps, const char *fmt, ...)
{
	char reason[320];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	return nb_err_set(ps->e, EINVAL, "%s:%u: %s: %s", ps->name, ps->line,
			  ps->pathlen ? ps->path : "syntax", reason);
}

static int
oom(struct parser *ps)
{
	return nb_err_set(ps->e, ENOMEM, "%s: out of memory", ps->name);
}

static void path_appendf(struct parser *ps, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
path_appendf(struct parser *ps, const char *fmt, ...)
{
	size_t room = sizeof(ps->path) - ps->pathlen;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(ps->path + ps->pathlen, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		ps->path[ps->pathlen] = '\0';
	else
		ps->pathlen += (size_t)n < room ? (size_t)n : room - 1;
}

/* Appends ".key" (or "key" at the start); returns the length to restore with path_pop(). */
static size_t
path_push_key(struct parser *ps, const char *key)
{
	size_t old = ps->pathlen;
	char k[PATH_SIZE];
	nb_toml_format_key(k, sizeof(k), key);
	path_appendf(ps, "%s%s", old ? "." : "", k);
	return old;
}

static size_t
path_push_index(struct parser *ps, size_t i)
{
	size_t old = ps->pathlen;
	path_appendf(ps, "[%zu]", i);
	return old;
}

static void
path_pop(struct parser *ps, size_t old)
{
	ps->pathlen = old;
	ps->path[old] = '\0';
}

static void
path_set(struct parser *ps, const char *s)
{
	ps->pathlen = 0;
	ps->path[0] = '\0';
	path_appendf(ps, "%s", s);
}

/* ---- whole-buffer checks ---------------------------------------------------------------- */

/*
 * Decodes one UTF-8 sequence at @s (before @end). Returns its length and the code point, or 0
 * with *why set if the bytes are not valid UTF-8 (overlong forms, surrogates and code points
 * beyond U+10FFFF included).
 */
static size_t
utf8_decode(const char *s, const char *end, uint32_t *cp, const char **why)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t avail = (size_t)(end - s);
	size_t n;
	uint32_t c, min;

	*why = "truncated sequence";
	if (avail == 0)
		return 0;
	if (u[0] < 0x80) {
		*cp = u[0];
		return 1;
	} else if (u[0] < 0xC0) {
		*why = "unexpected continuation byte";
		return 0;
	} else if (u[0] < 0xE0) {
		n = 2, c = u[0] & 0x1F, min = 0x80;
	} else if (u[0] < 0xF0) {
		n = 3, c = u[0] & 0x0F, min = 0x800;
	} else if (u[0] < 0xF8) {
		n = 4, c = u[0] & 0x07, min = 0x10000;
	} else {
		*why = "byte that never appears in UTF-8";
		return 0;
	}
	if (avail < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((u[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (u[i] & 0x3F);
	}
	if (c < min) {
		*why = "overlong encoding";
		return 0;
	}
	if (c >= 0xD800 && c <= 0xDFFF) {
		*why = "UTF-16 surrogate";
		return 0;
	}
	if (c > 0x10FFFF) {
		*why = "code point beyond U+10FFFF";
		return 0;
	}
	*cp = c;
	return n;
}

/*
 * The whole buffer must be UTF-8 without control characters other than tab and newline (CR
 * only as part of CRLF), as TOML requires. Checking once up front means no later stage ever
 * sees, stores or prints a malformed sequence, and errors point at the right line even inside
 * comments.
 */
static int
check_text(struct parser *ps)
{
	const char *s = ps->p;
	unsigned line = 1;
	while (s < ps->end) {
		unsigned char c = (unsigned char)*s;
		if (c == '\n') {
			line++;
			s++;
			continue;
		}
		if (c == '\r' && s + 1 < ps->end && s[1] == '\n') {
			s++;
			continue;
		}
		if (c == '\r') {
			ps->line = line;
			return fail(ps, "carriage return without a line feed");
		}
		if ((c < 0x20 && c != '\t') || c == 0x7F) {
			ps->line = line;
			return fail(ps, "control character U+%04X is not allowed", c);
		}
		uint32_t cp;
		const char *why;
		size_t n = utf8_decode(s, ps->end, &cp, &why);
		if (n == 0) {
			ps->line = line;
			return fail(ps, "invalid UTF-8 (%s, byte 0x%02X)", why, c);
		}
		s += n;
	}
	return 0;
}

/* ---- the tree --------------------------------------------------------------------------- */

static struct nb_toml_node *
node_new(enum nb_toml_type t, unsigned line)
{
	struct nb_toml_node *n = calloc(1, sizeof(*n));
	if (n) {
		n->type = t;
		n->line = line;
	}
	return n;
}

void
nb_toml_free(struct nb_toml_node *n)
{
	if (!n)
		return;
	switch (n->type) {
	case NB_TOML_STRING:
		free(n->string);
		break;
	case NB_TOML_ARRAY:
		for (size_t i = 0; i < n->array.n; i++)
			nb_toml_free(n->array.items[i]);
		free(n->array.items);
		break;
	case NB_TOML_TABLE:
		for (size_t i = 0; i < n->table.n; i++) {
			free(n->table.entries[i].key);
			nb_toml_free(n->table.entries[i].value);
		}
		free(n->table.entries);
		break;
	default:
		break;
	}
	free(n);
}

/* Capacity is implicit: the vectors grow to the next power of two when n reaches one. */
static bool
grow(void **v, size_t n, size_t elem)
{
	if (n != 0 && (n & (n - 1)) != 0)
		return true;
	size_t cap = n ? 2 * n : 4;
	void *nv = realloc(*v, cap * elem);
	if (!nv)
		return false;
	*v = nv;
	return true;
}

static struct nb_toml_entry *
table_find(const struct nb_toml_node *t, const char *key)
{
	for (size_t i = 0; i < t->table.n; i++)
		if (strcmp(t->table.entries[i].key, key) == 0)
			return &t->table.entries[i];
	return NULL;
}

/* Adds key = v to @t. Takes ownership of @key and @v, also on failure. */
static int
table_add(struct parser *ps, struct nb_toml_node *t, char *key, unsigned line,
	  struct nb_toml_node *v)
{
	if (t->table.n >= NB_TOML_MAX_KEYS) {
		free(key);
		nb_toml_free(v);
		return fail(ps, "more than %d keys in one table", NB_TOML_MAX_KEYS);
	}
	if (!grow((void **)&t->table.entries, t->table.n, sizeof(*t->table.entries))) {
		free(key);
		nb_toml_free(v);
		return oom(ps);
	}
	t->table.entries[t->table.n++] =
		(struct nb_toml_entry){ .key = key, .line = line, .value = v };
	return 0;
}

const struct nb_toml_entry *
nb_toml_get(const struct nb_toml_node *table, const char *key)
{
	if (!table || table->type != NB_TOML_TABLE || !key)
		return NULL;
	return table_find(table, key);
}

const char *
nb_toml_type_name(enum nb_toml_type t)
{
	switch (t) {
	case NB_TOML_TABLE:
		return "table";
	case NB_TOML_ARRAY:
		return "array";
	case NB_TOML_STRING:
		return "string";
	case NB_TOML_INTEGER:
		return "integer";
	case NB_TOML_BOOLEAN:
		return "boolean";
	}
	return "value";
}

/* ---- formatting for messages ------------------------------------------------------------ */

/*
 * Renders the character at *s into @piece (at least 11 bytes) and advances *s past it. Printable
 * text is copied; quotes, backslashes, C0 and C1 controls and DEL become escapes, and a byte that
 * is not valid UTF-8 becomes \xNN, so the result can go to a terminal or a log line unharmed.
 */
static size_t
render_char(const char **s, char *piece)
{
	const char *end = *s + strnlen(*s, 4);
	unsigned char c = (unsigned char)**s;
	uint32_t cp;
	const char *why;
	size_t n = utf8_decode(*s, end, &cp, &why);
	if (n == 0) {
		(*s)++;
		return (size_t)snprintf(piece, 11, "\\x%02X", c);
	}
	*s += n;
	switch (cp) {
	case '"':
		return (size_t)snprintf(piece, 11, "\\\"");
	case '\\':
		return (size_t)snprintf(piece, 11, "\\\\");
	case '\t':
		return (size_t)snprintf(piece, 11, "\\t");
	case '\n':
		return (size_t)snprintf(piece, 11, "\\n");
	case '\r':
		return (size_t)snprintf(piece, 11, "\\r");
	default:
		break;
	}
	if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
		return (size_t)snprintf(piece, 11, "\\u%04X", cp);
	memcpy(piece, *s - n, n);
	return n;
}

void
nb_toml_format_string(char *out, size_t size, const char *s, size_t max_chars)
{
	size_t len = 0, chars = 0;
	bool cut = false;

	if (size == 0)
		return;
	out[0] = '\0';
	if (size < 8 || !s)
		return;
	out[len++] = '"';
	while (*s) {
		char piece[16];
		if (chars == max_chars) {
			cut = true;
			break;
		}
		const char *before = s;
		size_t n = render_char(&s, piece);
		/* Keep room for `..."` and the NUL. */
		if (len + n + 5 > size) {
			s = before;
			cut = true;
			break;
		}
		memcpy(out + len, piece, n);
		len += n;
		chars++;
	}
	if (cut) {
		memcpy(out + len, "...", 3);
		len += 3;
	}
	out[len++] = '"';
	out[len] = '\0';
}

void
nb_toml_format_key(char *out, size_t size, const char *key)
{
	if (size == 0)
		return;
	bool bare = key && *key;
	for (const char *k = key; bare && *k; k++)
		bare = is_bare((unsigned char)*k);
	if (bare)
		snprintf(out, size, "%s", key);
	else
		nb_toml_format_string(out, size, key ? key : "", 64);
}

/* ---- lexing ----------------------------------------------------------------------------- */

static inline int
peek(const struct parser *ps)
{
	return ps->p < ps->end ? (unsigned char)*ps->p : -1;
}

static inline bool
at_end(const struct parser *ps)
{
	return ps->p >= ps->end;
}

/* "\n" or "\r\n" (a lone CR never gets past check_text(), but is not a newline here either). */
static bool
at_newline(const struct parser *ps)
{
	if (ps->p >= ps->end)
		return false;
	if (*ps->p == '\n')
		return true;
	return *ps->p == '\r' && ps->end - ps->p >= 2 && ps->p[1] == '\n';
}

static void
eat_newline(struct parser *ps)
{
	if (*ps->p == '\r')
		ps->p++;
	ps->p++;
	ps->line++;
}

static void
skip_ws(struct parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t'))
		ps->p++;
}

static void
skip_comment(struct parser *ps)
{
	if (peek(ps) != '#')
		return;
	while (ps->p < ps->end && *ps->p != '\n' && *ps->p != '\r')
		ps->p++;
}

/* White space, comments and newlines: what may separate array elements. */
static void
skip_ws_nl(struct parser *ps)
{
	for (;;) {
		skip_ws(ps);
		skip_comment(ps);
		if (!at_newline(ps))
			return;
		eat_newline(ps);
	}
}

/* Describes the next character for "expected X, found Y" messages. */
static const char *
found(const struct parser *ps, char buf[24])
{
	if (at_end(ps))
		return "end of file";
	unsigned char c = (unsigned char)*ps->p;
	if (c == '\n' || c == '\r')
		return "end of line";
	if (c == ' ')
		return "a space";
	if (c == '\t')
		return "a tab";
	if (c > 0x20 && c < 0x7F) {
		snprintf(buf, 24, "'%c'", c);
		return buf;
	}
	uint32_t cp;
	const char *why;
	if (utf8_decode(ps->p, ps->end, &cp, &why))
		snprintf(buf, 24, "U+%04X", cp);
	else
		snprintf(buf, 24, "byte 0x%02X", c);
	return buf;
}

static size_t
utf8_encode(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

static int
hex_value(int c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A "basic string" on one line, ps->p at the opening quote. *out is a new NUL-terminated string. */
static int
parse_basic_string(struct parser *ps, char **out)
{
	const char *start = ps->p + 1, *q = start;

	while (q < ps->end && *q != '"' && *q != '\n' && *q != '\r') {
		if (*q == '\\' && q + 1 < ps->end && q[1] != '\n' && q[1] != '\r')
			q++;
		q++;
	}
	if (q >= ps->end || *q != '"')
		return fail(ps, "unterminated string (no closing '\"' on this line)");

	/* Escapes never expand: \uXXXX is 6 bytes for at most 3, \UXXXXXXXX 10 for at most 4. */
	_cleanup_free_ char *buf = malloc((size_t)(q - start) + 1);
	if (!buf)
		return oom(ps);
	size_t n = 0;
	const char *s = start;
	while (s < q) {
		if (*s != '\\') {
			buf[n++] = *s++;
			continue;
		}
		s++;
		if (s >= q)
			return fail(ps, "unterminated string (no closing '\"' on this line)");
		char c = *s++;
		int digits = 0;
		switch (c) {
		case 'b':
			buf[n++] = '\b';
			break;
		case 't':
			buf[n++] = '\t';
			break;
		case 'n':
			buf[n++] = '\n';
			break;
		case 'f':
			buf[n++] = '\f';
			break;
		case 'r':
			buf[n++] = '\r';
			break;
		case '"':
			buf[n++] = '"';
			break;
		case '\\':
			buf[n++] = '\\';
			break;
		case 'u':
			digits = 4;
			break;
		case 'U':
			digits = 8;
			break;
		default:
			if ((unsigned char)c > 0x20 && (unsigned char)c < 0x7F)
				return fail(
					ps,
					"invalid escape \"\\%c\" (allowed: \\b \\t \\n \\f \\r \\\" "
					"\\\\ \\uXXXX \\UXXXXXXXX)",
					c);
			return fail(ps, "invalid escape: '\\' followed by %s",
				    c == ' '	? "a space"
				    : c == '\t' ? "a tab"
						: "a non-ASCII character");
		}
		if (digits == 0)
			continue;
		uint32_t cp = 0;
		for (int i = 0; i < digits; i++) {
			int h = s + i < q ? hex_value((unsigned char)s[i]) : -1;
			if (h < 0)
				return fail(ps, "\\%c must be followed by %d hex digits", c,
					    digits);
			cp = (cp << 4) | (uint32_t)h;
		}
		s += digits;
		if (cp == 0)
			return fail(ps, "NUL (\\%c%0*X) is not allowed in strings", c, digits, 0);
		if (cp >= 0xD800 && cp <= 0xDFFF)
			return fail(ps, "\\%c%0*X is a UTF-16 surrogate, not a character", c,
				    digits, cp);
		if (cp > 0x10FFFF)
			return fail(ps, "\\%c%0*X is beyond U+10FFFF", c, digits, cp);
		n += utf8_encode(cp, buf + n);
	}
	buf[n] = '\0';
	ps->p = q + 1;
	*out = steal_ptr(&buf);
	return 0;
}

/* A 'literal string' on one line, ps->p at the opening quote: no escapes. */
static int
parse_literal_string(struct parser *ps, char **out)
{
	const char *start = ps->p + 1, *q = start;
	while (q < ps->end && *q != '\'' && *q != '\n' && *q != '\r')
		q++;
	if (q >= ps->end || *q != '\'')
		return fail(ps, "unterminated string (no closing \"'\" on this line)");
	char *s = strndup(start, (size_t)(q - start));
	if (!s)
		return oom(ps);
	ps->p = q + 1;
	*out = s;
	return 0;
}

/* One key (bare, "basic" or 'literal'); @what names it in the message if there is none. */
static int
parse_key(struct parser *ps, char **out, const char *what)
{
	char buf[24];
	int c = peek(ps);
	if (c == '"')
		return parse_basic_string(ps, out);
	if (c == '\'')
		return parse_literal_string(ps, out);
	if (c < 0 || !is_bare(c))
		return fail(ps, "expected %s, found %s", what, found(ps, buf));
	const char *s = ps->p;
	while (ps->p < ps->end && is_bare((unsigned char)*ps->p))
		ps->p++;
	*out = strndup(s, (size_t)(ps->p - s));
	return *out ? 0 : oom(ps);
}

static bool
is_token(int c)
{
	return is_bare(c) || c == '+' || c == '.' || c == ':';
}

static bool
token_has(const char *s, size_t n, const char *set)
{
	for (size_t i = 0; i < n; i++)
		if (strchr(set, s[i]))
			return true;
	return false;
}

/* Strictly decimal: [+-], no leading zeros, '_' only between digits, must fit in int64_t. */
static int
parse_integer(struct parser *ps, const char *s, size_t n, const char *tok, int64_t *out)
{
	const char *d = s, *end = s + n;
	bool neg = *s == '-';
	if (*s == '+' || *s == '-')
		d++;
	if (d == end)
		return fail(ps, "invalid value %s (strings must be quoted)", tok);
	if (d[0] == '0' && end - d > 1)
		return fail(ps, "leading zeros are not allowed in integers (%s)", tok);
	uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	uint64_t acc = 0;
	bool prev_digit = false;
	for (const char *p = d; p < end; p++) {
		if (*p == '_') {
			if (!prev_digit || p + 1 >= end || !is_digit((unsigned char)p[1]))
				return fail(ps, "'_' in an integer must be between digits (%s)",
					    tok);
			prev_digit = false;
			continue;
		}
		if (!is_digit((unsigned char)*p))
			return fail(ps, "invalid integer %s", tok);
		unsigned dig = (unsigned)(*p - '0');
		if (acc > (limit - dig) / 10)
			return fail(ps, "integer %s does not fit in 64 bits", tok);
		acc = acc * 10 + dig;
		prev_digit = true;
	}
	if (neg)
		*out = acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc;
	else
		*out = (int64_t)acc;
	return 0;
}

/* An unquoted value: true, false or an integer; anything else is refused with the reason. */
static int
parse_bare_value(struct parser *ps, struct nb_toml_node **out)
{
	char buf[24], tok[48];
	const char *s = ps->p, *q = s;
	while (q < ps->end && is_token((unsigned char)*q))
		q++;
	size_t n = (size_t)(q - s);
	if (n == 0)
		return fail(ps, "expected a value, found %s", found(ps, buf));
	/* Token characters are all printable ASCII, so the token is safe to echo. */
	snprintf(tok, sizeof(tok), "'%.*s%s'", n > 32 ? 32 : (int)n, s, n > 32 ? "..." : "");

	struct nb_toml_node *v = NULL;
	if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0)) {
		v = node_new(NB_TOML_BOOLEAN, ps->line);
		if (!v)
			return oom(ps);
		v->boolean = n == 4;
		ps->p = q;
		*out = v;
		return 0;
	}
	const char *d = s + (*s == '+' || *s == '-');
	size_t dn = (size_t)(q - d);
	if (dn == 3 && (memcmp(d, "inf", 3) == 0 || memcmp(d, "nan", 3) == 0))
		return fail(ps, "floating point numbers are not supported (%s)", tok);
	if (dn == 0 || !is_digit((unsigned char)*d))
		return fail(ps, "invalid value %s (strings must be quoted)", tok);
	bool date = token_has(s, n, ":") ||
		    (n >= 5 && is_digit((unsigned char)s[0]) && is_digit((unsigned char)s[1]) &&
		     is_digit((unsigned char)s[2]) && is_digit((unsigned char)s[3]) && s[4] == '-');
	if (date)
		return fail(ps, "dates and times are not supported (%s); use a string", tok);
	if (dn > 1 && d[0] == '0' && (d[1] == 'x' || d[1] == 'o' || d[1] == 'b'))
		return fail(ps, "only decimal integers are supported (%s)", tok);
	if (token_has(d, dn, ".eE"))
		return fail(ps, "floating point numbers are not supported (%s)", tok);
	int64_t i = 0;
	int r = parse_integer(ps, s, n, tok, &i);
	if (r < 0)
		return r;
	v = node_new(NB_TOML_INTEGER, ps->line);
	if (!v)
		return oom(ps);
	v->integer = i;
	ps->p = q;
	*out = v;
	return 0;
}

/* ---- values ----------------------------------------------------------------------------- */

static int parse_value(struct parser *ps, int depth, struct nb_toml_node **out);

static int
parse_array(struct parser *ps, int depth, struct nb_toml_node **out)
{
	char buf[24];
	_cleanup_toml_ struct nb_toml_node *a = node_new(NB_TOML_ARRAY, ps->line);
	if (!a)
		return oom(ps);
	if (depth > NB_TOML_MAX_DEPTH)
		return fail(ps, "arrays and inline tables nested more than %d deep",
			    NB_TOML_MAX_DEPTH);
	ps->p++;
	for (;;) {
		skip_ws_nl(ps);
		if (at_end(ps))
			return fail(ps, "unterminated array (no closing ']')");
		if (peek(ps) == ']')
			break;
		size_t old = path_push_index(ps, a->array.n);
		struct nb_toml_node *item = NULL;
		int r = parse_value(ps, depth, &item);
		if (r < 0)
			return r;
		if (a->array.n > 0 && item->type != a->array.items[0]->type) {
			enum nb_toml_type t = item->type;
			nb_toml_free(item);
			return fail(ps, "arrays must not mix types (%s after %s)",
				    nb_toml_type_name(t),
				    nb_toml_type_name(a->array.items[0]->type));
		}
		if (!grow((void **)&a->array.items, a->array.n, sizeof(*a->array.items))) {
			nb_toml_free(item);
			return oom(ps);
		}
		a->array.items[a->array.n++] = item;
		skip_ws_nl(ps);
		if (at_end(ps))
			return fail(ps, "unterminated array (no closing ']')");
		if (peek(ps) == ']') {
			path_pop(ps, old);
			break;
		}
		if (peek(ps) != ',')
			return fail(ps, "expected ',' or ']' after an array element, found %s",
				    found(ps, buf));
		path_pop(ps, old);
		ps->p++;
	}
	ps->p++;
	*out = steal_ptr(&a);
	return 0;
}

/*
 * key = value into @t, with ps->p at the key. If @base is not NULL, the path is reset to @base
 * once the key is known (top-level lines: an error before the key reads "syntax"); otherwise the
 * key is appended to the current path. The path is left pointing at the key, for the caller's
 * messages about what follows the value.
 */
static int
parse_keyval(struct parser *ps, struct nb_toml_node *t, int depth, const char *base)
{
	char buf[24];
	_cleanup_free_ char *key = NULL;
	int r = parse_key(ps, &key, "a key");
	if (r < 0)
		return r;
	if (base)
		path_set(ps, base);
	path_push_key(ps, key);
	unsigned line = ps->line;
	skip_ws(ps);
	if (peek(ps) == '.')
		return fail(ps, "dotted keys are not supported; use a [table] header");
	if (peek(ps) != '=')
		return fail(ps, "expected '=' after the key, found %s", found(ps, buf));
	ps->p++;
	skip_ws(ps);
	const struct nb_toml_entry *prev = table_find(t, key);
	if (prev && prev->value->type == NB_TOML_TABLE &&
	    prev->value->table.origin != NB_TOML_INLINE)
		return fail(ps, "already defined as a table on line %u", prev->line);
	if (prev)
		return fail(ps, "duplicate key (first defined on line %u)", prev->line);
	if (at_end(ps) || at_newline(ps) || peek(ps) == '#')
		return fail(ps, "expected a value after '='");
	struct nb_toml_node *v = NULL;
	r = parse_value(ps, depth, &v);
	if (r < 0)
		return r;
	return table_add(ps, t, steal_ptr(&key), line, v);
}

/* { k = v, ... } on one line (values such as arrays may span lines); closed once parsed. */
static int
parse_inline_table(struct parser *ps, int depth, struct nb_toml_node **out)
{
	char buf[24];
	_cleanup_toml_ struct nb_toml_node *t = node_new(NB_TOML_TABLE, ps->line);
	if (!t)
		return oom(ps);
	t->table.origin = NB_TOML_INLINE;
	if (depth > NB_TOML_MAX_DEPTH)
		return fail(ps, "arrays and inline tables nested more than %d deep",
			    NB_TOML_MAX_DEPTH);
	ps->p++;
	skip_ws(ps);
	if (peek(ps) == '}') {
		ps->p++;
		*out = steal_ptr(&t);
		return 0;
	}
	for (;;) {
		skip_ws(ps);
		if (at_end(ps))
			return fail(ps, "unterminated inline table (no closing '}')");
		if (at_newline(ps))
			return fail(ps, "an inline table must be on one line (no closing '}')");
		if (peek(ps) == '}')
			return fail(ps, "trailing comma is not allowed in an inline table");
		size_t old = ps->pathlen;
		int r = parse_keyval(ps, t, depth, NULL);
		if (r < 0)
			return r;
		skip_ws(ps);
		if (at_end(ps))
			return fail(ps, "unterminated inline table (no closing '}')");
		if (at_newline(ps))
			return fail(ps, "an inline table must be on one line (no closing '}')");
		if (peek(ps) == '}') {
			path_pop(ps, old);
			break;
		}
		if (peek(ps) != ',')
			return fail(ps, "expected ',' or '}' in an inline table, found %s",
				    found(ps, buf));
		path_pop(ps, old);
		ps->p++;
	}
	ps->p++;
	*out = steal_ptr(&t);
	return 0;
}

static int
parse_value(struct parser *ps, int depth, struct nb_toml_node **out)
{
	int c = peek(ps);
	char *s = NULL;
	int r;

	switch (c) {
	case '"':
	case '\'': {
		if (ps->end - ps->p >= 3 && ps->p[1] == c && ps->p[2] == c)
			return fail(ps, "multi-line strings (%s) are not supported",
				    c == '"' ? "\"\"\"" : "'''");
		unsigned line = ps->line;
		r = c == '"' ? parse_basic_string(ps, &s) : parse_literal_string(ps, &s);
		if (r < 0)
			return r;
		*out = node_new(NB_TOML_STRING, line);
		if (!*out) {
			free(s);
			return oom(ps);
		}
		(*out)->string = s;
		return 0;
	}
	case '[':
		return parse_array(ps, depth + 1, out);
	case '{':
		return parse_inline_table(ps, depth + 1, out);
	default:
		return parse_bare_value(ps, out);
	}
}

/* ---- headers and statements ------------------------------------------------------------- */

/* [a.b.c], ps->p at '['. Creates the tables as needed and makes the last one current. */
static int
parse_header(struct parser *ps)
{
	char buf[24];
	unsigned line = ps->line;
	struct nb_toml_node *t = ps->root;

	ps->p++;
	if (peek(ps) == '[')
		return fail(ps, "arrays of tables ([[...]]) are not supported");
	path_set(ps, "");
	for (int parts = 1;; parts++) {
		_cleanup_free_ char *key = NULL;
		skip_ws(ps);
		int r = parse_key(ps, &key, "a table name");
		if (r < 0)
			return r;
		path_push_key(ps, key);
		if (parts > NB_TOML_MAX_DEPTH)
			return fail(ps, "table header has more than %d parts", NB_TOML_MAX_DEPTH);
		skip_ws(ps);
		bool last = peek(ps) == ']';
		if (!last && peek(ps) != '.')
			return fail(ps, "expected '.' or ']' in the table header, found %s",
				    found(ps, buf));
		ps->p++;

		struct nb_toml_entry *en = table_find(t, key);
		if (!en) {
			struct nb_toml_node *child = node_new(NB_TOML_TABLE, line);
			if (!child)
				return oom(ps);
			child->table.origin = last ? NB_TOML_HEADER : NB_TOML_IMPLICIT;
			r = table_add(ps, t, steal_ptr(&key), line, child);
			if (r < 0)
				return r;
			t = child;
		} else {
			struct nb_toml_node *v = en->value;
			if (v->type != NB_TOML_TABLE)
				return fail(
					ps,
					"already defined as a value (%s) on line %u, not a table",
					nb_toml_type_name(v->type), en->line);
			if (v->table.origin == NB_TOML_INLINE)
				return fail(ps, "inline table (line %u) cannot be extended",
					    en->line);
			if (last && v->table.origin == NB_TOML_HEADER)
				return fail(ps, "table [%s] defined twice (first on line %u)",
					    ps->path, en->line);
			if (last) {
				v->table.origin = NB_TOML_HEADER;
				v->line = line;
				en->line = line;
			}
			t = v;
		}
		if (last)
			break;
	}
	ps->cur = t;
	snprintf(ps->cur_path, sizeof(ps->cur_path), "%s", ps->path);
	return 0;
}

int
nb_toml_parse(const char *name, const char *buf, size_t len, struct nb_toml_node **root,
	      struct nb_err *e)
{
	char fbuf[24];
	if (!buf)
		buf = "";
	struct parser ps = {
		.name = name ? name : "(input)",
		.p = buf,
		.end = buf + len,
		.line = 1,
		.e = e,
	};
	*root = NULL;
	if (len > NB_TOML_MAX_SIZE)
		return fail(&ps, "larger than %d bytes", NB_TOML_MAX_SIZE);
	if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
		ps.p += 3;
	int r = check_text(&ps);
	if (r < 0)
		return r;
	ps.line = 1;

	_cleanup_toml_ struct nb_toml_node *top = node_new(NB_TOML_TABLE, 1);
	if (!top)
		return oom(&ps);
	top->table.origin = NB_TOML_ROOT;
	ps.root = ps.cur = top;

	for (;;) {
		skip_ws(&ps);
		skip_comment(&ps);
		if (at_end(&ps))
			break;
		if (at_newline(&ps)) {
			eat_newline(&ps);
			continue;
		}
		const char *what;
		path_set(&ps, "");
		if (peek(&ps) == '[') {
			r = parse_header(&ps);
			what = "table header";
		} else {
			r = parse_keyval(&ps, ps.cur, 0, ps.cur_path);
			what = "value";
		}
		if (r < 0)
			return r;
		skip_ws(&ps);
		skip_comment(&ps);
		if (at_end(&ps))
			break;
		if (!at_newline(&ps))
			return fail(&ps, "expected a newline after the %s, found %s", what,
				    found(&ps, fbuf));
		eat_newline(&ps);
	}
	*root = steal_ptr(&top);
	return 0;
}
