/*
 * Unit tests for warden's vault (src/warden/vault.c) and master key sources (key.c), on real
 * files in a fresh temporary directory per test.
 *
 * The KDF runs with cheap parameters (the wd_kdf_default test hook) except in the test that checks
 * the production ones, so the suite stays fast under ASan and valgrind. Every refusal test also
 * checks that the file on disk is byte for byte what it was: a vault warden cannot open must never
 * be overwritten. The disk-full test mounts a 64 KiB tmpfs and needs root; without root it skips
 * and says why.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h> /* cmocka.h needs these first */
#include <cmocka.h>

#include "cleanup.h"
#include "key.h"
#include "vault.h"

#define PASS ((const uint8_t *)"correct horse battery staple")
#define PASS_LEN (sizeof("correct horse battery staple") - 1)

struct fx {
	char dir[64];	 /* the test's temporary directory */
	char vdir[128];	 /* dir/warden: the vault's directory */
	char vpath[160]; /* dir/warden/vault */
	char mnt[128];	 /* a tmpfs mounted by the test, or "" */
};

/* ---- fixtures and helpers ---- */

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/nb-warden-test.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->vdir, sizeof(f->vdir), "%s/warden", f->dir);
	snprintf(f->vpath, sizeof(f->vpath), "%s/vault", f->vdir);
	*state = f;
	return 0;
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	if (f->mnt[0])
		umount2(f->mnt, MNT_DETACH);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* The whole file at @path (malloc'ed), its length in *len. */
static uint8_t *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	uint8_t *buf = malloc(1 << 20);
	assert_non_null(buf);
	*len = fread(buf, 1, 1 << 20, fp);
	fclose(fp);
	return buf;
}

static void
spit(const char *path, const uint8_t *buf, size_t len)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(buf, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void
assert_file_is(const char *path, const uint8_t *want, size_t want_len)
{
	size_t len;
	uint8_t *got = slurp(path, &len);
	assert_int_equal(len, want_len);
	assert_memory_equal(got, want, len);
	free(got);
}

static void
assert_msg_has(const struct nb_err *e, const char *needle)
{
	if (!strstr(e->msg, needle))
		fail_msg("error message \"%s\" lacks \"%s\"", e->msg, needle);
}

static mode_t
mode_of(const char *path)
{
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

/* Creates the vault with two secrets: A (bound to a host) and B (inject env). */
static void
make_vault(struct fx *f)
{
	struct wd_vault *v = NULL;
	struct nb_err e = { 0 };
	bool created = false;
	assert_int_equal(wd_vault_open(f->vdir, PASS, PASS_LEN, &v, &created, &e), 0);
	assert_true(created);
	assert_int_equal(wd_vault_set(v, "A", "alpha", 5, -1, NULL, &e), 0);
	const char *hosts[] = { "api.example.com" };
	assert_int_equal(wd_vault_bind(v, "A", hosts, 1, &e), 0);
	assert_int_equal(wd_vault_set(v, "B", "beta", 4, WD_INJECT_ENV, NULL, &e), 0);
	wd_vault_free(v);
}

/* Opening @f's vault with @pass fails with @code, a message holding @needle, the file intact. */
static void
assert_open_refused(struct fx *f, const uint8_t *pass, size_t pass_len, int code,
		    const char *needle)
{
	size_t len;
	uint8_t *before = slurp(f->vpath, &len);
	struct wd_vault *v = NULL;
	struct nb_err e = { 0 };
	int r = wd_vault_open(f->vdir, pass, pass_len, &v, NULL, &e);
	if (r != -code)
		fail_msg("expected -%d, got %d (%s)", code, r, e.msg);
	assert_null(v);
	assert_msg_has(&e, f->vpath);
	assert_msg_has(&e, needle);
	assert_file_is(f->vpath, before, len);
	/* The same bytes through the buffer API give the same answer. */
	struct nb_err e2 = { 0 };
	assert_int_equal(wd_vault_parse(before, len, f->vpath, pass, pass_len, &v, &e2), -code);
	assert_string_equal(e.msg, e2.msg);
	free(before);
}

/* ---- round trip ---- */

static void
test_round_trip(void **state)
{
	struct fx *f = *state;
	struct wd_vault *v = NULL;
	struct nb_err e = { 0 };
	bool created = false, isnew = false;
	assert_int_equal(wd_vault_open(f->vdir, PASS, PASS_LEN, &v, &created, &e), 0);
	assert_true(created);
	assert_int_equal(wd_vault_count(v), 0);
	/* Values that need escaping in JSON, and non-ASCII text. */
	const char weird[] =
		"quote\" back\\slash\nnew line\ttab \x01 \x7f caf\xc3\xa9 \xf0\x9f\x94\x91";
	assert_int_equal(wd_vault_set(v, "OPENAI_API_KEY", "sk-test-123", 11, -1, &isnew, &e), 0);
	assert_true(isnew);
	assert_int_equal(
		wd_vault_set(v, "weird_1", weird, sizeof(weird) - 1, WD_INJECT_ENV, NULL, &e), 0);
	assert_int_equal(wd_vault_set(v, "_z", "z", 1, WD_INJECT_PLACEHOLDER, NULL, &e), 0);
	const char *hosts[] = { "API.OpenAI.com", "*.example.COM", "api.openai.com" };
	assert_int_equal(wd_vault_bind(v, "OPENAI_API_KEY", hosts, 3, &e), 0);
	/* Replacing keeps the hosts and, without an inject mode, the mode. */
	assert_int_equal(wd_vault_set(v, "OPENAI_API_KEY", "sk-test-456", 11, -1, &isnew, &e), 0);
	assert_false(isnew);
	wd_vault_free(v);

	v = NULL;
	assert_int_equal(wd_vault_open(f->vdir, PASS, PASS_LEN, &v, &created, &e), 0);
	assert_false(created);
	assert_int_equal(wd_vault_count(v), 3);
	/* Name order (bytes): "OPENAI_API_KEY" < "_z" < "weird_1". */
	assert_string_equal(wd_vault_at(v, 0)->name, "OPENAI_API_KEY");
	assert_string_equal(wd_vault_at(v, 1)->name, "_z");
	assert_string_equal(wd_vault_at(v, 2)->name, "weird_1");
	const struct wd_secret *s = wd_vault_find(v, "OPENAI_API_KEY");
	assert_non_null(s);
	assert_int_equal(s->value_len, 11);
	assert_memory_equal(s->value, "sk-test-456", 11);
	assert_int_equal(s->inject, WD_INJECT_PLACEHOLDER);
	assert_int_equal(s->n_hosts, 2);
	assert_string_equal(s->hosts[0], "*.example.com");
	assert_string_equal(s->hosts[1], "api.openai.com");
	s = wd_vault_find(v, "weird_1");
	assert_int_equal(s->value_len, sizeof(weird) - 1);
	assert_memory_equal(s->value, weird, sizeof(weird) - 1);
	assert_int_equal(s->inject, WD_INJECT_ENV);
	assert_int_equal(s->n_hosts, 0);

	assert_int_equal(wd_vault_delete(v, "_z", &e), 0);
	assert_int_equal(wd_vault_delete(v, "_z", &e), -ENOENT);
	assert_msg_has(&e, "no secret named _z");
	assert_int_equal(wd_vault_bind(v, "nope", hosts, 1, &e), -ENOENT);
	wd_vault_free(v);
	assert_int_equal(wd_vault_open(f->vdir, PASS, PASS_LEN, &v, NULL, &e), 0);
	assert_int_equal(wd_vault_count(v), 2);
	assert_null(wd_vault_find(v, "_z"));
	wd_vault_free(v);
}

/* Two writes of the same content differ (fresh nonce), and both open. */
static void
test_fresh_nonce(void **state)
{
	struct wd_vault *v = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(wd_vault_new(NULL, PASS, PASS_LEN, &v, &e), 0);
	assert_int_equal(wd_vault_set(v, "K", "v", 1, -1, NULL, &e), 0);
	uint8_t *a = NULL, *b = NULL;
	size_t al = 0, bl = 0;
	assert_int_equal(wd_vault_serialise(v, &a, &al, &e), 0);
	assert_int_equal(wd_vault_serialise(v, &b, &bl, &e), 0);
	assert_int_equal(al, bl);
	assert_memory_equal(a, b, 40); /* magic .. salt: the same vault */
	assert_memory_not_equal(a + 40, b + 40, WD_VAULT_NONCE_LEN);
	assert_memory_not_equal(a + WD_VAULT_HEADER_LEN, b + WD_VAULT_HEADER_LEN,
				al - WD_VAULT_HEADER_LEN);
	/* The plaintext (the value) is nowhere in the file. */
	assert_null(memmem(a, al, "\"v\"", 3));
	struct wd_vault *w = NULL;
	assert_int_equal(wd_vault_parse(b, bl, "b", PASS, PASS_LEN, &w, &e), 0);
	assert_memory_equal(wd_vault_find(w, "K")->value, "v", 2);
	wd_vault_free(w);
	wd_vault_free(v);
	free(a);
	free(b);
}

/* A vault with PBKDF2 (what a build without libargon2 writes) round-trips too. */
static void
test_pbkdf2(void **state)
{
	struct wd_kdf k = { .id = WD_KDF_PBKDF2_SHA256, .t = 1000 };
	struct wd_vault *v = NULL, *w = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(wd_vault_new(&k, PASS, PASS_LEN, &v, &e), 0);
	assert_int_equal(wd_vault_set(v, "P", "pbkdf2-value", 12, -1, NULL, &e), 0);
	uint8_t *img = NULL;
	size_t len = 0;
	assert_int_equal(wd_vault_serialise(v, &img, &len, &e), 0);
	assert_int_equal(img[10], WD_KDF_PBKDF2_SHA256);
	assert_int_equal(wd_vault_parse(img, len, "p", PASS, PASS_LEN, &w, &e), 0);
	assert_memory_equal(wd_vault_find(w, "P")->value, "pbkdf2-value", 12);
	wd_vault_free(w);
	assert_int_equal(wd_vault_parse(img, len, "p", (const uint8_t *)"nope", 4, &w, &e),
			 -EBADMSG);
	assert_null(w);
	wd_vault_free(v);
	free(img);
}

/* The production KDF: Argon2id t=3 m=64 MiB p=1 is what a new vault records. */
static void
test_production_kdf(void **state)
{
	struct wd_kdf saved = wd_kdf_default;
	wd_kdf_default = (struct wd_kdf){ .id = WD_KDF_ARGON2ID, .t = 3, .m = 65536, .p = 1 };
	if (!wd_kdf_have_argon2())
		wd_kdf_default = (struct wd_kdf){ .id = WD_KDF_PBKDF2_SHA256, .t = 600000 };
	struct fx *f = *state;
	struct wd_vault *v = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(wd_vault_open(f->vdir, PASS, PASS_LEN, &v, NULL, &e), 0);
	wd_vault_free(v);
	wd_kdf_default = saved;
	size_t len;
	uint8_t *img = slurp(f->vpath, &len);
	if (wd_kdf_have_argon2()) {
		static const uint8_t want[] = { WD_KDF_ARGON2ID,
						0,
						0,
						0,
						0,
						3, /* t = 3 */
						0,
						1,
						0,
						0, /* m = 65536 KiB */
						0,
						0,
						0,
						1 }; /* p = 1 */
		assert_memory_equal(img + 10, want, sizeof(want));
	} else {
		assert_int_equal(img[10], WD_KDF_PBKDF2_SHA256);
	}
	free(img);
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(wd_vault_open(f->vdir, PASS, PASS_LEN, &v, NULL, &e), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	wd_vault_free(v);
	double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	print_message("unlock with the production KDF: %.0f ms (target: under about 1 s)\n", ms);
}

/* ---- refusals ---- */

static void
test_wrong_key(void **state)
{
	struct fx *f = *state;
	make_vault(f);
	assert_open_refused(f, (const uint8_t *)"wrong", 5, EBADMSG, "wrong master key");
	/* The right key still opens it afterwards. */
	struct wd_vault *v = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(wd_vault_open(f->vdir, PASS, PASS_LEN, &v, NULL, &e), 0);
	assert_int_equal(wd_vault_count(v), 2);
	wd_vault_free(v);
}

/* XORs @mask into byte @off; the open fails with @code / @needle and leaves the file as it is. */
static void
tamper_at(struct fx *f, size_t off, uint8_t mask, int code, const char *needle)
{
	size_t len;
	uint8_t *img = slurp(f->vpath, &len);
	assert_true(off < len);
	img[off] ^= mask;
	spit(f->vpath, img, len);
	assert_open_refused(f, PASS, PASS_LEN, code, needle);
	img[off] ^= mask;
	spit(f->vpath, img, len);
	free(img);
}

static void
test_tampered(void **state)
{
	struct fx *f = *state;
	make_vault(f);
	size_t len;
	free(slurp(f->vpath, &len));
	/* The ciphertext, first and last byte. */
	tamper_at(f, WD_VAULT_HEADER_LEN, 0x01, EBADMSG, "authentication failed");
	tamper_at(f, len - WD_VAULT_TAG_LEN - 1, 0x80, EBADMSG, "authentication failed");
	/* The tag. */
	tamper_at(f, len - WD_VAULT_TAG_LEN, 0x01, EBADMSG, "authentication failed");
	tamper_at(f, len - 1, 0x01, EBADMSG, "authentication failed");
	/* The header, authenticated as additional data: KDF t (still in bounds), salt, nonce. */
	tamper_at(f, 15, 0x02, EBADMSG, "authentication failed");
	tamper_at(f, 24, 0x01, EBADMSG, "authentication failed");
	tamper_at(f, 51, 0x01, EBADMSG, "authentication failed");
	/* Fields checked before decryption: magic, reserved byte, KDF id, length. */
	tamper_at(f, 0, 0x01, EINVAL, "bad magic");
	tamper_at(f, 11, 0x01, EINVAL, "reserved byte");
	tamper_at(f, 10, 0x04, EPROTONOSUPPORT, "unknown key derivation");
	tamper_at(f, 54, 0x01, EINVAL, "truncated");
	tamper_at(f, 53, 0x01, EINVAL, "truncated");
	/* A byte appended. */
	uint8_t *img = slurp(f->vpath, &len);
	img[len] = 0;
	spit(f->vpath, img, len + 1);
	assert_open_refused(f, PASS, PASS_LEN, EINVAL, "after the end");
	free(img);
}

static void
test_truncated(void **state)
{
	struct fx *f = *state;
	make_vault(f);
	size_t len;
	uint8_t *img = slurp(f->vpath, &len);
	for (size_t n = 0; n < len; n++) {
		spit(f->vpath, img, n);
		assert_open_refused(f, PASS, PASS_LEN, EINVAL, "truncated");
	}
	free(img);
}

static void
test_newer_version(void **state)
{
	struct fx *f = *state;
	make_vault(f);
	size_t len;
	uint8_t *img = slurp(f->vpath, &len);
	img[8] = 0;
	img[9] = WD_VAULT_VERSION + 1;
	spit(f->vpath, img, len);
	assert_open_refused(f, PASS, PASS_LEN, EPROTONOSUPPORT, "format version 2 is newer");
	/* A newer version is refused before anything else is looked at, even when truncated. */
	spit(f->vpath, img, 12);
	assert_open_refused(f, PASS, PASS_LEN, EPROTONOSUPPORT, "newer");
	free(img);
}

static void
test_not_a_vault(void **state)
{
	struct fx *f = *state;
	assert_int_equal(mkdir(f->vdir, 0700), 0);
	const char text[] = "OPENAI_API_KEY=sk-123\n";
	spit(f->vpath, (const uint8_t *)text, sizeof(text) - 1);
	assert_open_refused(f, PASS, PASS_LEN, EINVAL, "not a NullBox vault");
}

/* A header asking for a KDF cost beyond the limits is refused before the KDF runs. */
static void
test_kdf_bounds(void **state)
{
	struct fx *f = *state;
	make_vault(f);
	size_t len;
	uint8_t *img = slurp(f->vpath, &len);
	img[16] = 0xff; /* m: gigabytes */
	spit(f->vpath, img, len);
	assert_open_refused(f, PASS, PASS_LEN, EINVAL, "out of bounds");
	free(img);
}

/* ---- changes and their checks ---- */

static void
test_bad_input(void **state)
{
	struct wd_vault *v = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(wd_vault_new(NULL, PASS, PASS_LEN, &v, &e), 0);
	static const char *const bad_names[] = { "", "1ABC", "A-B", "A.B", "A B", "\xc3\xa9" };
	for (size_t i = 0; i < NB_ARRAY_SIZE(bad_names); i++)
		assert_int_equal(wd_vault_set(v, bad_names[i], "x", 1, -1, NULL, &e), -EINVAL);
	char long_name[WD_NAME_MAX + 2];
	memset(long_name, 'A', sizeof(long_name));
	long_name[WD_NAME_MAX + 1] = '\0';
	assert_int_equal(wd_vault_set(v, long_name, "x", 1, -1, NULL, &e), -EINVAL);
	long_name[WD_NAME_MAX] = '\0';
	assert_int_equal(wd_vault_set(v, long_name, "x", 1, -1, NULL, &e), 0);
	assert_int_equal(wd_vault_set(v, "V", "", 0, -1, NULL, &e), -EINVAL);
	assert_msg_has(&e, "empty");
	assert_int_equal(wd_vault_set(v, "V", "a\0b", 3, -1, NULL, &e), -EINVAL);
	assert_msg_has(&e, "NUL");
	assert_int_equal(wd_vault_set(v, "V", "\xff", 1, -1, NULL, &e), -EINVAL);
	assert_msg_has(&e, "UTF-8");
	assert_int_equal(wd_vault_set(v, "V", "\xc0\xaf", 2, -1, NULL, &e), -EINVAL);
	assert_int_equal(wd_vault_set(v, "V", "\xed\xa0\x80", 3, -1, NULL, &e), -EINVAL);
	char *big = malloc(WD_VALUE_MAX + 1);
	memset(big, 'x', WD_VALUE_MAX + 1);
	assert_int_equal(wd_vault_set(v, "V", big, WD_VALUE_MAX + 1, -1, NULL, &e), -EINVAL);
	assert_int_equal(wd_vault_set(v, "V", big, WD_VALUE_MAX, -1, NULL, &e), 0);
	free(big);
	assert_int_equal(wd_vault_set(v, "V", "x", 1, 7, NULL, &e), -EINVAL);
	const char *bad_host[] = { "1.2.3.4" };
	assert_int_equal(wd_vault_bind(v, "V", bad_host, 1, &e), -EINVAL);
	assert_msg_has(&e, "IP addresses");
	wd_vault_free(v);
}

static void
test_hosts(void **state)
{
	static const struct {
		const char *in, *out; /* out NULL: refused */
	} cases[] = {
		{ "api.example.com", "api.example.com" },
		{ "API.Example.COM", "api.example.com" },
		{ "*.example.com", "*.example.com" },
		{ "localhost", "localhost" },
		{ "xn--bcher-kva.example", "xn--bcher-kva.example" },
		{ "", NULL },
		{ "*", NULL },
		{ "*.com", NULL },
		{ "a.*.com", NULL },
		{ "**.example.com", NULL },
		{ "1.2.3.4", NULL },
		{ "127.1", NULL },
		{ "2130706433", NULL },
		{ "::1", NULL },
		{ "[::1]", NULL },
		{ "api.example.com:443", NULL },
		{ "https://api.example.com", NULL },
		{ "api.example.com/v1", NULL },
		{ "a..b", NULL },
		{ "example.com.", NULL },
		{ "-a.com", NULL },
		{ "a-.com", NULL },
		{ "a_b.com", NULL },
		{ "b\xc3\xbc"
		  "cher.de",
		  NULL },
		{ "host.123", NULL },
	};
	for (size_t i = 0; i < NB_ARRAY_SIZE(cases); i++) {
		char out[WD_HOST_MAX + 3];
		struct nb_err e = { 0 };
		int r = wd_host_normalise(cases[i].in, out, &e);
		if (cases[i].out) {
			if (r != 0)
				fail_msg("'%s' refused: %s", cases[i].in, e.msg);
			assert_string_equal(out, cases[i].out);
		} else if (r != -EINVAL) {
			fail_msg("'%s' accepted as '%s'", cases[i].in, out);
		}
	}
	char label[70];
	memset(label, 'a', 64);
	strcpy(label + 64, ".com");
	char out[WD_HOST_MAX + 3];
	struct nb_err e = { 0 };
	assert_int_equal(wd_host_normalise(label, out, &e), -EINVAL);

	assert_true(wd_host_match("api.example.com", "api.example.com"));
	assert_true(wd_host_match("api.example.com", "API.example.com."));
	assert_false(wd_host_match("api.example.com", "api.example.com.evil.org"));
	assert_false(wd_host_match("api.example.com", "xapi.example.com"));
	assert_true(wd_host_match("*.example.com", "a.example.com"));
	assert_true(wd_host_match("*.example.com", "a.b.example.com"));
	assert_false(wd_host_match("*.example.com", "example.com"));
	assert_false(wd_host_match("*.example.com", "badexample.com"));
	assert_false(wd_host_match("*.example.com", ".example.com"));
	assert_false(wd_host_match("*.example.com", ""));
}

/* ---- files ---- */

static void
test_permissions(void **state)
{
	struct fx *f = *state;
	mode_t old = umask(0);
	make_vault(f);
	umask(old);
	assert_int_equal(mode_of(f->vdir), 0700);
	assert_int_equal(mode_of(f->vpath), 0600);
	/* Nothing else is left in the directory (no temporary file). */
	char tmp[200];
	snprintf(tmp, sizeof(tmp), "%s/vault.tmp", f->vdir);
	assert_int_equal(access(tmp, F_OK), -1);
	/* Wider modes found at open are narrowed. */
	assert_int_equal(chmod(f->vdir, 0755), 0);
	assert_int_equal(chmod(f->vpath, 0644), 0);
	struct wd_vault *v = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(wd_vault_open(f->vdir, PASS, PASS_LEN, &v, NULL, &e), 0);
	assert_int_equal(mode_of(f->vdir), 0700);
	assert_int_equal(mode_of(f->vpath), 0600);
	/* A write makes a new file (rename): still 0600. */
	old = umask(0);
	assert_int_equal(wd_vault_set(v, "C", "gamma", 5, -1, NULL, &e), 0);
	umask(old);
	assert_int_equal(mode_of(f->vpath), 0600);
	wd_vault_free(v);
	/* A symlink where the vault should be is not followed. */
	assert_int_equal(rename(f->vpath, tmp), 0);
	assert_int_equal(symlink(tmp, f->vpath), 0);
	assert_int_equal(wd_vault_open(f->vdir, PASS, PASS_LEN, &v, NULL, &e), -ELOOP);
	assert_msg_has(&e, f->vpath);
}

/*
 * Disk full: a 64 KiB tmpfs as the state dir, filled up. A write fails cleanly (the change is
 * undone in memory), leaves no temporary file, and the old vault is intact and still opens.
 */
static void
test_disk_full(void **state)
{
	struct fx *f = *state;
	if (geteuid() != 0) {
		print_message("SKIP: mounting a tmpfs to fill it needs root\n");
		skip();
	}
	snprintf(f->mnt, sizeof(f->mnt), "%s/mnt", f->dir);
	assert_int_equal(mkdir(f->mnt, 0700), 0);
	if (mount("nbtest", f->mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0700") < 0) {
		print_message("SKIP: mount tmpfs: %s\n", strerror(errno));
		f->mnt[0] = '\0';
		skip();
	}
	char vdir[200], vpath[220], filler[220], tmp[220];
	snprintf(vdir, sizeof(vdir), "%s/warden", f->mnt);
	snprintf(vpath, sizeof(vpath), "%s/vault", vdir);
	snprintf(tmp, sizeof(tmp), "%s/vault.tmp", vdir);
	snprintf(filler, sizeof(filler), "%s/filler", f->mnt);
	struct wd_vault *v = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(wd_vault_open(vdir, PASS, PASS_LEN, &v, NULL, &e), 0);
	assert_int_equal(wd_vault_set(v, "OLD", "old-value", 9, -1, NULL, &e), 0);
	size_t len;
	uint8_t *before = slurp(vpath, &len);

	int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	char block[4096];
	memset(block, 'f', sizeof(block));
	while (write(fd, block, sizeof(block)) > 0)
		;
	while (write(fd, block, 1) > 0)
		;
	assert_int_equal(errno, ENOSPC);
	close(fd);

	char value[2048];
	memset(value, 'n', sizeof(value));
	assert_int_equal(wd_vault_set(v, "NEW", value, sizeof(value), -1, NULL, &e), -ENOSPC);
	assert_msg_has(&e, "the vault was not changed");
	assert_null(wd_vault_find(v, "NEW"));
	/* Replacing a value and deleting fail the same way and leave memory as it was. */
	assert_int_equal(wd_vault_set(v, "OLD", value, sizeof(value), WD_INJECT_ENV, NULL, &e),
			 -ENOSPC);
	const struct wd_secret *s = wd_vault_find(v, "OLD");
	assert_int_equal(s->value_len, 9);
	assert_memory_equal(s->value, "old-value", 9);
	assert_int_equal(s->inject, WD_INJECT_PLACEHOLDER);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_file_is(vpath, before, len);
	wd_vault_free(v);

	v = NULL;
	assert_int_equal(wd_vault_open(vdir, PASS, PASS_LEN, &v, NULL, &e), 0);
	s = wd_vault_find(v, "OLD");
	assert_non_null(s);
	assert_memory_equal(s->value, "old-value", 10);
	assert_null(wd_vault_find(v, "NEW"));
	/* Room again: the write goes through. */
	assert_int_equal(unlink(filler), 0);
	assert_int_equal(wd_vault_set(v, "NEW", value, sizeof(value), -1, NULL, &e), 0);
	wd_vault_free(v);
	free(before);
}

/* Writing into a directory warden cannot write fails cleanly, and memory is unchanged. */
static void
test_write_fails_readonly(void **state)
{
	struct fx *f = *state;
	make_vault(f);
	struct wd_vault *v = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(wd_vault_open(f->vdir, PASS, PASS_LEN, &v, NULL, &e), 0);
	size_t len;
	uint8_t *before = slurp(f->vpath, &len);
	/* The vault dir replaced by a read-only bind would need root; a removed dir works for all.
	 */
	char moved[200];
	snprintf(moved, sizeof(moved), "%s/moved", f->dir);
	assert_int_equal(rename(f->vdir, moved), 0);
	/* EIO, not ENOENT: that would read as "no such secret". */
	assert_int_equal(wd_vault_delete(v, "A", &e), -EIO);
	assert_msg_has(&e, f->vdir);
	assert_non_null(wd_vault_find(v, "A"));
	const char *hosts[] = { "x.example.com" };
	assert_int_equal(wd_vault_bind(v, "A", hosts, 1, &e), -EIO);
	assert_string_equal(wd_vault_find(v, "A")->hosts[0], "api.example.com");
	assert_int_equal(rename(moved, f->vdir), 0);
	assert_file_is(f->vpath, before, len);
	wd_vault_free(v);
	free(before);
}

/* ---- master key ---- */

static void
test_key_file(void **state)
{
	struct fx *f = *state;
	char path[200];
	snprintf(path, sizeof(path), "%s/key", f->dir);
	spit(path, (const uint8_t *)"s3cret\n", 7);
	struct wd_key k = { 0 };
	struct nb_err e = { 0 };

	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(wd_key_from_file(path, &k, &e), -EPERM);
	assert_msg_has(&e, path);
	assert_msg_has(&e, "0644");
	assert_null(k.buf);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(wd_key_from_file(path, &k, &e), -EPERM);
	assert_int_equal(chmod(path, 0602), 0);
	assert_int_equal(wd_key_from_file(path, &k, &e), -EPERM);

	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(wd_key_from_file(path, &k, &e), 0);
	assert_int_equal(k.len, 6);
	assert_memory_equal(k.buf, "s3cret", 6);
	wd_key_clear(&k);
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(wd_key_from_file(path, &k, &e), 0);
	wd_key_clear(&k);

	spit(path, (const uint8_t *)"\n", 1);
	assert_int_equal(wd_key_from_file(path, &k, &e), -EINVAL);
	assert_msg_has(&e, "empty");
	assert_int_equal(wd_key_from_file(f->dir, &k, &e), -EINVAL);
	assert_int_equal(wd_key_from_file("/nonexistent/key", &k, &e), -ENOENT);
}

static void
test_key_env(void **state)
{
	struct wd_key k = { 0 };
	struct nb_err e = { 0 };
	bool found = true;
	unsetenv("NULLBOX_VAULT_KEY");
	assert_int_equal(wd_key_from_env(&k, &found, &e), 0);
	assert_false(found);
	setenv("NULLBOX_VAULT_KEY", "from-env", 1);
	assert_int_equal(wd_key_from_env(&k, &found, &e), 0);
	assert_true(found);
	assert_int_equal(k.len, 8);
	assert_memory_equal(k.buf, "from-env", 8);
	assert_null(getenv("NULLBOX_VAULT_KEY"));
	wd_key_clear(&k);
	setenv("NULLBOX_VAULT_KEY", "", 1);
	assert_int_equal(wd_key_from_env(&k, &found, &e), -EINVAL);
}

static void
test_secure_memory(void **state)
{
	char *p = wd_secure_alloc(100);
	assert_non_null(p);
	for (int i = 0; i < 100; i++)
		assert_int_equal(p[i], 0);
	memset(p, 'x', 100);
	wd_secure_free(p);
	wd_secure_free(NULL);
	p = wd_secure_alloc(20000);
	assert_non_null(p);
	p[19999] = 1;
	wd_secure_free(p);
}

int
main(void)
{
	/* Cheap KDF parameters: the tests are about the format, not the KDF's cost. */
	if (wd_kdf_have_argon2())
		wd_kdf_default = (struct wd_kdf){ .id = WD_KDF_ARGON2ID, .t = 1, .m = 64, .p = 1 };
	else
		wd_kdf_default = (struct wd_kdf){ .id = WD_KDF_PBKDF2_SHA256, .t = 1000 };
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test(test_fresh_nonce),
		cmocka_unit_test(test_pbkdf2),
		cmocka_unit_test_setup_teardown(test_production_kdf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tampered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_vault, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kdf_bounds, setup, teardown),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_hosts),
		cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_fails_readonly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
		cmocka_unit_test(test_key_env),
		cmocka_unit_test(test_secure_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
