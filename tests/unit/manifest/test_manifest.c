/*
 * test_manifest.c: the AGENT.toml loader.
 *
 * Usage: test_manifest GOOD_DIR BAD_DIR [EXAMPLE.toml...]
 * First the hand-written tests (every field of good/full.toml, defaults, bounds, m->dir, I/O
 * errors, zeroing on failure), then one test per file of the two corpora: every BAD_DIR/X.toml
 * must be refused with exactly the line in BAD_DIR/X.err, every GOOD_DIR/X.toml must load.
 * Each EXAMPLE (the manifests in examples/) must load too.
 * Corpus files are loaded by their base name from inside their directory, so the expected
 * messages do not depend on where the tree is checked out.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cleanup.h"
#include "manifest.h"

static const char *good_dir;
static const char *bad_dir;

static char *
read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (n == cap)
			buf = realloc(buf, cap *= 2);
		size_t k = fread(buf + n, 1, cap - n, f);
		if (k == 0)
			break;
		n += k;
	}
	fclose(f);
	buf = realloc(buf, n + 1);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

static bool
is_zeroed(const struct nb_manifest *m)
{
	static const struct nb_manifest zero;
	return memcmp(m, &zero, sizeof(zero)) == 0;
}

static void
load_good(const char *name, struct nb_manifest *m)
{
	char path[PATH_MAX];
	struct nb_err e = { 0 };
	snprintf(path, sizeof(path), "%s/%s", good_dir, name);
	int r = nb_manifest_load(path, m, &e);
	if (r != 0)
		print_error("%s: %s\n", path, e.msg);
	assert_int_equal(r, 0);
}

/* Parses @text as "t.toml" and expects exactly @msg. */
static void
expect_refused(const char *text, const char *msg)
{
	struct nb_manifest m;
	struct nb_err e = { 0 };
	memset(&m, 0xA5, sizeof(m));
	int r = nb_manifest_parse("t.toml", text, strlen(text), &m, &e);
	assert_int_equal(r, -EINVAL);
	assert_int_equal(e.code, EINVAL);
	assert_string_equal(e.msg, msg);
	assert_true(is_zeroed(&m));
}

#define AGENT "[agent]\nname = \"t\"\nversion = \"1\"\nruntime = \"binary\"\nentry = \"x\"\n"

static void
test_full(void **state)
{
	struct nb_manifest m;
	char path[PATH_MAX], dir[PATH_MAX];
	load_good("full.toml", &m);

	snprintf(path, sizeof(path), "%s/full.toml", good_dir);
	assert_string_equal(m.path, path);
	assert_non_null(realpath(good_dir, dir));
	assert_string_equal(m.dir, dir);

	assert_string_equal(m.name, "Research-Bot_1");
	assert_string_equal(m.version, "1.2.3-rc.1");
	assert_int_equal(m.runtime, NB_RUNTIME_PYTHON);
	assert_string_equal(m.entry, "src/main.py");
	assert_int_equal(m.restart, NB_RESTART_ALWAYS);
	assert_string_equal(m.ctx_read[0], "shared/");
	assert_string_equal(m.ctx_read[1], "research/");
	assert_null(m.ctx_read[2]);
	assert_string_equal(m.ctx_write[0], "research/notes/");
	assert_null(m.ctx_write[1]);

	assert_true(m.shell);
	assert_string_equal(m.credential_refs[0], "OPENAI_API_KEY");
	assert_string_equal(m.credential_refs[1], "_GH_TOKEN2");
	assert_null(m.credential_refs[2]);
	assert_int_equal(m.max_cpu_percent, 50);
	assert_int_equal(m.max_memory_mb, 1024);
	assert_int_equal(m.max_pids, 128);
	assert_int_equal(m.max_api_calls_per_hour, 1000);

	assert_int_equal(m.n_net_allow, 4);
	assert_string_equal(m.net_allow[0].host, "api.openai.com");
	assert_false(m.net_allow[0].wildcard);
	assert_int_equal(m.net_allow[0].port, 0);
	assert_string_equal(m.net_allow[1].host, "*.github.com");
	assert_true(m.net_allow[1].wildcard);
	assert_int_equal(m.net_allow[1].port, 443);
	assert_string_equal(m.net_allow[2].host, "localhost");
	assert_int_equal(m.net_allow[2].port, 8080);
	assert_string_equal(m.net_allow[3].host, "xn--bcher-kva.example");

	assert_string_equal(m.fs_read[0], "/srv/data/in/x");
	assert_string_equal(m.fs_read[1], "/usr/share/dict");
	assert_null(m.fs_read[2]);
	assert_string_equal(m.fs_write[0], "/tmp/out");
	assert_null(m.fs_write[1]);

	assert_true(m.health.present);
	assert_int_equal(m.health.port, 8080);
	assert_string_equal(m.health.path, "/healthz?full=1");
	assert_int_equal(m.health.interval_secs, 30);
	assert_int_equal(m.health.max_failures, 5);

	assert_int_equal(m.n_tools, 4);
	assert_string_equal(m.tools[0].name, "search");
	assert_int_equal(m.tools[0].risk, NB_RISK_LOW);
	assert_string_equal(m.tools[1].name, "web-fetch");
	assert_int_equal(m.tools[1].risk, NB_RISK_MEDIUM);
	assert_string_equal(m.tools[2].name, "shell_exec");
	assert_int_equal(m.tools[2].risk, NB_RISK_CRITICAL);
	assert_string_equal(m.tools[3].name, "deploy");
	assert_int_equal(m.tools[3].risk, NB_RISK_HIGH);

	nb_manifest_free(&m);
	assert_true(is_zeroed(&m));
}

static void
test_defaults(void **state)
{
	struct nb_manifest m;
	load_good("minimal.toml", &m);
	assert_string_equal(m.name, "a");
	assert_string_equal(m.version, "0");
	assert_int_equal(m.runtime, NB_RUNTIME_BINARY);
	assert_string_equal(m.entry, "/usr/bin/true");
	assert_int_equal(m.restart, NB_RESTART_ON_FAILURE);
	assert_non_null(m.ctx_read);
	assert_null(m.ctx_read[0]);
	assert_non_null(m.ctx_write);
	assert_null(m.ctx_write[0]);
	assert_false(m.shell);
	assert_non_null(m.credential_refs);
	assert_null(m.credential_refs[0]);
	assert_int_equal(m.max_cpu_percent, 25);
	assert_int_equal(m.max_memory_mb, 256);
	assert_int_equal(m.max_pids, 64);
	assert_int_equal(m.max_api_calls_per_hour, 0);
	assert_int_equal(m.n_net_allow, 0);
	assert_non_null(m.fs_read);
	assert_null(m.fs_read[0]);
	assert_non_null(m.fs_write);
	assert_null(m.fs_write[0]);
	assert_false(m.health.present);
	assert_string_equal(m.health.path, "/health");
	assert_int_equal(m.health.interval_secs, 10);
	assert_int_equal(m.health.max_failures, 3);
	assert_int_equal(m.n_tools, 0);
	nb_manifest_free(&m);
}

static void
test_health_defaults(void **state)
{
	static const char text[] = AGENT "[capabilities.health_check]\nport = 7\n";
	struct nb_manifest m;
	struct nb_err e = { 0 };
	assert_int_equal(nb_manifest_parse("t.toml", text, strlen(text), &m, &e), 0);
	assert_true(m.health.present);
	assert_int_equal(m.health.port, 7);
	assert_string_equal(m.health.path, "/health");
	assert_int_equal(m.health.interval_secs, 10);
	assert_int_equal(m.health.max_failures, 3);
	nb_manifest_free(&m);
}

static void
test_bounds(void **state)
{
	struct nb_manifest m;
	load_good("bounds-min.toml", &m);
	assert_int_equal(m.max_cpu_percent, 1);
	assert_int_equal(m.max_memory_mb, 1);
	assert_int_equal(m.max_pids, 1);
	assert_int_equal(m.max_api_calls_per_hour, 0);
	assert_int_equal(m.health.port, 1);
	assert_string_equal(m.health.path, "/");
	assert_int_equal(m.health.interval_secs, 1);
	assert_int_equal(m.health.max_failures, 1);
	assert_int_equal(m.net_allow[0].port, 1);
	assert_int_equal(m.n_tools, 0);
	nb_manifest_free(&m);

	load_good("bounds-max.toml", &m);
	assert_int_equal(strlen(m.name), NB_AGENT_NAME_MAX);
	assert_int_equal(m.max_cpu_percent, 100);
	assert_int_equal(m.max_memory_mb, 1048576);
	assert_int_equal(m.max_pids, 65536);
	assert_true(m.max_api_calls_per_hour == (uint64_t)INT64_MAX);
	assert_int_equal(m.health.port, 65535);
	assert_int_equal(m.health.interval_secs, 86400);
	assert_int_equal(m.health.max_failures, 1000);
	assert_string_equal(m.net_allow[0].host, "*.example.com");
	assert_int_equal(m.net_allow[0].port, 65535);
	nb_manifest_free(&m);
}

static void
test_inline_tables(void **state)
{
	struct nb_manifest m;
	load_good("inline-tables.toml", &m);
	assert_string_equal(m.name, "inline");
	assert_int_equal(m.runtime, NB_RUNTIME_PYTHON);
	assert_int_equal(m.n_net_allow, 1);
	assert_string_equal(m.net_allow[0].host, "example.com");
	assert_string_equal(m.fs_read[0], "/data");
	assert_string_equal(m.fs_write[0], "/data/out");
	assert_true(m.health.present);
	assert_int_equal(m.health.port, 9000);
	assert_int_equal(m.n_tools, 1);
	assert_string_equal(m.tools[0].name, "search");
	nb_manifest_free(&m);
}

static void
test_crlf_bom(void **state)
{
	struct nb_manifest m;
	load_good("crlf-bom.toml", &m);
	assert_string_equal(m.name, "crlf");
	assert_string_equal(m.entry, "agent");
	assert_int_equal(m.max_pids, 10);
	nb_manifest_free(&m);
}

/* Error lines count CRLF lines like LF lines. */
static void
test_crlf_line_numbers(void **state)
{
	expect_refused("[agent]\r\nname = \"a b\"\r\n",
		       "t.toml:2: agent.name: invalid character \" \" at position 2 (allowed: A-Z "
		       "a-z 0-9 _ -)");
}

static void
test_dir_lexical(void **state)
{
	static const char text[] = AGENT;
	char cwd[PATH_MAX], want[PATH_MAX + 32];
	struct nb_manifest m;
	struct nb_err e = { 0 };
	assert_non_null(getcwd(cwd, sizeof(cwd)));

	assert_int_equal(nb_manifest_parse("a.toml", text, strlen(text), &m, &e), 0);
	assert_string_equal(m.dir, cwd);
	assert_string_equal(m.path, "a.toml");
	nb_manifest_free(&m);

	/* No file system access: these directories need not exist. */
	assert_int_equal(nb_manifest_parse("no/such/../dir/./a.toml", text, strlen(text), &m, &e),
			 0);
	snprintf(want, sizeof(want), "%s/no/dir", strcmp(cwd, "/") ? cwd : "");
	assert_string_equal(m.dir, want);
	nb_manifest_free(&m);

	assert_int_equal(nb_manifest_parse("/x//y/./z/a.toml", text, strlen(text), &m, &e), 0);
	assert_string_equal(m.dir, "/x/y/z");
	nb_manifest_free(&m);

	assert_int_equal(nb_manifest_parse("/a.toml", text, strlen(text), &m, &e), 0);
	assert_string_equal(m.dir, "/");
	nb_manifest_free(&m);

	assert_int_equal(nb_manifest_parse("/../../a.toml", text, strlen(text), &m, &e), 0);
	assert_string_equal(m.dir, "/");
	nb_manifest_free(&m);
}

/* A scratch directory with a real subdirectory and a symlink to it. */
struct scratch {
	char root[64];
	char real[128];
	char link[128];
	char file[192];
};

static void
scratch_make(struct scratch *s, const char *content)
{
	snprintf(s->root, sizeof(s->root), "/tmp/nb-test-manifest-XXXXXX");
	assert_non_null(mkdtemp(s->root));
	snprintf(s->real, sizeof(s->real), "%s/real", s->root);
	snprintf(s->link, sizeof(s->link), "%s/link", s->root);
	snprintf(s->file, sizeof(s->file), "%s/AGENT.toml", s->real);
	assert_int_equal(mkdir(s->real, 0700), 0);
	assert_int_equal(symlink("real", s->link), 0);
	FILE *f = fopen(s->file, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
}

static void
scratch_remove(struct scratch *s)
{
	unlink(s->file);
	unlink(s->link);
	rmdir(s->real);
	rmdir(s->root);
}

static void
test_load_dir_realpath(void **state)
{
	struct scratch s;
	char via_link[256], real[PATH_MAX];
	struct nb_manifest m;
	struct nb_err e = { 0 };
	scratch_make(&s, AGENT);
	snprintf(via_link, sizeof(via_link), "%s/AGENT.toml", s.link);
	int r = nb_manifest_load(via_link, &m, &e);
	assert_int_equal(r, 0);
	assert_string_equal(m.path, via_link);
	assert_non_null(realpath(s.real, real));
	assert_string_equal(m.dir, real);
	nb_manifest_free(&m);
	scratch_remove(&s);
}

static void
test_load_enoent(void **state)
{
	struct nb_manifest m;
	struct nb_err e = { 0 };
	memset(&m, 0xA5, sizeof(m));
	assert_int_equal(nb_manifest_load("/nonexistent/dir/AGENT.toml", &m, &e), -ENOENT);
	assert_int_equal(e.code, ENOENT);
	assert_string_equal(e.msg,
			    "/nonexistent/dir/AGENT.toml: cannot open: No such file or directory");
	assert_true(is_zeroed(&m));
}

static void
test_load_not_regular(void **state)
{
	struct scratch s;
	char fifo[256], msg[512];
	struct nb_manifest m;
	struct nb_err e = { 0 };
	scratch_make(&s, AGENT);

	assert_int_equal(nb_manifest_load(s.real, &m, &e), -EINVAL);
	snprintf(msg, sizeof(msg), "%s: not a regular file", s.real);
	assert_string_equal(e.msg, msg);
	assert_true(is_zeroed(&m));

	/* A FIFO with no writer would block a plain open(); the loader must not hang. */
	snprintf(fifo, sizeof(fifo), "%s/fifo", s.root);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(nb_manifest_load(fifo, &m, &e), -EINVAL);
	snprintf(msg, sizeof(msg), "%s: not a regular file", fifo);
	assert_string_equal(e.msg, msg);
	unlink(fifo);
	scratch_remove(&s);
}

static void
test_load_too_large(void **state)
{
	struct scratch s;
	char msg[512];
	struct nb_manifest m;
	struct nb_err e = { 0 };
	scratch_make(&s, AGENT);
	FILE *f = fopen(s.file, "a");
	assert_non_null(f);
	static const char pad[] = "# padding\n";
	for (size_t n = strlen(AGENT); n <= 1024 * 1024; n += strlen(pad))
		fputs(pad, f);
	fclose(f);
	assert_int_equal(nb_manifest_load(s.file, &m, &e), -EINVAL);
	snprintf(msg, sizeof(msg), "%s:1: syntax: larger than 1048576 bytes", s.file);
	assert_string_equal(e.msg, msg);
	assert_true(is_zeroed(&m));

	/* Exactly at the limit is fine. */
	f = fopen(s.file, "w");
	assert_non_null(f);
	fputs(AGENT, f);
	for (size_t n = strlen(AGENT); n < 1024 * 1024; n++)
		fputc(n + 1 == 1024 * 1024 ? '\n' : ' ', f);
	fclose(f);
	assert_int_equal(nb_manifest_load(s.file, &m, &e), 0);
	nb_manifest_free(&m);
	scratch_remove(&s);
}

/* A failure after most of the struct was filled in still leaves it zeroed (and, under ASan or
 * valgrind, leaks nothing). */
static void
test_failure_late_zeroes(void **state)
{
	_cleanup_free_ char *text = NULL;
	char path[PATH_MAX];
	size_t len;
	snprintf(path, sizeof(path), "%s/full.toml", good_dir);
	text = read_all(path, &len);
	assert_non_null(text);
	char *t = realloc(text, len + 64);
	assert_non_null(t);
	text = t;
	strcat(text, "\n[tools.late]\nrisk = \"none\"\n");
	struct nb_manifest m;
	struct nb_err e = { 0 };
	assert_int_equal(nb_manifest_parse("full.toml", text, strlen(text), &m, &e), -EINVAL);
	assert_string_equal(e.msg, "full.toml:48: tools.late.risk: must be \"low\", \"medium\", "
				   "\"high\" or \"critical\" (got \"none\")");
	assert_true(is_zeroed(&m));
}

/* User text in messages is escaped: no terminal control sequences, no fake extra lines. */
static void
test_error_escapes_input(void **state)
{
	expect_refused("[agent]\nruntime = \"\\u001b[2J\\nx\"\n",
		       "t.toml:2: agent.runtime: must be \"binary\" or \"python\" (got "
		       "\"\\u001B[2J\\nx\")");
	expect_refused("[tools]\n\"a\\tb\" = {}\n",
		       "t.toml:2: tools.\"a\\tb\": invalid character \"\\t\" at position 2 "
		       "(allowed: A-Z a-z 0-9 _ -)");
	expect_refused("[agent]\nrun\xc2\x9btime = 1\n",
		       "t.toml:2: agent.run: expected '=' after the "
		       "key, found U+009B");
}

static void
test_misc_refusals(void **state)
{
	expect_refused("", "t.toml:1: agent: missing required table [agent]");
	expect_refused(AGENT "[capabilities.network]\nallow = [\"example.com:443:1\"]\n",
		       "t.toml:7: capabilities.network.allow[0]: more than one ':'");
	expect_refused(AGENT "[capabilities.network]\nallow = [\":443\"]\n",
		       "t.toml:7: capabilities.network.allow[0]: empty host name");
	expect_refused(AGENT "[capabilities.network]\nallow = [\"*:443\"]\n",
		       "t.toml:7: capabilities.network.allow[0]: \"*\" alone would allow every "
		       "host; name the hosts");
	expect_refused(AGENT "[capabilities.network]\nallow = [\"0x7f.1\"]\n",
		       "t.toml:7: capabilities.network.allow[0]: IP addresses are not allowed, "
		       "name a host");
	/* Only inet_aton() knows this one: the last label is not all digits. */
	expect_refused(AGENT "[capabilities.network]\nallow = [\"0x7f000001:80\"]\n",
		       "t.toml:7: capabilities.network.allow[0]: IP addresses are not allowed, "
		       "name a host");
	expect_refused(AGENT "[capabilities.network]\nallow = [\"2130706433\"]\n",
		       "t.toml:7: capabilities.network.allow[0]: IP addresses are not allowed, "
		       "name a host");
	expect_refused(AGENT "[capabilities.network]\nallow = [\"example.com:080000\"]\n",
		       "t.toml:7: capabilities.network.allow[0]: port must be between 1 and 65535 "
		       "(got 080000)");
	expect_refused(AGENT "[capabilities.filesystem]\nread = [\"/a/b/..\"]\n",
		       "t.toml:7: capabilities.filesystem.read[0]: must not contain '..'");
	expect_refused(AGENT "[agent.extra]\nx = 1\n",
		       "t.toml:6: agent.extra: unknown table (expected one of: name, version, "
		       "runtime, entry, restart)");
	expect_refused("[agent]\nname = \"n\"\nversion = \"1\"\nruntime = \"binary\"\nentry = "
		       "\"a\\u0085b\"\n",
		       "t.toml:5: agent.entry: must not contain control characters");
}

/* Length limits, just past each one. */
static void
test_lengths(void **state)
{
	char text[8192], want[512];
	char long_label[70], long_host[300], long_path[4200];

	memset(long_label, 'a', 64);
	long_label[64] = '\0';
	snprintf(text, sizeof(text), AGENT "[capabilities.network]\nallow = [\"%s.com\"]\n",
		 long_label);
	expect_refused(text, "t.toml:7: capabilities.network.allow[0]: label longer than 63 "
			     "characters");

	/* 63 + 63 + 63 + 61 and three dots: 253, the longest name; one more character is 254. */
	snprintf(long_host, sizeof(long_host), "%.63s.%.63s.%.63s.%.61s", long_label, long_label,
		 long_label, long_label);
	assert_int_equal(strlen(long_host), 253);
	snprintf(text, sizeof(text), AGENT "[capabilities.network]\nallow = [\"b%s\"]\n",
		 long_host);
	expect_refused(text, "t.toml:7: capabilities.network.allow[0]: host name longer than 253 "
			     "characters");
	snprintf(text, sizeof(text), AGENT "[capabilities.network]\nallow = [\"%s\"]\n", long_host);
	struct nb_manifest m;
	struct nb_err e = { 0 };
	assert_int_equal(nb_manifest_parse("t.toml", text, strlen(text), &m, &e), 0);
	nb_manifest_free(&m);

	memset(long_path, 'p', sizeof(long_path));
	long_path[0] = '/';
	long_path[PATH_MAX] = '\0';
	snprintf(text, sizeof(text), AGENT "[capabilities.filesystem]\nwrite = [\"%s\"]\n",
		 long_path);
	snprintf(want, sizeof(want),
		 "t.toml:7: capabilities.filesystem.write[0]: longer than %d bytes", PATH_MAX - 1);
	expect_refused(text, want);

	snprintf(text, sizeof(text),
		 "[agent]\nname = \"n\"\nversion = \"%0129d\"\nruntime = \"binary\"\n", 1);
	expect_refused(text, "t.toml:3: agent.version: longer than 128 bytes");

	snprintf(text, sizeof(text), AGENT "[capabilities]\ncredential_refs = [\"K%0128d\"]\n", 1);
	expect_refused(text,
		       "t.toml:7: capabilities.credential_refs[0]: longer than 128 characters");
	expect_refused(AGENT "[capabilities]\ncredential_refs = [\"\"]\n",
		       "t.toml:7: capabilities.credential_refs[0]: must not be empty");
	expect_refused(AGENT "[capabilities.network]\nallow = [\"example.123\"]\n",
		       "t.toml:7: capabilities.network.allow[0]: the last label must not be all "
		       "digits (it reads as an IP address)");
}

static void
test_names(void **state)
{
	assert_string_equal(nb_runtime_name(NB_RUNTIME_BINARY), "binary");
	assert_string_equal(nb_runtime_name(NB_RUNTIME_PYTHON), "python");
	assert_string_equal(nb_runtime_name((enum nb_runtime)7), "unknown");
	assert_string_equal(nb_risk_name(NB_RISK_LOW), "low");
	assert_string_equal(nb_risk_name(NB_RISK_MEDIUM), "medium");
	assert_string_equal(nb_risk_name(NB_RISK_HIGH), "high");
	assert_string_equal(nb_risk_name(NB_RISK_CRITICAL), "critical");
	assert_string_equal(nb_risk_name((enum nb_risk) - 1), "unknown");
}

static void
test_free_twice(void **state)
{
	struct nb_manifest m = { 0 };
	nb_manifest_free(&m);
	nb_manifest_free(&m);
	nb_manifest_free(NULL);
	load_good("full.toml", &m);
	nb_manifest_free(&m);
	nb_manifest_free(&m);
	assert_true(is_zeroed(&m));
}

/* ---- the corpora ---------------------------------------------------------------------- */

struct corpus_case {
	const char *dir;
	char name[256];
};

/* Runs @fn with the cwd set to @dir, so the file can be named by its base name. */
static int
in_dir(const char *dir, const char *name, struct nb_manifest *m, struct nb_err *e)
{
	int saved = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(saved >= 0);
	assert_int_equal(chdir(dir), 0);
	int r = nb_manifest_load(name, m, e);
	assert_int_equal(fchdir(saved), 0);
	close(saved);
	return r;
}

static void
test_bad_file(void **state)
{
	const struct corpus_case *c = *state;
	char errpath[PATH_MAX];
	snprintf(errpath, sizeof(errpath), "%s/%.*s.err", c->dir, (int)strlen(c->name) - 5,
		 c->name);
	_cleanup_free_ char *want = read_all(errpath, NULL);
	if (!want)
		fail_msg("%s: missing (every bad manifest needs its expected error)", errpath);
	want[strcspn(want, "\n")] = '\0';

	struct nb_manifest m;
	struct nb_err e = { 0 };
	memset(&m, 0xA5, sizeof(m));
	int r = in_dir(c->dir, c->name, &m, &e);
	if (r == 0)
		nb_manifest_free(&m);
	assert_int_equal(r, -EINVAL);
	assert_int_equal(e.code, EINVAL);
	assert_string_equal(e.msg, want);
	assert_true(is_zeroed(&m));
}

static void
test_good_file(void **state)
{
	const struct corpus_case *c = *state;
	struct nb_manifest m;
	struct nb_err e = { 0 };
	int r = in_dir(c->dir, c->name, &m, &e);
	if (r != 0)
		fail_msg("%s: %s", c->name, e.msg);
	assert_true(m.name[0] != '\0');
	assert_non_null(m.version);
	assert_non_null(m.entry);
	assert_non_null(m.dir);
	assert_true(m.dir[0] == '/');
	nb_manifest_free(&m);
}

static bool
has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n > k && strcmp(s + n - k, suffix) == 0;
}

/* Every .err belongs to a .toml (a stray expectation would otherwise go unnoticed). */
static void
test_no_orphan_err(void **state)
{
	struct dirent **ents;
	int n = scandir(bad_dir, &ents, NULL, alphasort);
	assert_true(n > 0);
	for (int i = 0; i < n; i++) {
		char toml[PATH_MAX];
		const char *d = ents[i]->d_name;
		if (has_suffix(d, ".err")) {
			snprintf(toml, sizeof(toml), "%s/%.*s.toml", bad_dir, (int)strlen(d) - 4,
				 d);
			if (access(toml, F_OK) != 0)
				fail_msg("%s/%s has no .toml", bad_dir, d);
		}
		free(ents[i]);
	}
	free(ents);
}

/* One cmocka test per .toml file in @dir, named after the file. */
static int
run_corpus(const char *group, const char *dir, CMUnitTestFunction fn, size_t min)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "%s: %m\n", dir);
		return 1;
	}
	struct CMUnitTest *tests = calloc((size_t)n + 1, sizeof(*tests));
	struct corpus_case *cases = calloc((size_t)n + 1, sizeof(*cases));
	size_t k = 0;
	for (int i = 0; i < n; i++) {
		if (has_suffix(ents[i]->d_name, ".toml") &&
		    strlen(ents[i]->d_name) < sizeof(cases[k].name)) {
			cases[k].dir = dir;
			snprintf(cases[k].name, sizeof(cases[k].name), "%s", ents[i]->d_name);
			tests[k] = (struct CMUnitTest){ .name = cases[k].name,
							.test_func = fn,
							.initial_state = &cases[k] };
			k++;
		}
		free(ents[i]);
	}
	free(ents);
	int failed = 0;
	if (k < min) {
		fprintf(stderr, "%s: %zu manifests, expected at least %zu\n", dir, k, min);
		failed = 1;
	}
	failed += _cmocka_run_group_tests(group, tests, k, NULL, NULL);
	free(tests);
	free(cases);
	return failed;
}

int
main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s GOOD_DIR BAD_DIR [EXAMPLE.toml...]\n", argv[0]);
		return 2;
	}
	good_dir = argv[1];
	bad_dir = argv[2];

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_health_defaults),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_inline_tables),
		cmocka_unit_test(test_crlf_bom),
		cmocka_unit_test(test_crlf_line_numbers),
		cmocka_unit_test(test_dir_lexical),
		cmocka_unit_test(test_load_dir_realpath),
		cmocka_unit_test(test_load_enoent),
		cmocka_unit_test(test_load_not_regular),
		cmocka_unit_test(test_load_too_large),
		cmocka_unit_test(test_failure_late_zeroes),
		cmocka_unit_test(test_error_escapes_input),
		cmocka_unit_test(test_misc_refusals),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_free_twice),
		cmocka_unit_test(test_no_orphan_err),
	};
	int failed = cmocka_run_group_tests_name("manifest", tests, NULL, NULL);
	failed += run_corpus("manifest-corpus-good", good_dir, test_good_file, 5);
	failed += run_corpus("manifest-corpus-bad", bad_dir, test_bad_file, 45);

	int n_examples = argc - 3;
	struct CMUnitTest *ex = calloc((size_t)n_examples + 1, sizeof(*ex));
	struct corpus_case *cases = calloc((size_t)n_examples + 1, sizeof(*cases));
	for (int i = 0; i < n_examples; i++) {
		_cleanup_free_ char *copy = strdup(argv[3 + i]);
		char *slash = strrchr(copy, '/');
		if (slash)
			*slash = '\0';
		cases[i].dir = slash ? strdup(copy) : strdup(".");
		snprintf(cases[i].name, sizeof(cases[i].name), "%s", slash ? slash + 1 : copy);
		ex[i] = (struct CMUnitTest){ .name = argv[3 + i],
					     .test_func = test_good_file,
					     .initial_state = &cases[i] };
	}
	if (n_examples > 0)
		failed += _cmocka_run_group_tests("manifest-examples", ex, (size_t)n_examples, NULL,
						  NULL);
	for (int i = 0; i < n_examples; i++)
		free((char *)cases[i].dir);
	free(ex);
	free(cases);
	return failed ? 1 : 0;
}
