/*
 * Unit tests for warden's methods (src/warden/server.c), driven through lib/ipc's framing and
 * dispatch with nb_ipc_server_feed() and made-up peer credentials: who may call what, when a value
 * is handed out, that values never appear where they must not (list replies, audit records), and
 * the audit records sent to nulld (a plain listening socket stands in for nulld's).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <setjmp.h> /* cmocka.h needs these first */
#include <cmocka.h>

#include "cleanup.h"
#include "json.h"
#include "warden.h"

#define VALUE "sk-live-SECRET-0123456789"

static const struct nb_ipc_peer ROOT = { .pid = 4242, .uid = 0, .gid = 0 };
static const struct nb_ipc_peer USER = { .pid = 4343, .uid = 1000, .gid = 1000 };

struct fx {
	struct warden w;
	char dir[64];
	char sock[100]; /* the stand-in for nulld's socket (sun_path: 108) */
	int lfd;	/* listening on it, or -1 */
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct nb_err e = { 0 };
	f->lfd = -1;
	f->w.epfd = -1;
	if (wd_vault_new(NULL, (const uint8_t *)"k", 1, &f->w.vault, &e) < 0 ||
	    !(f->w.srv = nb_ipc_server_new(NULL, &e)) || warden_methods_add(&f->w, &e) < 0) {
		fprintf(stderr, "setup: %s\n", e.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	warden_audit_close(&f->w);
	nb_ipc_server_free(f->w.srv);
	wd_vault_free(f->w.vault);
	if (f->lfd >= 0) {
		close(f->lfd);
		unlink(f->sock);
		rmdir(f->dir);
	}
	free(f);
	return 0;
}

/* Sends one request as @peer; returns the reply object. *raw (may be NULL) gets the reply line. */
static json_t *
rpc_raw(struct fx *f, const struct nb_ipc_peer *peer, const char *method, const char *params,
	char **raw)
{
	char line[4096];
	snprintf(line, sizeof(line),
		 "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"%s\",\"params\":%s}\n", method,
		 params);
	char *out = NULL;
	size_t out_len = 0;
	assert_int_equal(nb_ipc_server_feed(f->w.srv, peer, line, strlen(line), 0, &out, &out_len),
			 0);
	assert_non_null(out);
	json_error_t jerr;
	json_t *m = json_loads(out, 0, &jerr);
	if (!m)
		fail_msg("reply is not JSON: %s", out);
	if (raw)
		*raw = out;
	else
		free(out);
	return m;
}

static json_t *
rpc(struct fx *f, const struct nb_ipc_peer *peer, const char *method, const char *params)
{
	return rpc_raw(f, peer, method, params, NULL);
}

/* The reply's error code (0: a result). */
static int
code_of(const json_t *m)
{
	json_t *err = json_object_get(m, "error");
	if (!err) {
		assert_non_null(json_object_get(m, "result"));
		return 0;
	}
	return (int)json_integer_value(json_object_get(err, "code"));
}

static const char *
message_of(const json_t *m)
{
	return json_string_value(json_object_get(json_object_get(m, "error"), "message"));
}

/* Calls and expects error @code (0: success); returns nothing. */
static void
expect(struct fx *f, const struct nb_ipc_peer *peer, const char *method, const char *params,
       int code)
{
	json_t *m = rpc(f, peer, method, params);
	if (code_of(m) != code)
		fail_msg("%s %s: expected code %d, got %s", method, params, code,
			 json_dumps(m, JSON_COMPACT));
	json_decref(m);
}

/* The value vault.get returned, or NULL. */
static char *
get_value(struct fx *f, const char *params)
{
	_cleanup_json_ json_t *m = rpc(f, &ROOT, "vault.get", params);
	const char *v = json_string_value(json_object_get(json_object_get(m, "result"), "value"));
	return v ? strdup(v) : NULL;
}

static void
test_root_flow(void **state)
{
	struct fx *f = *state;
	expect(f, &ROOT, "vault.set", "{\"name\":\"OPENAI\",\"value\":\"" VALUE "\"}", 0);
	expect(f, &ROOT, "vault.bind",
	       "{\"name\":\"OPENAI\",\"hosts\":[\"API.openai.com\",\"*.example.com\"]}", 0);

	char *raw = NULL;
	json_t *m = rpc_raw(f, &ROOT, "vault.list", "{}", &raw);
	assert_int_equal(code_of(m), 0);
	assert_null(strstr(raw, VALUE));
	json_t *s = json_array_get(json_object_get(json_object_get(m, "result"), "secrets"), 0);
	assert_string_equal(json_string_value(json_object_get(s, "name")), "OPENAI");
	assert_string_equal(json_string_value(json_object_get(s, "inject")), "placeholder");
	assert_int_equal(json_array_size(json_object_get(s, "hosts")), 2);
	assert_null(json_object_get(s, "value"));
	json_decref(m);
	free(raw);

	char *v =
		get_value(f, "{\"name\":\"OPENAI\",\"host\":\"api.openai.com\",\"agent\":\"a1\"}");
	assert_non_null(v);
	assert_string_equal(v, VALUE);
	free(v);
	v = get_value(f, "{\"name\":\"OPENAI\",\"host\":\"deep.sub.example.com\"}");
	assert_non_null(v);
	free(v);
	/* Not bound to this host, to none at all, or a placeholder read without a host. */
	expect(f, &ROOT, "vault.get", "{\"name\":\"OPENAI\",\"host\":\"evil.org\"}", WD_ERR_DENIED);
	expect(f, &ROOT, "vault.get", "{\"name\":\"OPENAI\",\"host\":\"example.com\"}",
	       WD_ERR_DENIED);
	expect(f, &ROOT, "vault.get", "{\"name\":\"OPENAI\"}", WD_ERR_DENIED);
	expect(f, &ROOT, "vault.get", "{\"name\":\"NOPE\",\"host\":\"api.openai.com\"}",
	       WD_ERR_NOT_FOUND);

	/* inject env: nulld's read, without a host, for an agent. */
	expect(f, &ROOT, "vault.set", "{\"name\":\"E\",\"value\":\"env-v\",\"inject\":\"env\"}", 0);
	v = get_value(f, "{\"name\":\"E\",\"agent\":\"web\"}");
	assert_non_null(v);
	assert_string_equal(v, "env-v");
	free(v);
	/* ...and bound to no host, a read for a host is refused. */
	expect(f, &ROOT, "vault.get", "{\"name\":\"E\",\"host\":\"api.openai.com\"}",
	       WD_ERR_DENIED);

	/* Replacing keeps hosts and mode; the reply says it was not created. */
	m = rpc(f, &ROOT, "vault.set", "{\"name\":\"OPENAI\",\"value\":\"new\"}");
	assert_false(json_is_true(json_object_get(json_object_get(m, "result"), "created")));
	json_decref(m);
	v = get_value(f, "{\"name\":\"OPENAI\",\"host\":\"api.openai.com\"}");
	assert_string_equal(v, "new");
	free(v);

	expect(f, &ROOT, "vault.delete", "{\"name\":\"OPENAI\"}", 0);
	expect(f, &ROOT, "vault.delete", "{\"name\":\"OPENAI\"}", WD_ERR_NOT_FOUND);
	expect(f, &ROOT, "vault.bind", "{\"name\":\"OPENAI\",\"hosts\":[]}", WD_ERR_NOT_FOUND);
	assert_int_equal(wd_vault_count(f->w.vault), 1);
}

static void
test_non_root_refused(void **state)
{
	struct fx *f = *state;
	expect(f, &ROOT, "vault.set", "{\"name\":\"S\",\"value\":\"" VALUE "\",\"inject\":\"env\"}",
	       0);
	expect(f, &ROOT, "vault.bind", "{\"name\":\"S\",\"hosts\":[\"a.example.com\"]}", 0);
	char *raw = NULL;
	json_t *m =
		rpc_raw(f, &USER, "vault.get", "{\"name\":\"S\",\"host\":\"a.example.com\"}", &raw);
	assert_int_equal(code_of(m), WD_ERR_DENIED);
	assert_non_null(strstr(message_of(m), "uid 1000"));
	assert_null(strstr(raw, VALUE));
	json_decref(m);
	free(raw);
	expect(f, &USER, "vault.get", "{\"name\":\"S\"}", WD_ERR_DENIED);
	expect(f, &USER, "vault.set", "{\"name\":\"S\",\"value\":\"mine\"}", WD_ERR_DENIED);
	expect(f, &USER, "vault.set", "{\"name\":\"T\",\"value\":\"mine\"}", WD_ERR_DENIED);
	expect(f, &USER, "vault.delete", "{\"name\":\"S\"}", WD_ERR_DENIED);
	expect(f, &USER, "vault.bind", "{\"name\":\"S\",\"hosts\":[\"evil.org\"]}", WD_ERR_DENIED);
	expect(f, &USER, "vault.list", "{}", WD_ERR_DENIED);
	/* Nothing changed. */
	assert_int_equal(wd_vault_count(f->w.vault), 1);
	const struct wd_secret *s = wd_vault_find(f->w.vault, "S");
	assert_string_equal(s->value, VALUE);
	assert_int_equal(s->n_hosts, 1);
	assert_string_equal(s->hosts[0], "a.example.com");
}

static void
test_bad_params(void **state)
{
	struct fx *f = *state;
	static const char *const bad[][2] = {
		{ "vault.set", "{\"name\":\"1X\",\"value\":\"v\"}" },
		{ "vault.set", "{\"name\":\"X\",\"value\":\"\"}" },
		{ "vault.set", "{\"name\":\"X\",\"value\":1}" },
		{ "vault.set", "{\"name\":\"X\",\"value\":\"v\",\"inject\":\"file\"}" },
		{ "vault.set", "{\"name\":\"X\",\"value\":\"v\",\"extra\":1}" },
		{ "vault.set", "{\"name\":\"X\"}" },
		{ "vault.get", "{\"name\":\"X-Y\"}" },
		{ "vault.get", "{\"name\":\"X\",\"host\":\"10.0.0.1\"}" },
		{ "vault.get", "{\"name\":\"X\",\"host\":\"*.example.com\"}" },
		{ "vault.get", "{\"name\":\"X\",\"agent\":\"a b\"}" },
		{ "vault.bind", "{\"name\":\"X\",\"hosts\":\"a.com\"}" },
		{ "vault.bind", "{\"name\":\"X\",\"hosts\":[1]}" },
		{ "vault.delete", "{}" },
		{ "vault.list", "{\"x\":1}" },
	};
	for (size_t i = 0; i < NB_ARRAY_SIZE(bad); i++)
		expect(f, &ROOT, bad[i][0], bad[i][1], NB_IPC_INVALID_PARAMS);
	/* A NUL in a value never reaches warden: lib/ipc refuses "\u0000" when it parses. */
	expect(f, &ROOT, "vault.set", "{\"name\":\"X\",\"value\":\"a\\u0000b\"}",
	       NB_IPC_PARSE_ERROR);
	expect(f, &ROOT, "vault.set", "{\"name\":\"X\",\"value\":\"v\"}", 0);
	expect(f, &ROOT, "vault.bind", "{\"name\":\"X\",\"hosts\":[\"a.example.com:443\"]}",
	       NB_IPC_INVALID_PARAMS);
	assert_int_equal(wd_vault_count(f->w.vault), 1);
}

/* A listening socket that stands in for nulld's control socket. */
static void
fake_nulld(struct fx *f)
{
	snprintf(f->dir, sizeof(f->dir), "/tmp/nb-warden-srv.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sock, sizeof(f->sock), "%s/nulld.sock", f->dir);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", f->sock);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	f->w.nulld_socket = f->sock;
}

/* The next audit.append request warden sent: its params. *raw gets the whole line. */
static json_t *
next_record(struct fx *f, int *conn, char **raw)
{
	if (*conn < 0)
		*conn = accept(f->lfd, NULL, NULL);
	assert_true(*conn >= 0);
	static char buf[8192];
	size_t n = 0;
	while (n < sizeof(buf) - 1) {
		ssize_t k = read(*conn, buf + n, 1);
		assert_true(k == 1);
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = '\0';
	*raw = buf;
	json_t *m = json_loads(buf, 0, NULL);
	assert_non_null(m);
	assert_string_equal(json_string_value(json_object_get(m, "method")), "audit.append");
	assert_non_null(
		json_object_get(m, "id")); /* a request: nulld answers, warden logs refusals */
	json_t *p = json_incref(json_object_get(m, "params"));
	json_decref(m);
	return p;
}

static void
assert_record(json_t *p, const char *action, const char *object, const char *verdict,
	      const char *reason)
{
	assert_string_equal(json_string_value(json_object_get(p, "action")), action);
	assert_string_equal(json_string_value(json_object_get(p, "object")), object);
	assert_string_equal(json_string_value(json_object_get(p, "verdict")), verdict);
	const char *r = json_string_value(json_object_get(p, "reason"));
	if (!r || !strstr(r, reason))
		fail_msg("reason \"%s\" lacks \"%s\"", r ? r : "(none)", reason);
}

static void
test_audit_to_nulld(void **state)
{
	struct fx *f = *state;
	fake_nulld(f);
	int conn = -1;
	char *raw;
	expect(f, &ROOT, "vault.set", "{\"name\":\"K\",\"value\":\"" VALUE "\"}", 0);
	json_t *p = next_record(f, &conn, &raw);
	assert_record(p, "secret.set", "K", "allowed", "created by uid 0 pid 4242");
	assert_null(strstr(raw, VALUE));
	json_decref(p);
	expect(f, &ROOT, "vault.bind", "{\"name\":\"K\",\"hosts\":[\"api.example.com\"]}", 0);
	json_decref(next_record(f, &conn, &raw));

	char *v = get_value(f, "{\"name\":\"K\",\"host\":\"API.example.com\",\"agent\":\"bot-1\"}");
	assert_non_null(v);
	free(v);
	p = next_record(f, &conn, &raw);
	assert_record(p, "secret.read", "K", "allowed", "for api.example.com by bot-1");
	json_t *d = json_object_get(p, "detail");
	assert_string_equal(json_string_value(json_object_get(d, "host")), "api.example.com");
	assert_string_equal(json_string_value(json_object_get(d, "agent")), "bot-1");
	assert_string_equal(json_string_value(json_object_get(d, "peer")), "uid 0 pid 4242");
	assert_null(strstr(raw, VALUE));
	json_decref(p);

	expect(f, &ROOT, "vault.get", "{\"name\":\"K\",\"host\":\"evil.org\",\"agent\":\"bot-1\"}",
	       WD_ERR_DENIED);
	p = next_record(f, &conn, &raw);
	assert_record(p, "secret.read", "K", "denied", "K is not bound to evil.org");
	json_decref(p);
	expect(f, &USER, "vault.get", "{\"name\":\"K\",\"host\":\"api.example.com\"}",
	       WD_ERR_DENIED);
	p = next_record(f, &conn, &raw);
	assert_record(p, "secret.read", "K", "denied", "uid 1000 pid 4343 is not root");
	json_decref(p);
	expect(f, &USER, "vault.delete", "{\"name\":\"K\"}", WD_ERR_DENIED);
	p = next_record(f, &conn, &raw);
	assert_record(p, "secret.delete", "K", "denied", "is not root");
	json_decref(p);
	assert_int_equal(f->w.audit_sent, 6);
	close(conn);
}

/* Under nulld, a read that cannot be audited does not happen. */
static void
test_audit_fail_closed(void **state)
{
	struct fx *f = *state;
	expect(f, &ROOT, "vault.set", "{\"name\":\"K\",\"value\":\"" VALUE "\"}", 0);
	expect(f, &ROOT, "vault.bind", "{\"name\":\"K\",\"hosts\":[\"api.example.com\"]}", 0);
	f->w.nulld_socket = "/nonexistent/nulld.sock";
	char *raw = NULL;
	json_t *m = rpc_raw(f, &ROOT, "vault.get", "{\"name\":\"K\",\"host\":\"api.example.com\"}",
			    &raw);
	assert_int_equal(code_of(m), WD_ERR_FAILED);
	assert_non_null(strstr(message_of(m), "could not be audited"));
	assert_null(strstr(raw, VALUE));
	json_decref(m);
	free(raw);
	f->w.nulld_socket = NULL;
}

int
main(void)
{
	if (wd_kdf_have_argon2())
		wd_kdf_default = (struct wd_kdf){ .id = WD_KDF_ARGON2ID, .t = 1, .m = 64, .p = 1 };
	else
		wd_kdf_default = (struct wd_kdf){ .id = WD_KDF_PBKDF2_SHA256, .t = 1000 };
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_root_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_non_root_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_params, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_to_nulld, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_fail_closed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
