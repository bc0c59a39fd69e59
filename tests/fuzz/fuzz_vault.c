/*
 * fuzz_vault.c: libFuzzer target for warden's vault file reader (src/warden/vault.c).
 *
 * Two kinds of input:
 *   - starting with the magic "NBVAULT\0": a vault file, parsed and decrypted with the fixed test
 *     key (wd_vault_parse). Mutations almost always break the GCM tag, so this exercises the
 *     header checks, the KDF bounds and the authentication;
 *   - anything else: the plaintext inside a vault. The harness seals it with the test key (what
 *     warden writes, wd_vault_seal) and parses the result, so the fuzzer reaches the JSON reader
 *     behind the tag, which an attacker without the key never can.
 * Beyond "no crash, no sanitizer report" it checks:
 *   1. a refusal comes with a message: one line of printable ASCII that names the file;
 *   2. a vault that opens serialises, and the new file opens with the same secrets, hosts and
 *      modes (a round trip through the writer and the reader);
 *   3. no key other than the test key opens anything the harness sealed.
 * KDF cost (the test hook in vault.h): the limits are lowered to Argon2id t <= 2, m <= 64 KiB,
 * p <= 2 and PBKDF2 <= 64 iterations, so no header can make a run slow; the seeds use t=1 m=8.
 *
 * The seed corpus (tests/fuzz/corpus/vault) was made by this file built with
 * -DFUZZ_VAULT_MAKE_CORPUS, whose main() writes it into the directory it is given:
 *   cc -DFUZZ_VAULT_MAKE_CORPUS -D_GNU_SOURCE -DWD_HAVE_ARGON2 -Ilib -Isrc/warden \
 *     tests/fuzz/fuzz_vault.c src/warden/vault.c lib/err.c lib/log.c lib/json.c \
 *     -ljansson -lcrypto -largon2 -o /tmp/mkcorpus && /tmp/mkcorpus tests/fuzz/corpus/vault
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vault.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_vault: %s:%d: check failed: %s\n", __FILE__,         \
				__LINE__, #cond);                                                  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static const uint8_t KEY[] = "fuzz-test-key";
#define KEY_LEN (sizeof(KEY) - 1)
static const uint8_t SALT[WD_VAULT_SALT_LEN] = "0123456789abcdef";
#define LABEL "fuzz.vault"

/* The cheap KDF of the seeds and of the plaintext mode. */
static struct wd_kdf
test_kdf(void)
{
	if (wd_kdf_have_argon2())
		return (struct wd_kdf){ .id = WD_KDF_ARGON2ID, .t = 1, .m = 8, .p = 1 };
	return (struct wd_kdf){ .id = WD_KDF_PBKDF2_SHA256, .t = 2 };
}

static void
init(void)
{
	static int done;
	if (done)
		return;
	done = 1;
	wd_kdf_limits = (struct wd_kdf_limits){
		.argon2_t_min = 1,
		.argon2_t_max = 2,
		.argon2_m_min = 8,
		.argon2_m_max = 64,
		.argon2_p_min = 1,
		.argon2_p_max = 2,
		.pbkdf2_min = 1,
		.pbkdf2_max = 64,
	};
	wd_kdf_default = test_kdf();
}

static void
check_message(const struct nb_err *e)
{
	CHECK(e->code != 0);
	CHECK(memchr(e->msg, '\0', sizeof(e->msg)));
	CHECK(e->msg[0] != '\0');
	for (const unsigned char *c = (const unsigned char *)e->msg; *c; c++)
		CHECK(*c >= 0x20 && *c < 0x7f);
	CHECK(strstr(e->msg, LABEL) || strstr(e->msg, "out of memory"));
}

static void
check_same(const struct wd_vault *a, const struct wd_vault *b)
{
	CHECK(wd_vault_count(a) == wd_vault_count(b));
	for (size_t i = 0; i < wd_vault_count(a); i++) {
		const struct wd_secret *x = wd_vault_at(a, i), *y = wd_vault_at(b, i);
		CHECK(strcmp(x->name, y->name) == 0);
		CHECK(wd_name_valid(x->name));
		CHECK(x->value_len == y->value_len);
		CHECK(x->value_len > 0 && x->value_len <= WD_VALUE_MAX);
		CHECK(memcmp(x->value, y->value, x->value_len) == 0);
		CHECK(x->value[x->value_len] == '\0');
		CHECK(x->inject == y->inject);
		CHECK(x->n_hosts == y->n_hosts);
		for (size_t k = 0; k < x->n_hosts; k++) {
			CHECK(strcmp(x->hosts[k], y->hosts[k]) == 0);
			char norm[WD_HOST_MAX + 3];
			struct nb_err e = { 0 };
			CHECK(wd_host_normalise(x->hosts[k], norm, &e) == 0);
			CHECK(strcmp(norm, x->hosts[k]) == 0);
			CHECK(k == 0 || strcmp(x->hosts[k - 1], x->hosts[k]) < 0);
		}
		CHECK(i == 0 || strcmp(wd_vault_at(a, i - 1)->name, x->name) < 0);
	}
}

/* Parses @buf; if it opens, checks the round trip. Returns whether it opened. */
static int
parse_and_check(const uint8_t *buf, size_t len)
{
	struct wd_vault *v = NULL;
	struct nb_err e = { 0 };
	int r = wd_vault_parse(buf, len, LABEL, KEY, KEY_LEN, &v, &e);
	if (r < 0) {
		CHECK(v == NULL);
		CHECK(r == -e.code);
		check_message(&e);
		return 0;
	}
	CHECK(v != NULL);
	uint8_t *img = NULL;
	size_t img_len = 0;
	CHECK(wd_vault_serialise(v, &img, &img_len, &e) == 0);
	struct wd_vault *w = NULL;
	CHECK(wd_vault_parse(img, img_len, LABEL, KEY, KEY_LEN, &w, &e) == 0);
	check_same(v, w);
	wd_vault_free(w);
	free(img);
	wd_vault_free(v);
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init();
	if (size >= WD_VAULT_MAGIC_LEN && memcmp(data, WD_VAULT_MAGIC, WD_VAULT_MAGIC_LEN) == 0) {
		parse_and_check(data, size);
		return 0;
	}
	if (size > 1 << 20)
		return 0;
	struct wd_kdf kdf = test_kdf();
	uint8_t *img = NULL;
	size_t len = 0;
	struct nb_err e = { 0 };
	CHECK(wd_vault_seal(&kdf, SALT, KEY, KEY_LEN, data, size, &img, &len, &e) == 0);
	CHECK(len == WD_VAULT_HEADER_LEN + size + WD_VAULT_TAG_LEN);
	if (parse_and_check(img, len)) {
		struct wd_vault *v = NULL;
		CHECK(wd_vault_parse(img, len, LABEL, (const uint8_t *)"other", 5, &v, &e) ==
		      -EBADMSG);
		CHECK(v == NULL);
	}
	free(img);
	return 0;
}

#ifdef FUZZ_VAULT_MAKE_CORPUS
static void
put(const char *dir, const char *name, const void *buf, size_t len)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	CHECK(f && fwrite(buf, 1, len, f) == len && fclose(f) == 0);
}

static void
put_vault(const char *dir, const char *name, const struct wd_kdf *kdf, const char *pt,
	  const uint8_t *key, size_t key_len, uint8_t **img, size_t *len)
{
	struct nb_err e = { 0 };
	CHECK(wd_vault_seal(kdf, SALT, key, key_len, (const uint8_t *)pt, strlen(pt), img, len,
			    &e) == 0);
	put(dir, name, *img, *len);
}

int
main(int argc, char **argv)
{
	CHECK(argc == 2);
	init();
	const char *d = argv[1];
	struct wd_kdf k = test_kdf(), pb = { .id = WD_KDF_PBKDF2_SHA256, .t = 2 };
	static const char three[] =
		"{\"secrets\":[{\"name\":\"DB_PASSWORD\",\"value\":\"hunter2\",\"inject\":\"env\","
		"\"hosts\":[]},{\"name\":\"OPENAI_API_KEY\",\"value\":\"sk-\\\"quoted\\\"\\n\","
		"\"inject\":\"placeholder\",\"hosts\":[\"*.openai.com\",\"api.openai.com\"]},"
		"{\"name\":\"_x\",\"value\":\"caf\xc3\xa9\",\"inject\":\"placeholder\","
		"\"hosts\":[\"a.example.com\"]}]}";
	uint8_t *img;
	size_t len;
	put_vault(d, "valid-empty", &k, "{\"secrets\":[]}", KEY, KEY_LEN, &img, &len);
	free(img);
	put_vault(d, "valid-pbkdf2", &pb,
		  "{\"secrets\":[{\"name\":\"A\",\"value\":\"a\","
		  "\"inject\":\"env\",\"hosts\":[\"x.example.org\"]}]}",
		  KEY, KEY_LEN, &img, &len);
	free(img);
	put_vault(d, "other-key", &k, three, (const uint8_t *)"other", 5, &img, &len);
	free(img);
	put_vault(d, "valid-3", &k, three, KEY, KEY_LEN, &img, &len);
	put(d, "truncated-header", img, 30);
	put(d, "truncated-tag", img, len - 5);
	put(d, "truncated-magic", img, 5);
	uint8_t *x = malloc(len + 1);
	memcpy(x, img, len);
	x[9] = 2;
	put(d, "newer-version", x, len);
	memcpy(x, img, len);
	memcpy(x, "NBVAULX", 7);
	put(d, "bad-magic", x, len);
	memcpy(x, img, len);
	x[len] = 0;
	put(d, "trailing-byte", x, len + 1);
	memcpy(x, img, len);
	x[16] = 0x7f;
	put(d, "kdf-too-costly", x, len);
	free(x);
	free(img);
	/* Plaintexts: sealed by the harness itself. */
	put(d, "pt-valid-3", three, strlen(three));
	static const char *const pts[][2] = {
		{ "pt-empty-object", "{}" },
		{ "pt-dup-name", "{\"secrets\":[{\"name\":\"A\",\"value\":\"1\",\"inject\":\"env\","
				 "\"hosts\":[]},{\"name\":\"A\",\"value\":\"2\",\"inject\":\"env\","
				 "\"hosts\":[]}]}" },
		{ "pt-bad-host", "{\"secrets\":[{\"name\":\"A\",\"value\":\"1\",\"inject\":\"env\","
				 "\"hosts\":[\"10.0.0.1\"]}]}" },
		{ "pt-unknown-member", "{\"secrets\":[{\"name\":\"A\",\"value\":\"1\",\"inject\":"
				       "\"env\",\"hosts\":[],\"x\":1}]}" },
		{ "pt-not-json", "secrets: A=1" },
		{ "pt-upper-host", "{\"secrets\":[{\"name\":\"A\",\"value\":\"1\",\"inject\":"
				   "\"placeholder\",\"hosts\":[\"B.example.com\",\"a.Example.com\","
				   "\"b.example.com\"]}]}" },
	};
	for (size_t i = 0; i < sizeof(pts) / sizeof(pts[0]); i++)
		put(d, pts[i][0], pts[i][1], strlen(pts[i][1]));
	return 0;
}
#endif
