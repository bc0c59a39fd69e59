/*
 * test_toml.c: the strict TOML subset parser, on its own.
 *
 * Hand-written tests for what it accepts (values, lines, tables, escapes, limits), then one
 * test per entry of `refusals`: an input and the exact message it must produce.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cleanup.h"
#include "toml.h"

static struct nb_toml_node *
parse_n(const char *s, size_t len)
{
	struct nb_toml_node *root = NULL;
	struct nb_err e = { 0 };
	int r = nb_toml_parse("t.toml", s, len, &root, &e);
	if (r != 0)
		print_error("unexpected error: %s\n", e.msg);
	assert_int_equal(r, 0);
	assert_non_null(root);
	assert_int_equal(root->type, NB_TOML_TABLE);
	assert_int_equal(root->table.origin, NB_TOML_ROOT);
	return root;
}

static struct nb_toml_node *
parse(const char *s)
{
	return parse_n(s, strlen(s));
}

/* The value at @key in @t, which must exist and have type @type. */
static const struct nb_toml_node *
get(const struct nb_toml_node *t, const char *key, enum nb_toml_type type)
{
	const struct nb_toml_entry *en = nb_toml_get(t, key);
	if (!en)
		fail_msg("no key \"%s\"", key);
	assert_int_equal(en->value->type, type);
	return en->value;
}

static unsigned
key_line(const struct nb_toml_node *t, const char *key)
{
	const struct nb_toml_entry *en = nb_toml_get(t, key);
	assert_non_null(en);
	return en->line;
}

static void
test_values_and_lines(void **state)
{
	_cleanup_toml_ struct nb_toml_node *r = parse("# comment\n"
						      "title = \"hello\" # trailing comment\n"
						      "n = -42\n"
						      "\n"
						      "big = 9223372036854775807\n"
						      "small = -9223372036854775808\n"
						      "u = 1_000_000\n"
						      "plus = +7\n"
						      "zero = -0\n"
						      "t = true\n"
						      "f = false\n"
						      "lit = 'C:\\path\\'\n"
						      "\"quoted key\" = 1\n"
						      "'lit key' = 2\n"
						      "\"\" = 3\n"
						      "tab\t=\t\"a\tb\"\n"
						      "   indented = 4\n");
	assert_string_equal(get(r, "title", NB_TOML_STRING)->string, "hello");
	assert_int_equal(get(r, "title", NB_TOML_STRING)->line, 2);
	assert_int_equal(get(r, "n", NB_TOML_INTEGER)->integer, -42);
	assert_int_equal(key_line(r, "n"), 3);
	assert_true(get(r, "big", NB_TOML_INTEGER)->integer == INT64_MAX);
	assert_int_equal(key_line(r, "big"), 5);
	assert_true(get(r, "small", NB_TOML_INTEGER)->integer == INT64_MIN);
	assert_int_equal(get(r, "u", NB_TOML_INTEGER)->integer, 1000000);
	assert_int_equal(get(r, "plus", NB_TOML_INTEGER)->integer, 7);
	assert_int_equal(get(r, "zero", NB_TOML_INTEGER)->integer, 0);
	assert_true(get(r, "t", NB_TOML_BOOLEAN)->boolean);
	assert_false(get(r, "f", NB_TOML_BOOLEAN)->boolean);
	assert_string_equal(get(r, "lit", NB_TOML_STRING)->string, "C:\\path\\");
	assert_int_equal(get(r, "quoted key", NB_TOML_INTEGER)->integer, 1);
	assert_int_equal(get(r, "lit key", NB_TOML_INTEGER)->integer, 2);
	assert_int_equal(get(r, "", NB_TOML_INTEGER)->integer, 3);
	assert_string_equal(get(r, "tab", NB_TOML_STRING)->string, "a\tb");
	assert_int_equal(get(r, "indented", NB_TOML_INTEGER)->integer, 4);
	assert_int_equal(key_line(r, "indented"), 17);
	assert_int_equal(r->table.n, 15);
	/* Entries keep file order. */
	assert_string_equal(r->table.entries[0].key, "title");
	assert_string_equal(r->table.entries[14].key, "indented");
}

static void
test_escapes(void **state)
{
	_cleanup_toml_ struct nb_toml_node *r =
		parse("s = \"\\b\\t\\n\\f\\r\\\"\\\\\"\n"
		      "u = \"caf\\u00e9 \\u20AC \\U0001F600 \\U0010FFFF\"\n"
		      "raw = \"caf\xc3\xa9\"\n"
		      "\"k\\u0041\" = 1\n");
	assert_string_equal(get(r, "s", NB_TOML_STRING)->string, "\b\t\n\f\r\"\\");
	assert_string_equal(get(r, "u", NB_TOML_STRING)->string,
			    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf");
	assert_string_equal(get(r, "raw", NB_TOML_STRING)->string, "caf\xc3\xa9");
	assert_non_null(nb_toml_get(r, "kA"));
}

static void
test_arrays(void **state)
{
	_cleanup_toml_ struct nb_toml_node *r = parse("a = [\n"
						      "  \"x\",  # first\n"
						      "\n"
						      "  # a comment line\n"
						      "  \"y\",\n"
						      "]\n"
						      "empty = []\n"
						      "nested = [[1, 2], [\"a\"], []]\n"
						      "tables = [{ risk = \"low\" }, {}]\n"
						      "one = [ 1 ]\n");
	const struct nb_toml_node *a = get(r, "a", NB_TOML_ARRAY);
	assert_int_equal(a->line, 1);
	assert_int_equal(a->array.n, 2);
	assert_string_equal(a->array.items[0]->string, "x");
	assert_int_equal(a->array.items[0]->line, 2);
	assert_string_equal(a->array.items[1]->string, "y");
	assert_int_equal(a->array.items[1]->line, 5);
	assert_int_equal(get(r, "empty", NB_TOML_ARRAY)->array.n, 0);
	assert_int_equal(key_line(r, "empty"), 7);
	const struct nb_toml_node *nested = get(r, "nested", NB_TOML_ARRAY);
	assert_int_equal(nested->array.n, 3);
	assert_int_equal(nested->array.items[0]->array.items[1]->integer, 2);
	assert_string_equal(nested->array.items[1]->array.items[0]->string, "a");
	const struct nb_toml_node *tables = get(r, "tables", NB_TOML_ARRAY);
	assert_int_equal(tables->array.items[0]->type, NB_TOML_TABLE);
	assert_string_equal(get(tables->array.items[0], "risk", NB_TOML_STRING)->string, "low");
	assert_int_equal(tables->array.items[1]->table.n, 0);
	assert_int_equal(get(r, "one", NB_TOML_ARRAY)->array.n, 1);
}

static void
test_inline_tables(void **state)
{
	_cleanup_toml_ struct nb_toml_node *r =
		parse("t = { risk = \"low\", n = 1, \"q k\" = true }\n"
		      "e = {}\n"
		      "n = { a = { b = { c = 1 } }, l = [1,\n 2] }\n");
	const struct nb_toml_node *t = get(r, "t", NB_TOML_TABLE);
	assert_int_equal(t->table.origin, NB_TOML_INLINE);
	assert_int_equal(t->table.n, 3);
	assert_string_equal(get(t, "risk", NB_TOML_STRING)->string, "low");
	assert_true(get(t, "q k", NB_TOML_BOOLEAN)->boolean);
	assert_int_equal(get(r, "e", NB_TOML_TABLE)->table.n, 0);
	const struct nb_toml_node *n = get(r, "n", NB_TOML_TABLE);
	const struct nb_toml_node *b = get(get(n, "a", NB_TOML_TABLE), "b", NB_TOML_TABLE);
	assert_int_equal(get(b, "c", NB_TOML_INTEGER)->integer, 1);
	assert_int_equal(get(n, "l", NB_TOML_ARRAY)->array.items[1]->line, 4);
}

static void
test_tables(void **state)
{
	_cleanup_toml_ struct nb_toml_node *r = parse("top = 1\n"
						      "[a.b]\n"
						      "x = 1\n"
						      "[a]\n"
						      "y = 2\n"
						      "[ \"q k\" . 'lit' ]\n"
						      "z = 3\n"
						      "[a.c]\n");
	assert_int_equal(get(r, "top", NB_TOML_INTEGER)->integer, 1);
	const struct nb_toml_node *a = get(r, "a", NB_TOML_TABLE);
	/* [a] after [a.b]: the implicit table becomes the explicit one, at [a]'s line. */
	assert_int_equal(a->table.origin, NB_TOML_HEADER);
	assert_int_equal(a->line, 4);
	assert_int_equal(key_line(r, "a"), 4);
	const struct nb_toml_node *b = get(a, "b", NB_TOML_TABLE);
	assert_int_equal(b->line, 2);
	assert_int_equal(b->table.origin, NB_TOML_HEADER);
	assert_int_equal(get(b, "x", NB_TOML_INTEGER)->integer, 1);
	assert_int_equal(get(a, "y", NB_TOML_INTEGER)->integer, 2);
	assert_int_equal(get(a, "c", NB_TOML_TABLE)->table.n, 0);
	const struct nb_toml_node *q = get(r, "q k", NB_TOML_TABLE);
	assert_int_equal(q->table.origin, NB_TOML_IMPLICIT);
	assert_int_equal(get(get(q, "lit", NB_TOML_TABLE), "z", NB_TOML_INTEGER)->integer, 3);
}

static void
test_crlf_bom_empty(void **state)
{
	_cleanup_toml_ struct nb_toml_node *r = parse("\xef\xbb\xbf"
						      "a = 1\r\n"
						      "# c\r\n"
						      "b = [\r\n 2,\r\n]\r\n"
						      "c = 3");
	assert_int_equal(key_line(r, "b"), 3);
	assert_int_equal(get(r, "b", NB_TOML_ARRAY)->array.items[0]->line, 4);
	assert_int_equal(key_line(r, "c"), 6);

	_cleanup_toml_ struct nb_toml_node *empty = parse("");
	assert_int_equal(empty->table.n, 0);
	_cleanup_toml_ struct nb_toml_node *blank = parse("\n\n  # only comments\n\t\n");
	assert_int_equal(blank->table.n, 0);
	_cleanup_toml_ struct nb_toml_node *null_buf = parse_n(NULL, 0);
	assert_int_equal(null_buf->table.n, 0);
}

/* The buffer is a (pointer, length) pair: bytes past @len are never looked at. */
static void
test_not_nul_terminated(void **state)
{
	char buf[8];
	memcpy(buf, "a = 1234", 8);
	_cleanup_toml_ struct nb_toml_node *r = parse_n(buf, 6);
	assert_int_equal(get(r, "a", NB_TOML_INTEGER)->integer, 12);

	char *heap = malloc(9);
	assert_non_null(heap);
	memcpy(heap, "s = \"abc", 8);
	struct nb_toml_node *root = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(nb_toml_parse("t.toml", heap, 8, &root, &e), -EINVAL);
	assert_string_equal(e.msg,
			    "t.toml:1: s: unterminated string (no closing '\"' on this line)");
	free(heap);
}

static void
test_depth(void **state)
{
	char buf[256];
	struct nb_toml_node *root = NULL;
	struct nb_err e = { 0 };
	int d;

	/* NB_TOML_MAX_DEPTH levels of arrays are fine, one more is not. */
	d = snprintf(buf, sizeof(buf), "a = ");
	for (int i = 0; i < NB_TOML_MAX_DEPTH; i++)
		buf[d++] = '[';
	for (int i = 0; i < NB_TOML_MAX_DEPTH; i++)
		buf[d++] = ']';
	buf[d] = '\0';
	nb_toml_free(parse(buf));

	d = snprintf(buf, sizeof(buf), "a = ");
	for (int i = 0; i < NB_TOML_MAX_DEPTH + 1; i++)
		buf[d++] = '[';
	buf[d] = '\0';
	assert_int_equal(nb_toml_parse("t.toml", buf, strlen(buf), &root, &e), -EINVAL);
	assert_null(root);
	assert_string_equal(e.msg, "t.toml:1: a[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]"
				   "[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]: arrays and "
				   "inline tables nested more than 32 deep");

	d = snprintf(buf, sizeof(buf), "a = ");
	for (int i = 0; i < NB_TOML_MAX_DEPTH + 1; i++)
		d += snprintf(buf + d, sizeof(buf) - (size_t)d, "{a=");
	assert_int_equal(nb_toml_parse("t.toml", buf, strlen(buf), &root, &e), -EINVAL);
	assert_non_null(strstr(e.msg, ": arrays and inline tables nested more than 32 deep"));

	/* Header parts. */
	d = snprintf(buf, sizeof(buf), "[a");
	for (int i = 1; i < NB_TOML_MAX_DEPTH; i++)
		d += snprintf(buf + d, sizeof(buf) - (size_t)d, ".a");
	snprintf(buf + d, sizeof(buf) - (size_t)d, "]\n");
	nb_toml_free(parse(buf));
	snprintf(buf + d, sizeof(buf) - (size_t)d, ".b]\n");
	assert_int_equal(nb_toml_parse("t.toml", buf, strlen(buf), &root, &e), -EINVAL);
	assert_non_null(strstr(e.msg, ".a.b: table header has more than 32 parts"));
}

static void
test_limits(void **state)
{
	struct nb_toml_node *root = NULL;
	struct nb_err e = { 0 };
	size_t n = NB_TOML_MAX_SIZE + 1;
	char *big = malloc(n);
	assert_non_null(big);
	memset(big, '\n', n);
	assert_int_equal(nb_toml_parse("t.toml", big, n, &root, &e), -EINVAL);
	assert_string_equal(e.msg, "t.toml:1: syntax: larger than 1048576 bytes");
	nb_toml_free(parse_n(big, n - 1));
	free(big);

	/* NB_TOML_MAX_KEYS keys in one table, then one more. */
	size_t cap = (NB_TOML_MAX_KEYS + 1) * 16, len = 0;
	char *keys = malloc(cap);
	assert_non_null(keys);
	for (int i = 0; i < NB_TOML_MAX_KEYS; i++)
		len += (size_t)snprintf(keys + len, cap - len, "k%d = 1\n", i);
	nb_toml_free(parse_n(keys, len));
	len += (size_t)snprintf(keys + len, cap - len, "last = 1\n");
	assert_int_equal(nb_toml_parse("t.toml", keys, len, &root, &e), -EINVAL);
	assert_string_equal(e.msg, "t.toml:4097: last: more than 4096 keys in one table");
	free(keys);
}

static void
test_get_and_names(void **state)
{
	_cleanup_toml_ struct nb_toml_node *r = parse("a = [1]\n");
	assert_null(nb_toml_get(r, "b"));
	assert_null(nb_toml_get(r, NULL));
	assert_null(nb_toml_get(NULL, "a"));
	assert_null(nb_toml_get(get(r, "a", NB_TOML_ARRAY), "a"));
	assert_string_equal(nb_toml_type_name(NB_TOML_TABLE), "table");
	assert_string_equal(nb_toml_type_name(NB_TOML_ARRAY), "array");
	assert_string_equal(nb_toml_type_name(NB_TOML_STRING), "string");
	assert_string_equal(nb_toml_type_name(NB_TOML_INTEGER), "integer");
	assert_string_equal(nb_toml_type_name(NB_TOML_BOOLEAN), "boolean");
	assert_string_equal(nb_toml_type_name((enum nb_toml_type)0), "value");
}

static void
test_format(void **state)
{
	char out[32];
	nb_toml_format_key(out, sizeof(out), "bare_KEY-1");
	assert_string_equal(out, "bare_KEY-1");
	nb_toml_format_key(out, sizeof(out), "with space");
	assert_string_equal(out, "\"with space\"");
	nb_toml_format_key(out, sizeof(out), "");
	assert_string_equal(out, "\"\"");
	nb_toml_format_key(out, sizeof(out), "q\"b\\\x1b\x7f\xc2\x85");
	assert_string_equal(out, "\"q\\\"b\\\\\\u001B\\u007F\\u0085\"");

	nb_toml_format_string(out, sizeof(out), "caf\xc3\xa9", 10);
	assert_string_equal(out, "\"caf\xc3\xa9\"");
	nb_toml_format_string(out, sizeof(out), "abcdef", 3);
	assert_string_equal(out, "\"abc...\"");
	/* Invalid UTF-8 from a caller is shown byte by byte, not copied. */
	nb_toml_format_string(out, sizeof(out), "a\xff\xc3", 10);
	assert_string_equal(out, "\"a\\xFF\\xC3\"");
	/* Cut to the buffer without splitting an escape or a character. */
	nb_toml_format_string(out, 11, "\x01\x01\x01", 10);
	assert_string_equal(out, "\"...\"");
	nb_toml_format_string(out, 12, "\x01\x01\x01", 10);
	assert_string_equal(out, "\"\\u0001...\"");
	nb_toml_format_string(out, 13, "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", 10);
	assert_string_equal(out, "\"\xe2\x82\xac\xe2\x82\xac...\"");
	nb_toml_format_string(out, 4, "abc", 10);
	assert_string_equal(out, "");
}

/* ---- refusals, one test each --------------------------------------------------------- */

struct refusal {
	const char *name;
	const char *in;
	size_t len; /* 0: strlen(in) */
	const char *msg;
};

static const struct refusal refusals[] = {
	{ "float", "a = 1.5", 0, "t.toml:1: a: floating point numbers are not supported ('1.5')" },
	{ "float-exp", "a = 1e5", 0,
	  "t.toml:1: a: floating point numbers are not supported ('1e5')" },
	{ "float-inf", "a = inf", 0,
	  "t.toml:1: a: floating point numbers are not supported ('inf')" },
	{ "float-nan", "a = -nan", 0,
	  "t.toml:1: a: floating point numbers are not supported ('-nan')" },
	{ "date", "a = 1979-05-27", 0,
	  "t.toml:1: a: dates and times are not supported ('1979-05-27'); use a string" },
	{ "datetime", "a = 1979-05-27T07:32:00Z", 0,
	  "t.toml:1: a: dates and times are not supported ('1979-05-27T07:32:00Z'); use a string" },
	{ "time", "a = 07:32:00", 0,
	  "t.toml:1: a: dates and times are not supported ('07:32:00'); use a string" },
	{ "hex", "a = 0x1F", 0, "t.toml:1: a: only decimal integers are supported ('0x1F')" },
	{ "octal", "a = 0o17", 0, "t.toml:1: a: only decimal integers are supported ('0o17')" },
	{ "binary", "a = 0b1", 0, "t.toml:1: a: only decimal integers are supported ('0b1')" },
	{ "leading-zero", "a = 012", 0,
	  "t.toml:1: a: leading zeros are not allowed in integers ('012')" },
	{ "leading-zero-signed", "a = -00", 0,
	  "t.toml:1: a: leading zeros are not allowed in integers ('-00')" },
	{ "double-underscore", "a = 1__2", 0,
	  "t.toml:1: a: '_' in an integer must be between digits ('1__2')" },
	{ "trailing-underscore", "a = 1_", 0,
	  "t.toml:1: a: '_' in an integer must be between digits ('1_')" },
	{ "leading-underscore", "a = _1", 0,
	  "t.toml:1: a: invalid value '_1' (strings must be quoted)" },
	{ "sign-underscore", "a = +_1", 0,
	  "t.toml:1: a: invalid value '+_1' (strings must be quoted)" },
	{ "int-overflow", "a = 9223372036854775808", 0,
	  "t.toml:1: a: integer '9223372036854775808' does not fit in 64 bits" },
	{ "int-underflow", "a = -9223372036854775809", 0,
	  "t.toml:1: a: integer '-9223372036854775809' does not fit in 64 bits" },
	{ "int-huge", "a = 99999999999999999999999", 0,
	  "t.toml:1: a: integer '99999999999999999999999' does not fit in 64 bits" },
	{ "int-garbage", "a = 12abc", 0, "t.toml:1: a: invalid integer '12abc'" },
	{ "sign-only", "a = +", 0, "t.toml:1: a: invalid value '+' (strings must be quoted)" },
	{ "bare-word", "a = hello", 0,
	  "t.toml:1: a: invalid value 'hello' (strings must be quoted)" },
	{ "true-prefix", "a = truex", 0,
	  "t.toml:1: a: invalid value 'truex' (strings must be quoted)" },
	{ "long-token", "a = abcdefghijklmnopqrstuvwxyzabcdefghij", 0,
	  "t.toml:1: a: invalid value 'abcdefghijklmnopqrstuvwxyzabcdef...' (strings must be "
	  "quoted)" },
	{ "unterminated", "a = \"x", 0,
	  "t.toml:1: a: unterminated string (no closing '\"' on this line)" },
	{ "unterminated-newline", "a = \"x\ny\"", 0,
	  "t.toml:1: a: unterminated string (no closing '\"' on this line)" },
	{ "unterminated-backslash", "a = \"x\\", 0,
	  "t.toml:1: a: unterminated string (no closing '\"' on this line)" },
	{ "unterminated-escaped-quote", "a = \"x\\\"", 0,
	  "t.toml:1: a: unterminated string (no closing '\"' on this line)" },
	{ "unterminated-literal", "a = 'x\n", 0,
	  "t.toml:1: a: unterminated string (no closing \"'\" on this line)" },
	{ "bad-escape", "a = \"\\x41\"", 0,
	  "t.toml:1: a: invalid escape \"\\x\" (allowed: \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX "
	  "\\UXXXXXXXX)" },
	{ "escape-space", "a = \"\\ \"", 0,
	  "t.toml:1: a: invalid escape: '\\' followed by a space" },
	{ "escape-non-ascii", "a = \"\\\xc3\xa9\"", 0,
	  "t.toml:1: a: invalid escape: '\\' followed by a non-ASCII character" },
	{ "escape-newline", "a = \"\\\nb\"", 0,
	  "t.toml:1: a: unterminated string (no closing '\"' on this line)" },
	{ "short-u", "a = \"\\u12\"", 0, "t.toml:1: a: \\u must be followed by 4 hex digits" },
	{ "bad-hex-u", "a = \"\\u12G4\"", 0, "t.toml:1: a: \\u must be followed by 4 hex digits" },
	{ "short-U", "a = \"\\U0001F60\"", 0, "t.toml:1: a: \\U must be followed by 8 hex digits" },
	{ "surrogate-high", "a = \"\\uD800\"", 0,
	  "t.toml:1: a: \\uD800 is a UTF-16 surrogate, not a character" },
	{ "surrogate-low", "a = \"\\uDFFF\"", 0,
	  "t.toml:1: a: \\uDFFF is a UTF-16 surrogate, not a character" },
	{ "surrogate-U", "a = \"\\U0000DC00\"", 0,
	  "t.toml:1: a: \\U0000DC00 is a UTF-16 surrogate, not a character" },
	{ "beyond-max", "a = \"\\U00110000\"", 0, "t.toml:1: a: \\U00110000 is beyond U+10FFFF" },
	{ "beyond-max-ffff", "a = \"\\UFFFFFFFF\"", 0,
	  "t.toml:1: a: \\UFFFFFFFF is beyond U+10FFFF" },
	{ "nul-escape", "a = \"\\u0000\"", 0,
	  "t.toml:1: a: NUL (\\u0000) is not allowed in strings" },
	{ "nul-escape-U", "a = \"\\U00000000\"", 0,
	  "t.toml:1: a: NUL (\\U00000000) is not allowed in strings" },
	{ "multiline-basic", "a = \"\"\"x\"\"\"", 0,
	  "t.toml:1: a: multi-line strings (\"\"\") are not supported" },
	{ "multiline-literal", "a = '''x'''", 0,
	  "t.toml:1: a: multi-line strings (''') are not supported" },
	{ "array-of-tables", "[[t]]\n", 0,
	  "t.toml:1: syntax: arrays of tables ([[...]]) are not supported" },
	{ "duplicate-key", "a = 1\na = 2\n", 0,
	  "t.toml:2: a: duplicate key (first defined on line 1)" },
	{ "duplicate-quoted-key", "a = 1\n\"a\" = 2\n", 0,
	  "t.toml:2: a: duplicate key (first defined on line 1)" },
	{ "duplicate-in-table", "[t]\nx = 1\n\nx = 2\n", 0,
	  "t.toml:4: t.x: duplicate key (first defined on line 2)" },
	{ "duplicate-table", "[t]\n[t]\n", 0,
	  "t.toml:2: t: table [t] defined twice (first on line 1)" },
	{ "duplicate-table-after-implicit", "[a.b]\n[a]\n[a]\n", 0,
	  "t.toml:3: a: table [a] defined twice (first on line 2)" },
	{ "duplicate-subtable", "[a.b]\n[a.b]\n", 0,
	  "t.toml:2: a.b: table [a.b] defined twice (first on line 1)" },
	{ "value-then-table", "a = 1\n[a]\n", 0,
	  "t.toml:2: a: already defined as a value (integer) on line 1, not a table" },
	{ "value-then-subtable", "a = \"s\"\n[a.b]\n", 0,
	  "t.toml:2: a: already defined as a value (string) on line 1, not a table" },
	{ "table-then-value", "[a.b]\n[a]\nb = 1\n", 0,
	  "t.toml:3: a.b: already defined as a table on line 1" },
	{ "inline-then-table", "a = {x = 1}\n[a]\n", 0,
	  "t.toml:2: a: inline table (line 1) cannot be extended" },
	{ "inline-then-subtable", "a = {x = 1}\n[a.y]\n", 0,
	  "t.toml:2: a: inline table (line 1) cannot be extended" },
	{ "inline-then-value", "a = {}\na = 1\n", 0,
	  "t.toml:2: a: duplicate key (first defined on line 1)" },
	{ "two-statements", "a = 1 b = 2\n", 0,
	  "t.toml:1: a: expected a newline after the value, found 'b'" },
	{ "garbage-after-string", "a = \"x\" y\n", 0,
	  "t.toml:1: a: expected a newline after the value, found 'y'" },
	{ "garbage-after-array", "a = [1]]\n", 0,
	  "t.toml:1: a: expected a newline after the value, found ']'" },
	{ "header-then-key", "[a] b = 1\n", 0,
	  "t.toml:1: a: expected a newline after the table header, found 'b'" },
	{ "missing-equals", "a 1\n", 0, "t.toml:1: a: expected '=' after the key, found '1'" },
	{ "missing-equals-eol", "a\nb = 1\n", 0,
	  "t.toml:1: a: expected '=' after the key, found end of line" },
	{ "missing-key", "= 1\n", 0, "t.toml:1: syntax: expected a key, found '='" },
	{ "bad-key-char", "a@b = 1\n", 0, "t.toml:1: a: expected '=' after the key, found '@'" },
	{ "non-ascii-key", "\xc3\xa9 = 1\n", 0, "t.toml:1: syntax: expected a key, found U+00E9" },
	{ "missing-value", "a =\n", 0, "t.toml:1: a: expected a value after '='" },
	{ "missing-value-eof", "a = ", 0, "t.toml:1: a: expected a value after '='" },
	{ "missing-value-comment", "a = # no\n", 0, "t.toml:1: a: expected a value after '='" },
	{ "dotted-key", "a.b = 1\n", 0,
	  "t.toml:1: a: dotted keys are not supported; use a [table] header" },
	{ "dotted-key-inline", "t = { a.b = 1 }\n", 0,
	  "t.toml:1: t.a: dotted keys are not supported; use a [table] header" },
	{ "mixed-array", "a = [1, \"x\"]\n", 0,
	  "t.toml:1: a[1]: arrays must not mix types (string after integer)" },
	{ "mixed-array-late", "a = [\n  true,\n  false,\n  {},\n]\n", 0,
	  "t.toml:4: a[2]: arrays must not mix types (table after boolean)" },
	{ "array-no-comma", "a = [1 2]\n", 0,
	  "t.toml:1: a[0]: expected ',' or ']' after an array element, found '2'" },
	{ "array-unterminated", "a = [1,\n2", 0,
	  "t.toml:2: a[1]: unterminated array (no closing ']')" },
	{ "array-unterminated-empty", "a = [", 0,
	  "t.toml:1: a: unterminated array (no closing ']')" },
	{ "array-leading-comma", "a = [,]\n", 0, "t.toml:1: a[0]: expected a value, found ','" },
	{ "array-double-comma", "a = [1,,2]\n", 0, "t.toml:1: a[1]: expected a value, found ','" },
	{ "inline-trailing-comma", "a = { x = 1, }\n", 0,
	  "t.toml:1: a: trailing comma is not allowed in an inline table" },
	{ "inline-newline", "a = { x = 1\n}\n", 0,
	  "t.toml:1: a.x: an inline table must be on one line (no closing '}')" },
	{ "inline-newline-first", "a = {\nx = 1 }\n", 0,
	  "t.toml:1: a: an inline table must be on one line (no closing '}')" },
	{ "inline-duplicate", "a = { x = 1, x = 2 }\n", 0,
	  "t.toml:1: a.x: duplicate key (first defined on line 1)" },
	{ "inline-no-comma", "a = { x = 1 y = 2 }\n", 0,
	  "t.toml:1: a.x: expected ',' or '}' in an inline table, found 'y'" },
	{ "inline-unterminated", "a = { x = 1", 0,
	  "t.toml:1: a.x: unterminated inline table (no closing '}')" },
	{ "inline-comment", "a = { x = 1 # c\n", 0,
	  "t.toml:1: a.x: expected ',' or '}' in an inline table, found '#'" },
	{ "empty-header", "[]\n", 0, "t.toml:1: syntax: expected a table name, found ']'" },
	{ "unterminated-header", "[a", 0,
	  "t.toml:1: a: expected '.' or ']' in the table header, found end of file" },
	{ "header-trailing-dot", "[a.]\n", 0, "t.toml:1: a: expected a table name, found ']'" },
	{ "header-space-in-name", "[a b]\n", 0,
	  "t.toml:1: a: expected '.' or ']' in the table header, found 'b'" },
	{ "control-char", "a = 1\x01\n", 0,
	  "t.toml:1: syntax: control character U+0001 is not allowed" },
	{ "control-in-string", "a = \"x\x1by\"\n", 0,
	  "t.toml:1: syntax: control character U+001B is not allowed" },
	{ "control-in-comment", "a = 1\n# \x7f\n", 0,
	  "t.toml:2: syntax: control character U+007F is not allowed" },
	{ "nul", "a = 1\n\nb\0 = 2\n", 12,
	  "t.toml:3: syntax: control character U+0000 is not allowed" },
	{ "lone-cr", "a = \"x\ry\"\n", 0, "t.toml:1: syntax: carriage return without a line feed" },
	{ "utf8-truncated", "a = \"\xc3\x28\"\n", 0,
	  "t.toml:1: syntax: invalid UTF-8 (truncated sequence, byte 0xC3)" },
	{ "utf8-truncated-eof", "a = \"\xe2\x82", 0,
	  "t.toml:1: syntax: invalid UTF-8 (truncated sequence, byte 0xE2)" },
	{ "utf8-overlong-2", "\xc0\xaf", 0,
	  "t.toml:1: syntax: invalid UTF-8 (overlong encoding, byte 0xC0)" },
	{ "utf8-overlong-3", "# \xe0\x80\xaf\n", 0,
	  "t.toml:1: syntax: invalid UTF-8 (overlong encoding, byte 0xE0)" },
	{ "utf8-overlong-4", "# \xf0\x80\x80\xaf\n", 0,
	  "t.toml:1: syntax: invalid UTF-8 (overlong encoding, byte 0xF0)" },
	{ "utf8-surrogate", "\n\xed\xa0\x80", 0,
	  "t.toml:2: syntax: invalid UTF-8 (UTF-16 surrogate, byte 0xED)" },
	{ "utf8-beyond-max", "\xf4\x90\x80\x80", 0,
	  "t.toml:1: syntax: invalid UTF-8 (code point beyond U+10FFFF, byte 0xF4)" },
	{ "utf8-continuation", "\x80", 0,
	  "t.toml:1: syntax: invalid UTF-8 (unexpected continuation byte, byte 0x80)" },
	{ "utf8-ff", "a = 1 # \xff\n", 0,
	  "t.toml:1: syntax: invalid UTF-8 (byte that never appears in UTF-8, byte 0xFF)" },
	{ "utf8-f8", "\xf8\x88\x80\x80\x80", 0,
	  "t.toml:1: syntax: invalid UTF-8 (byte that never appears in UTF-8, byte 0xF8)" },
	{ "quoted-key-in-path", "\"a\\nb\" = 1.0\n", 0,
	  "t.toml:1: \"a\\nb\": floating point numbers are not supported ('1.0')" },
	{ "escape-sequence-key-in-path", "[\"\\u001b[2J\"]\nx = y\n", 0,
	  "t.toml:2: \"\\u001B[2J\".x: invalid value 'y' (strings must be quoted)" },
	{ "line-after-crlf", "a = 1\r\nb = x\r\n", 0,
	  "t.toml:2: b: invalid value 'x' (strings must be quoted)" },
	{ "line-after-multiline-array", "a = [\n1,\n2,\n]\nb = x\n", 0,
	  "t.toml:5: b: invalid value 'x' (strings must be quoted)" },
};

static void
test_refusal(void **state)
{
	const struct refusal *c = *state;
	struct nb_toml_node *root = (struct nb_toml_node *)1;
	struct nb_err e = { 0 };
	size_t len = c->len ? c->len : strlen(c->in);
	/* A heap copy of exactly @len bytes, so ASan sees any read past the end. */
	char *buf = malloc(len ? len : 1);
	assert_non_null(buf);
	memcpy(buf, c->in, len);
	int r = nb_toml_parse("t.toml", buf, len, &root, &e);
	free(buf);
	assert_int_equal(r, -EINVAL);
	assert_int_equal(e.code, EINVAL);
	assert_null(root);
	assert_string_equal(e.msg, c->msg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values_and_lines),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_arrays),
		cmocka_unit_test(test_inline_tables),
		cmocka_unit_test(test_tables),
		cmocka_unit_test(test_crlf_bom_empty),
		cmocka_unit_test(test_not_nul_terminated),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_get_and_names),
		cmocka_unit_test(test_format),
	};
	int failed = cmocka_run_group_tests_name("toml", tests, NULL, NULL);

	size_t n = NB_ARRAY_SIZE(refusals);
	struct CMUnitTest *rt = calloc(n, sizeof(*rt));
	if (!rt)
		return 1;
	for (size_t i = 0; i < n; i++)
		rt[i] = (struct CMUnitTest){ .name = refusals[i].name,
					     .test_func = test_refusal,
					     .initial_state = (void *)&refusals[i] };
	failed += _cmocka_run_group_tests("toml-refusals", rt, n, NULL, NULL);
	free(rt);
	return failed ? 1 : 0;
}
