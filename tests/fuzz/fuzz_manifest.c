/*
 * fuzz_manifest.c: libFuzzer target for nb_manifest_parse().
 *
 * Beyond "no crash, no sanitizer report", it checks the loader's promises on every input: on
 * failure the struct is zeroed and the message is "fuzz.toml:LINE: ..." with nothing in it that
 * a terminal would interpret; on success the invariants the cage relies on hold.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_manifest: %s:%d: check failed: %s\n", __FILE__,      \
				__LINE__, #cond);                                                  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static void
check_path(const char *p)
{
	size_t n = strlen(p);
	CHECK(p[0] == '/');
	CHECK(n > 1 && p[n - 1] != '/');
	CHECK(!strstr(p, "//"));
	CHECK(!strstr(p, "/./"));
	CHECK(!strstr(p, "/../"));
	CHECK(strcmp(p + n - 2, "/.") != 0);
	CHECK(n < 3 || strcmp(p + n - 3, "/..") != 0);
}

static void
check_loaded(const struct nb_manifest *m)
{
	size_t n = strlen(m->name);
	CHECK(n >= 1 && n <= NB_AGENT_NAME_MAX);
	CHECK(strspn(m->name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") ==
	      n);
	CHECK(m->version && m->version[0]);
	CHECK(m->entry && m->entry[0]);
	CHECK(m->runtime == NB_RUNTIME_BINARY || m->runtime == NB_RUNTIME_PYTHON);
	CHECK(m->max_cpu_percent >= 1 && m->max_cpu_percent <= 100);
	CHECK(m->max_memory_mb >= 1 && m->max_memory_mb <= 1048576);
	CHECK(m->max_pids >= 1 && m->max_pids <= 65536);
	CHECK(m->credential_refs && m->fs_read && m->fs_write);
	for (char **p = m->fs_read; *p; p++)
		check_path(*p);
	for (char **p = m->fs_write; *p; p++)
		check_path(*p);
	for (size_t i = 0; i < m->n_net_allow; i++) {
		const char *h = m->net_allow[i].host;
		CHECK(h[0]);
		for (const char *c = h; *c; c++)
			CHECK((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
			      *c == '.' || (*c == '*' && c == h));
		CHECK(m->net_allow[i].wildcard == (h[0] == '*'));
	}
	if (m->health.present)
		CHECK(m->health.port >= 1 && m->health.path && m->health.path[0] == '/');
	for (size_t i = 0; i < m->n_tools; i++)
		CHECK(m->tools[i].risk >= NB_RISK_LOW && m->tools[i].risk <= NB_RISK_CRITICAL);
	CHECK(m->dir && m->dir[0] == '/');
}

/* libFuzzer's entry point: runs nb_manifest_parse() on @data; aborts if a promise is broken.
 * Returns 0. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct nb_manifest zero;
	struct nb_manifest m;
	struct nb_err e = { 0 };
	int r = nb_manifest_parse("fuzz.toml", (const char *)data, size, &m, &e);
	if (r == 0) {
		check_loaded(&m);
		nb_manifest_free(&m);
		CHECK(memcmp(&m, &zero, sizeof(m)) == 0);
		return 0;
	}
	CHECK(memcmp(&m, &zero, sizeof(m)) == 0);
	CHECK(r == -EINVAL || r == -ENOMEM);
	CHECK(e.code == -r);
	CHECK(memchr(e.msg, '\0', sizeof(e.msg)));
	if (r == -EINVAL) {
		unsigned line;
		int off = 0;
		CHECK(sscanf(e.msg, "fuzz.toml:%u: %n", &line, &off) == 1 && off > 0);
		CHECK(line >= 1);
	}
	for (const unsigned char *c = (const unsigned char *)e.msg; *c; c++)
		CHECK(*c >= 0x20 && *c != 0x7F && !(c[0] == 0xC2 && c[1] >= 0x80 && c[1] <= 0x9F));
	return 0;
}
