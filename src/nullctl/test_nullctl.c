/*
 * test_nullctl.c: the real nullctl binary against a fake nulld.
 *
 * The fake is lib/ipc's server on a socket in a temporary directory, serving every method of
 * the contract (commands.c lists it) with canned replies in the contract's shape, and keeping
 * every request it gets. Each test runs nullctl as a subprocess (argv[1]) while this process
 * pumps the server, then checks the request (method, params), stdout (golden strings), stderr
 * and the exit code. Follow streams are driven from the pump: notifications are sent from a
 * tick callback, and the stream is ended with a signal or by closing the server.
 * argv[2] is docs/man/nullctl.1, checked against --help.
 *
 * nullctl runs with LC_ALL=C.UTF-8, so tables with non-ASCII cells are deterministic.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h> /* cmocka.h needs these first */
#include <cmocka.h>

#include "cleanup.h"
#include "ipc.h"
#include "json.h"

extern char **environ;

static const char *nullctl_bin, *man_path;
/* Run nullctl with its stdout on a pseudo-terminal (raw mode) instead of a pipe. */
static bool run_on_tty;
static char tmpdir[] = "/tmp/nullctl-test-XXXXXX";
static char sock_path[256];

/* ---- the fake nulld ---- */

static const char *const methods[] = {
	"status",	"agent.start",	   "agent.stop", "agent.restart", "agent.pause",
	"agent.resume", "agent.status",	   "agent.list", "agent.logs",	  "audit.query",
	"audit.verify", "service.restart", "shutdown",
};

static struct {
	struct nb_ipc_server *srv;
	json_t *requests; /* [{method, params}] */
	json_t *replies;  /* method -> {"result": X} | {"error": [code, msg]} | {"defer": true} */
	struct nb_ipc_call *deferred;
} F;

static int
fake_handler(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	const char *m = nb_ipc_call_method(call);
	json_array_append_new(F.requests, json_pack("{s:s,s:O*}", "method", m, "params", params));
	json_t *rep = json_object_get(F.replies, m);
	if (!rep)
		return nb_ipc_error_set(err, -32000, "test: no reply set for %s", m);
	json_t *e = json_object_get(rep, "error");
	if (e)
		return nb_ipc_error_set(err, (int)json_integer_value(json_array_get(e, 0)), "%s",
					json_string_value(json_array_get(e, 1)));
	if (json_object_get(rep, "defer")) {
		F.deferred = call;
		return NB_IPC_DEFER;
	}
	*result = json_deep_copy(json_object_get(rep, "result"));
	return NB_IPC_OK;
}

static void
server_start(void)
{
	struct nb_err e = { 0 };
	F.srv = nb_ipc_server_new(NULL, &e);
	assert_non_null(F.srv);
	assert_int_equal(nb_ipc_server_listen(F.srv, sock_path, 0600, (gid_t)-1, NULL, &e), 0);
	for (size_t i = 0; i < NB_ARRAY_SIZE(methods); i++)
		assert_int_equal(
			nb_ipc_server_add_method(F.srv, methods[i], fake_handler, NULL, &e), 0);
}

/* Ends the deferred call of the previous run, if any (its client is gone: -EPIPE). */
static void
end_deferred(void)
{
	if (F.deferred)
		nb_ipc_call_reply(F.deferred, NULL);
	F.deferred = NULL;
}

/* Closes every connection: what a client sees when nulld goes away. */
static void
server_stop(void)
{
	nb_ipc_server_free(F.srv);
	F.srv = NULL;
	if (F.deferred)
		nb_ipc_call_reply(F.deferred, NULL); /* -EPIPE; frees the call */
	F.deferred = NULL;
}

static int
setup(void **state)
{
	F.requests = json_array();
	F.replies = json_object();
	server_start();
	return 0;
}

/* The nullctl still running when an assertion jumped out of run_argv(), if any. */
static pid_t running_child = -1;

static int
teardown(void **state)
{
	if (running_child > 0) {
		kill(running_child, SIGKILL);
		waitpid(running_child, NULL, 0);
		running_child = -1;
	}
	server_stop();
	json_decref(F.requests);
	json_decref(F.replies);
	unlink(sock_path);
	return 0;
}

static void
reply(const char *method, json_t *result)
{
	json_object_set_new(F.replies, method, json_pack("{s:o}", "result", result));
}

static void
reply_text(const char *method, const char *json)
{
	json_error_t je;
	json_t *v = json_loads(json, 0, &je);
	if (!v)
		fail_msg("bad test JSON: %s: %s", je.text, json);
	reply(method, v);
}

static void
reply_error(const char *method, int code, const char *msg)
{
	json_object_set_new(F.replies, method, json_pack("{s:[i,s]}", "error", code, msg));
}

static void
reply_defer(const char *method)
{
	json_object_set_new(F.replies, method, json_pack("{s:b}", "defer", 1));
}

/* Checks that exactly one request came, with @method and params equal to the JSON @params. */
static void
assert_request(const char *method, const char *params)
{
	if (json_array_size(F.requests) != 1) {
		char *all = json_dumps(F.requests, JSON_COMPACT);
		fail_msg("expected one request (%s), got %s", method, all);
	}
	json_t *rq = json_array_get(F.requests, 0);
	assert_string_equal(json_string_value(json_object_get(rq, "method")), method);
	json_error_t je;
	_cleanup_json_ json_t *want = json_loads(params, 0, &je);
	assert_non_null(want);
	json_t *got = json_object_get(rq, "params");
	if (!json_equal(got, want)) {
		_cleanup_free_ char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
		_cleanup_free_ char *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
		fail_msg("%s params: got %s, want %s", method, g, w);
	}
}

/* ---- running nullctl ---- */

struct run {
	pid_t pid;
	int status; /* exit code, or 128 + signal */
	char out[65536], err[16384];
	size_t out_len, err_len;
	int ticks;
	void *data;
};

typedef void (*tick_fn)(struct run *r);

static void
drain(int *fd, char *buf, size_t *len, size_t cap)
{
	if (*fd < 0)
		return;
	ssize_t n = read(*fd, buf + *len, cap - 1 - *len);
	if (n > 0) {
		*len += (size_t)n;
		buf[*len] = '\0';
	} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		close(*fd);
		*fd = -1;
	}
}

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Runs nullctl with @argv (argv[0] is ignored) and the environment @env (NULL-terminated, on top
 * of LC_ALL=C.UTF-8 and PATH), serving the fake nulld until it exits; @tick (may be NULL) runs
 * every pass of the loop. Fails the test after 15 s.
 */
static void
run_argv(struct run *r, const char *const *argv, const char *const *env, tick_fn tick)
{
	int out[2], err[2];
	if (run_on_tty) {
		out[0] = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		assert_true(out[0] >= 0);
		assert_int_equal(grantpt(out[0]), 0);
		assert_int_equal(unlockpt(out[0]), 0);
		out[1] = open(ptsname(out[0]), O_RDWR | O_NOCTTY | O_CLOEXEC);
		assert_true(out[1] >= 0);
		struct termios t;
		assert_int_equal(tcgetattr(out[1], &t), 0);
		cfmakeraw(&t);
		assert_int_equal(tcsetattr(out[1], TCSANOW, &t), 0);
	} else {
		assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	}
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	/* The test's own variables first: getenv() takes the first of duplicates. */
	const char *envp[16];
	size_t ne = 0;
	for (; env && *env && ne < 13; env++)
		envp[ne++] = *env;
	envp[ne++] = "LC_ALL=C.UTF-8";
	envp[ne++] = "PATH=/usr/bin:/bin";
	envp[ne] = NULL;
	const char *args[64];
	size_t na = 0;
	args[na++] = nullctl_bin;
	for (size_t i = 1; argv[i] && na < 63; i++)
		args[na++] = argv[i];
	args[na] = NULL;
	memset(r->out, 0, sizeof(r->out));
	r->out_len = r->err_len = 0;
	r->err[0] = '\0';
	r->ticks = 0;
	int rc = posix_spawn(&r->pid, nullctl_bin, &fa, NULL, (char *const *)args,
			     (char *const *)envp);
	posix_spawn_file_actions_destroy(&fa);
	assert_int_equal(rc, 0);
	running_child = r->pid;
	close(out[1]);
	close(err[1]);
	int ofd = out[0], efd = err[0];
	int64_t deadline = now_ms() + 15000;
	bool exited = false;
	while (!exited || ofd >= 0 || efd >= 0) {
		struct pollfd p[3] = { { .fd = ofd, .events = POLLIN },
				       { .fd = efd, .events = POLLIN },
				       { .fd = F.srv ? nb_ipc_server_fd(F.srv) : -1,
					 .events = POLLIN } };
		poll(p, 3, 20);
		if (F.srv)
			nb_ipc_server_dispatch(F.srv, 0);
		if (p[0].revents)
			drain(&ofd, r->out, &r->out_len, sizeof(r->out));
		if (p[1].revents)
			drain(&efd, r->err, &r->err_len, sizeof(r->err));
		if (tick && !exited)
			tick(r);
		r->ticks++;
		int st;
		if (!exited && waitpid(r->pid, &st, WNOHANG) == r->pid) {
			exited = true;
			running_child = -1;
			r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		if (now_ms() > deadline) {
			kill(r->pid, SIGKILL);
			waitpid(r->pid, NULL, 0);
			running_child = -1;
			fail_msg("nullctl did not finish in 15 s; stdout: %s; stderr: %s", r->out,
				 r->err);
		}
	}
}

#define ARGS(...) ((const char *const[]){ "nullctl", __VA_ARGS__, NULL })

/* nullctl --socket SOCK ARGS... */
static void
run_ctl(struct run *r, const char *const *argv, tick_fn tick)
{
	const char *full[64] = { "nullctl", "--socket", sock_path };
	size_t n = 3;
	for (size_t i = 1; argv[i] && n < 63; i++)
		full[n++] = argv[i];
	full[n] = NULL;
	run_argv(r, full, NULL, tick);
}

static void
assert_run(const struct run *r, int status, const char *out, const char *err)
{
	if (r->status != status)
		fail_msg("exit %d, want %d; stdout:\n%s\nstderr:\n%s", r->status, status, r->out,
			 r->err);
	if (out)
		assert_string_equal(r->out, out);
	if (err)
		assert_string_equal(r->err, err);
}

/* ---- canned replies ---- */

#define UNIT_WEB                                                                                   \
	"{\"name\":\"web\",\"state\":\"up\",\"pid\":4242,\"since_ms\":192000,\"failures\":0,"      \
	"\"restarts\":1,\"last_exit\":null,\"manifest\":\"/srv/agents/web/AGENT.toml\","           \
	"\"health\":\"ok\"}"

/* An agent whose name and status carry terminal escapes and bidi overrides. */
#define UNIT_EVIL                                                                                  \
	"{\"name\":\"ev\\u001b[31mil\",\"state\":\"held\",\"pid\":0,\"since_ms\":5000,"            \
	"\"failures\":5,\"restarts\":4,\"last_exit\":\"signal 9\",\"manifest\":\"/x\","            \
	"\"health\":\"\\u202egnp.exe\"}"

#define STATUS                                                                                     \
	"{\"pid\":100,\"uptime_ms\":3720000,\"state_dir\":\"/var/lib/nullbox\",\"pid1\":false,"    \
	"\"services\":[{\"name\":\"warden\",\"state\":\"up\",\"pid\":101,\"since_ms\":3719000,"    \
	"\"failures\":0,\"restarts\":0,\"last_exit\":null},"                                       \
	"{\"name\":\"egress\",\"state\":\"backoff\",\"pid\":0,\"since_ms\":4000,\"failures\":3,"   \
	"\"restarts\":3,\"last_exit\":\"exit 1\"}],"                                               \
	"\"agents\":[" UNIT_WEB "," UNIT_EVIL "]}"

#define REC1                                                                                       \
	"{\"seq\":1,\"time\":\"2026-11-25T03:00:00Z\",\"actor\":\"nulld\",\"action\":"             \
	"\"agent.start\",\"object\":\"web\",\"verdict\":\"allowed\",\"reason\":\"started by uid "  \
	"0\",\"prev\":\"00\",\"hash\":\"ab\"}"
/* Non-ASCII, wide characters, an escape sequence and a cell far over its column's width. */
#define REC2                                                                                       \
	"{\"seq\":2,\"time\":\"2026-11-25T03:00:01Z\",\"actor\":\"zo\\u00eb\",\"action\":"         \
	"\"net.connect\",\"object\":\"\\u65e5\\u672c\\u8a9e.example:443\",\"verdict\":"            \
	"\"denied\",\"reason\":\"not in allowlist \\u001b]0;pwned\\u0007 "                         \
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\","  \
	"\"detail\":{\"port\":443},\"prev\":\"ab\",\"hash\":\"cd\"}"

/* ---- status ---- */

static void
test_status_table(void **state)
{
	struct run r;
	reply_text("status", STATUS);
	run_ctl(&r, ARGS("status"), NULL);
	assert_request("status", "{}");
	assert_run(&r, 0,
		   "nulld pid 100, up 1h02m, state /var/lib/nullbox\n"
		   "\n"
		   "SERVICES\n"
		   "NAME    STATE    PID  SINCE  RESTARTS  LAST EXIT\n"
		   "warden  up       101  1h01m  0         -\n"
		   "egress  backoff  -    4s     3         exit 1\n"
		   "\n"
		   "AGENTS\n"
		   "NAME          STATE  PID   SINCE  RESTARTS  HEALTH\n"
		   "web           up     4242  3m12s  1         ok\n"
		   "ev\\x1b[31mil  held   -     5s     4         \\u{202e}gnp.exe\n",
		   "");
}

static void
test_status_empty(void **state)
{
	struct run r;
	reply_text("status", "{\"pid\":7,\"uptime_ms\":5999,\"state_dir\":\"/s\",\"pid1\":true,"
			     "\"services\":[],\"agents\":[]}");
	run_ctl(&r, ARGS("status"), NULL);
	assert_run(&r, 0, "nulld pid 7, up 5s, state /s\n\nSERVICES\n(none)\n\nAGENTS\n(none)\n",
		   "");
}

static void
test_status_json(void **state)
{
	struct run r;
	reply_text("status", STATUS);
	run_ctl(&r, ARGS("status", "--json"), NULL);
	assert_run(&r, 0, NULL, "");
	/* One line, the result itself, and ASCII only (escapes stay escaped). */
	assert_int_equal(strchr(r.out, '\n') - r.out + 1, (long)r.out_len);
	assert_null(strchr(r.out, '\x1b'));
	json_error_t je;
	_cleanup_json_ json_t *got = json_loads(r.out, 0, &je), *want = json_loads(STATUS, 0, &je);
	assert_true(json_equal(got, want));
}

static void
test_env_socket(void **state)
{
	struct run r;
	char env[300];
	snprintf(env, sizeof(env), "NULLBOX_SOCKET=%s", sock_path);
	reply_text("status", STATUS);
	run_argv(&r, ARGS("--json", "status"), (const char *const[]){ env, NULL }, NULL);
	assert_run(&r, 0, NULL, "");
	assert_request("status", "{}");
}

static void
test_state_dir(void **state)
{
	struct run r;
	reply_text("agent.list", "{\"agents\":[]}");
	run_argv(&r, ARGS("agent", "list", "--state-dir", tmpdir), NULL, NULL);
	assert_run(&r, 0, "(none)\n", "");
	assert_request("agent.list", "{}");
}

/* ---- agent ---- */

static void
test_agent_start(void **state)
{
	struct run r;
	char dir[300], manifest[320], want[400];
	snprintf(dir, sizeof(dir), "%s/agent", tmpdir);
	snprintf(manifest, sizeof(manifest), "%s/AGENT.toml", dir);
	mkdir(dir, 0700);
	close(open(manifest, O_CREAT | O_WRONLY, 0600));
	reply_text("agent.start", UNIT_WEB);

	/* A relative path is sent absolute: run from tmpdir with "agent/../agent". */
	char cwd[4096];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	run_ctl(&r, ARGS("agent", "start", "agent/../agent", "--name", "web"), NULL);
	assert_int_equal(chdir(cwd), 0);
	snprintf(want, sizeof(want), "{\"manifest\":\"%s\",\"name\":\"web\"}", dir);
	assert_request("agent.start", want);
	assert_run(&r, 0, "started web (pid 4242)\n", "");

	json_array_clear(F.requests);
	run_ctl(&r, ARGS("agent", "start", manifest), NULL);
	snprintf(want, sizeof(want), "{\"manifest\":\"%s\"}", manifest);
	assert_request("agent.start", want);

	json_array_clear(F.requests);
	run_ctl(&r, ARGS("--json", "agent", "start", "--name=web", manifest), NULL);
	snprintf(want, sizeof(want), "{\"manifest\":\"%s\",\"name\":\"web\"}", manifest);
	assert_request("agent.start", want);
	assert_run(&r, 0, UNIT_WEB "\n", "");

	/* A start that did not come up says the state. */
	reply_text("agent.start", "{\"name\":\"web\",\"state\":\"backoff\",\"pid\":0}");
	run_ctl(&r, ARGS("agent", "start", manifest), NULL);
	assert_run(&r, 0, "started web (state backoff)\n", "");
}

static void
test_agent_start_missing_path(void **state)
{
	struct run r;
	char path[300];
	snprintf(path, sizeof(path), "%s/nope", tmpdir);
	run_ctl(&r, ARGS("agent", "start", path), NULL);
	assert_int_equal(json_array_size(F.requests), 0);
	char want[400];
	snprintf(want, sizeof(want), "nullctl: %s: No such file or directory\n", path);
	assert_run(&r, 1, "", want);
}

static void
test_agent_unit_commands(void **state)
{
	static const struct {
		const char *cmd, *method, *reply, *out;
	} cases[] = {
		{ "stop", "agent.stop", "{\"name\":\"web\",\"state\":\"down\",\"pid\":0}",
		  "stopped web\n" },
		{ "stop", "agent.stop", "{\"name\":\"web\",\"state\":\"stopping\",\"pid\":42}",
		  "stopped web (state stopping, pid 42)\n" },
		{ "restart", "agent.restart",
		  "{\"name\":\"web\",\"state\":\"starting\",\"pid\":43}",
		  "restarted web (pid 43)\n" },
		{ "pause", "agent.pause", "{\"name\":\"web\",\"state\":\"paused\",\"pid\":43}",
		  "paused web (pid 43)\n" },
		{ "resume", "agent.resume", "{\"name\":\"web\",\"state\":\"up\",\"pid\":43}",
		  "resumed web (pid 43)\n" },
	};
	for (size_t i = 0; i < NB_ARRAY_SIZE(cases); i++) {
		struct run r;
		json_array_clear(F.requests);
		reply_text(cases[i].method, cases[i].reply);
		run_ctl(&r, ARGS("agent", cases[i].cmd, "web"), NULL);
		assert_request(cases[i].method, "{\"name\":\"web\"}");
		assert_run(&r, 0, cases[i].out, "");

		json_array_clear(F.requests);
		run_ctl(&r, ARGS("agent", cases[i].cmd, "web", "--json"), NULL);
		assert_request(cases[i].method, "{\"name\":\"web\"}");
		char want[256];
		snprintf(want, sizeof(want), "%s\n", cases[i].reply);
		assert_run(&r, 0, want, "");
	}
}

static void
test_agent_status(void **state)
{
	struct run r;
	reply_text("agent.status", "{\"name\":\"web\",\"state\":\"up\",\"pid\":4242,\"since_ms\":"
				   "3720000,\"failures\":2,\"restarts\":1,\"last_exit\":\"exit "
				   "1\",\"manifest\":\"/srv/web/AGENT.toml\",\"health\":null,"
				   "\"cgroup\":\"/sys/fs/cgroup/nullbox/web\"}");
	run_ctl(&r, ARGS("agent", "status", "web"), NULL);
	assert_request("agent.status", "{\"name\":\"web\"}");
	assert_run(&r, 0,
		   "name:      web\n"
		   "manifest:  /srv/web/AGENT.toml\n"
		   "state:     up\n"
		   "pid:       4242\n"
		   "since:     1h02m\n"
		   "failures:  2\n"
		   "restarts:  1\n"
		   "last exit: exit 1\n"
		   "health:    -\n"
		   "cgroup:    /sys/fs/cgroup/nullbox/web\n",
		   "");
}

static void
test_agent_list(void **state)
{
	struct run r;
	reply_text("agent.list", "{\"agents\":[" UNIT_WEB "]}");
	run_ctl(&r, ARGS("agent", "list"), NULL);
	assert_request("agent.list", "{}");
	assert_run(&r, 0,
		   "NAME  STATE  PID   SINCE  RESTARTS  HEALTH\n"
		   "web   up     4242  3m12s  1         ok\n",
		   "");
	json_array_clear(F.requests);
	run_ctl(&r, ARGS("agent", "list", "--json"), NULL);
	assert_run(&r, 0, "{\"agents\":[" UNIT_WEB "]}\n", "");
}

static void
test_agent_logs(void **state)
{
	struct run r;
	/* A pipe gets the bytes as they are. */
	reply_text("agent.logs", "{\"data\":\"one\\ntwo \\u001b[1mbold\\u001b[0m\\n\"}");
	run_ctl(&r, ARGS("agent", "logs", "web"), NULL);
	assert_request("agent.logs", "{\"name\":\"web\",\"lines\":100,\"follow\":false}");
	assert_run(&r, 0, "one\ntwo \x1b[1mbold\x1b[0m\n", "");

	json_array_clear(F.requests);
	run_ctl(&r, ARGS("agent", "logs", "--lines", "5", "web", "--raw"), NULL);
	assert_request("agent.logs", "{\"name\":\"web\",\"lines\":5,\"follow\":false}");

	json_array_clear(F.requests);
	run_ctl(&r, ARGS("--json", "agent", "logs", "--lines=0", "web"), NULL);
	assert_request("agent.logs", "{\"name\":\"web\",\"lines\":0,\"follow\":false}");
	assert_run(&r, 0, "{\"data\":\"one\\ntwo \\u001B[1mbold\\u001B[0m\\n\"}\n", "");
}

/* On a terminal, agent output is escaped (lines and tabs kept) unless --raw. */
static void
test_agent_logs_tty(void **state)
{
	struct run r;
	reply_text("agent.logs",
		   "{\"data\":\"a\\tb\\r\\n\\u001b]52;c;cHduZWQ=\\u0007\\rx\\u202e\\u00e9\\n\"}");
	run_on_tty = true;
	run_ctl(&r, ARGS("agent", "logs", "web"), NULL);
	assert_run(&r, 0, "a\tb\r\n\\x1b]52;c;cHduZWQ=\\x07\\rx\\u{202e}\xc3\xa9\n", "");
	run_ctl(&r, ARGS("agent", "logs", "web", "--raw"), NULL);
	run_on_tty = false;
	assert_run(&r, 0, "a\tb\r\n\x1b]52;c;cHduZWQ=\x07\rx\xe2\x80\xae\xc3\xa9\n", "");
}

/* Sends two log lines once the call is in, then waits for them on stdout. */
static void
tick_logs(struct run *r)
{
	static const char *const lines[] = { "line 1\n", "line 2 \xc3\xa9\n" };
	if (F.deferred && r->data == NULL) {
		for (size_t i = 0; i < 2; i++)
			assert_int_equal(nb_ipc_call_notify(F.deferred, "log",
							    json_pack("{s:s,s:s}", "name", "web",
								      "data", lines[i])),
					 0);
		r->data = (void *)1;
	}
}

static void
tick_logs_then_sigint(struct run *r)
{
	tick_logs(r);
	if (r->data == (void *)1 && strstr(r->out, "line 2")) {
		kill(r->pid, SIGINT);
		r->data = (void *)2;
	}
}

static void
tick_logs_then_close(struct run *r)
{
	tick_logs(r);
	if (r->data == (void *)1 && strstr(r->out, "line 2")) {
		server_stop();
		r->data = (void *)2;
	}
}

static void
test_agent_logs_follow(void **state)
{
	struct run r = { .data = NULL };
	reply_defer("agent.logs");
	run_ctl(&r, ARGS("agent", "logs", "web", "--follow", "--lines", "3"),
		tick_logs_then_sigint);
	assert_request("agent.logs", "{\"name\":\"web\",\"lines\":3,\"follow\":true}");
	assert_run(&r, 0, "line 1\nline 2 \xc3\xa9\n", "");
	server_stop();
	server_start();

	/* --json: each notification's params, one per line. */
	json_array_clear(F.requests);
	r.data = NULL;
	run_ctl(&r, ARGS("agent", "logs", "web", "--follow", "--json"), tick_logs_then_sigint);
	assert_run(&r, 0,
		   "{\"name\":\"web\",\"data\":\"line 1\\n\"}\n"
		   "{\"name\":\"web\",\"data\":\"line 2 \\u00E9\\n\"}\n",
		   "");
	server_stop();
	server_start();

	/* nulld going away ends the stream with exit 1. */
	r.data = NULL;
	run_ctl(&r, ARGS("agent", "logs", "web", "--follow"), tick_logs_then_close);
	assert_run(&r, 1, "line 1\nline 2 \xc3\xa9\n", "nullctl: nulld closed the connection\n");
}

/* An error reply to a follow request is an error like any other. */
static void
test_agent_logs_follow_error(void **state)
{
	struct run r;
	reply_error("agent.logs", -32000, "no agent named \"x\"");
	run_ctl(&r, ARGS("agent", "logs", "x", "--follow"), NULL);
	assert_run(&r, 1, "", "nullctl: no agent named \"x\"\n");
}

/* ---- audit ---- */

static void
test_audit_table(void **state)
{
	struct run r;
	reply_text("audit.query", "{\"records\":[" REC1 "," REC2 "]}");
	run_ctl(&r, ARGS("audit"), NULL);
	assert_request("audit.query", "{}");
	assert_run(&r, 0,
		   "TIME                  ACTOR  ACTION       OBJECT              VERDICT  "
		   "REASON\n"
		   "2026-11-25T03:00:00Z  nulld  agent.start  web                 allowed  "
		   "started by uid 0\n"
		   "2026-11-25T03:00:01Z  zo\xc3\xab    net.connect  "
		   "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e.example:443  denied   "
		   "not in allowlist \\x1b]0;pwned\\x07 "
		   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\xe2\x80\xa6\n",
		   "");

	json_array_clear(F.requests);
	run_ctl(&r, ARGS("audit", "--agent", "web", "--verdict", "denied", "--limit", "20"), NULL);
	assert_request("audit.query", "{\"agent\":\"web\",\"verdict\":\"denied\",\"limit\":20}");

	reply_text("audit.query", "{\"records\":[]}");
	run_ctl(&r, ARGS("audit"), NULL);
	assert_run(&r, 0, "(no records)\n", "");
}

/* Outside a UTF-8 locale, non-ASCII is escaped too, and cut cells end in "...". */
static void
test_audit_c_locale(void **state)
{
	struct run r;
	reply_text("audit.query", "{\"records\":[" REC2 "]}");
	run_argv(&r, ARGS("--socket", sock_path, "audit"),
		 (const char *const[]){ "LC_ALL=C", NULL }, NULL);
	assert_run(
		&r, 0,
		"TIME                  ACTOR     ACTION       OBJECT                                "
		"VERDICT  REASON\n"
		"2026-11-25T03:00:01Z  zo\\u{eb}  net.connect  \\u{65e5}\\u{672c}\\u{8a9e}.example:443  "
		"denied   not in allowlist \\x1b]0;pwned\\x07 "
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\n",
		"");
}

static void
test_audit_json(void **state)
{
	struct run r;
	reply_text("audit.query", "{\"records\":[" REC1 "," REC2 "]}");
	run_ctl(&r, ARGS("audit", "--json"), NULL);
	assert_run(&r, 0, NULL, "");
	/* One REC per line, exactly the records. */
	char *nl = strchr(r.out, '\n');
	assert_non_null(nl);
	*nl = '\0';
	json_error_t je;
	_cleanup_json_ json_t *a = json_loads(r.out, 0, &je), *b = json_loads(nl + 1, 0, &je),
			      *w1 = json_loads(REC1, 0, &je), *w2 = json_loads(REC2, 0, &je);
	assert_true(json_equal(a, w1));
	assert_true(json_equal(b, w2));
	assert_null(strchr(nl + 1, '\x1b'));
}

#define REC3                                                                                       \
	"{\"seq\":3,\"time\":\"2026-11-25T03:00:02Z\",\"actor\":\"web\",\"action\":"               \
	"\"fs.write\",\"object\":\"/etc/passwd\",\"verdict\":\"denied\",\"reason\":"               \
	"\"not granted\",\"prev\":\"cd\",\"hash\":\"ef\"}"

/* As nulld does it: the records that exist in one "audit.records" notification, then one
 * "audit" notification per new record. Then the stream ends by @r->data's plan. */
static void
tick_audit(struct run *r)
{
	json_error_t je;
	if (F.deferred && r->data == NULL) {
		assert_int_equal(nb_ipc_call_notify(
					 F.deferred, "audit.records",
					 json_pack("{s:[o]}", "records", json_loads(REC1, 0, &je))),
				 0);
		r->data = (void *)1;
	}
	if (r->data == (void *)1 && strstr(r->out, "uid 0")) {
		assert_int_equal(
			nb_ipc_call_notify(F.deferred, "audit",
					   json_pack("{s:o}", "record", json_loads(REC3, 0, &je))),
			0);
		r->data = (void *)2;
	}
	if (r->data == (void *)2 && strstr(r->out, "not granted")) {
		kill(r->pid, SIGTERM);
		r->data = (void *)3;
	}
}

/* nulld going away ends a follower's call with a null result. */
static void
tick_audit_end(struct run *r)
{
	if (F.deferred && r->data == NULL) {
		assert_int_equal(nb_ipc_call_notify(F.deferred, "audit.records",
						    json_pack("{s:[]}", "records")),
				 0);
		assert_int_equal(nb_ipc_call_reply(F.deferred, NULL), 0);
		F.deferred = NULL;
		r->data = (void *)1;
	}
}

static void
test_audit_follow(void **state)
{
	struct run r = { .data = NULL };
	reply_defer("audit.query");
	run_ctl(&r, ARGS("audit", "--follow", "--verdict", "allowed"), tick_audit);
	assert_request("audit.query", "{\"verdict\":\"allowed\",\"follow\":true}");
	/* A stream's columns have their minimum widths from the start. */
	assert_run(&r, 0,
		   "TIME                      ACTOR             ACTION            OBJECT          "
		   "              VERDICT   REASON\n"
		   "2026-11-25T03:00:00Z      nulld             agent.start       web             "
		   "              allowed   started by uid 0\n"
		   "2026-11-25T03:00:02Z      web               fs.write          /etc/passwd     "
		   "              denied    not granted\n",
		   "");
	server_stop();
	server_start();
	json_array_clear(F.requests);
	r.data = NULL;
	run_ctl(&r, ARGS("audit", "--follow", "--json"), tick_audit);
	assert_request("audit.query", "{\"follow\":true}");
	assert_run(&r, 0, REC1 "\n" REC3 "\n", "");

	end_deferred();
	r.data = NULL;
	run_ctl(&r, ARGS("audit", "--follow"), tick_audit_end);
	assert_run(&r, 1,
		   "TIME                      ACTOR             ACTION            OBJECT          "
		   "              VERDICT   REASON\n",
		   "nullctl: nulld ended the stream\n");
}

static void
test_audit_verify(void **state)
{
	struct run r;
	reply_text("audit.verify",
		   "{\"ok\":true,\"records\":1234,\"first_bad\":null,\"reason\":null}");
	run_ctl(&r, ARGS("audit", "verify"), NULL);
	assert_request("audit.verify", "{}");
	assert_run(&r, 0, "audit log OK: 1234 records\n", "");

	reply_text("audit.verify", "{\"ok\":false,\"records\":1234,\"first_bad\":17,\"reason\":"
				   "\"hash mismatch\\u001b[8m\"}");
	run_ctl(&r, ARGS("audit", "verify"), NULL);
	assert_run(&r, 1, "audit log BROKEN at record 17: hash mismatch\\x1b[8m\n", "");

	run_ctl(&r, ARGS("--json", "audit", "verify"), NULL);
	assert_run(&r, 1,
		   "{\"ok\":false,\"records\":1234,\"first_bad\":17,\"reason\":\"hash "
		   "mismatch\\u001B[8m\"}\n",
		   "");
}

/* ---- service, shutdown ---- */

static void
test_service_restart(void **state)
{
	struct run r;
	reply_text("service.restart", "{\"name\":\"egress\",\"state\":\"starting\",\"pid\":77,"
				      "\"since_ms\":0,\"failures\":0,\"restarts\":4,"
				      "\"last_exit\":\"exit 1\"}");
	run_ctl(&r, ARGS("service", "restart", "egress"), NULL);
	assert_request("service.restart", "{\"name\":\"egress\"}");
	assert_run(&r, 0, "restarted service egress (pid 77)\n", "");
}

static void
test_shutdown(void **state)
{
	struct run r;
	reply_text("shutdown", "{}");
	run_ctl(&r, ARGS("shutdown"), NULL);
	assert_request("shutdown", "{}");
	assert_run(&r, 0, "nulld is shutting down\n", "");
	run_ctl(&r, ARGS("shutdown", "--json"), NULL);
	assert_run(&r, 0, "{}\n", "");
}

/* ---- errors ---- */

static void
test_error_reply(void **state)
{
	struct run r;
	/* The message is printed; what could drive the terminal is not (lib/ipc turns C0/C1
	 * into '?', nullctl escapes the rest: here a bidi override). */
	reply_error("agent.stop", -32000, "no agent named \"\x1b[2J\xe2\x80\xae\"");
	run_ctl(&r, ARGS("agent", "stop", "x"), NULL);
	assert_run(&r, 1, "", "nullctl: no agent named \"?[2J\\u{202e}\"\n");
	run_ctl(&r, ARGS("--json", "agent", "stop", "x"), NULL);
	assert_run(&r, 1, "", "nullctl: no agent named \"?[2J\\u{202e}\"\n");

	reply_error("status", NB_IPC_INVALID_PARAMS, "status: unknown parameter \"x\"");
	run_ctl(&r, ARGS("status"), NULL);
	assert_run(&r, 1, "", "nullctl: status: unknown parameter \"x\"\n");
}

static void
test_unknown_method(void **state)
{
	struct run r;
	struct nb_err e = { 0 };
	/* A nulld without audit.verify (an older one). */
	nb_ipc_server_free(F.srv);
	F.srv = nb_ipc_server_new(NULL, &e);
	assert_int_equal(nb_ipc_server_listen(F.srv, sock_path, 0600, (gid_t)-1, NULL, &e), 0);
	run_ctl(&r, ARGS("audit", "verify"), NULL);
	assert_run(&r, 1, "", NULL);
	assert_non_null(strstr(r.err, "nullctl: nulld does not know 'audit.verify'"));
}

static void
test_timeout(void **state)
{
	struct run r;
	reply_defer("status");
	run_ctl(&r, ARGS("--timeout", "1", "status"), NULL);
	assert_run(&r, 1, "",
		   "nullctl: no reply from nulld to 'status' within 1 s (see --timeout)\n");
}

static void
test_not_running(void **state)
{
	struct run r;
	char sock[300], dir[300], want[1024];
	snprintf(sock, sizeof(sock), "%s/none.sock", tmpdir);
	run_argv(&r, ARGS("--socket", sock, "status"), NULL, NULL);
	snprintf(want, sizeof(want),
		 "nullctl: nulld is not running (no socket at %s); start it with: nulld "
		 "--state-dir /var/lib/nullbox --socket %s\n",
		 sock, sock);
	assert_run(&r, 1, "", want);

	snprintf(dir, sizeof(dir), "%s/state", tmpdir);
	run_argv(&r, ARGS("agent", "list", "--state-dir", dir), NULL, NULL);
	snprintf(want, sizeof(want),
		 "nullctl: nulld is not running (no socket at %s/nulld.sock); start it with: "
		 "nulld --state-dir %s\n",
		 dir, dir);
	assert_run(&r, 1, "", want);

	/* A socket file nothing listens on (nulld died without cleaning up). */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	assert_true(strlen(sock) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	run_argv(&r, ARGS("--socket", sock, "--json", "status"), NULL, NULL);
	snprintf(want, sizeof(want),
		 "nullctl: nulld is not running (nothing listens on %s); start it with: nulld "
		 "--state-dir /var/lib/nullbox --socket %s\n",
		 sock, sock);
	assert_run(&r, 1, "", want);
	unlink(sock);

	/* The default socket for the default state dir is nulld's: no --socket in the hint. */
	char env[400];
	snprintf(env, sizeof(env), "NULLBOX_SOCKET=%s", sock);
	run_argv(&r, ARGS("status"), (const char *const[]){ env, NULL }, NULL);
	assert_run(&r, 1, "", NULL);
	assert_non_null(strstr(r.err, "nulld is not running (no socket at "));
}

static void
test_usage_errors(void **state)
{
	const struct {
		const char *const *argv;
		const char *msg, *usage;
	} cases[] = {
		{ ARGS("frob"), "nullctl: unknown command 'frob'\n",
		  "Usage: nullctl [OPTIONS] COMMAND" },
		{ ARGS("--frob", "status"), "nullctl: unknown option '--frob'\n",
		  "Usage: nullctl" },
		{ ARGS("status", "--frob"), "nullctl: status: unknown option '--frob'\n",
		  "Usage: nullctl status\n" },
		{ ARGS("status", "extra"), "nullctl: status: unexpected argument 'extra'\n",
		  "Usage: nullctl status\n" },
		{ ARGS("agent"), "nullctl: agent: missing command\n",
		  "Usage: nullctl agent start DIR|AGENT.toml [--name N]\n       nullctl agent stop" },
		{ ARGS("agent", "frob"), "nullctl: agent: unknown command 'frob'\n",
		  "Usage: nullctl agent start" },
		{ ARGS("agent", "stop"), "nullctl: agent stop: missing argument NAME\n",
		  "Usage: nullctl agent stop NAME\nTry `nullctl agent stop --help` for more.\n" },
		{ ARGS("agent", "start"), "nullctl: agent start: missing argument DIR|AGENT.toml\n",
		  "Usage: nullctl agent start DIR|AGENT.toml [--name N]\n" },
		{ ARGS("agent", "start", "x", "--name"),
		  "nullctl: agent start: --name needs a value\n", "Usage: nullctl agent start" },
		{ ARGS("agent", "stop", "a", "b"), "nullctl: agent stop: unexpected argument 'b'\n",
		  "Usage: nullctl agent stop NAME\n" },
		{ ARGS("agent", "stop", "--follow", "a"),
		  "nullctl: agent stop: unknown option "
		  "'--follow'\n",
		  "Usage: nullctl agent stop NAME\n" },
		{ ARGS("agent", "logs", "a", "--lines", "-1"),
		  "nullctl: agent logs: --lines: '-1' is not a count\n",
		  "Usage: nullctl agent logs" },
		{ ARGS("agent", "logs", "a", "--follow=yes"),
		  "nullctl: agent logs: --follow takes no value\n", "Usage: nullctl agent logs" },
		{ ARGS("audit", "--verdict", "maybe"),
		  "nullctl: audit: --verdict must be allowed, denied or deferred, not 'maybe'\n",
		  "Usage: nullctl audit [--agent A]" },
		{ ARGS("audit", "--limit", "ten"),
		  "nullctl: audit: --limit: 'ten' is not a count\n",
		  "Usage: nullctl audit [--agent A]" },
		{ ARGS("audit", "verify", "--agent", "x"),
		  "nullctl: audit verify takes no --agent, --verdict, --limit or --follow\n",
		  "Usage: nullctl audit verify\n" },
		{ ARGS("audit", "frob"), "nullctl: audit: unexpected argument 'frob'\n",
		  "Usage: nullctl audit [--agent A]" },
		{ ARGS("--timeout", "soon", "status"),
		  "nullctl: --timeout: 'soon' is not a number of seconds\n", "Usage: nullctl" },
		{ ARGS("status", "--socket"), "nullctl: --socket needs a value\n",
		  "Usage: nullctl status\n" },
		{ ARGS("service", "restart"), "nullctl: service restart: missing argument NAME\n",
		  "Usage: nullctl service restart NAME\n" },
		{ ARGS("agent", "stop", "\x1b[2J"), NULL, NULL },
		{ ARGS("help", "frob"), "nullctl: help: no command 'frob'\n", "Usage: nullctl" },
		{ ARGS(""), "nullctl: unknown command ''\n", "Usage: nullctl" },
	};
	for (size_t i = 0; i < NB_ARRAY_SIZE(cases); i++) {
		struct run r;
		if (!cases[i].msg) {
			/* Not a usage error: the argument goes to nulld as it is. */
			reply_text("agent.stop", "{\"name\":\"\\u001b[2J\",\"state\":\"down\"}");
			run_ctl(&r, cases[i].argv, NULL);
			assert_run(&r, 0, "stopped \\x1b[2J\n", "");
			continue;
		}
		run_argv(&r, cases[i].argv, NULL, NULL);
		if (r.status != 2 || strncmp(r.err, cases[i].msg, strlen(cases[i].msg)) != 0 ||
		    !strstr(r.err, cases[i].usage) || r.out_len != 0)
			fail_msg("case %zu (%s ...): exit %d, stdout '%s', stderr:\n%s", i,
				 cases[i].argv[1], r.status, r.out, r.err);
	}
	assert_int_equal(json_array_size(F.requests), 1);
	(void)state;
	/* Nothing on the missing command: the usage goes to stderr, exit 2. */
	struct run r;
	run_argv(&r, ARGS("--json"), NULL, NULL);
	assert_run(&r, 2, "", NULL);
	assert_non_null(strstr(r.err, "nullctl: missing command\n"));
}

/* ---- help and the man page ---- */

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("%s: %s", path, strerror(errno));
	static char buf[262144];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* The man page as plain text: "\-" is "-", font changes and "\&" go. */
static char *
man_text(void)
{
	char *s = slurp(man_path);
	char *o = s;
	for (char *p = s; *p;) {
		if (p[0] == '\\' && p[1] == '-') {
			*o++ = '-';
			p += 2;
		} else if (p[0] == '\\' && p[1] == 'f' && p[2]) {
			p += 3;
		} else if (p[0] == '\\' && p[1] == '&') {
			p += 2;
		} else if (p[0] == '\\' && p[1] == 'e') {
			*o++ = '\\';
			p += 2;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return s;
}

static void
test_help(void **state)
{
	static const char *const cmds[][3] = {
		{ "status" },	       { "agent", "start" },
		{ "agent", "stop" },   { "agent", "restart" },
		{ "agent", "pause" },  { "agent", "resume" },
		{ "agent", "status" }, { "agent", "list" },
		{ "agent", "logs" },   { "audit" },
		{ "audit", "verify" }, { "service", "restart" },
		{ "shutdown" },
	};
	static char helps[NB_ARRAY_SIZE(cmds)][8192];
	struct run r;
	run_argv(&r, ARGS("--help"), NULL, NULL);
	assert_run(&r, 0, NULL, "");
	assert_true(strncmp(r.out, "Usage: nullctl [OPTIONS] COMMAND", 32) == 0);
	static char main_help[16384];
	assert_true(r.out_len < sizeof(main_help));
	memcpy(main_help, r.out, r.out_len + 1);
	run_argv(&r, ARGS("help"), NULL, NULL);
	assert_run(&r, 0, main_help, "");

	const char *man = man_text();
	for (size_t i = 0; i < NB_ARRAY_SIZE(cmds); i++) {
		char usage[64];
		snprintf(usage, sizeof(usage), "Usage: nullctl %s%s%s", cmds[i][0],
			 cmds[i][1] ? " " : "", cmds[i][1] ? cmds[i][1] : "");
		if (cmds[i][1])
			run_argv(&r, ARGS(cmds[i][0], cmds[i][1], "--help"), NULL, NULL);
		else
			run_argv(&r, ARGS(cmds[i][0], "-h"), NULL, NULL);
		assert_run(&r, 0, NULL, "");
		if (strncmp(r.out, usage, strlen(usage)) != 0)
			fail_msg("%s --help: %s", usage, r.out);
		assert_true(r.out_len < sizeof(helps[i]));
		memcpy(helps[i], r.out, r.out_len + 1);
		/* `nullctl help WORDS` says the same. */
		if (cmds[i][1])
			run_argv(&r, ARGS("help", cmds[i][0], cmds[i][1]), NULL, NULL);
		else
			run_argv(&r, ARGS("help", cmds[i][0]), NULL, NULL);
		assert_run(&r, 0, helps[i], "");
		/* The man page documents the command with the same synopsis. */
		char syn[128];
		const char *line = strchr(r.out, '\n');
		snprintf(syn, sizeof(syn), "%.*s", (int)(line - r.out - 7), r.out + 7);
		if (!strstr(man, syn))
			fail_msg("man page lacks the synopsis '%s'", syn);
	}
	/* Every option and environment variable --help names is in the man page. */
	for (const char *p = main_help; (p = strstr(p, "--")) != NULL; p += 2) {
		char opt[32];
		size_t n = strspn(p + 2, "abcdefghijklmnopqrstuvwxyz-");
		snprintf(opt, sizeof(opt), "--%.*s", (int)n, p + 2);
		if (n && !strstr(man, opt))
			fail_msg("man page lacks %s", opt);
	}
	for (size_t i = 0; i < NB_ARRAY_SIZE(cmds); i++)
		for (const char *p = helps[i]; (p = strstr(p, "--")) != NULL; p += 2) {
			char opt[32];
			size_t n = strspn(p + 2, "abcdefghijklmnopqrstuvwxyz-");
			snprintf(opt, sizeof(opt), "--%.*s", (int)n, p + 2);
			if (n && !strstr(man, opt))
				fail_msg("man page lacks %s", opt);
		}
	static const char *const also[] = { "NULLBOX_SOCKET", "EXIT STATUS", "EXAMPLES",
					    "/run/nullbox/nulld.sock", "/var/lib/nullbox" };
	for (size_t i = 0; i < NB_ARRAY_SIZE(also); i++)
		if (!strstr(man, also[i]))
			fail_msg("man page lacks %s", also[i]);

	run_argv(&r, ARGS("agent", "--help"), NULL, NULL);
	assert_run(&r, 0, NULL, "");
	assert_non_null(strstr(r.out, "Usage: nullctl agent start DIR|AGENT.toml [--name N]\n"
				      "       nullctl agent stop NAME\n"));
	run_argv(&r, ARGS("--version"), NULL, NULL);
	assert_run(&r, 0, NULL, "");
	assert_true(strncmp(r.out, "nullctl ", 8) == 0);
}

int
main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s NULLCTL MANPAGE\n", argv[0]);
		return 2;
	}
	nullctl_bin = argv[1];
	man_path = argv[2];
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(sock_path, sizeof(sock_path), "%s/nulld.sock", tmpdir);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_start_missing_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_unit_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_logs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_logs_tty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_logs_follow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_logs_follow_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_c_locale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_follow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_method, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_running, setup, teardown),
		cmocka_unit_test_setup_teardown(test_usage_errors, setup, teardown),
		cmocka_unit_test(test_help),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return failed ? 1 : 0;
}
