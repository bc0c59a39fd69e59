/*
 * test_ipc.c: lib/ipc.c over real AF_UNIX sockets, no mocks.
 *
 * Sections:
 *   fixture     a server with test methods, run by nb_ipc_server_dispatch() in its own thread
 *   raw         a raw socket client, for bytes the library client would never send
 *   wire        round trip, params, every JSON-RPC error code, notifications, size limits
 *   abuse       slow, silent and non-reading clients; max_clients and thousands of idle
 *               connections; peers refused
 *   socket      file and directory modes, stale and live sockets, SO_PEERCRED
 *   streams     deferred replies, notifications to a client, cancel when the client goes
 *   load        1000 sequential calls, 50 concurrent clients
 *   feed        framing and dispatch without a socket (the fuzzer's path)
 *
 * Handlers run in the server thread only; the main thread asks the server for its counters
 * through the "stats" method. Worker threads never assert (cmocka is not thread-safe): they
 * count failures, which the main thread then checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h> /* cmocka.h needs these first */
#include <cmocka.h>

#include "cleanup.h"
#include "ipc.h"
#include "json.h"

#define NOBODY 65534

static char tmpdir[] = "/tmp/nullbox-ipc-test.XXXXXX";

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- fixture: methods (server thread only) ---- */

#define MAX_FOLLOWERS 64
static struct nb_ipc_call *followers[MAX_FOLLOWERS];
static size_t nfollowers;
static atomic_int cancelled; /* follows whose client went away */
static int notes;	     /* "note" notifications received */
static struct nb_ipc_call *hung[MAX_FOLLOWERS];
static size_t nhung;

static int
m_echo(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	*result = params ? json_incref(params) : NULL;
	return NB_IPC_OK;
}

static int
m_add(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	static const char *const names[] = { "a", "b" };
	int64_t a, b;
	if (nb_ipc_params_check(params, names, 2, err) < 0 ||
	    nb_ipc_param_int(params, "a", 0, true, &a, err) < 0 ||
	    nb_ipc_param_int(params, "b", 1, true, &b, err) < 0)
		return NB_IPC_ERROR;
	*result = json_integer(a + b);
	return NB_IPC_OK;
}

static int
m_whoami(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	const struct nb_ipc_peer *p = nb_ipc_call_peer(call);
	*result = json_pack("{s:i,s:i,s:i,s:s,s:b}", "pid", (int)p->pid, "uid", (int)p->uid, "gid",
			    (int)p->gid, "method", nb_ipc_call_method(call), "tagged",
			    nb_ipc_call_tag(call) == (void *)tmpdir);
	return NB_IPC_OK;
}

static int
m_big(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	int64_t n;
	if (nb_ipc_param_int(params, "n", 0, true, &n, err) < 0)
		return NB_IPC_ERROR;
	if (n < 0 || n > 1 << 20)
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS, "n out of range");
	char *s = malloc((size_t)n + 1);
	memset(s, 'x', (size_t)n);
	s[n] = '\0';
	*result = json_string(s);
	free(s);
	return NB_IPC_OK;
}

static int
m_fail(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	int64_t code = 0;
	const char *msg = "";
	if (nb_ipc_param_int(params, "code", NB_IPC_NAMED_ONLY, false, &code, err) < 0 ||
	    nb_ipc_param_string(params, "message", NB_IPC_NAMED_ONLY, false, &msg, err) < 0)
		return NB_IPC_ERROR;
	*result = json_string("a result that must not be sent");
	if (code)
		nb_ipc_error_set(err, (int)code, "%s", msg);
	err->data = json_pack("{s:s}", "why", "asked to");
	return NB_IPC_ERROR;
}

static int
m_stats(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	struct nb_ipc_stats st;
	nb_ipc_server_stats(nb_ipc_call_data(call), &st);
	*result = json_pack("{s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:i,s:i}", "clients",
			    (int)st.clients, "accepted", (json_int_t)st.accepted, "refused",
			    (json_int_t)st.refused, "evicted", (json_int_t)st.evicted, "oversize",
			    (json_int_t)st.oversize, "timed_out", (json_int_t)st.timed_out,
			    "overflowed", (json_int_t)st.overflowed, "messages",
			    (json_int_t)st.messages, "followers", (int)nfollowers, "cancelled",
			    atomic_load(&cancelled), "notes", notes);
	return NB_IPC_OK;
}

static void
follower_cancel(struct nb_ipc_call *call, void *data)
{
	for (size_t i = 0; i < nfollowers; i++) {
		if (followers[i] == call) {
			followers[i] = followers[--nfollowers];
			break;
		}
	}
	atomic_fetch_add(&cancelled, 1);
	/* The owner still ends the call; the client is gone, so this only frees it. */
	int r = nb_ipc_call_reply(call, NULL);
	if (r != -EPIPE)
		abort();
}

static int
m_follow(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	if (nfollowers == MAX_FOLLOWERS)
		return nb_ipc_error_set(err, -32050, "too many followers");
	followers[nfollowers++] = call;
	nb_ipc_call_on_cancel(call, follower_cancel, NULL);
	return NB_IPC_DEFER;
}

static int
m_emit(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	const char *line;
	if (nb_ipc_param_string(params, "line", 0, true, &line, err) < 0)
		return NB_IPC_ERROR;
	int sent = 0;
	for (size_t i = 0; i < nfollowers; i++)
		if (nb_ipc_call_notify(followers[i], "log", json_pack("{s:s}", "line", line)) == 0)
			sent++;
	*result = json_integer(sent);
	return NB_IPC_OK;
}

static int
m_end(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	int ended = 0;
	while (nfollowers > 0) {
		struct nb_ipc_call *f = followers[--nfollowers];
		if (nb_ipc_call_reply(f, json_pack("{s:b}", "ended", 1)) == 0)
			ended++;
	}
	*result = json_integer(ended);
	return NB_IPC_OK;
}

/* Sends n notifications, ends the call inside the handler, then returns NB_IPC_DEFER. */
static int
m_stream(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	int64_t n;
	if (nb_ipc_param_int(params, "n", 0, true, &n, err) < 0)
		return NB_IPC_ERROR;
	for (int64_t i = 0; i < n; i++)
		nb_ipc_call_notify(call, "tick", json_pack("{s:I}", "i", (json_int_t)i));
	nb_ipc_call_reply(call, json_string("done"));
	return NB_IPC_DEFER;
}

static void
hung_cancel(struct nb_ipc_call *call, void *data)
{
	for (size_t i = 0; i < nhung; i++) {
		if (hung[i] == call) {
			hung[i] = hung[--nhung];
			break;
		}
	}
	nb_ipc_call_reply_error(call, -32051, NULL, "gone");
}

static int
m_hang(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	if (nhung == MAX_FOLLOWERS)
		return nb_ipc_error_set(err, -32050, "too many");
	hung[nhung++] = call;
	nb_ipc_call_on_cancel(call, hung_cancel, NULL);
	return NB_IPC_DEFER;
}

static int
m_note(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	if (nb_ipc_call_is_notification(call))
		notes++;
	*result = json_string("ignored for a notification");
	return NB_IPC_OK;
}

/* ---- fixture: the server thread ---- */

struct srv {
	struct nb_ipc_server *s;
	pthread_t thread;
	atomic_bool stop;
	char path[320];
};

static void *
srv_loop(void *arg)
{
	struct srv *v = arg;
	while (!atomic_load(&v->stop))
		nb_ipc_server_dispatch(v->s, 20);
	return NULL;
}

static void
add_methods(struct nb_ipc_server *s)
{
	static const struct {
		const char *name;
		nb_ipc_handler_fn fn;
	} table[] = {
		{ "echo", m_echo },	{ "add", m_add },   { "whoami", m_whoami },
		{ "big", m_big },	{ "fail", m_fail }, { "stats", m_stats },
		{ "follow", m_follow }, { "emit", m_emit }, { "end", m_end },
		{ "stream", m_stream }, { "hang", m_hang }, { "note", m_note },
	};
	struct nb_err e = { 0 };
	for (size_t i = 0; i < NB_ARRAY_SIZE(table); i++)
		assert_int_equal(nb_ipc_server_add_method(s, table[i].name, table[i].fn, s, &e), 0);
	assert_int_equal(nb_ipc_server_add_method(s, "echo", m_echo, NULL, &e), -EEXIST);
}

/* Makes a server on @path (default: a fresh name in tmpdir), not yet running. */
static struct srv *
srv_new(const struct nb_ipc_server_opts *opts, const char *path)
{
	static int n;
	struct srv *v = calloc(1, sizeof(*v));
	assert_non_null(v);
	if (path)
		snprintf(v->path, sizeof(v->path), "%s", path);
	else
		snprintf(v->path, sizeof(v->path), "%s/run%d/test.sock", tmpdir, n++);
	struct nb_err e = { 0 };
	v->s = nb_ipc_server_new(opts, &e);
	assert_non_null(v->s);
	add_methods(v->s);
	int r = nb_ipc_server_listen(v->s, v->path, 0600, (gid_t)-1, tmpdir, &e);
	if (r < 0)
		fail_msg("listen %s: %s", v->path, e.msg);
	nfollowers = nhung = 0;
	notes = 0;
	atomic_store(&cancelled, 0);
	return v;
}

static void
srv_run(struct srv *v)
{
	assert_int_equal(pthread_create(&v->thread, NULL, srv_loop, v), 0);
}

static struct srv *
srv_start(const struct nb_ipc_server_opts *opts)
{
	struct srv *v = srv_new(opts, NULL);
	srv_run(v);
	return v;
}

static void
srv_stop(struct srv *v)
{
	atomic_store(&v->stop, true);
	pthread_join(v->thread, NULL);
	nb_ipc_server_free(v->s);
	/* The socket file went with the server. */
	struct stat st;
	assert_int_equal(lstat(v->path, &st), -1);
	free(v);
}

static struct nb_ipc_client *
connect_ok(const char *path)
{
	struct nb_err e = { 0 };
	struct nb_ipc_client *c = nb_ipc_connect(path, 2000, &e);
	if (!c)
		fail_msg("connect %s: %s", path, e.msg);
	return c;
}

/* Calls "stats" on a fresh connection and returns counter @name. */
static int64_t
stat_of(struct srv *v, const char *name)
{
	struct nb_ipc_client *c = connect_ok(v->path);
	_cleanup_json_ json_t *res = NULL;
	struct nb_err e = { 0 };
	if (nb_ipc_call(c, "stats", NULL, 2000, &res, &e) < 0)
		fail_msg("stats: %s", e.msg);
	nb_ipc_client_free(c);
	json_t *v2 = json_object_get(res, name);
	assert_true(json_is_integer(v2));
	return json_integer_value(v2);
}

/* Waits up to 5 s for counter @name to reach @want; returns its last value. */
static int64_t
wait_stat(struct srv *v, const char *name, int64_t want)
{
	int64_t got = -1;
	for (int i = 0; i < 250; i++) {
		got = stat_of(v, name);
		if (got >= want)
			break;
		sleep_ms(20);
	}
	return got;
}

static void
call_echo_ok(struct nb_ipc_client *c, int64_t i)
{
	_cleanup_json_ json_t *p = json_pack("{s:I}", "i", (json_int_t)i);
	_cleanup_json_ json_t *res = NULL;
	struct nb_err e = { 0 };
	if (nb_ipc_call(c, "echo", p, 2000, &res, &e) < 0)
		fail_msg("echo %lld: %s", (long long)i, e.msg);
	assert_true(json_equal(res, p));
}

/* ---- raw ---- */

static void
set_sun_path(struct sockaddr_un *sa, const char *path)
{
	size_t n = strlen(path);
	if (n >= sizeof(sa->sun_path))
		fail_msg("socket path too long: %s", path);
	memcpy(sa->sun_path, path, n + 1);
}

static int
raw_connect(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	set_sun_path(&sa, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail_msg("connect %s: %s", path, strerror(errno));
	return fd;
}

static void
raw_send(int fd, const char *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail_msg("send: %s", strerror(errno));
		off += (size_t)n;
	}
}

/* Reads one line (without '\n') into @buf. Returns its length, -ETIMEDOUT, or -ECONNRESET for
 * EOF or a reset. */
static int
raw_line(int fd, char *buf, size_t size, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	size_t n = 0;
	for (;;) {
		int left = (int)(deadline - now_ms());
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, left) == 0)
			return -ETIMEDOUT;
		char ch;
		ssize_t r = recv(fd, &ch, 1, 0);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return -ECONNRESET;
		if (r < 0)
			continue;
		if (ch == '\n') {
			buf[n] = '\0';
			return (int)n;
		}
		if (n + 1 < size)
			buf[n++] = ch;
	}
}

/* Reads a reply line on @fd and checks it is an error with @code and id @id_text ("null", "1",
 * "\"abc\"") and a message starting with @prefix (NULL: any). */
static void
raw_expect_error(int fd, int code, const char *id_text, const char *prefix)
{
	char line[4096];
	int n = raw_line(fd, line, sizeof(line), 2000);
	if (n < 0)
		fail_msg("no reply (%s), expected error %d", strerror(-n), code);
	json_error_t jerr;
	_cleanup_json_ json_t *m = json_loads(line, 0, &jerr);
	assert_non_null(m);
	assert_string_equal(json_string_value(json_object_get(m, "jsonrpc")), "2.0");
	json_t *err = json_object_get(m, "error");
	if (!err)
		fail_msg("expected error %d, got: %s", code, line);
	assert_null(json_object_get(m, "result"));
	if (json_integer_value(json_object_get(err, "code")) != code)
		fail_msg("expected error %d, got: %s", code, line);
	_cleanup_free_ char *id = json_dumps(json_object_get(m, "id"), JSON_ENCODE_ANY);
	if (strcmp(id, id_text) != 0)
		fail_msg("expected id %s, got: %s", id_text, line);
	const char *msg = json_string_value(json_object_get(err, "message"));
	assert_non_null(msg);
	if (prefix && strncmp(msg, prefix, strlen(prefix)) != 0)
		fail_msg("expected message \"%s...\", got: %s", prefix, line);
}

static void
raw_expect_result(int fd, const char *id_text)
{
	char line[4096];
	int n = raw_line(fd, line, sizeof(line), 2000);
	if (n < 0)
		fail_msg("no reply (%s), expected a result", strerror(-n));
	_cleanup_json_ json_t *m = json_loads(line, 0, NULL);
	assert_non_null(m);
	if (!json_object_get(m, "result"))
		fail_msg("expected a result, got: %s", line);
	_cleanup_free_ char *id = json_dumps(json_object_get(m, "id"), JSON_ENCODE_ANY);
	assert_string_equal(id, id_text);
}

/* The peer has closed: what is left to read ends in EOF (or a reset), soon. */
static void
raw_expect_closed(int fd, int timeout_ms)
{
	char buf[4096];
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		int left = (int)(deadline - now_ms());
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, left) == 0)
			fail_msg("the server did not close the connection within %d ms",
				 timeout_ms);
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return;
	}
}

/* ---- wire ---- */

static void
test_round_trip(void **state)
{
	struct srv *v = srv_start(NULL);
	struct nb_ipc_client *c = connect_ok(v->path);
	_cleanup_json_ json_t *p = json_pack("{s:s,s:[i,b,n],s:{s:s}}", "name", "caf\xc3\xa9\nbar",
					     "list", 1, 1, "obj", "k", "v");
	_cleanup_json_ json_t *res = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(nb_ipc_call(c, "echo", p, 2000, &res, &e), 0);
	assert_true(json_equal(res, p));
	/* No params: a null result. */
	_cleanup_json_ json_t *res2 = NULL;
	assert_int_equal(nb_ipc_call(c, "echo", NULL, 2000, &res2, &e), 0);
	assert_true(json_is_null(res2));
	/* Positional params round-trip too. */
	_cleanup_json_ json_t *arr = json_pack("[s,i]", "a", 2);
	_cleanup_json_ json_t *res3 = NULL;
	assert_int_equal(nb_ipc_call(c, "echo", arr, 2000, &res3, &e), 0);
	assert_true(json_equal(res3, arr));
	/* Params that are not a structure never leave the client. */
	_cleanup_json_ json_t *bad = json_integer(1);
	assert_int_equal(nb_ipc_call(c, "echo", bad, 2000, NULL, &e), -EINVAL);
	assert_int_equal(nb_ipc_call(c, "echo", NULL, 2000, NULL, &e), 0);
	nb_ipc_client_free(c);
	srv_stop(v);
}

static int
call_add(struct nb_ipc_client *c, json_t *params, int64_t *sum, struct nb_err *e)
{
	_cleanup_json_ json_t *res = NULL;
	int r = nb_ipc_call(c, "add", params, 2000, &res, e);
	if (r == 0)
		*sum = json_integer_value(res);
	return r;
}

static void
test_params(void **state)
{
	struct srv *v = srv_start(NULL);
	struct nb_ipc_client *c = connect_ok(v->path);
	struct nb_err e = { 0 };
	int64_t sum = 0;
	_cleanup_json_ json_t *pos = json_pack("[i,i]", 2, 3);
	assert_int_equal(call_add(c, pos, &sum, &e), 0);
	assert_int_equal(sum, 5);
	_cleanup_json_ json_t *named = json_pack("{s:i,s:i}", "b", 30, "a", 12);
	assert_int_equal(call_add(c, named, &sum, &e), 0);
	assert_int_equal(sum, 42);

	static const struct {
		const char *params;
		const char *message;
	} bad[] = {
		{ "[2]", "invalid params: \"b\" is missing" },
		{ "{\"a\":1}", "invalid params: \"b\" is missing" },
		{ "[\"2\",3]", "invalid params: \"a\" must be an integer, not a string" },
		{ "{\"a\":1,\"b\":2.5}",
		  "invalid params: \"b\" must be an integer, not a real number" },
		{ "{\"a\":1,\"b\":null}", "invalid params: \"b\" must be an integer, not null" },
		{ "{\"a\":1,\"b\":2,\"c\":3}", "invalid params: unknown parameter \"c\"" },
		{ "[1,2,3]", "invalid params: at most 2 arguments, got 3" },
		{ "{}", "invalid params: \"a\" is missing" },
	};
	for (size_t i = 0; i < NB_ARRAY_SIZE(bad); i++) {
		_cleanup_json_ json_t *p = json_loads(bad[i].params, 0, NULL);
		assert_non_null(p);
		assert_int_equal(call_add(c, p, &sum, &e), -EINVAL);
		assert_int_equal(e.code, EINVAL);
		assert_string_equal(e.msg, bad[i].message);
		assert_int_equal(nb_ipc_client_last_error(c)->code, NB_IPC_INVALID_PARAMS);
		assert_string_equal(nb_ipc_client_last_error(c)->message, bad[i].message);
	}
	/* A named-only parameter refuses positional params. */
	_cleanup_json_ json_t *fp = json_pack("[i]", 1);
	assert_int_equal(nb_ipc_call(c, "fail", fp, 2000, NULL, &e), -EINVAL);
	assert_string_equal(
		e.msg, "invalid params: \"code\" must be given by name (params must be an object)");
	nb_ipc_client_free(c);
	srv_stop(v);
}

static void
test_error_codes(void **state)
{
	struct srv *v = srv_start(NULL);
	static const struct {
		const char *line;
		int code;
		const char *id;
		const char *prefix;
	} cases[] = {
		{ "{", NB_IPC_PARSE_ERROR, "null", "parse error" },
		{ "not json", NB_IPC_PARSE_ERROR, "null", "parse error" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"} x", NB_IPC_PARSE_ERROR,
		  "null", NULL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":4,\"id\":5,\"method\":\"echo\"}", NB_IPC_PARSE_ERROR,
		  "null", "parse error" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}", NB_IPC_PARSE_ERROR,
		  "null", NULL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\\u0000b\"}", NB_IPC_PARSE_ERROR,
		  "null", NULL },
		{ "[]", NB_IPC_INVALID_REQUEST, "null", "invalid request: batches" },
		{ "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}]", NB_IPC_INVALID_REQUEST,
		  "null", "invalid request: batches" },
		{ "42", NB_IPC_INVALID_REQUEST, "null", "invalid request: a request must be" },
		{ "\"x\"", NB_IPC_INVALID_REQUEST, "null", NULL },
		{ "null", NB_IPC_INVALID_REQUEST, "null", NULL },
		{ "{\"id\":1,\"method\":\"echo\"}", NB_IPC_INVALID_REQUEST, "1",
		  "invalid request: \"jsonrpc\" must be \"2.0\"" },
		{ "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"echo\"}", NB_IPC_INVALID_REQUEST, "1",
		  NULL },
		{ "{\"jsonrpc\":2.0,\"id\":1,\"method\":\"echo\"}", NB_IPC_INVALID_REQUEST, "1",
		  NULL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"echo\"}", NB_IPC_INVALID_REQUEST,
		  "null", "invalid request: \"id\" must be" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"echo\"}", NB_IPC_INVALID_REQUEST,
		  "null", NULL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"echo\"}", NB_IPC_INVALID_REQUEST,
		  "null", NULL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"echo\"}", NB_IPC_INVALID_REQUEST,
		  "null", NULL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"echo\"}", NB_IPC_INVALID_REQUEST,
		  "null", NULL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":5}", NB_IPC_INVALID_REQUEST,
		  "\"abc\"", "invalid request: \"method\" must be a string" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":2}", NB_IPC_INVALID_REQUEST, "2", NULL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":\"x\"}",
		  NB_IPC_INVALID_REQUEST, "1", "invalid request: \"params\" must be" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":5}",
		  NB_IPC_INVALID_REQUEST, "1", NULL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":null}",
		  NB_IPC_INVALID_REQUEST, "1", NULL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"echo\",\"extra\":1}",
		  NB_IPC_INVALID_REQUEST, "3", "invalid request: unknown member \"extra\"" },
		/* An invalid request without an id still gets an answer: it cannot be told from a
		 * request whose id was lost. */
		{ "{\"method\":\"echo\"}", NB_IPC_INVALID_REQUEST, "null", NULL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"nosuch\"}", NB_IPC_METHOD_NOT_FOUND,
		  "6", "unknown method \"nosuch\"" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"nosuch\\u001b[31m\"}",
		  NB_IPC_METHOD_NOT_FOUND, "\"s\"", "unknown method \"nosuch?[31m\"" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"add\",\"params\":[\"x\",1]}",
		  NB_IPC_INVALID_PARAMS, "7", "invalid params: \"a\" must be an integer" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"fail\"}", NB_IPC_INTERNAL_ERROR, "8",
		  "Internal error" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"fail\",\"params\":{\"code\":-32099,"
		  "\"message\":\"no \\u0007bell\"}}",
		  -32099, "9", "no ?bell" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"big\",\"params\":[70000]}",
		  NB_IPC_INTERNAL_ERROR, "10", "reply too large" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":-9223372036854775807,\"method\":\"nosuch\"}",
		  NB_IPC_METHOD_NOT_FOUND, "-9223372036854775807", NULL },
	};
	int fd = raw_connect(v->path);
	for (size_t i = 0; i < NB_ARRAY_SIZE(cases); i++) {
		raw_send(fd, cases[i].line, strlen(cases[i].line));
		raw_send(fd, "\n", 1);
		raw_expect_error(fd, cases[i].code, cases[i].id, cases[i].prefix);
	}
	/* Error data is passed on; the result a failing handler also set is not. */
	const char *req = "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"fail\",\"params\":{\"code\":"
			  "-32010,\"message\":\"m\"}}\n";
	raw_send(fd, req, strlen(req));
	char line[4096];
	assert_true(raw_line(fd, line, sizeof(line), 2000) > 0);
	assert_string_equal(line, "{\"jsonrpc\":\"2.0\",\"id\":11,\"error\":{\"code\":-32010,"
				  "\"message\":\"m\",\"data\":{\"why\":\"asked to\"}}}");
	/* After all that, the same connection still works; blank lines are skipped. */
	const char *ok = "\n \r\n\t\n{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"echo\"}\r\n";
	raw_send(fd, ok, strlen(ok));
	raw_expect_result(fd, "12");
	close(fd);

	/* The library client maps codes to errnos and keeps code, message and data. */
	struct nb_ipc_client *c = connect_ok(v->path);
	struct nb_err e = { 0 };
	assert_int_equal(nb_ipc_call(c, "nosuch", NULL, 2000, NULL, &e), -ENOSYS);
	assert_string_equal(e.msg, "unknown method \"nosuch\"");
	assert_int_equal(nb_ipc_client_last_error(c)->code, NB_IPC_METHOD_NOT_FOUND);
	_cleanup_json_ json_t *fp = json_pack("{s:i,s:s}", "code", 1, "message", "application");
	assert_int_equal(nb_ipc_call(c, "fail", fp, 2000, NULL, &e), -EREMOTEIO);
	assert_string_equal(e.msg, "application");
	assert_int_equal(nb_ipc_client_last_error(c)->code, 1);
	assert_string_equal(
		json_string_value(json_object_get(nb_ipc_client_last_error(c)->data, "why")),
		"asked to");
	_cleanup_json_ json_t *bp = json_pack("[i]", 70000);
	assert_int_equal(nb_ipc_call(c, "big", bp, 2000, NULL, &e), -EIO);
	/* Too large to send: refused by the client, connection intact. */
	char *huge = malloc(NB_IPC_MAX_MSG + 1);
	memset(huge, 'y', NB_IPC_MAX_MSG);
	huge[NB_IPC_MAX_MSG] = '\0';
	_cleanup_json_ json_t *hp = json_pack("[s]", huge);
	free(huge);
	assert_int_equal(nb_ipc_call(c, "echo", hp, 2000, NULL, &e), -EMSGSIZE);
	call_echo_ok(c, 1);
	nb_ipc_client_free(c);
	srv_stop(v);
}

static void
test_notifications(void **state)
{
	struct srv *v = srv_start(NULL);
	int fd = raw_connect(v->path);
	/* Notifications, known or not, are never answered; the first reply is the request's. */
	const char *lines = "{\"jsonrpc\":\"2.0\",\"method\":\"note\"}\n"
			    "{\"jsonrpc\":\"2.0\",\"method\":\"note\",\"params\":[1]}\n"
			    "{\"jsonrpc\":\"2.0\",\"method\":\"nosuch\"}\n"
			    "{\"jsonrpc\":\"2.0\",\"method\":\"add\",\"params\":[\"x\"]}\n"
			    "{\"jsonrpc\":\"2.0\",\"id\":\"r\",\"method\":\"echo\"}\n";
	raw_send(fd, lines, strlen(lines));
	raw_expect_result(fd, "\"r\"");
	close(fd);

	struct nb_ipc_client *c = connect_ok(v->path);
	struct nb_err e = { 0 };
	assert_int_equal(nb_ipc_notify(c, "note", NULL, 2000, &e), 0);
	_cleanup_json_ json_t *res = NULL;
	assert_int_equal(nb_ipc_call(c, "stats", NULL, 2000, &res, &e), 0);
	assert_int_equal(json_integer_value(json_object_get(res, "notes")), 3);
	nb_ipc_client_free(c);
	srv_stop(v);
}

/* A line of exactly NB_IPC_MAX_MSG bytes with its newline passes; one byte more does not. */
static void
test_size_limit(void **state)
{
	struct srv *v = srv_start(NULL);
	const char *pre = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"";
	const char *post = "\"]}";
	size_t fill = NB_IPC_MAX_MSG - 1 - strlen(pre) - strlen(post);
	char *buf = malloc(NB_IPC_MAX_MSG + 2);
	size_t n = (size_t)sprintf(buf, "%s", pre);
	memset(buf + n, 'z', fill);
	n += fill;
	n += (size_t)sprintf(buf + n, "%s\n", post);
	assert_int_equal(n, NB_IPC_MAX_MSG);

	int fd = raw_connect(v->path);
	raw_send(fd, buf, n);
	char *line = malloc(NB_IPC_MAX_MSG);
	int len = raw_line(fd, line, NB_IPC_MAX_MSG, 2000);
	assert_true(len > 0);
	_cleanup_json_ json_t *m = json_loads(line, 0, NULL);
	assert_int_equal(json_string_length(json_array_get(json_object_get(m, "result"), 0)), fill);
	close(fd);

	/* One more byte: refused, and the connection closed. */
	memmove(buf + strlen(pre) + 1, buf + strlen(pre), n - strlen(pre));
	n++;
	fd = raw_connect(v->path);
	raw_send(fd, buf, n);
	raw_expect_error(fd, NB_IPC_INVALID_REQUEST, "null", "message too large");
	raw_expect_closed(fd, 2000);
	close(fd);
	free(line);
	free(buf);
	srv_stop(v);
}

static void
test_oversize_keeps_serving(void **state)
{
	struct srv *v = srv_start(NULL);
	struct nb_ipc_client *other = connect_ok(v->path);
	call_echo_ok(other, 1);

	int fd = raw_connect(v->path);
	size_t n = 70000;
	char *junk = malloc(n);
	memset(junk, 'x', n);
	raw_send(fd, junk, n);
	free(junk);
	raw_expect_error(fd, NB_IPC_INVALID_REQUEST, "null", "message too large");
	raw_expect_closed(fd, 2000);
	close(fd);

	/* The other client, connected throughout, and new ones are served. */
	call_echo_ok(other, 2);
	assert_int_equal(stat_of(v, "oversize"), 1);
	nb_ipc_client_free(other);
	srv_stop(v);
}

/* ---- abuse ---- */

struct slow_arg {
	const char *path;
	atomic_int failures;
	atomic_bool done;
};

/* Sends a request one byte per 100 ms, then expects its reply. */
static void *
slow_client(void *p)
{
	struct slow_arg *a = p;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", a->path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		atomic_fetch_add(&a->failures, 1);
		atomic_store(&a->done, true);
		return NULL;
	}
	const char *req = "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"echo\"}\n";
	for (const char *c = req; *c; c++) {
		if (send(fd, c, 1, MSG_NOSIGNAL) != 1)
			atomic_fetch_add(&a->failures, 1);
		sleep_ms(100);
	}
	char line[256];
	int n = raw_line(fd, line, sizeof(line), 2000);
	if (n < 0 || strstr(line, "\"id\":7") == NULL || strstr(line, "result") == NULL)
		atomic_fetch_add(&a->failures, 1);
	close(fd);
	atomic_store(&a->done, true);
	return NULL;
}

static void
test_slow_client(void **state)
{
	struct srv *v = srv_start(NULL);
	struct slow_arg a = { .path = v->path };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, slow_client, &a), 0);
	sleep_ms(300);
	int calls = 0;
	while (!atomic_load(&a.done)) {
		int64_t t0 = now_ms();
		struct nb_ipc_client *c = connect_ok(v->path);
		call_echo_ok(c, calls);
		nb_ipc_client_free(c);
		int64_t took = now_ms() - t0;
		if (took >= 1000)
			fail_msg("a call took %lld ms while a slow client trickled",
				 (long long)took);
		calls++;
		sleep_ms(200);
	}
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&a.failures), 0);
	assert_true(calls >= 10);
	srv_stop(v);
}

static void
test_stall_timeout(void **state)
{
	struct nb_ipc_server_opts o = { .stall_timeout_ms = 300 };
	struct srv *v = srv_start(&o);
	struct nb_ipc_client *other = connect_ok(v->path);
	int fd = raw_connect(v->path);
	int64_t t0 = now_ms();
	raw_send(fd, "{\"jsonrpc\":", 11);
	/* It keeps trickling, which must not reset the clock of its half message. */
	sleep_ms(150);
	raw_send(fd, "\"2.0\"", 5);
	raw_expect_error(fd, NB_IPC_TIMED_OUT, "null", "timed out");
	raw_expect_closed(fd, 2000);
	int64_t took = now_ms() - t0;
	assert_true(took >= 290);
	assert_true(took < 2000);
	close(fd);
	call_echo_ok(other, 1); /* an idle connection with nothing half-sent is not touched */
	assert_int_equal(stat_of(v, "timed_out"), 1);
	nb_ipc_client_free(other);
	srv_stop(v);
}

static void
test_idle_timeout(void **state)
{
	struct nb_ipc_server_opts o = { .idle_timeout_ms = 300 };
	struct srv *v = srv_start(&o);
	struct nb_ipc_client *idle = connect_ok(v->path);
	call_echo_ok(idle, 1);
	/* A client with a stream open is not idle. */
	struct nb_ipc_client *streaming = connect_ok(v->path);
	struct nb_err e = { 0 };
	int64_t id;
	assert_int_equal(nb_ipc_send_request(streaming, "follow", NULL, 2000, &id, &e), 0);
	sleep_ms(800);
	_cleanup_json_ json_t *msg = NULL;
	assert_int_equal(nb_ipc_read_message(idle, 2000, &msg, &e), -ECONNRESET);
	struct nb_ipc_client *c = connect_ok(v->path);
	_cleanup_json_ json_t *res = NULL;
	assert_int_equal(nb_ipc_call(c, "end", NULL, 2000, &res, &e), 0);
	assert_int_equal(json_integer_value(res), 1);
	_cleanup_json_ json_t *fin = NULL;
	assert_int_equal(nb_ipc_read_message(streaming, 2000, &fin, &e), 0);
	assert_int_equal(json_integer_value(json_object_get(fin, "id")), id);
	nb_ipc_client_free(c);
	nb_ipc_client_free(idle);
	nb_ipc_client_free(streaming);
	srv_stop(v);
}

static void
test_non_reader_dropped(void **state)
{
	struct srv *v = srv_start(NULL);
	struct nb_ipc_client *other = connect_ok(v->path);
	int fd = raw_connect(v->path);
	/* 60 replies of 60 KB: far over the kernel's buffers plus the 1 MiB queue. */
	for (int i = 0; i < 60; i++) {
		char req[128];
		int n = snprintf(
			req, sizeof(req),
			"{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"big\",\"params\":[60000]}\n",
			i);
		if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
			break; /* already dropped */
	}
	assert_int_equal(wait_stat(v, "overflowed", 1), 1);
	call_echo_ok(other, 1);
	/* What the kernel already held is readable, then the end. */
	raw_expect_closed(fd, 5000);
	close(fd);
	nb_ipc_client_free(other);
	srv_stop(v);
}

static void
test_max_clients(void **state)
{
	struct nb_ipc_server_opts o = { .max_clients = 4 };
	struct srv *v = srv_start(&o);
	struct nb_ipc_client *c[6] = { 0 };
	for (int i = 0; i < 4; i++) {
		c[i] = connect_ok(v->path);
		call_echo_ok(c[i], i);
	}
	/* Full: the least recently active idle connection (c[0]) makes room. */
	c[4] = connect_ok(v->path);
	call_echo_ok(c[4], 4);
	struct nb_err e = { 0 };
	_cleanup_json_ json_t *m0 = NULL;
	assert_int_equal(nb_ipc_read_message(c[0], 2000, &m0, &e), -ECONNRESET);
	_cleanup_json_ json_t *res = NULL;
	assert_int_equal(nb_ipc_call(c[4], "stats", NULL, 2000, &res, &e), 0);
	assert_int_equal(json_integer_value(json_object_get(res, "evicted")), 1);
	assert_int_equal(json_integer_value(json_object_get(res, "clients")), 4);

	/* Streams are never evicted: with all four streaming, a newcomer is refused. */
	for (int i = 1; i <= 4; i++)
		assert_int_equal(nb_ipc_send_request(c[i], "follow", NULL, 2000, NULL, &e), 0);
	for (int i = 0; i < 100; i++) {
		/* wait until the server has seen all four follows */
		_cleanup_json_ json_t *r = NULL;
		assert_int_equal(nb_ipc_call(c[1], "stats", NULL, 2000, &r, &e), 0);
		if (json_integer_value(json_object_get(r, "followers")) == 4)
			break;
		sleep_ms(10);
	}
	c[5] = connect_ok(v->path);
	assert_int_equal(nb_ipc_call(c[5], "echo", NULL, 2000, NULL, &e), -EBUSY);
	assert_true(strstr(e.msg, "server busy") != NULL);
	assert_int_equal(nb_ipc_client_last_error(c[5])->code, NB_IPC_SERVER_BUSY);
	/* c[1] has its own follow pending: nb_ipc_call skips that reply and finds its own. */
	_cleanup_json_ json_t *ended = NULL;
	assert_int_equal(nb_ipc_call(c[1], "end", NULL, 2000, &ended, &e), 0);
	assert_int_equal(json_integer_value(ended), 4);
	for (int i = 0; i < 6; i++)
		nb_ipc_client_free(c[i]);
	assert_true(wait_stat(v, "refused", 1) == 1);
	srv_stop(v);
}

/* Thousands of connections that never say anything: the server keeps serving newcomers. */
static void
test_many_idle(void **state)
{
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rlim_t want = rl.rlim_max < 8192 ? rl.rlim_max : 8192;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = want;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	/* Room for the server's 256 connections and some slack; at most 3000 idle clients. */
	long n = (long)rl.rlim_cur - NB_IPC_DEFAULT_MAX_CLIENTS - 64;
	n = n > 3000 ? 3000 : n;
	if (n < 1000) {
		print_message("SKIP: RLIMIT_NOFILE %llu leaves room for only %ld idle clients\n",
			      (unsigned long long)rl.rlim_cur, n);
		skip();
	}
	struct srv *v = srv_start(NULL);
	int *fds = malloc((size_t)n * sizeof(int));
	for (long i = 0; i < n; i++)
		fds[i] = raw_connect(v->path);
	int64_t t0 = now_ms();
	struct nb_ipc_client *c = connect_ok(v->path);
	call_echo_ok(c, 1);
	int64_t took = now_ms() - t0;
	if (took >= 1000)
		fail_msg("a call took %lld ms beside %ld idle connections", (long long)took, n);
	_cleanup_json_ json_t *res = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(nb_ipc_call(c, "stats", NULL, 2000, &res, &e), 0);
	assert_true(json_integer_value(json_object_get(res, "clients")) <=
		    NB_IPC_DEFAULT_MAX_CLIENTS);
	assert_true(json_integer_value(json_object_get(res, "evicted")) >=
		    n - NB_IPC_DEFAULT_MAX_CLIENTS);
	nb_ipc_client_free(c);
	for (long i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	srv_stop(v);
}

static bool
refuse_root(const struct nb_ipc_peer *peer, void *tag, void *data)
{
	return peer->uid != 0 && peer->uid != getuid();
}

static void
test_peer_refused(void **state)
{
	struct nb_ipc_server_opts o = { .allow_peer = refuse_root };
	struct srv *v = srv_start(&o);
	struct nb_ipc_client *c = connect_ok(v->path);
	struct nb_err e = { 0 };
	assert_int_equal(nb_ipc_call(c, "echo", NULL, 2000, NULL, &e), -EACCES);
	assert_true(strstr(e.msg, "permission denied") != NULL);
	nb_ipc_client_free(c);
	srv_stop(v);
}

static void
test_client_errors(void **state)
{
	char path[256];
	struct nb_err e = { 0 };
	snprintf(path, sizeof(path), "%s/nothing-here.sock", tmpdir);
	assert_null(nb_ipc_connect(path, 500, &e));
	assert_int_equal(e.code, ENOENT);
	assert_true(strstr(e.msg, "is not running") != NULL);

	/* A socket file nobody listens on. */
	snprintf(path, sizeof(path), "%s/stale-client.sock", tmpdir);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	set_sun_path(&sa, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_null(nb_ipc_connect(path, 500, &e));
	assert_int_equal(e.code, ECONNREFUSED);
	assert_true(strstr(e.msg, "is not running") != NULL);
	unlink(path);

	/* A reply that does not come: the call times out, on time. */
	struct srv *v = srv_start(NULL);
	struct nb_ipc_client *c = connect_ok(v->path);
	int64_t t0 = now_ms();
	assert_int_equal(nb_ipc_call(c, "hang", NULL, 200, NULL, &e), -ETIMEDOUT);
	int64_t took = now_ms() - t0;
	assert_true(took >= 190 && took < 1000);
	nb_ipc_client_free(c);
	srv_stop(v);
}

/* ---- socket ---- */

static mode_t
mode_of(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		fail_msg("stat %s: %s", path, strerror(errno));
	return st.st_mode;
}

static void
test_socket_modes(void **state)
{
	mode_t old = umask(0); /* the modes must not come from the umask */
	struct srv *v = srv_new(NULL, NULL);
	char dir[320];
	snprintf(dir, sizeof(dir), "%s", v->path);
	*strrchr(dir, '/') = '\0';
	assert_int_equal(mode_of(dir), S_IFDIR | 0700);
	assert_int_equal(mode_of(v->path), S_IFSOCK | 0600);
	srv_run(v);
	srv_stop(v);

	/* A wide umask narrows nothing we set and widens nothing either. */
	umask(0077);
	struct nb_ipc_server *s = nb_ipc_server_new(NULL, NULL);
	struct nb_err e = { 0 };
	char path[400];
	snprintf(path, sizeof(path), "%s/group.sock", tmpdir);
	assert_int_equal(nb_ipc_server_listen(s, path, 0660, getgid(), NULL, &e), 0);
	assert_int_equal(mode_of(path), S_IFSOCK | 0660);
	umask(0);

	/* Modes wider than 0660 are refused outright. */
	snprintf(path, sizeof(path), "%s/wide.sock", tmpdir);
	assert_int_equal(nb_ipc_server_listen(s, path, 0666, (gid_t)-1, NULL, &e), -EINVAL);
	assert_int_equal(nb_ipc_server_listen(s, path, 0700, (gid_t)-1, NULL, &e), -EINVAL);

	/* A group- or world-writable directory is refused, and nothing is made in it. */
	snprintf(dir, sizeof(dir), "%s/gw", tmpdir);
	assert_int_equal(mkdir(dir, 0770), 0);
	snprintf(path, sizeof(path), "%s/s.sock", dir);
	assert_int_equal(nb_ipc_server_listen(s, path, 0600, (gid_t)-1, NULL, &e), -EPERM);
	assert_true(strstr(e.msg, "group- or world-writable") != NULL);
	assert_int_equal(chmod(dir, 0703), 0);
	assert_int_equal(nb_ipc_server_listen(s, path, 0600, (gid_t)-1, NULL, &e), -EPERM);
	assert_int_equal(access(path, F_OK), -1);

	/* A symlink as the directory is refused. */
	char link[256];
	snprintf(link, sizeof(link), "%s/link", tmpdir);
	snprintf(dir, sizeof(dir), "%s/real", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(symlink(dir, link), 0);
	snprintf(path, sizeof(path), "%s/s.sock", link);
	assert_int_equal(nb_ipc_server_listen(s, path, 0600, (gid_t)-1, NULL, &e), -EPERM);
	assert_true(strstr(e.msg, "symbolic link") != NULL);

	/* A directory that is not ours (root only: chown). */
	if (geteuid() == 0) {
		snprintf(dir, sizeof(dir), "%s/theirs", tmpdir);
		assert_int_equal(mkdir(dir, 0700), 0);
		assert_int_equal(chown(dir, NOBODY, NOBODY), 0);
		snprintf(path, sizeof(path), "%s/s.sock", dir);
		assert_int_equal(nb_ipc_server_listen(s, path, 0600, (gid_t)-1, NULL, &e), -EPERM);
		assert_true(strstr(e.msg, "belongs to uid 65534") != NULL);
	} else {
		print_message("SKIP (part): directory owned by another uid needs root to chown\n");
	}

	/* A file that is not a socket is never replaced. */
	snprintf(path, sizeof(path), "%s/file.sock", tmpdir);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(nb_ipc_server_listen(s, path, 0600, (gid_t)-1, NULL, &e), -EEXIST);
	assert_int_equal(mode_of(path), S_IFREG | 0600);
	unlink(path);

	/* No parent for the directory: an error, not a tree of directories. */
	snprintf(path, sizeof(path), "%s/a/b/s.sock", tmpdir);
	assert_int_equal(nb_ipc_server_listen(s, path, 0600, (gid_t)-1, NULL, &e), -ENOENT);

	nb_ipc_server_free(s);
	umask(old);
}

static void
test_stale_and_live(void **state)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/stale/nulld.sock", tmpdir);
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/stale", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	/* A socket file left by a server that died. */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	set_sun_path(&sa, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	struct nb_err e = { 0 };
	assert_null(nb_ipc_connect(path, 100, &e));
	assert_int_equal(e.code, ECONNREFUSED);

	struct srv *v = srv_new(NULL, path);
	srv_run(v);
	struct stat st2;
	assert_int_equal(lstat(path, &st2), 0);
	assert_true(S_ISSOCK(st2.st_mode));
	struct nb_ipc_client *c = connect_ok(path); /* refused before: replaced */
	call_echo_ok(c, 1);

	/* A live socket is not stolen, and stays where it is. */
	struct nb_ipc_server *s2 = nb_ipc_server_new(NULL, NULL);
	assert_int_equal(nb_ipc_server_listen(s2, path, 0600, (gid_t)-1, NULL, &e), -EADDRINUSE);
	assert_true(strstr(e.msg, "another server is listening") != NULL);
	nb_ipc_server_free(s2);
	struct stat st3;
	assert_int_equal(lstat(path, &st3), 0);
	assert_int_equal(st3.st_ino, st2.st_ino);
	call_echo_ok(c, 2);
	struct nb_ipc_client *c2 = connect_ok(path);
	call_echo_ok(c2, 3);
	nb_ipc_client_free(c2);

	/* Unlisten: no new connections, the existing one carries on. Run in the server thread's
	 * absence: stop it first, then drive dispatch here. */
	atomic_store(&v->stop, true);
	pthread_join(v->thread, NULL);
	assert_int_equal(nb_ipc_server_unlisten(v->s, path), 0);
	assert_int_equal(nb_ipc_server_unlisten(v->s, path), -ENOENT);
	assert_int_equal(lstat(path, &st3), -1);
	assert_null(nb_ipc_connect(path, 100, &e));
	assert_int_equal(e.code, ENOENT);
	atomic_store(&v->stop, false);
	srv_run(v);
	call_echo_ok(c, 4);
	nb_ipc_client_free(c);
	srv_stop(v);
}

static void
test_peercred(void **state)
{
	struct srv *v = srv_start(NULL);
	struct nb_ipc_client *c = connect_ok(v->path);
	_cleanup_json_ json_t *res = NULL;
	struct nb_err e = { 0 };
	assert_int_equal(nb_ipc_call(c, "whoami", NULL, 2000, &res, &e), 0);
	assert_int_equal(json_integer_value(json_object_get(res, "pid")), getpid());
	assert_int_equal(json_integer_value(json_object_get(res, "uid")), geteuid());
	assert_int_equal(json_integer_value(json_object_get(res, "gid")), getegid());
	assert_string_equal(json_string_value(json_object_get(res, "method")), "whoami");
	assert_true(json_is_true(json_object_get(res, "tagged")));
	nb_ipc_client_free(c);
	srv_stop(v);
}

static void
test_peercred_setuid(void **state)
{
	if (geteuid() != 0) {
		print_message("SKIP: SO_PEERCRED from a setuid(65534) child needs root\n");
		skip();
	}
	/* The nobody child must reach the socket: 0711 on the way, the socket 0660 for its group.
	 */
	assert_int_equal(chmod(tmpdir, 0711), 0);
	char dir[256], path[300];
	snprintf(dir, sizeof(dir), "%s/pub", tmpdir);
	assert_int_equal(mkdir(dir, 0711), 0);
	snprintf(path, sizeof(path), "%s/s.sock", dir);
	struct srv *v = calloc(1, sizeof(*v));
	snprintf(v->path, sizeof(v->path), "%s", path);
	struct nb_err e = { 0 };
	v->s = nb_ipc_server_new(NULL, &e);
	add_methods(v->s);
	assert_int_equal(nb_ipc_server_listen(v->s, path, 0660, NOBODY, NULL, &e), 0);
	srv_run(v);

	/* The child reports over a pipe, not its exit status: under valgrind a forked child exits
	 * with valgrind's error code for the parent's heap it inherited. */
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		char verdict = 0;
		struct nb_ipc_client *c = NULL;
		json_t *res = NULL;
		struct nb_err ce = { 0 };
		if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
			verdict = 10;
		else if (!(c = nb_ipc_connect(path, 2000, &ce)))
			verdict = 11;
		else if (nb_ipc_call(c, "whoami", NULL, 2000, &res, &ce) < 0)
			verdict = 12;
		else if (json_integer_value(json_object_get(res, "uid")) != NOBODY ||
			 json_integer_value(json_object_get(res, "gid")) != NOBODY)
			verdict = 13;
		else if (json_integer_value(json_object_get(res, "pid")) != getpid())
			verdict = 14;
		if (verdict)
			fprintf(stderr, "child: verdict %d: %s\n", verdict, ce.msg);
		json_decref(res);
		nb_ipc_client_free(c);
		ssize_t w = write(pfd[1], &verdict, 1);
		_exit(w == 1 ? 0 : 1);
	}
	close(pfd[1]);
	char verdict = -1;
	assert_int_equal(read(pfd[0], &verdict, 1), 1);
	close(pfd[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(verdict, 0);
	srv_stop(v);
	chmod(tmpdir, 0700);
}

/* ---- streams ---- */

static void
wait_followers(struct srv *v, int64_t n)
{
	for (int i = 0; i < 250; i++) {
		if (stat_of(v, "followers") == n)
			return;
		sleep_ms(10);
	}
	fail_msg("the server never had %lld followers", (long long)n);
}

struct ticks {
	int n;
	int bad;
};

static void
on_tick(const char *method, json_t *params, void *data)
{
	struct ticks *t = data;
	if (strcmp(method, "tick") != 0 || json_integer_value(json_object_get(params, "i")) != t->n)
		t->bad++;
	t->n++;
}

static void
test_streams(void **state)
{
	struct srv *v = srv_start(NULL);
	struct nb_err e = { 0 };
	struct nb_ipc_client *a = connect_ok(v->path);
	struct nb_ipc_client *b = connect_ok(v->path);
	int64_t id;
	assert_int_equal(nb_ipc_send_request(a, "follow", NULL, 2000, &id, &e), 0);
	wait_followers(v, 1);
	const char *words[] = { "one", "two", "three" };
	for (size_t i = 0; i < 3; i++) {
		_cleanup_json_ json_t *p = json_pack("[s]", words[i]);
		_cleanup_json_ json_t *res = NULL;
		assert_int_equal(nb_ipc_call(b, "emit", p, 2000, &res, &e), 0);
		assert_int_equal(json_integer_value(res), 1);
	}
	for (size_t i = 0; i < 3; i++) {
		_cleanup_json_ json_t *m = NULL;
		assert_int_equal(nb_ipc_read_message(a, 2000, &m, &e), 0);
		assert_null(json_object_get(m, "id"));
		assert_string_equal(json_string_value(json_object_get(m, "method")), "log");
		assert_string_equal(
			json_string_value(json_object_get(json_object_get(m, "params"), "line")),
			words[i]);
	}
	_cleanup_json_ json_t *res = NULL;
	assert_int_equal(nb_ipc_call(b, "end", NULL, 2000, &res, &e), 0);
	_cleanup_json_ json_t *fin = NULL;
	assert_int_equal(nb_ipc_read_message(a, 2000, &fin, &e), 0);
	assert_int_equal(json_integer_value(json_object_get(fin, "id")), id);
	assert_true(json_is_true(json_object_get(json_object_get(fin, "result"), "ended")));

	/* nb_ipc_call hands notifications to the callback until its reply comes; the handler
	 * ended the call itself before returning NB_IPC_DEFER. */
	struct ticks t = { 0 };
	nb_ipc_client_on_notify(a, on_tick, &t);
	_cleanup_json_ json_t *p = json_pack("[i]", 25);
	_cleanup_json_ json_t *done = NULL;
	assert_int_equal(nb_ipc_call(a, "stream", p, 2000, &done, &e), 0);
	assert_string_equal(json_string_value(done), "done");
	assert_int_equal(t.n, 25);
	assert_int_equal(t.bad, 0);

	/* A follower that hangs up: its owner hears of it and the call is freed. */
	struct nb_ipc_client *f = connect_ok(v->path);
	assert_int_equal(nb_ipc_send_request(f, "follow", NULL, 2000, NULL, &e), 0);
	wait_followers(v, 1);
	nb_ipc_client_free(f);
	assert_int_equal(wait_stat(v, "cancelled", 1), 1);
	assert_int_equal(stat_of(v, "followers"), 0);

	/* Deferred calls still open when the server goes away are cancelled too. */
	assert_int_equal(nb_ipc_send_request(a, "hang", NULL, 2000, NULL, &e), 0);
	assert_int_equal(nb_ipc_send_request(b, "follow", NULL, 2000, NULL, &e), 0);
	wait_followers(v, 1);
	nb_ipc_client_free(a);
	nb_ipc_client_free(b);
	srv_stop(v);
}

/* ---- load ---- */

static void
test_sequential(void **state)
{
	struct srv *v = srv_start(NULL);
	struct nb_ipc_client *c = connect_ok(v->path);
	for (int i = 0; i < 1000; i++)
		call_echo_ok(c, i);
	nb_ipc_client_free(c);
	/* And 200 connections one after another. */
	for (int i = 0; i < 200; i++) {
		c = connect_ok(v->path);
		call_echo_ok(c, i);
		nb_ipc_client_free(c);
	}
	srv_stop(v);
}

struct worker {
	const char *path;
	int index;
	atomic_int *failures;
};

static void *
worker(void *p)
{
	struct worker *w = p;
	struct nb_err e = { 0 };
	struct nb_ipc_client *c = nb_ipc_connect(w->path, 5000, &e);
	if (!c) {
		atomic_fetch_add(w->failures, 1);
		return NULL;
	}
	for (int i = 0; i < 40; i++) {
		json_t *params = json_pack("[i,i]", w->index, i);
		json_t *res = NULL;
		if (nb_ipc_call(c, "add", params, 5000, &res, &e) < 0 ||
		    json_integer_value(res) != w->index + i)
			atomic_fetch_add(w->failures, 1);
		json_decref(res);
		json_decref(params);
	}
	nb_ipc_client_free(c);
	return NULL;
}

static void
test_concurrent(void **state)
{
	struct srv *v = srv_start(NULL);
	atomic_int failures = 0;
	pthread_t t[50];
	struct worker w[50];
	for (int i = 0; i < 50; i++) {
		w[i] = (struct worker){ .path = v->path, .index = i, .failures = &failures };
		assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
	}
	for (int i = 0; i < 50; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&failures), 0);
	assert_true(stat_of(v, "accepted") >= 50);
	srv_stop(v);
}

/* ---- feed ---- */

static int
count_lines(const char *s)
{
	int n = 0;
	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

static void
test_feed(void **state)
{
	struct nb_ipc_server *s = nb_ipc_server_new(NULL, NULL);
	assert_non_null(s);
	add_methods(s);
	nfollowers = 0;
	atomic_store(&cancelled, 0);
	struct nb_ipc_peer peer = { .pid = 1, .uid = 2, .gid = 3 };
	const char *in =
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"whoami\"}\n"
		"\r\n"
		"{\"jsonrpc\":\"2.0\",\"method\":\"note\"}\n"
		"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"add\",\"params\":[1,2]}\r\n"
		"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"follow\"}\n"
		"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"emit\",\"params\":[\"x\"]}\n"
		"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"echo\"}"; /* no newline: dropped */
	for (size_t chunk = 0; chunk < 4; chunk++) {
		char *out = NULL;
		size_t len = 0;
		assert_int_equal(nb_ipc_server_feed(s, &peer, in, strlen(in), chunk, &out, &len),
				 0);
		assert_int_equal(strlen(out), len);
		/* whoami, add, the log notification, emit's reply; follow stays open. */
		assert_int_equal(count_lines(out), 4);
		assert_non_null(strstr(out, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"pid\":1,"
					    "\"uid\":2,\"gid\":3,"));
		assert_non_null(strstr(out, "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":3}\n"));
		assert_non_null(strstr(out, "{\"jsonrpc\":\"2.0\",\"method\":\"log\",\"params\":{"
					    "\"line\":\"x\"}}\n"));
		assert_null(strstr(out, "\"id\":5"));
		free(out);
		/* The peer hung up: the open follow was cancelled. */
		assert_int_equal(atomic_load(&cancelled), (int)chunk + 1);
		assert_int_equal(nfollowers, 0);
	}
	/* Too large: the error, and the server closes (1). */
	size_t n = 3 * NB_IPC_MAX_MSG;
	char *big = malloc(n);
	memset(big, '[', n);
	char *out = NULL;
	size_t len = 0;
	assert_int_equal(nb_ipc_server_feed(s, &peer, big, n, 4096, &out, &len), 1);
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, "message too large"));
	free(out);
	/* Deep nesting within the limit is a parse error, not a crash. */
	big[NB_IPC_MAX_MSG - 1] = '\n';
	assert_int_equal(nb_ipc_server_feed(s, &peer, big, NB_IPC_MAX_MSG, 0, &out, &len), 0);
	assert_non_null(strstr(out, "\"code\":-32700"));
	free(out);
	free(big);
	nb_ipc_server_free(s);
}

/* ---- main ---- */

static int
rm_tree(const char *path)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	return system(cmd);
}

int
main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),   cmocka_unit_test(test_params),
		cmocka_unit_test(test_error_codes),  cmocka_unit_test(test_notifications),
		cmocka_unit_test(test_size_limit),   cmocka_unit_test(test_oversize_keeps_serving),
		cmocka_unit_test(test_slow_client),  cmocka_unit_test(test_stall_timeout),
		cmocka_unit_test(test_idle_timeout), cmocka_unit_test(test_non_reader_dropped),
		cmocka_unit_test(test_max_clients),  cmocka_unit_test(test_many_idle),
		cmocka_unit_test(test_peer_refused), cmocka_unit_test(test_client_errors),
		cmocka_unit_test(test_socket_modes), cmocka_unit_test(test_stale_and_live),
		cmocka_unit_test(test_peercred),     cmocka_unit_test(test_peercred_setuid),
		cmocka_unit_test(test_streams),	     cmocka_unit_test(test_sequential),
		cmocka_unit_test(test_concurrent),   cmocka_unit_test(test_feed),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	rm_tree(tmpdir);
	return r;
}
