/*
 * fuzz_audit.c: libFuzzer target for the audit log reader (lib/audit.c).
 *
 * The input is the content of a log file. Beyond "no crash, no sanitizer report" it checks:
 *   1. the buffer API (nb_audit_chain_check, line by line) and the streaming verifier
 *      (nb_audit_verify on the same bytes in a memfd) agree on the number of good records, the
 *      first bad one, and the message;
 *   2. after the harness rewrites every JSON object line with the right seq, prev and hash (what
 *      an attacker without the key can do, computed here from docs/AUDIT.md with libcrypto), a
 *      line is refused only for its fields, never for its links or hash, so the fuzzer reaches
 *      the field checks behind the hash and the library's hash is checked against an
 *      independent computation;
 *   3. the input as a head file never verifies (the fuzzer cannot forge the HMAC) and is
 *      reported as an invalid head;
 *   4. every message is one line of printable ASCII (a log must not reach a terminal raw).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "audit.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_audit: %s:%d: check failed: %s\n", __FILE__,         \
				__LINE__, #cond);                                                  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* Not the key the seed corpus was written with, so even the seed head fails its MAC. */
static const uint8_t KEY[NB_AUDIT_KEY_LEN] = { 0x42 };

static void
check_inert(const char *msg)
{
	CHECK(memchr(msg, '\0', 512));
	for (const unsigned char *c = (const unsigned char *)msg; *c; c++)
		CHECK(*c >= 0x20 && *c < 0x7F);
}

/* A memfd holding @n bytes of @buf, named by a path nb_audit_verify() can open. */
static const char *
as_file(const void *buf, size_t n)
{
	static int fd = -1;
	static char path[64];
	if (fd < 0) {
		fd = memfd_create("fuzz-audit-log", MFD_CLOEXEC);
		CHECK(fd >= 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(n == 0 || pwrite(fd, buf, n, 0) == (ssize_t)n);
	return path;
}

/* The number of records that pass, line by line; *bad and *msg describe the first that does not. */
static uint64_t
check_lines(const uint8_t *data, size_t size, uint64_t *bad, enum nb_audit_problem *problem,
	    char msg[512])
{
	struct nb_audit_chain c;
	nb_audit_chain_init(&c);
	*bad = 0;
	*problem = NB_AUDIT_OK;
	msg[0] = '\0';
	size_t off = 0;
	while (off < size) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t len = nl ? (size_t)(nl - (data + off)) : size - off;
		struct nb_err e = { 0 };
		/* The stream reader's cap: a line and its '\n' fit in NB_AUDIT_LINE_MAX. */
		if (len >= NB_AUDIT_LINE_MAX) {
			*bad = c.seq + 1;
			*problem = NB_AUDIT_BAD_RECORD;
			break;
		}
		if (!nl) {
			*bad = c.seq + 1;
			*problem = NB_AUDIT_PARTIAL_LINE;
			break;
		}
		uint64_t before = c.seq;
		if (nb_audit_chain_check(&c, (const char *)data + off, len, &e) < 0) {
			CHECK(e.code == EBADMSG);
			CHECK(c.seq == before);
			check_inert(e.msg);
			char want[32];
			snprintf(want, sizeof(want),
				 "record %llu: ", (unsigned long long)before + 1);
			CHECK(strncmp(e.msg, want, strlen(want)) == 0);
			snprintf(msg, 512, "%s", e.msg);
			*bad = before + 1;
			*problem = NB_AUDIT_BAD_RECORD;
			break;
		}
		CHECK(c.seq == before + 1);
		off += len + 1;
	}
	return c.seq;
}

static void
differential(const uint8_t *data, size_t size)
{
	uint64_t bad;
	enum nb_audit_problem problem;
	char msg[512];
	uint64_t good = check_lines(data, size, &bad, &problem, msg);

	struct nb_audit_report rep;
	struct nb_err e = { 0 };
	int r = nb_audit_verify(as_file(data, size), NULL, 0, &rep, &e);
	CHECK(!rep.head_checked);
	CHECK(rep.records == good);
	CHECK(rep.problem == problem);
	CHECK(rep.first_bad == bad);
	check_inert(rep.msg);
	if (problem == NB_AUDIT_OK) {
		CHECK(r == 0);
		CHECK(rep.msg[0] == '\0');
	} else {
		CHECK(r == -EBADMSG);
		CHECK(strcmp(e.msg, rep.msg) == 0);
		if (msg[0])
			CHECK(strcmp(msg, rep.msg) == 0);
	}
}

/* Rewrites @j's seq, prev and hash as the record after @c. Returns the canonical line or NULL. */
static char *
fix_up(json_t *j, const struct nb_audit_chain *c)
{
	char prev[NB_SHA256_HEX_LEN + 1];
	nb_hex(c->hash, NB_SHA256_LEN, prev);
	json_object_del(j, "hash");
	json_object_set_new(j, "seq", json_integer((json_int_t)c->seq + 1));
	json_object_set_new(j, "prev", json_string(prev));
	char *body = NULL;
	size_t len = 0;
	struct nb_err e = { 0 };
	if (nb_json_canonical(j, &body, &len, &e) < 0)
		return NULL;
	uint8_t d[NB_SHA256_LEN];
	unsigned int dn = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	CHECK(ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	      EVP_DigestUpdate(ctx, body, len) == 1 &&
	      EVP_DigestUpdate(ctx, c->hash, NB_SHA256_LEN) == 1 &&
	      EVP_DigestFinal_ex(ctx, d, &dn) == 1);
	EVP_MD_CTX_free(ctx);
	free(body);
	char hex[NB_SHA256_HEX_LEN + 1];
	nb_hex(d, NB_SHA256_LEN, hex);
	json_object_set_new(j, "hash", json_string(hex));
	char *out = NULL;
	if (nb_json_canonical(j, &out, NULL, &e) < 0)
		return NULL;
	return out;
}

static void
fixed_chain(const uint8_t *data, size_t size)
{
	struct nb_audit_chain c;
	nb_audit_chain_init(&c);
	size_t off = 0;
	while (off < size) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t len = nl ? (size_t)(nl - (data + off)) : size - off;
		json_error_t je;
		json_t *j = json_loadb((const char *)data + off, len, JSON_REJECT_DUPLICATES, &je);
		off += len + 1;
		if (!json_is_object(j)) {
			json_decref(j);
			continue;
		}
		char *line = fix_up(j, &c);
		json_decref(j);
		if (!line)
			continue;
		struct nb_err e = { 0 };
		uint64_t before = c.seq;
		if (nb_audit_chain_check(&c, line, strlen(line), &e) == 0) {
			CHECK(c.seq == before + 1);
		} else {
			/* Links, hash and spelling are right by construction: only fields remain.
			 */
			check_inert(e.msg);
			const char *why = strchr(e.msg, ':');
			CHECK(why && why[1] == ' ');
			why += 2;
			CHECK(strncmp(why, "field \"", 7) == 0 ||
			      strncmp(why, "missing field \"", 15) == 0 ||
			      strncmp(why, "unexpected field \"", 18) == 0 ||
			      strncmp(why, "line longer than", 16) == 0);
		}
		free(line);
	}
}

static char head_dir[] = "/tmp/fuzz-audit.XXXXXX";
static char head[sizeof(head_dir) + 16];

/* Leaves no scratch directory behind, run after run. */
static void
remove_head_dir(void)
{
	unlink(head);
	rmdir(head_dir);
}

static void
as_head(const uint8_t *data, size_t size)
{
	const char *dir = head_dir;
	if (head[0] == '\0') {
		CHECK(mkdtemp(head_dir));
		snprintf(head, sizeof(head), "%s/%s", head_dir, NB_AUDIT_HEAD_NAME);
		atexit(remove_head_dir);
	}
	int fd = open(head, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	size_t n = size < 600 ? size : 600;
	CHECK(n == 0 || write(fd, data, n) == (ssize_t)n);
	close(fd);
	struct nb_audit_report rep;
	struct nb_err e = { 0 };
	int r = nb_audit_verify(dir, KEY, 0, &rep, &e);
	CHECK(r == -EBADMSG);
	CHECK(rep.problem == NB_AUDIT_HEAD_INVALID);
	CHECK(rep.first_bad == 0);
	check_inert(rep.msg);
}

/* libFuzzer's entry point. Returns 0; aborts if a promise is broken. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	differential(data, size);
	fixed_chain(data, size);
	as_head(data, size);
	return 0;
}
