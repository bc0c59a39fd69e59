/*
 * fuzz_jsonrpc.c: libFuzzer target for the JSON-RPC server's framing and dispatch
 * (lib/ipc.c through nb_ipc_server_feed(): the same code a socket read runs, without a socket).
 *
 * Input: the first byte picks the read size (0: all at once), the rest is what a client sends.
 * The server has handlers that answer, fail, defer, stream notifications, and end calls from
 * inside the handler, so every reply path runs. After each input the harness checks what the
 * server wrote: whole lines only, each under NB_IPC_MAX_MSG, each a JSON-RPC 2.0 object that is
 * either a notification or exactly one of result/error with a well-formed error, error texts free
 * of control characters, no more answers than lines sent, and no call left open.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_jsonrpc: %s:%d: check failed: %s\n", __FILE__,       \
				__LINE__, #cond);                                                  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define MAX_OPEN 32
static struct nb_ipc_call *open_calls[MAX_OPEN];
static size_t nopen;

static void
forget(struct nb_ipc_call *call)
{
	for (size_t i = 0; i < nopen; i++) {
		if (open_calls[i] == call) {
			open_calls[i] = open_calls[--nopen];
			return;
		}
	}
	CHECK(!"cancel for a call that is not open");
}

static void
on_cancel(struct nb_ipc_call *call, void *data)
{
	forget(call);
	CHECK(!nb_ipc_call_alive(call));
	CHECK(nb_ipc_call_notify(call, "late", NULL) == -EPIPE);
	CHECK(nb_ipc_call_reply(call, NULL) == -EPIPE);
}

static int
m_echo(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	*result = params ? json_incref(params) : NULL;
	return NB_IPC_OK;
}

/* Exercises every typed helper, positionally or by name. */
static int
m_typed(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	static const char *const names[] = { "s", "i", "b", "o" };
	const char *s = "";
	int64_t i = 0;
	bool b = false;
	json_t *o = NULL;
	if (nb_ipc_params_check(params, names, 4, err) < 0 ||
	    nb_ipc_param_string(params, "s", 0, true, &s, err) < 0 ||
	    nb_ipc_param_int(params, "i", 1, false, &i, err) < 0 ||
	    nb_ipc_param_bool(params, "b", 2, false, &b, err) < 0 ||
	    nb_ipc_param_json(params, "o", NB_IPC_NAMED_ONLY, JSON_OBJECT, false, &o, err) < 0) {
		CHECK(err->code == NB_IPC_INVALID_PARAMS);
		return NB_IPC_ERROR;
	}
	*result = json_pack("{s:s,s:I,s:b,s:O?}", "s", s, "i", (json_int_t)i, "b", b, "o", o);
	return NB_IPC_OK;
}

/* Fails with the code and message it is given (anything, including control characters). */
static int
m_fail(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	int64_t code = 0;
	const char *msg = "";
	nb_ipc_param_int(params, "code", 0, false, &code, NULL);
	nb_ipc_param_string(params, "message", 1, false, &msg, NULL);
	err->data = params ? json_incref(params) : NULL;
	return nb_ipc_error_set(err, (int)code, "%s", msg);
}

/* Returns a string of n bytes: over the limit, the reply must become a -32603 error. */
static int
m_big(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	int64_t n = 0;
	if (nb_ipc_param_int(params, "n", 0, true, &n, err) < 0)
		return NB_IPC_ERROR;
	if (n < 0 || n > 2 * NB_IPC_MAX_MSG)
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS, "n out of range");
	char *s = malloc((size_t)n + 1);
	if (!s)
		return NB_IPC_ERROR;
	memset(s, 'b', (size_t)n);
	s[n] = '\0';
	*result = json_string(s);
	free(s);
	return NB_IPC_OK;
}

/* Defers; "emit" notifies every open call, "end" ends them all. */
static int
m_follow(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	if (nopen == MAX_OPEN)
		return nb_ipc_error_set(err, -32050, "too many open calls");
	open_calls[nopen++] = call;
	nb_ipc_call_on_cancel(call, on_cancel, NULL);
	return NB_IPC_DEFER;
}

static int
m_emit(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	for (size_t i = 0; i < nopen; i++)
		nb_ipc_call_notify(open_calls[i], "log", params ? json_incref(params) : NULL);
	*result = json_integer((json_int_t)nopen);
	return NB_IPC_OK;
}

static int
m_end(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	int64_t code = 0;
	nb_ipc_param_int(params, "code", 0, false, &code, NULL);
	while (nopen > 0) {
		struct nb_ipc_call *c = open_calls[--nopen];
		if (code)
			nb_ipc_call_reply_error(c, (int)code, NULL, "ended with %d", (int)code);
		else
			nb_ipc_call_reply(c, params ? json_incref(params) : NULL);
	}
	return NB_IPC_OK;
}

/* Notifies n times (n <= 64), then ends the call from inside the handler. */
static int
m_stream(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	int64_t n = 0;
	nb_ipc_param_int(params, "n", 0, false, &n, NULL);
	for (int64_t i = 0; i < n && i < 64; i++)
		nb_ipc_call_notify(call, "tick", json_integer((json_int_t)i));
	nb_ipc_call_reply(call, json_true());
	*result = json_string("ignored: the call was already ended");
	return NB_IPC_OK;
}

static struct nb_ipc_server *
server(void)
{
	static struct nb_ipc_server *s;
	if (s)
		return s;
	struct nb_err e = { 0 };
	s = nb_ipc_server_new(NULL, &e);
	CHECK(s);
	static const struct {
		const char *name;
		nb_ipc_handler_fn fn;
	} table[] = {
		{ "echo", m_echo }, { "typed", m_typed },   { "fail", m_fail },
		{ "big", m_big },   { "follow", m_follow }, { "emit", m_emit },
		{ "end", m_end },   { "stream", m_stream },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		CHECK(nb_ipc_server_add_method(s, table[i].name, table[i].fn, NULL, &e) == 0);
	return s;
}

static void
check_text(const char *s)
{
	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		CHECK(*c >= 0x20 && *c != 0x7F && !(c[0] == 0xC2 && c[1] >= 0x80 && c[1] <= 0x9F));
}

/* Checks one line the server wrote; returns 1 for a response, 0 for a notification. */
static int
check_line(const char *line, size_t len)
{
	CHECK(len + 1 <= NB_IPC_MAX_MSG);
	json_error_t jerr;
	json_t *m = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	CHECK(json_is_object(m));
	CHECK(json_is_string(json_object_get(m, "jsonrpc")));
	CHECK(strcmp(json_string_value(json_object_get(m, "jsonrpc")), "2.0") == 0);
	json_t *id = json_object_get(m, "id");
	json_t *method = json_object_get(m, "method");
	int response;
	if (method) {
		CHECK(!id && json_is_string(method));
		CHECK(!json_object_get(m, "result") && !json_object_get(m, "error"));
		response = 0;
	} else {
		CHECK(json_is_string(id) || json_is_integer(id) || json_is_null(id));
		json_t *result = json_object_get(m, "result");
		json_t *error = json_object_get(m, "error");
		CHECK((result != NULL) != (error != NULL));
		CHECK(!result || !json_is_null(id));
		if (error) {
			CHECK(json_is_integer(json_object_get(error, "code")));
			json_t *msg = json_object_get(error, "message");
			CHECK(json_is_string(msg));
			check_text(json_string_value(msg));
			CHECK(json_string_length(msg) < 256);
		}
		response = 1;
	}
	json_decref(m);
	return response;
}

/* libFuzzer's entry point: feeds @data to the server; aborts if a promise is broken. Returns 0. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	struct nb_ipc_server *s = server();
	size_t chunk = data[0];
	data++;
	size--;
	struct nb_ipc_peer peer = { .pid = 4242, .uid = 1000, .gid = 1000 };
	char *out = NULL;
	size_t len = 0;
	int r = nb_ipc_server_feed(s, &peer, data, size, chunk, &out, &len);
	CHECK(r == 0 || r == 1 || r == -ENOMEM);
	/* The peer hung up: every call it left open was cancelled. */
	CHECK(nopen == 0);
	if (r < 0) {
		free(out);
		return 0;
	}
	CHECK(out && strlen(out) == len);
	CHECK(len == 0 || out[len - 1] == '\n');
	size_t lines_in = 0;
	for (size_t i = 0; i < size; i++)
		lines_in += data[i] == '\n';
	size_t responses = 0;
	for (size_t start = 0; start < len;) {
		const char *nl = memchr(out + start, '\n', len - start);
		CHECK(nl);
		size_t end = (size_t)(nl - out);
		responses += (size_t)check_line(out + start, end - start);
		start = end + 1;
	}
	/* At most one answer per line, plus the one for an oversized message. */
	CHECK(responses <= lines_in + (r == 1));
	free(out);
	struct nb_ipc_stats st;
	nb_ipc_server_stats(s, &st);
	CHECK(st.clients == 0);
	return 0;
}
