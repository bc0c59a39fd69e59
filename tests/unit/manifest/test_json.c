/*
 * test_json.c: canonical JSON and SHA-256 (lib/json.c).
 *
 * The hashes here were computed independently (coreutils sha256sum over the expected canonical
 * text), so a change in the canonical form or in the digest shows up as a failure.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cleanup.h"
#include "json.h"

static json_t *
load(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
	if (!v)
		fail_msg("json_loads(%s): %s", text, je.text);
	return v;
}

static void
expect_canonical(const char *in, const char *want)
{
	_cleanup_json_ json_t *v = load(in);
	_cleanup_free_ char *out = NULL;
	size_t len = 0;
	struct nb_err e = { 0 };
	assert_int_equal(nb_json_canonical(v, &out, &len, &e), 0);
	assert_string_equal(out, want);
	assert_int_equal(len, strlen(want));
}

static void
test_sorted_compact(void **state)
{
	expect_canonical("{ \"b\": 1, \"a\": { \"d\": [1, 2], \"c\": \"x\" } }",
			 "{\"a\":{\"c\":\"x\",\"d\":[1,2]},\"b\":1}");
	/* Byte order, not locale order: upper case sorts before lower case, "a" before "aa". */
	expect_canonical("{\"b\":0,\"B\":0,\"aa\":0,\"a\":0,\"_\":0}",
			 "{\"B\":0,\"_\":0,\"a\":0,\"aa\":0,\"b\":0}");
	expect_canonical("{}", "{}");
	expect_canonical("[]", "[]");
	expect_canonical("[null, true, false]", "[null,true,false]");
	expect_canonical("[9223372036854775807, -9223372036854775808, 0]",
			 "[9223372036854775807,-9223372036854775808,0]");
}

static void
test_escapes(void **state)
{
	_cleanup_json_ json_t *v = json_pack("{s:s}", "k", "\"\\\n\x01/\xc3\xa9");
	assert_non_null(v);
	_cleanup_free_ char *out = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(nb_json_canonical(v, &out, NULL, &e), 0);
	/* Only what JSON requires is escaped: '/' and non-ASCII stay as they are. */
	assert_string_equal(out, "{\"k\":\"\\\"\\\\\\n\\u0001/\xc3\xa9\"}");
}

static void
test_refuses_reals(void **state)
{
	struct nb_err e = { 0 };
	char *out = (char *)1;
	_cleanup_json_ json_t *real = load("1.5");
	assert_int_equal(nb_json_canonical(real, &out, NULL, &e), -EINVAL);
	assert_null(out);
	assert_int_equal(e.code, EINVAL);
	assert_string_equal(e.msg, "canonical json: floating point numbers are not allowed");

	_cleanup_json_ json_t *deep = load("{\"a\":[1,{\"b\":[2,3.0]}]}");
	assert_int_equal(nb_json_canonical(deep, &out, NULL, &e), -EINVAL);
	assert_null(out);

	char hex[NB_SHA256_HEX_LEN + 1];
	assert_int_equal(nb_json_sha256_hex(deep, hex, &e), -EINVAL);

	assert_int_equal(nb_json_canonical(NULL, &out, NULL, &e), -EINVAL);
	assert_null(out);
}

static void
test_sha256_vectors(void **state)
{
	uint8_t d[NB_SHA256_LEN];
	char hex[NB_SHA256_HEX_LEN + 1];
	/* FIPS 180-2 "abc" and the empty string. */
	assert_int_equal(nb_sha256("abc", 3, d), 0);
	nb_hex(d, sizeof(d), hex);
	assert_string_equal(hex,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(nb_sha256("", 0, d), 0);
	nb_hex(d, sizeof(d), hex);
	assert_string_equal(hex,
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void
test_sha256_of_canonical(void **state)
{
	char hex[NB_SHA256_HEX_LEN + 1];
	struct nb_err e = { 0 };
	/* printf '%s' '{"a":{"c":"x","d":[1,2]},"b":1}' | sha256sum */
	_cleanup_json_ json_t *v = load("{\"b\":1,\"a\":{\"d\":[1,2],\"c\":\"x\"}}");
	assert_int_equal(nb_json_sha256_hex(v, hex, &e), 0);
	assert_string_equal(hex,
			    "830c7b7f8c79059841a32e4738f35625c6e5bb256f2821b221cadaef7411d44d");
	/* The same document written differently hashes the same. */
	_cleanup_json_ json_t *w =
		load("{ \"a\" : { \"c\" : \"x\" , \"d\" : [ 1 , 2 ] } , \"b\" : 1 }");
	char hex2[NB_SHA256_HEX_LEN + 1];
	assert_int_equal(nb_json_sha256_hex(w, hex2, &e), 0);
	assert_string_equal(hex, hex2);
	/* printf '{"k":"\\"\\\\\\n\\u0001/\xc3\xa9"}' | sha256sum */
	_cleanup_json_ json_t *s = json_pack("{s:s}", "k", "\"\\\n\x01/\xc3\xa9");
	assert_int_equal(nb_json_sha256_hex(s, hex, &e), 0);
	assert_string_equal(hex,
			    "e9e445d3ff59b511a6414ec1fde723495e35b002e14587389de6b4da111b7aa0");
}

static void
test_hex(void **state)
{
	const uint8_t in[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
	char out[2 * sizeof(in) + 1];
	nb_hex(in, sizeof(in), out);
	assert_string_equal(out, "00017f80abff");
	nb_hex(in, 0, out);
	assert_string_equal(out, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sorted_compact),	    cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_refuses_reals),	    cmocka_unit_test(test_sha256_vectors),
		cmocka_unit_test(test_sha256_of_canonical), cmocka_unit_test(test_hex),
	};
	return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
