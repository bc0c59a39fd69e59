/*
 * output.c: everything nullctl shows a person goes through here.
 *
 * Sections:
 *   escaping   strings from nulld and from agents made safe for a terminal, with their width
 *   tables     aligned columns that stay aligned whatever the cells hold
 *   misc       durations, JSON lines, lenient reads of reply members
 *
 * Why escape: agent names, reasons, log lines and error messages are chosen by code NullBox
 * does not trust. Printed raw, ESC [ ... or OSC sequences could rewrite what the operator sees
 * (hide a "denied" row, fake a status), set the window title, or on some terminals write to the
 * clipboard; bidi overrides (U+202E) reorder a line without any escape byte at all. So every
 * such string is escaped to visible ASCII, and a backslash is escaped too so that an escape in
 * the output always means the byte was really there.
 */
#include <langinfo.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "nullctl.h"

static bool out_utf8;

void
ctl_output_init(void)
{
	setlocale(LC_CTYPE, "");
	out_utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
}

/* ---- escaping ---- */

struct sbuf {
	char *p;
	size_t len, cap;
};

static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (b->len + n + 1 > cap)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			abort();
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/*
 * Decodes one UTF-8 sequence at @s (@n bytes available). Returns its length and *cp, or 0 when
 * the bytes are not valid UTF-8 (overlong, surrogate, beyond U+10FFFF, truncated).
 */
static size_t
utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t c, min;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	} else if ((s[0] & 0xe0) == 0xc0) {
		len = 2, c = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3, c = s[0] & 0x0f, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4, c = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/*
 * Characters that are printable by the book but invisible or layout-changing on a terminal: a
 * reader cannot see them, and the bidi ones reorder the rest of the line ("Trojan Source").
 */
static bool
invisible(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) ||	 /* C1 controls: 0x9b is a one-byte CSI */
	       cp == 0xad || cp == 0x34f ||	 /* soft hyphen, combining grapheme joiner */
	       cp == 0x61c ||			 /* arabic letter mark */
	       (cp >= 0x115f && cp <= 0x1160) || /* hangul fillers */
	       (cp >= 0x17b4 && cp <= 0x17b5) || (cp >= 0x180b && cp <= 0x180f) ||
	       (cp >= 0x200b && cp <= 0x200f) || /* zero-width, LRM, RLM */
	       (cp >= 0x2028 && cp <= 0x202e) || /* separators, bidi embeddings and overrides */
	       (cp >= 0x2060 && cp <= 0x206f) || /* word joiner, bidi isolates */
	       cp == 0x3164 || (cp >= 0xfe00 && cp <= 0xfe0f) || cp == 0xfeff || cp == 0xffa0 ||
	       (cp >= 0xfff0 && cp <= 0xfffb) || (cp >= 0xe0000 && cp <= 0xe0fff);
}

/*
 * The next token of @s at @i: either bytes copied as they are or a visible escape, written to
 * @tok (at least 16 bytes) with its length in *tlen and display width in *tw. Returns how many
 * input bytes it covers.
 */
static size_t
next_token(const char *s, size_t len, size_t i, enum ctl_escape_mode mode, char *tok, size_t *tlen,
	   size_t *tw)
{
	const unsigned char *u = (const unsigned char *)s + i;
	unsigned char ch = u[0];
	if (ch < 0x80) {
		const char *esc = NULL;
		switch (ch) {
		case '\\':
			esc = "\\\\";
			break;
		case '\n':
			esc = mode == CTL_ESC_TEXT ? "\n" : "\\n";
			break;
		case '\t':
			esc = mode == CTL_ESC_TEXT ? "\t" : "\\t";
			break;
		case '\r':
			esc = (mode == CTL_ESC_TEXT && i + 1 < len && s[i + 1] == '\n') ? "\r"
											: "\\r";
			break;
		default:
			break;
		}
		if (esc) {
			*tlen = strlen(esc);
			memcpy(tok, esc, *tlen);
			*tw = (esc[0] == '\\') ? *tlen : 0;
		} else if (ch < 0x20 || ch == 0x7f) {
			*tlen = (size_t)snprintf(tok, 16, "\\x%02x", ch);
			*tw = *tlen;
		} else {
			tok[0] = (char)ch;
			*tlen = *tw = 1;
		}
		return 1;
	}
	uint32_t cp;
	size_t n = utf8_decode(u, len - i, &cp);
	if (n == 0) {
		*tlen = (size_t)snprintf(tok, 16, "\\x%02x", ch);
		*tw = *tlen;
		return 1;
	}
	if (out_utf8 && !invisible(cp)) {
		/* wcwidth() knows the locale's idea of printable: -1 for unassigned and controls,
		 * 0 for combining marks (escaped too: they would fuse with the padding). */
		int w = wcwidth((wchar_t)cp);
		if (w > 0) {
			memcpy(tok, u, n);
			*tlen = n;
			*tw = (size_t)w;
			return n;
		}
	}
	*tlen = (size_t)snprintf(tok, 16, "\\u{%x}", cp);
	*tw = *tlen;
	return n;
}

char *
ctl_escape(const char *s, size_t len, enum ctl_escape_mode mode, size_t max_width, size_t *width)
{
	char tok[16];
	size_t tlen, tw, total = 0;
	struct sbuf b = { 0 };
	sb_add(&b, "", 0);
	for (size_t i = 0; i < len;)
		i += next_token(s, len, i, mode, tok, &tlen, &tw), total += tw;
	const char *ell = out_utf8 ? "\u2026" : "...";
	size_t ell_w = out_utf8 ? 1 : 3;
	/* Room for the text itself: all of it when it fits, else what fits beside the
	 * ellipsis (or, in a column too narrow for one, what fits at all). */
	bool cut = max_width && total > max_width;
	size_t room = !cut ? (size_t)-1 : max_width > ell_w ? max_width - ell_w : max_width;
	size_t used = 0;
	for (size_t i = 0; i < len;) {
		size_t n = next_token(s, len, i, mode, tok, &tlen, &tw);
		if (used + tw > room)
			break;
		sb_add(&b, tok, tlen);
		used += tw;
		i += n;
	}
	if (cut && max_width > ell_w) {
		sb_add(&b, ell, strlen(ell));
		used += ell_w;
	}
	if (width)
		*width = used;
	return b.p;
}

void
ctl_print_escaped(FILE *f, const char *s)
{
	if (!s) {
		fputs("-", f);
		return;
	}
	char *t = ctl_escape(s, strlen(s), CTL_ESC_LINE, 0, NULL);
	fputs(t, f);
	free(t);
}

/* ---- tables ---- */

struct ctl_table {
	size_t ncols;
	const char *const *heads;
	size_t *max, *w;
	char **cells; /* nrows * ncols, escaped */
	size_t *cw;   /* their widths */
	size_t nrows, cap;
	bool frozen, head_printed;
};

static void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		abort();
	return p;
}

struct ctl_table *
ctl_table_new(size_t ncols, const char *const *heads, const size_t *max)
{
	struct ctl_table *t = xcalloc(1, sizeof(*t));
	t->ncols = ncols;
	t->heads = heads;
	t->max = xcalloc(ncols, sizeof(size_t));
	t->w = xcalloc(ncols, sizeof(size_t));
	for (size_t j = 0; j < ncols; j++) {
		t->max[j] = max ? max[j] : 0;
		t->w[j] = strlen(heads[j]);
	}
	return t;
}

static void
table_clear_rows(struct ctl_table *t)
{
	for (size_t k = 0; k < t->nrows * t->ncols; k++)
		free(t->cells[k]);
	t->nrows = 0;
}

void
ctl_table_free(struct ctl_table *t)
{
	if (!t)
		return;
	table_clear_rows(t);
	free(t->cells);
	free(t->cw);
	free(t->max);
	free(t->w);
	free(t);
}

void
ctl_table_add(struct ctl_table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cells = realloc(t->cells, t->cap * t->ncols * sizeof(char *));
		t->cw = realloc(t->cw, t->cap * t->ncols * sizeof(size_t));
		if (!t->cells || !t->cw)
			abort();
	}
	for (size_t j = 0; j < t->ncols; j++) {
		const char *s = cells[j] && cells[j][0] ? cells[j] : "-";
		/* Once frozen, a column cannot grow: rows above were printed at this width. The
		 * last column has nothing to its right, so it keeps its own cap. */
		size_t limit = (t->frozen && j + 1 < t->ncols) ? t->w[j] : t->max[j];
		size_t k = t->nrows * t->ncols + j, w;
		t->cells[k] = ctl_escape(s, strlen(s), CTL_ESC_LINE, limit, &w);
		t->cw[k] = w;
		if (!t->frozen && w > t->w[j])
			t->w[j] = w;
	}
	t->nrows++;
}

static void
print_row(const struct ctl_table *t, FILE *f, const char *const *cells, const size_t *cw)
{
	for (size_t j = 0; j < t->ncols; j++) {
		fputs(cells[j], f);
		if (j + 1 < t->ncols)
			fprintf(f, "%*s", (int)(t->w[j] - cw[j] + 2), "");
	}
	fputc('\n', f);
}

void
ctl_table_print(struct ctl_table *t, FILE *f)
{
	if (!t->head_printed) {
		size_t *hw = xcalloc(t->ncols, sizeof(size_t));
		for (size_t j = 0; j < t->ncols; j++)
			hw[j] = strlen(t->heads[j]);
		print_row(t, f, t->heads, hw);
		free(hw);
		t->head_printed = true;
	}
	for (size_t r = 0; r < t->nrows; r++)
		print_row(t, f, (const char *const *)&t->cells[r * t->ncols], &t->cw[r * t->ncols]);
	table_clear_rows(t);
	fflush(f);
}

void
ctl_table_freeze(struct ctl_table *t, const size_t *min)
{
	for (size_t j = 0; min && j < t->ncols; j++) {
		size_t m = t->max[j] && min[j] > t->max[j] ? t->max[j] : min[j];
		if (t->w[j] < m)
			t->w[j] = m;
	}
	t->frozen = true;
}

/* ---- misc ---- */

char *
ctl_duration(uint64_t ms, char *buf, size_t size)
{
	uint64_t s = ms / 1000;
	if (s < 60)
		snprintf(buf, size, "%llus", (unsigned long long)s);
	else if (s < 3600)
		snprintf(buf, size, "%llum%02llus", (unsigned long long)(s / 60),
			 (unsigned long long)(s % 60));
	else if (s < 86400)
		snprintf(buf, size, "%lluh%02llum", (unsigned long long)(s / 3600),
			 (unsigned long long)(s % 3600 / 60));
	else
		snprintf(buf, size, "%llud%02lluh", (unsigned long long)(s / 86400),
			 (unsigned long long)(s % 86400 / 3600));
	return buf;
}

void
ctl_print_json(const json_t *v)
{
	/* ASCII only: a person may run --json on a terminal, and \uXXXX escapes keep bidi and
	 * other invisible characters from acting on it; any JSON parser reads them back. */
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
	if (!s)
		abort();
	fputs(s, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	free(s);
}

const char *
ctl_json_str(const json_t *o, const char *key)
{
	json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
	return json_is_string(v) ? json_string_value(v) : NULL;
}

int64_t
ctl_json_int(const json_t *o, const char *key, int64_t dflt)
{
	json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}
