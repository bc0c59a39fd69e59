#pragma once
/*
 * JSON-RPC 2.0 over AF_UNIX stream sockets: the wire between nullctl, nulld and the services.
 *
 * Wire format
 *   One JSON object per line: a message is compact JSON (jansson escapes every control character
 *   inside strings, so a message never holds a raw newline) followed by '\n'. A message is at most
 *   NB_IPC_MAX_MSG bytes including the newline, in both directions. Lines holding only blanks
 *   (' ', '\t', '\r') are ignored. Batches (a JSON array) are refused with -32600: nothing in
 *   NullBox needs them and they multiply the work one line can ask for.
 *   Requests are strict: "jsonrpc" must be "2.0", "id" a string or an integer (or absent: a
 *   notification, which never gets a reply), "method" a string, "params" an object or an array
 *   (or absent), and no other member. Duplicate keys are a parse error, so two readers can never
 *   disagree on what a message says.
 *
 * Server
 *   Single-threaded and non-blocking. nb_ipc_server_new() makes a server with its own epoll fd;
 *   nb_ipc_server_listen() adds a listening socket; nb_ipc_server_add_method() registers handlers.
 *   To embed it in a bigger epoll loop (nulld: signalfd, pidfds, timerfds), add
 *   nb_ipc_server_fd() to the outer epoll for EPOLLIN and call nb_ipc_server_dispatch(s, 0)
 *   whenever it is readable. The server's own timers (slow clients, idle clients) live on a
 *   timerfd inside that epoll fd, so the one fd is all the outer loop has to watch.
 *   Standalone: `for (;;) nb_ipc_server_dispatch(s, -1);`.
 *   Every nb_ipc_* server function must be called from the thread that runs the dispatch.
 *
 * Client
 *   A small blocking client for nullctl and the services: nb_ipc_connect(), nb_ipc_call(),
 *   nb_ipc_notify(), and nb_ipc_send_request() + nb_ipc_read_message() for streams.
 *
 * Streams (nullctl logs --follow)
 *   The handler returns NB_IPC_DEFER and keeps the call; it sends any number of notifications
 *   with nb_ipc_call_notify() and ends the stream with nb_ipc_call_reply() (or _reply_error()).
 *   The client sees notification lines, then the response that carries its id.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

/* Largest message, in bytes, including its newline. */
#define NB_IPC_MAX_MSG 65536

#define NB_IPC_DEFAULT_MAX_CLIENTS 256
#define NB_IPC_DEFAULT_MAX_QUEUE (1024 * 1024)
#define NB_IPC_DEFAULT_STALL_TIMEOUT_MS 30000

/* JSON-RPC 2.0 error codes, and ours in the range the spec leaves to implementations. */
#define NB_IPC_PARSE_ERROR -32700
#define NB_IPC_INVALID_REQUEST -32600
#define NB_IPC_METHOD_NOT_FOUND -32601
#define NB_IPC_INVALID_PARAMS -32602
#define NB_IPC_INTERNAL_ERROR -32603
#define NB_IPC_PEER_DENIED -32001 /* allow_peer refused this peer; the connection is closed */
#define NB_IPC_SERVER_BUSY -32002 /* max_clients reached; the connection is closed */
#define NB_IPC_TIMED_OUT -32003	  /* half a message sat for stall_timeout_ms; closed */

/* What a handler returns. */
#define NB_IPC_OK 0	/* *result is the reply (NULL: null) */
#define NB_IPC_ERROR -1 /* err is the reply (any negative value means this) */
#define NB_IPC_DEFER 1	/* the handler kept the call and will finish it later */

/* Who is on the other end, as the kernel saw it at connect() (SO_PEERCRED). */
struct nb_ipc_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

/* A JSON-RPC error, filled by a handler (or parsed by the client). */
struct nb_ipc_error {
	int code;	   /* a JSON-RPC code; 0 in a handler means NB_IPC_INTERNAL_ERROR */
	char message[256]; /* one line for a person; empty: the standard text for the code */
	json_t *data;	   /* optional; a reference the server takes over when it replies */
};

struct nb_ipc_server;
struct nb_ipc_call;
struct nb_ipc_client;

/*
 * A method handler. @params is the request's "params" (an object, an array, or NULL when absent),
 * borrowed until the handler returns (json_incref() it to keep it). Return NB_IPC_OK with *result
 * set (the server takes the reference; NULL means a null result), NB_IPC_ERROR with @err filled
 * (nb_ipc_error_set(); err->data is taken too), or NB_IPC_DEFER, after which the handler owns
 * @call and must end it exactly once with nb_ipc_call_reply() or nb_ipc_call_reply_error().
 * A handler may also end its call before returning (a short stream): whatever it returns is then
 * ignored. The peer's credentials are in nb_ipc_call_peer(); deciding what that peer may do is
 * the handler's job. A handler must not call nb_ipc_server_free() or nb_ipc_server_dispatch().
 */
typedef int (*nb_ipc_handler_fn)(struct nb_ipc_call *call, json_t *params, json_t **result,
				 struct nb_ipc_error *err);

struct nb_ipc_server_opts {
	/* Connections at once; 0: NB_IPC_DEFAULT_MAX_CLIENTS. */
	unsigned max_clients;
	/* Bytes of output queued for one client beyond what the kernel holds; 0: 1 MiB. */
	size_t max_queue;
	/* A half-received message, or queued output the client does not read, this old: closed.
	 * 0: NB_IPC_DEFAULT_STALL_TIMEOUT_MS. */
	int stall_timeout_ms;
	/* A connection with nothing in flight for this long is closed; 0: never. */
	int idle_timeout_ms;
	/* Called at accept with the peer's credentials and the listener's tag; false refuses the
	 * connection (NB_IPC_PEER_DENIED, then close). NULL: every peer that can open the socket.
	 */
	bool (*allow_peer)(const struct nb_ipc_peer *peer, void *tag, void *data);
	void *data; /* for allow_peer */
};

/* Counters, for status output and tests. */
struct nb_ipc_stats {
	unsigned clients;    /* open now */
	uint64_t accepted;   /* connections accepted and kept */
	uint64_t refused;    /* refused at accept: allow_peer, or full with nothing to evict */
	uint64_t evicted;    /* idle connections closed to make room for a new one */
	uint64_t oversize;   /* closed: a message over NB_IPC_MAX_MSG */
	uint64_t timed_out;  /* closed: stall or idle timeout */
	uint64_t overflowed; /* closed: output queue over max_queue */
	uint64_t messages;   /* lines received */
};

/* ---- server ---- */

/*
 * Makes a server with no listening socket yet (@opts may be NULL: defaults). Returns NULL with @e
 * set if the epoll or timer fd cannot be made. Free with nb_ipc_server_free().
 */
struct nb_ipc_server *nb_ipc_server_new(const struct nb_ipc_server_opts *opts, struct nb_err *e);

/*
 * Listens on the AF_UNIX socket @path. @mode is the socket file's mode: a subset of 0660 (EINVAL
 * otherwise); @group, if not (gid_t)-1, becomes the socket's group so that a configured group
 * can connect. The parent directory is made 0700 if missing (its own parent must exist); an
 * existing one must be ours, not a symlink and not group- or world-writable (EPERM otherwise).
 * An existing socket file is replaced only when nothing listens on it (EADDRINUSE otherwise,
 * and it is left alone); any other kind of file there is refused (EEXIST). @tag is handed to
 * allow_peer and to handlers (nb_ipc_call_tag()), so a server with one socket per agent knows
 * which socket a call came in on. Several listeners per server are fine.
 * Returns 0, or a negative errno with @e set.
 */
int nb_ipc_server_listen(struct nb_ipc_server *s, const char *path, mode_t mode, gid_t group,
			 void *tag, struct nb_err *e);

/*
 * Stops listening on @path (as given to nb_ipc_server_listen()) and removes the socket file if it
 * is still ours. Connections already accepted stay. Returns 0, or -ENOENT if no such listener.
 */
int nb_ipc_server_unlisten(struct nb_ipc_server *s, const char *path);

/*
 * Registers @fn for @method; @data is for the handler (nb_ipc_call_data()). The name is copied.
 * Returns 0, -EEXIST if the method is already there, -EINVAL for an empty name, -ENOMEM.
 */
int nb_ipc_server_add_method(struct nb_ipc_server *s, const char *method, nb_ipc_handler_fn fn,
			     void *data, struct nb_err *e);

/* The fd to watch for EPOLLIN in an outer loop (the server's epoll fd). Owned by the server. */
int nb_ipc_server_fd(const struct nb_ipc_server *s);

/*
 * Waits up to @timeout_ms (0: just look, -1: forever) for events and handles all that are ready:
 * accepts, reads and dispatches complete messages, writes queued output, closes slow and idle
 * clients. Returns the number of events handled (0 on EINTR or timeout), or a negative errno if
 * epoll itself fails.
 */
int nb_ipc_server_dispatch(struct nb_ipc_server *s, int timeout_ms);

/* Fills @out with the server's counters. */
void nb_ipc_server_stats(const struct nb_ipc_server *s, struct nb_ipc_stats *out);

/*
 * Closes every listener (removing socket files that are still ours) and connection, tells the
 * owners of deferred calls through their cancel callbacks, and frees @s. Deferred calls stay
 * valid until their owner ends them (the reply then fails with -EPIPE). NULL is fine.
 */
void nb_ipc_server_free(struct nb_ipc_server *s);

/*
 * Runs @len bytes through the server's framing and dispatch exactly as if they had arrived on a
 * new connection from @peer, in reads of at most @chunk bytes (0: one read), after which the peer
 * hangs up. No socket is involved: this is the path the fuzzer and the framing tests drive.
 * *out (malloc'd, NUL-terminated, may be NULL) gets every byte the server would have written and
 * *out_len its length. Returns 0, 1 if the server itself closed the connection (message too
 * large, output queue full), or -ENOMEM.
 */
int nb_ipc_server_feed(struct nb_ipc_server *s, const struct nb_ipc_peer *peer, const void *data,
		       size_t len, size_t chunk, char **out, size_t *out_len);

/* ---- calls, for handlers ---- */

/* The caller's credentials, captured at accept. Valid as long as @call. */
const struct nb_ipc_peer *nb_ipc_call_peer(const struct nb_ipc_call *call);
/* The method name. Valid as long as @call. */
const char *nb_ipc_call_method(const struct nb_ipc_call *call);
/* The @data given to nb_ipc_server_add_method(). */
void *nb_ipc_call_data(const struct nb_ipc_call *call);
/* The @tag of the listener the connection came in on (NULL for nb_ipc_server_feed()). */
void *nb_ipc_call_tag(const struct nb_ipc_call *call);
/* True for a JSON-RPC notification (no id): whatever the handler answers is not sent. */
bool nb_ipc_call_is_notification(const struct nb_ipc_call *call);
/* False once the client has gone (or been dropped): sends will fail with -EPIPE. */
bool nb_ipc_call_alive(const struct nb_ipc_call *call);

/*
 * For a deferred call: @fn(call, data) runs (from inside nb_ipc_server_dispatch() or
 * nb_ipc_server_free()) when the client goes away before the call is ended. The owner still ends
 * the call, in @fn or later; its reply then returns -EPIPE.
 */
void nb_ipc_call_on_cancel(struct nb_ipc_call *call, void (*fn)(struct nb_ipc_call *, void *),
			   void *data);

/*
 * Sends the notification {"method": @method, "params": @params} to @call's client (before its
 * final reply). Takes the reference to @params (NULL: no params). Returns 0; -EPIPE if the client
 * is gone; -EMSGSIZE if the message is over NB_IPC_MAX_MSG (not sent, connection kept); -ENOBUFS
 * if the client's output queue went over max_queue (the client is dropped); -ENOMEM.
 */
int nb_ipc_call_notify(struct nb_ipc_call *call, const char *method, json_t *params);

/*
 * Ends a deferred @call with @result (reference taken; NULL: null) and frees @call. A result whose
 * message would exceed NB_IPC_MAX_MSG is replaced by a -32603 error. Returns 0, or -EPIPE if the
 * client is gone (the call is freed all the same), -ENOBUFS/-ENOMEM as nb_ipc_call_notify().
 */
int nb_ipc_call_reply(struct nb_ipc_call *call, json_t *result);

/* As nb_ipc_call_reply(), with a JSON-RPC error: @code, the formatted message, @data (taken). */
int nb_ipc_call_reply_error(struct nb_ipc_call *call, int code, json_t *data, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Fills @err with @code and the formatted message; returns NB_IPC_ERROR, so a handler can write
 * `return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS, "...")`.
 */
int nb_ipc_error_set(struct nb_ipc_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- typed params, for handlers ----
 *
 * Each looks the parameter up by @name when params is an object, or at position @pos when it is
 * an array (NB_IPC_NAMED_ONLY: an array is refused). Return 1 when found and of the right type
 * (*out set; strings and JSON values are borrowed from params), 0 when absent and !@required
 * (*out untouched), or NB_IPC_ERROR with @err set to -32602 and a message naming the field.
 */
#define NB_IPC_NAMED_ONLY ((size_t)-1)

int nb_ipc_param_string(const json_t *params, const char *name, size_t pos, bool required,
			const char **out, struct nb_ipc_error *err);
/* Integers only: 1.0 and "1" are refused. */
int nb_ipc_param_int(const json_t *params, const char *name, size_t pos, bool required,
		     int64_t *out, struct nb_ipc_error *err);
int nb_ipc_param_bool(const json_t *params, const char *name, size_t pos, bool required, bool *out,
		      struct nb_ipc_error *err);
/* Any JSON type @type (JSON_OBJECT, JSON_ARRAY, ...; JSON_TRUE means either boolean). */
int nb_ipc_param_json(const json_t *params, const char *name, size_t pos, json_type type,
		      bool required, json_t **out, struct nb_ipc_error *err);

/*
 * Refuses what a method does not take: with object params, any key not among @names[0..n); with
 * array params, more than @n items. NULL params pass. Returns 0 or NB_IPC_ERROR (-32602).
 */
int nb_ipc_params_check(const json_t *params, const char *const *names, size_t n,
			struct nb_ipc_error *err);

/* ---- client ---- */

/*
 * Connects to the server at @path, waiting up to @timeout_ms (-1: forever) while its backlog is
 * full. ENOENT and ECONNREFUSED mean nothing is listening: @e then says "... is not running" and
 * keeps that errno, so the caller can add how to start the daemon. Returns a client (free with
 * nb_ipc_client_free()) or NULL with @e set.
 */
struct nb_ipc_client *nb_ipc_connect(const char *path, int timeout_ms, struct nb_err *e);

/* Closes the connection and frees @c. NULL is fine. */
void nb_ipc_client_free(struct nb_ipc_client *c);

/* The socket, e.g. to poll on next to other fds while streaming. Owned by @c. */
int nb_ipc_client_fd(const struct nb_ipc_client *c);

/*
 * Notifications that arrive while nb_ipc_call() waits for its reply go to @fn (method, params or
 * NULL, @data), borrowed for the duration of the callback. Without a callback they are dropped.
 */
void nb_ipc_client_on_notify(struct nb_ipc_client *c,
			     void (*fn)(const char *method, json_t *params, void *data),
			     void *data);

/*
 * Calls @method with @params (borrowed: the caller keeps its reference; NULL: no params) and
 * waits up to @timeout_ms (-1: forever) for the reply, passing notifications on (see above).
 * Returns 0 with *result set to a new reference (null when the result is null; @result may be
 * NULL to ignore it). On a JSON-RPC error reply returns the negative errno nb_ipc_errno()
 * gives for its code, with @e holding the server's message; nb_ipc_client_last_error() has the
 * code, message and data. Transport errors: -ETIMEDOUT, -ECONNRESET (the server closed the
 * connection), -EMSGSIZE, -EPROTO (not JSON-RPC), -EINTR (a signal came; the call may still
 * complete), other errnos from the socket. After an error other than a JSON-RPC reply, the
 * connection should be closed.
 */
int nb_ipc_call(struct nb_ipc_client *c, const char *method, const json_t *params, int timeout_ms,
		json_t **result, struct nb_err *e);

/* Sends a notification (no reply will come). @params borrowed. Returns 0 or a negative errno. */
int nb_ipc_notify(struct nb_ipc_client *c, const char *method, const json_t *params, int timeout_ms,
		  struct nb_err *e);

/*
 * Sends a request without waiting; *id (may be NULL) gets the id its response will carry.
 * For streams: follow with nb_ipc_read_message() until the response with that id arrives.
 * Returns 0 or a negative errno.
 */
int nb_ipc_send_request(struct nb_ipc_client *c, const char *method, const json_t *params,
			int timeout_ms, int64_t *id, struct nb_err *e);

/*
 * Reads the next message, waiting up to @timeout_ms (-1: forever): *msg gets a new reference to
 * a JSON object with "jsonrpc": "2.0" (a notification has "method", a response "id" and "result"
 * or "error"). Returns 0 or a negative errno as nb_ipc_call() (-EPROTO for a line that is not
 * such an object).
 */
int nb_ipc_read_message(struct nb_ipc_client *c, int timeout_ms, json_t **msg, struct nb_err *e);

/* The last JSON-RPC error reply nb_ipc_call() received (code 0 if none). Owned by @c. */
const struct nb_ipc_error *nb_ipc_client_last_error(const struct nb_ipc_client *c);

/*
 * The errno a JSON-RPC error code maps to: -32700 EBADMSG, -32600 EPROTO, -32601 ENOSYS,
 * -32602 EINVAL, -32603 EIO, NB_IPC_PEER_DENIED EACCES, NB_IPC_SERVER_BUSY EBUSY,
 * NB_IPC_TIMED_OUT ETIMEDOUT, anything else (an application's code) EREMOTEIO. Positive.
 */
int nb_ipc_errno(int rpc_code);
