/*
 * ipc.c: JSON-RPC 2.0 over AF_UNIX stream sockets (see ipc.h for the wire and the model).
 *
 * Sections:
 *   text and messages   UTF-8 cleaning of error texts; building request/response objects
 *   connections         output queue, close and reap, epoll interest
 *   dispatch            one line -> one request -> handler -> reply
 *   framing             lines out of the read buffer; the 64 KiB cap
 *   accept and listen   SO_PEERCRED, allow_peer, max_clients and eviction; the socket file
 *   timers              stalled and idle clients, on one timerfd inside the server's epoll
 *   server API          new, dispatch, feed, free
 *   calls               what handlers use: peer, notify, reply
 *   params              typed parameter helpers
 *   client              the blocking client
 *
 * Memory is bounded per connection: a read buffer of NB_IPC_MAX_MSG (allocated only while a
 * message is half-read), an output queue of at most max_queue bytes, and nothing else that grows
 * with what the peer sends. A connection that is closed becomes a zombie until the end of the
 * current dispatch, so nothing an event or a handler still points at is freed under it.
 */
#include "utf8.h"
#include "ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "json.h"
#include "log.h"

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- text and messages ---- */

/*
 * Copies @src into @dst (@size > 0 bytes) as valid UTF-8 without control characters: each invalid
 * byte or control character becomes '?', and truncation never splits a character. Error texts
 * echo what a peer sent (a method name, jansson's "near '...'"); jansson refuses invalid UTF-8,
 * and the text ends up on someone's terminal.
 */
static void
text_clean(char *dst, size_t size, const char *src)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t n = strlen(src), i = 0, o = 0;
	while (i < n) {
		uint32_t cp = 0;
		size_t k = nb_utf8_seq(s + i, n - i, &cp);
		const char *piece = src + i;
		size_t plen = k;
		if (k == 0 || cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
			piece = "?";
			plen = 1;
			k = k ? k : 1;
		}
		if (o + plen >= size)
			break;
		memcpy(dst + o, piece, plen);
		o += plen;
		i += k;
	}
	dst[o] = '\0';
}

static const char *
rpc_default_message(int code)
{
	switch (code) {
	case NB_IPC_PARSE_ERROR:
		return "Parse error";
	case NB_IPC_INVALID_REQUEST:
		return "Invalid Request";
	case NB_IPC_METHOD_NOT_FOUND:
		return "Method not found";
	case NB_IPC_INVALID_PARAMS:
		return "Invalid params";
	case NB_IPC_INTERNAL_ERROR:
		return "Internal error";
	default:
		return "error";
	}
}

/* A new {"jsonrpc": "2.0"}, or NULL. */
static json_t *
rpc_msg(void)
{
	json_t *m = json_object();
	if (m && json_object_set_new(m, "jsonrpc", json_string("2.0")) < 0) {
		json_decref(m);
		return NULL;
	}
	return m;
}

/* {"jsonrpc":"2.0","id":@id,"result":@result}; takes @result. NULL on ENOMEM. */
static json_t *
rpc_result(json_t *id, json_t *result)
{
	json_t *m = rpc_msg();
	if (!m) {
		json_decref(result);
		return NULL;
	}
	if (json_object_set_new(m, "id", id ? json_incref(id) : json_null()) < 0 ||
	    json_object_set_new(m, "result", result ? result : json_null()) < 0) {
		json_decref(m);
		return NULL;
	}
	return m;
}

/* An error response; @message is cleaned (see text_clean); takes @data. NULL on ENOMEM. */
static json_t *
rpc_error(json_t *id, int code, const char *message, json_t *data)
{
	char text[sizeof(((struct nb_ipc_error *)0)->message)];
	text_clean(text, sizeof(text), message && *message ? message : rpc_default_message(code));
	json_t *m = rpc_msg();
	json_t *err = json_object();
	if (!m || !err || json_object_set_new(err, "code", json_integer(code)) < 0 ||
	    json_object_set_new(err, "message", json_string(text)) < 0 ||
	    (data && json_object_set_new(err, "data", steal_ptr(&data)) < 0) ||
	    json_object_set_new(m, "id", id ? json_incref(id) : json_null()) < 0 ||
	    json_object_set_new(m, "error", steal_ptr(&err)) < 0) {
		json_decref(data);
		json_decref(err);
		json_decref(m);
		return NULL;
	}
	return m;
}

/* Compact JSON plus '\n' in a malloc'd buffer (*len bytes, not NUL-terminated); takes @m.
 * Returns 0, -ENOMEM, or -EMSGSIZE if the line would be over NB_IPC_MAX_MSG. */
static int
rpc_line(json_t *m, char **out, size_t *len)
{
	*out = NULL;
	if (!m)
		return -ENOMEM;
	/* Compact output has no raw newline: jansson escapes control characters in strings. */
	char *s = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	if (!s)
		return -ENOMEM;
	size_t n = strlen(s);
	if (n + 1 > NB_IPC_MAX_MSG) {
		free(s);
		return -EMSGSIZE;
	}
	s[n] = '\n'; /* over the NUL: the buffer holds n + 1 bytes */
	*out = s;
	*len = n + 1;
	return 0;
}

/* ---- connections ---- */

enum src_kind { SRC_LISTENER = 1, SRC_CONN, SRC_TIMER };

struct out_chunk {
	struct out_chunk *next;
	char *buf;
	size_t len, off;
};

struct listener {
	enum src_kind kind; /* first: epoll data points here */
	struct listener *next;
	int fd;
	char *path;
	void *tag;
	dev_t dev;
	ino_t ino;
};

struct conn {
	enum src_kind kind; /* first: epoll data points here */
	struct nb_ipc_server *srv;
	struct conn *prev, *next; /* srv->head..tail, least recently active first; or zombies */
	int fd;			  /* -1 for nb_ipc_server_feed() */
	uint32_t events;	  /* what epoll watches now */
	struct nb_ipc_peer peer;
	void *tag;
	char *rbuf; /* NB_IPC_MAX_MSG bytes while a message is half-read, else NULL */
	size_t rlen;
	int64_t rstart; /* when the half-read message began */
	struct out_chunk *wq_head, **wq_tail;
	size_t wq_bytes;
	int64_t wprogress; /* last time the client took output (or the queue became non-empty) */
	int64_t active;	   /* last complete message in */
	struct nb_ipc_call *calls; /* in a handler or deferred */
	unsigned ncalls;
	bool dead;    /* closed: a zombie until reaped */
	bool closing; /* flush the queue, then close; read nothing more */
	bool eof;     /* the peer shut down its side: close once nothing is in flight */
};

struct method {
	char *name;
	nb_ipc_handler_fn fn;
	void *data;
};

struct nb_ipc_server {
	int epfd, tfd, spare_fd;
	enum src_kind timer_kind; /* epoll data of the timerfd points here */
	unsigned max_clients;
	size_t max_queue;
	int stall_ms, idle_ms;
	bool (*allow_peer)(const struct nb_ipc_peer *, void *, void *);
	void *allow_data;
	struct listener *listeners, *dead_listeners;
	struct method *methods;
	size_t nmethods;
	struct conn *head, *tail, *zombies;
	unsigned nconns;
	int dispatching; /* > 0 while inside dispatch, feed or free: reaping happens at their end */
	int64_t armed;	 /* deadline the timerfd is set to (ms; INT64_MAX none; -1 unknown) */
	int64_t refuse_logged; /* last refusal logged: at most one line a second */
	struct nb_ipc_stats stats;
};

struct nb_ipc_call {
	struct conn *conn; /* NULL once the client is gone and reaped */
	struct nb_ipc_call *prev, *next;
	json_t *id; /* NULL for a notification */
	char *method;
	void *data, *tag;
	struct nb_ipc_peer peer;
	void (*cancel)(struct nb_ipc_call *, void *);
	void *cancel_data;
	bool in_handler, ended;
};

static void server_changed(struct nb_ipc_server *s);

static void
conn_unlink(struct conn *c)
{
	struct nb_ipc_server *s = c->srv;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		s->tail = c->prev;
	c->prev = c->next = NULL;
}

static void
conn_append(struct conn *c)
{
	struct nb_ipc_server *s = c->srv;
	c->prev = s->tail;
	c->next = NULL;
	if (s->tail)
		s->tail->next = c;
	else
		s->head = c;
	s->tail = c;
}

static void conn_kill(struct conn *c, const char *why, ...) __attribute__((format(printf, 2, 3)));

/*
 * Closes @c now (its fd leaves the epoll set first: a child forked by a handler may hold a copy
 * of the fd, and closing alone would leave it registered) and makes it a zombie, freed by
 * server_reap(). @why (NULL for an ordinary close) is logged.
 */
static void
conn_kill(struct conn *c, const char *why, ...)
{
	if (c->dead)
		return;
	struct nb_ipc_server *s = c->srv;
	if (why) {
		char msg[256];
		va_list ap;
		va_start(ap, why);
		vsnprintf(msg, sizeof(msg), why, ap);
		va_end(ap);
		log_info("ipc: client pid %d uid %u: %s; closing the connection", (int)c->peer.pid,
			 (unsigned)c->peer.uid, msg);
	}
	c->dead = true;
	if (c->fd >= 0) {
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
	conn_unlink(c);
	s->nconns--;
	c->next = s->zombies;
	s->zombies = c;
	server_changed(s);
}

static void
conn_free(struct conn *c)
{
	while (c->wq_head) {
		struct out_chunk *ch = c->wq_head;
		c->wq_head = ch->next;
		free(ch->buf);
		free(ch);
	}
	free(c->rbuf);
	free(c);
}

/* Frees zombies and closed listeners. Deferred calls of a zombie lose their connection and their
 * owners hear of it through the cancel callback, which may end the call right there. */
static void
server_reap(struct nb_ipc_server *s)
{
	while (s->zombies) {
		struct conn *c = s->zombies;
		while (c->calls) {
			struct nb_ipc_call *call = c->calls;
			c->calls = call->next;
			if (c->calls)
				c->calls->prev = NULL;
			call->prev = call->next = NULL;
			call->conn = NULL;
			c->ncalls--;
			if (call->cancel && !call->in_handler)
				call->cancel(call, call->cancel_data);
		}
		s->zombies = c->next; /* after the callbacks: they may add zombies */
		conn_free(c);
	}
	while (s->dead_listeners) {
		struct listener *l = s->dead_listeners;
		s->dead_listeners = l->next;
		free(l->path);
		free(l);
	}
}

static void
conn_update_events(struct conn *c)
{
	if (c->dead || c->fd < 0)
		return;
	uint32_t ev = 0;
	if (!c->closing && !c->eof)
		ev |= EPOLLIN;
	if (c->wq_head)
		ev |= EPOLLOUT;
	if (ev == c->events)
		return;
	struct epoll_event e = { .events = ev, .data.ptr = c };
	if (epoll_ctl(c->srv->epfd, EPOLL_CTL_MOD, c->fd, &e) < 0) {
		conn_kill(c, "epoll_ctl: %s", strerror(errno));
		return;
	}
	c->events = ev;
}

/* A peer that shut down its side is closed once its replies are out and no call is open. */
static void
conn_maybe_done(struct conn *c)
{
	if (!c->dead && c->eof && !c->wq_head && c->ncalls == 0 && c->fd >= 0)
		conn_kill(c, NULL);
}

/*
 * Writes (or queues) the line @buf of @len bytes; takes @buf. Returns 0, -EPIPE (the connection
 * is closed), -ENOBUFS (the queue went over max_queue: the client is dropped) or -ENOMEM.
 */
static int
conn_write(struct conn *c, char *buf, size_t len)
{
	struct nb_ipc_server *s = c->srv;
	if (c->dead) {
		free(buf);
		return -EPIPE;
	}
	size_t off = 0;
	if (c->fd >= 0 && !c->wq_head) {
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			free(buf);
			conn_kill(c, NULL); /* the peer is gone (EPIPE, ECONNRESET) */
			return -EPIPE;
		}
		if (n > 0)
			off = (size_t)n;
		if (off == len) {
			free(buf);
			return 0;
		}
	}
	/* Why a cap: a client that asks and never reads would otherwise make the server hold every
	 * reply in memory; past max_queue it is dropped and everyone else is unaffected. */
	if (c->wq_bytes + (len - off) > s->max_queue) {
		free(buf);
		s->stats.overflowed++;
		conn_kill(c, "more than %zu bytes of replies queued: the client does not read them",
			  s->max_queue);
		return -ENOBUFS;
	}
	struct out_chunk *ch = malloc(sizeof(*ch));
	if (!ch) {
		free(buf);
		conn_kill(c, "out of memory");
		return -ENOMEM;
	}
	*ch = (struct out_chunk){ .buf = buf, .len = len, .off = off };
	if (!c->wq_head)
		c->wprogress = now_ms();
	*c->wq_tail = ch;
	c->wq_tail = &ch->next;
	c->wq_bytes += len - off;
	conn_update_events(c);
	server_changed(s);
	return 0;
}

/* Sends the message @m (taken). Returns as conn_write(), or -EMSGSIZE (nothing sent). */
static int
conn_send(struct conn *c, json_t *m)
{
	char *line;
	size_t len;
	int r = rpc_line(m, &line, &len);
	if (r < 0)
		return r;
	return conn_write(c, line, len);
}

static void
conn_flush(struct conn *c)
{
	while (c->wq_head && !c->dead) {
		struct out_chunk *ch = c->wq_head;
		ssize_t n = send(c->fd, ch->buf + ch->off, ch->len - ch->off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_kill(c, NULL);
			return;
		}
		ch->off += (size_t)n;
		c->wq_bytes -= (size_t)n;
		c->wprogress = now_ms();
		if (ch->off == ch->len) {
			c->wq_head = ch->next;
			if (!c->wq_head)
				c->wq_tail = &c->wq_head;
			free(ch->buf);
			free(ch);
		}
	}
	if (c->dead)
		return;
	if (!c->wq_head && c->closing) {
		conn_kill(c, NULL);
		return;
	}
	conn_update_events(c);
	conn_maybe_done(c);
}

/* Reads nothing more from @c; closes it once its queued output is out. */
static void
conn_close_after_flush(struct conn *c)
{
	c->closing = true;
	c->rlen = 0;
	if (c->fd >= 0 && !c->wq_head)
		conn_kill(c, NULL);
	else
		conn_update_events(c);
}

/*
 * One best-effort line to a connection about to be closed (refused, timed out): a single
 * non-blocking send, never queued, so saying goodbye cannot itself block or grow memory.
 */
static void
fd_goodbye(int fd, int code, const char *message)
{
	char *line;
	size_t len;
	if (rpc_line(rpc_error(NULL, code, message, NULL), &line, &len) < 0)
		return;
	ssize_t n = send(fd, line, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)n;
	free(line);
}

/* ---- dispatch ---- */

static struct method *
server_find_method(struct nb_ipc_server *s, const char *name)
{
	for (size_t i = 0; i < s->nmethods; i++)
		if (strcmp(s->methods[i].name, name) == 0)
			return &s->methods[i];
	return NULL;
}

static void
call_free(struct nb_ipc_call *call)
{
	struct conn *c = call->conn;
	if (c) {
		if (call->prev)
			call->prev->next = call->next;
		else
			c->calls = call->next;
		if (call->next)
			call->next->prev = call->prev;
		c->ncalls--;
	}
	json_decref(call->id);
	free(call->method);
	free(call);
	if (c && !c->dead) {
		conn_maybe_done(c);
		server_changed(c->srv);
	}
}

/*
 * Sends the final reply of @call (@m built by the caller, taken; NULL for none) and frees the call,
 * unless a handler is still running on it: then it is freed when the handler returns.
 */
static int
call_end(struct nb_ipc_call *call, json_t *m)
{
	int r = 0;
	struct conn *c = call->conn;
	if (call->ended) {
		json_decref(m);
		return -EALREADY;
	}
	call->ended = true;
	if (!c || c->dead) {
		json_decref(m);
		r = -EPIPE;
	} else if (!call->id) {
		json_decref(m); /* a notification is never answered */
	} else {
		r = conn_send(c, m);
		if (r == -EMSGSIZE) {
			char msg[128];
			snprintf(msg, sizeof(msg), "reply too large: over %d bytes",
				 NB_IPC_MAX_MSG);
			r = conn_send(c, rpc_error(call->id, NB_IPC_INTERNAL_ERROR, msg, NULL));
		}
	}
	if (!call->in_handler)
		call_free(call);
	return r;
}

static bool
is_blank(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

/* Sends an error reply for a request that never reached a handler. */
static void conn_reject(struct conn *c, json_t *id, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
conn_reject(struct conn *c, json_t *id, int code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conn_send(c, rpc_error(id, code, msg, NULL));
}

/* Handles one complete line (without its newline): parse, validate, run the handler, reply. */
static void
conn_handle_line(struct conn *c, const char *line, size_t len)
{
	struct nb_ipc_server *s = c->srv;
	s->stats.messages++;
	if (is_blank(line, len))
		return;

	/* Duplicate keys are refused so that no two readers can disagree on what was asked. */
	json_error_t jerr;
	_cleanup_json_ json_t *req =
		json_loadb(line, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (!req) {
		conn_reject(c, NULL, NB_IPC_PARSE_ERROR, "parse error at byte %d: %s",
			    jerr.position, jerr.text);
		return;
	}
	if (json_is_array(req)) {
		conn_reject(c, NULL, NB_IPC_INVALID_REQUEST,
			    "invalid request: batches (arrays) are not supported");
		return;
	}
	if (!json_is_object(req)) {
		conn_reject(c, NULL, NB_IPC_INVALID_REQUEST,
			    "invalid request: a request must be a JSON object");
		return;
	}
	json_t *id = json_object_get(req, "id");
	if (id && !json_is_string(id) && !json_is_integer(id)) {
		conn_reject(c, NULL, NB_IPC_INVALID_REQUEST,
			    "invalid request: \"id\" must be a string or an integer");
		return;
	}
	const char *key;
	json_t *v;
	json_object_foreach(req, key, v)
	{
		if (strcmp(key, "jsonrpc") != 0 && strcmp(key, "id") != 0 &&
		    strcmp(key, "method") != 0 && strcmp(key, "params") != 0) {
			conn_reject(c, id, NB_IPC_INVALID_REQUEST,
				    "invalid request: unknown member \"%.64s\"", key);
			return;
		}
	}
	json_t *version = json_object_get(req, "jsonrpc");
	if (!json_is_string(version) || strcmp(json_string_value(version), "2.0") != 0) {
		conn_reject(c, id, NB_IPC_INVALID_REQUEST,
			    "invalid request: \"jsonrpc\" must be \"2.0\"");
		return;
	}
	json_t *jm = json_object_get(req, "method");
	if (!json_is_string(jm)) {
		conn_reject(c, id, NB_IPC_INVALID_REQUEST,
			    "invalid request: \"method\" must be a string");
		return;
	}
	json_t *params = json_object_get(req, "params");
	if (params && !json_is_object(params) && !json_is_array(params)) {
		conn_reject(c, id, NB_IPC_INVALID_REQUEST,
			    "invalid request: \"params\" must be an object or an array");
		return;
	}
	const char *name = json_string_value(jm);
	struct method *m = server_find_method(s, name);
	if (!m) {
		if (id)
			conn_reject(c, id, NB_IPC_METHOD_NOT_FOUND, "unknown method \"%.64s\"",
				    name);
		return;
	}

	struct nb_ipc_call *call = calloc(1, sizeof(*call));
	char *mname = strdup(name);
	if (!call || !mname) {
		free(call);
		free(mname);
		conn_reject(c, id, NB_IPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	*call = (struct nb_ipc_call){
		.conn = c,
		.next = c->calls,
		.id = id ? json_incref(id) : NULL,
		.method = mname,
		.data = m->data,
		.tag = c->tag,
		.peer = c->peer,
		.in_handler = true,
	};
	if (c->calls)
		c->calls->prev = call;
	c->calls = call;
	c->ncalls++;

	json_t *result = NULL;
	struct nb_ipc_error err = { 0 };
	int r = m->fn(call, params, &result, &err);
	call->in_handler = false;
	if (call->ended || r == NB_IPC_DEFER) {
		/* Ended inside the handler, or now the handler's to end. */
		json_decref(result);
		json_decref(err.data);
		if (call->ended)
			call_free(call);
		return;
	}
	if (r >= 0) {
		json_decref(err.data);
		call_end(call, rpc_result(call->id, result));
	} else {
		json_decref(result);
		int code = err.code ? err.code : NB_IPC_INTERNAL_ERROR;
		call_end(call, rpc_error(call->id, code, err.message, err.data));
	}
}

/* ---- framing ---- */

static void
conn_touch(struct conn *c)
{
	c->active = now_ms();
	if (c->srv->tail != c) {
		conn_unlink(c);
		conn_append(c);
	}
}

/*
 * Handles every complete line in c->rbuf, whose first @scan bytes are known to hold no newline
 * (they were there before the last read), then keeps the rest as a half-read message.
 */
static void
conn_process(struct conn *c, size_t scan)
{
	bool continued = scan > 0;
	size_t start = 0;
	while (!c->dead && !c->closing) {
		char *nl = memchr(c->rbuf + scan, '\n', c->rlen - scan);
		if (!nl)
			break;
		size_t end = (size_t)(nl - c->rbuf);
		conn_touch(c);
		conn_handle_line(c, c->rbuf + start, end - start);
		start = scan = end + 1;
		continued = false;
	}
	if (c->dead || c->closing)
		return;
	if (start > 0) {
		memmove(c->rbuf, c->rbuf + start, c->rlen - start);
		c->rlen -= start;
	}
	if (c->rlen > 0 && !continued)
		c->rstart = now_ms(); /* a new message began */
	if (c->rlen == NB_IPC_MAX_MSG) {
		/* Why: a line is the unit of work; one with no end in sight would need an
		 * unbounded buffer. The peer gets an answer it can act on, then the door. */
		c->srv->stats.oversize++;
		log_info("ipc: client pid %d uid %u: message over %d bytes", (int)c->peer.pid,
			 (unsigned)c->peer.uid, NB_IPC_MAX_MSG);
		char msg[128];
		snprintf(msg, sizeof(msg), "message too large: over %d bytes without a newline",
			 NB_IPC_MAX_MSG);
		conn_send(c, rpc_error(NULL, NB_IPC_INVALID_REQUEST, msg,
				       json_pack("{s:i}", "limit", NB_IPC_MAX_MSG)));
		if (!c->dead)
			conn_close_after_flush(c);
		return;
	}
	if (c->rlen == 0) {
		free(c->rbuf);
		c->rbuf = NULL;
	}
	server_changed(c->srv);
}

static void
conn_on_readable(struct conn *c)
{
	if (!c->rbuf && !(c->rbuf = malloc(NB_IPC_MAX_MSG))) {
		conn_kill(c, "out of memory");
		return;
	}
	size_t old = c->rlen;
	/* One read per event: with level-triggered epoll a busy client cannot starve the rest. */
	ssize_t n = recv(c->fd, c->rbuf + old, NB_IPC_MAX_MSG - old, MSG_DONTWAIT);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			conn_kill(c, NULL);
		return;
	}
	if (n == 0) {
		/* The peer shut down its side; a half message is dropped, replies still go out. */
		c->eof = true;
		c->rlen = 0;
		free(c->rbuf);
		c->rbuf = NULL;
		conn_update_events(c);
		conn_maybe_done(c);
		return;
	}
	c->rlen += (size_t)n;
	conn_process(c, old);
}

static void
conn_on_event(struct conn *c, uint32_t events)
{
	if (c->dead)
		return;
	if (events & EPOLLIN)
		conn_on_readable(c);
	if (!c->dead && (events & EPOLLOUT))
		conn_flush(c);
	/* Hang-up with nothing left to read: the peer is gone (the kernel reports it even for an
	 * fd we no longer watch for input). */
	if (!c->dead && (events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLIN))
		conn_kill(c, NULL);
}

/* ---- accept and listen ---- */

static struct conn *
conn_new(struct nb_ipc_server *s, int fd, const struct nb_ipc_peer *peer, void *tag)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->kind = SRC_CONN;
	c->srv = s;
	c->fd = fd;
	c->peer = *peer;
	c->tag = tag;
	c->wq_tail = &c->wq_head;
	c->active = now_ms();
	if (fd >= 0) {
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
			free(c);
			return NULL;
		}
		c->events = EPOLLIN;
	}
	conn_append(c);
	s->nconns++;
	return c;
}

/*
 * Why evict: max_clients bounds fds and memory, but a cap alone would let a few hundred idle
 * connections lock every real client out. An idle connection (nothing half-read, nothing queued,
 * no call open) costs its owner nothing to reopen, so the least recently active one makes room.
 * A stream in progress is never evicted.
 */
static bool
server_evict(struct nb_ipc_server *s)
{
	for (struct conn *c = s->head; c; c = c->next) {
		if (c->fd >= 0 && c->rlen == 0 && !c->wq_head && c->ncalls == 0 && !c->closing) {
			/* Debug only: a peer opening connections in a loop must not flood the log;
			 * the count is in the stats. */
			s->stats.evicted++;
			log_debug(
				"ipc: client pid %d uid %u: idle while the server is full; closing",
				(int)c->peer.pid, (unsigned)c->peer.uid);
			conn_kill(c, NULL);
			return true;
		}
	}
	return false;
}

static void
server_adopt(struct nb_ipc_server *s, int fd, void *tag)
{
	/*
	 * Why SO_PEERCRED: the kernel records the credentials of whoever called connect(); the peer
	 * cannot forge them, unlike anything it writes. They are read once, here, so the connection
	 * belongs to that uid for its whole life whatever the peer does afterwards. The pid is for
	 * logs and for matching a known child; it can be reused after the peer exits, so decisions
	 * rest on uid and gid.
	 */
	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0) {
		log_perr("ipc: SO_PEERCRED");
		close(fd);
		return;
	}
	struct nb_ipc_peer peer = { .pid = cr.pid, .uid = cr.uid, .gid = cr.gid };
	if (s->allow_peer && !s->allow_peer(&peer, tag, s->allow_data)) {
		char msg[128];
		snprintf(msg, sizeof(msg), "permission denied: uid %u may not use this socket",
			 (unsigned)peer.uid);
		int64_t now = now_ms();
		if (now - s->refuse_logged >= 1000) {
			log_info("ipc: refused pid %d uid %u: not allowed on this socket",
				 (int)peer.pid, (unsigned)peer.uid);
			s->refuse_logged = now;
		}
		fd_goodbye(fd, NB_IPC_PEER_DENIED, msg);
		close(fd);
		s->stats.refused++;
		return;
	}
	if (s->nconns >= s->max_clients && !server_evict(s)) {
		char msg[128];
		snprintf(msg, sizeof(msg), "server busy: %u clients connected", s->max_clients);
		/* At most one line a second however fast refusals come; the count is in stats. */
		int64_t now = now_ms();
		if (now - s->refuse_logged >= 1000) {
			log_warn("ipc: full (%u clients, none idle): refused pid %d uid %u",
				 s->max_clients, (int)peer.pid, (unsigned)peer.uid);
			s->refuse_logged = now;
		}
		fd_goodbye(fd, NB_IPC_SERVER_BUSY, msg);
		close(fd);
		s->stats.refused++;
		return;
	}
	if (!conn_new(s, fd, &peer, tag)) {
		log_perr("ipc: new connection");
		close(fd);
		return;
	}
	s->stats.accepted++;
}

static void
listener_on_readable(struct nb_ipc_server *s, struct listener *l)
{
	for (int i = 0; i < 16 && l->fd >= 0; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			server_adopt(s, fd, l->tag);
			continue;
		}
		if ((errno == EMFILE || errno == ENFILE) && s->spare_fd >= 0) {
			/* Out of fds: without taking the connection off the backlog the listener
			 * stays readable and the loop spins. The spare fd makes room for one
			 * accept, to close it at once. */
			close(s->spare_fd);
			fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				close(fd);
			s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			s->stats.refused++;
			log_warn("ipc: out of file descriptors; refused a connection");
			continue;
		}
		return;
	}
}

/* The sockaddr for @name inside the open directory @dfd: through /proc/self/fd, so the socket
 * lands in the very directory that was checked even if a path component above it is renamed;
 * the plain @path when /proc is missing (early boot) or the name is too long for it. */
static int
sock_addr(struct sockaddr_un *sa, socklen_t *salen, int dfd, const char *name, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	int n = -1;
	char probe[64];
	snprintf(probe, sizeof(probe), "/proc/self/fd/%d", dfd);
	if (dfd >= 0 && access(probe, X_OK) == 0)
		n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", probe, name);
	if (n < 0 || (size_t)n >= sizeof(sa->sun_path))
		n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	*salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
	return 0;
}

/* Opens (making it 0700 if missing) and checks the directory a socket will live in. */
static int
open_socket_dir(const char *dir, struct nb_err *e)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	bool made = false;
	if (dfd < 0 && errno == ENOENT) {
		/* Why 0700: the directory is the first gate. Only its owner can reach the socket,
		 * whatever the socket's own mode or the umask. */
		if (mkdir(dir, 0700) == 0)
			made = true;
		else if (errno != EEXIST)
			return nb_err_setp(e, errno, "%s: cannot create the socket directory", dir);
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	struct stat lst;
	if (dfd < 0) {
		/* O_NOFOLLOW|O_DIRECTORY on a symlink: ELOOP or ENOTDIR, depending on the kernel.
		 */
		if (errno == ELOOP ||
		    (errno == ENOTDIR && lstat(dir, &lst) == 0 && S_ISLNK(lst.st_mode)))
			return nb_err_set(
				e, EPERM,
				"%s: the socket directory is a symbolic link; refusing it", dir);
		return nb_err_setp(e, errno, "%s: cannot open the socket directory", dir);
	}
	_cleanup_close_ int fd = dfd;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return nb_err_setp(e, errno, "%s: stat", dir);
	/*
	 * Why: whoever can write in the directory can replace the socket with their own, and
	 * clients would then hand their requests (and trust) to an impostor. A directory owned
	 * by someone else could be made writable by them at any time.
	 */
	if (st.st_uid != geteuid())
		return nb_err_set(e, EPERM,
				  "%s: the socket directory belongs to uid %u, not to us (uid %u); "
				  "refusing to use it",
				  dir, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return nb_err_set(
			e, EPERM,
			"%s: the socket directory is group- or world-writable (mode %04o); "
			"refusing to use it",
			dir, (unsigned)(st.st_mode & 07777));
	if (made && fchmod(fd, 0700) < 0)
		return nb_err_setp(e, errno, "%s: chmod 0700", dir);
	return steal_fd(&fd);
}

/* An existing @name in @dfd: replaced if it is a socket nobody listens on, else refused. */
static int
clear_stale_socket(int dfd, const char *name, const char *path, struct nb_err *e)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return nb_err_setp(e, errno, "%s: stat", path);
	}
	if (!S_ISSOCK(st.st_mode))
		return nb_err_set(e, EEXIST,
				  "%s: exists and is not a socket; refusing to replace it", path);
	/*
	 * Why probe: a socket someone listens on belongs to a running server; unlinking it would
	 * silently cut that server off from every future client. Only a refused connection proves
	 * the file is left over from a server that is gone. A full backlog (EAGAIN) is alive too.
	 */
	struct sockaddr_un sa;
	socklen_t salen;
	if (sock_addr(&sa, &salen, dfd, name, path) < 0)
		return nb_err_set(e, ENAMETOOLONG, "%s: path too long for a socket", path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return nb_err_setp(e, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, salen) == 0 || errno == EAGAIN ||
	    errno == EINPROGRESS)
		return nb_err_set(e, EADDRINUSE, "%s: another server is listening on this socket",
				  path);
	if (errno != ECONNREFUSED && errno != ENOENT)
		return nb_err_setp(e, errno, "%s: cannot tell whether a server listens on it",
				   path);
	if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		return nb_err_setp(e, errno, "%s: cannot remove the stale socket", path);
	log_info("ipc: %s: replaced a stale socket", path);
	return 0;
}

int
nb_ipc_server_listen(struct nb_ipc_server *s, const char *path, mode_t mode, gid_t group, void *tag,
		     struct nb_err *e)
{
	/* Why a subset of 0660: the socket is the second gate after the directory; "other" never
	 * gets in, and a group only when the caller names one (the operators of nulld). */
	if (mode & ~(mode_t)0660)
		return nb_err_set(e, EINVAL, "%s: socket mode %04o: only bits of 0660 are allowed",
				  path, (unsigned)mode);
	size_t plen = strlen(path);
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	if (plen == 0 || !*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return nb_err_set(e, EINVAL, "\"%s\": not a socket path", path);
	_cleanup_free_ char *dir = NULL;
	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return nb_err_set(e, ENOMEM, "out of memory");

	_cleanup_close_ int dfd = open_socket_dir(dir, e);
	if (dfd < 0)
		return dfd;
	int r = clear_stale_socket(dfd, name, path, e);
	if (r < 0)
		return r;

	struct sockaddr_un sa;
	socklen_t salen;
	if (sock_addr(&sa, &salen, dfd, name, path) < 0)
		return nb_err_set(e, ENAMETOOLONG, "%s: path too long for a socket", path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return nb_err_setp(e, errno, "socket");
	/*
	 * Why fchmod before bind: Linux creates the socket file with the socket inode's mode minus
	 * the umask, so the file never exists with wider permissions than @mode, without touching
	 * the process-wide umask. The fchmodat below then sets exactly @mode (a umask can only have
	 * narrowed it), before listen(): until then nobody can connect anyway.
	 */
	if (fchmod(fd, mode) < 0)
		return nb_err_setp(e, errno, "%s: fchmod on the socket", path);
	if (bind(fd, (struct sockaddr *)&sa, salen) < 0)
		return nb_err_setp(e, errno, "%s: bind", path);
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISSOCK(st.st_mode)) {
		r = nb_err_set(e, EIO, "%s: the socket file is not there after bind", path);
		goto fail_unlink;
	}
	if (group != (gid_t)-1 && fchownat(dfd, name, (uid_t)-1, group, AT_SYMLINK_NOFOLLOW) < 0) {
		r = nb_err_setp(e, errno, "%s: chown to group %u", path, (unsigned)group);
		goto fail_unlink;
	}
	/* No symlink can be there: the directory is ours and not writable by anyone else. */
	if (fchmodat(dfd, name, mode, 0) < 0) {
		r = nb_err_setp(e, errno, "%s: chmod %04o", path, (unsigned)mode);
		goto fail_unlink;
	}
	if (listen(fd, SOMAXCONN) < 0) {
		r = nb_err_setp(e, errno, "%s: listen", path);
		goto fail_unlink;
	}
	struct listener *l = calloc(1, sizeof(*l));
	char *lpath = strdup(path);
	if (!l || !lpath) {
		free(l);
		free(lpath);
		r = nb_err_set(e, ENOMEM, "out of memory");
		goto fail_unlink;
	}
	*l = (struct listener){ .kind = SRC_LISTENER,
				.fd = fd,
				.path = lpath,
				.tag = tag,
				.dev = st.st_dev,
				.ino = st.st_ino };
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = l };
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		r = nb_err_setp(e, errno, "%s: epoll_ctl", path);
		free(l->path);
		free(l);
		goto fail_unlink;
	}
	steal_fd(&fd);
	l->next = s->listeners;
	s->listeners = l;
	return 0;

fail_unlink:
	unlinkat(dfd, name, 0);
	return r;
}

/* Removes l's socket file if it is still the one we made (a newer server may own the path). */
static void
listener_close(struct nb_ipc_server *s, struct listener *l)
{
	struct stat st;
	if (lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
		unlink(l->path);
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, l->fd, NULL);
	close(l->fd);
	l->fd = -1;
	l->next = s->dead_listeners;
	s->dead_listeners = l;
}

int
nb_ipc_server_unlisten(struct nb_ipc_server *s, const char *path)
{
	for (struct listener **p = &s->listeners; *p; p = &(*p)->next) {
		if (strcmp((*p)->path, path) == 0) {
			struct listener *l = *p;
			*p = l->next;
			listener_close(s, l);
			if (!s->dispatching)
				server_reap(s);
			return 0;
		}
	}
	return -ENOENT;
}

/* ---- timers ---- */

static int64_t
conn_deadline(const struct nb_ipc_server *s, const struct conn *c)
{
	int64_t d = INT64_MAX;
	if (c->rlen > 0)
		d = c->rstart + s->stall_ms;
	if (c->wq_head && c->wprogress + s->stall_ms < d)
		d = c->wprogress + s->stall_ms;
	if (s->idle_ms > 0 && c->rlen == 0 && !c->wq_head && c->ncalls == 0 &&
	    c->active + s->idle_ms < d)
		d = c->active + s->idle_ms;
	return d;
}

/*
 * Why: a peer that sends half a message and waits (or sends it a byte at a time), or never reads
 * its replies, must not hold a slot and memory forever. The clock for a half message starts at
 * its first byte, so trickling does not reset it.
 */
static void
server_check_timers(struct nb_ipc_server *s)
{
	int64_t now = now_ms();
	struct conn *next;
	for (struct conn *c = s->head; c; c = next) {
		next = c->next;
		if (c->dead || c->fd < 0 || conn_deadline(s, c) > now)
			continue;
		s->stats.timed_out++;
		if (c->rlen > 0 && c->rstart + s->stall_ms <= now) {
			char msg[128];
			snprintf(msg, sizeof(msg), "timed out: half a message for over %d ms",
				 s->stall_ms);
			if (!c->wq_head)
				fd_goodbye(c->fd, NB_IPC_TIMED_OUT, msg);
			conn_kill(c, "%s", msg);
		} else if (c->wq_head) {
			conn_kill(c, "replies not read for over %d ms", s->stall_ms);
		} else {
			conn_kill(c, NULL); /* idle */
		}
	}
}

static void
server_rearm(struct nb_ipc_server *s)
{
	int64_t d = INT64_MAX;
	if (s->zombies || s->dead_listeners) {
		d = 0;
	} else {
		for (struct conn *c = s->head; c; c = c->next) {
			int64_t cd = conn_deadline(s, c);
			if (cd < d)
				d = cd;
		}
	}
	if (d == s->armed)
		return;
	struct itimerspec its = { 0 };
	if (d != INT64_MAX) {
		if (d <= 0) {
			its.it_value.tv_nsec = 1; /* in the past: fires at once */
		} else {
			its.it_value.tv_sec = d / 1000;
			its.it_value.tv_nsec = (d % 1000) * 1000000;
		}
	}
	if (timerfd_settime(s->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		s->armed = d;
	else
		s->armed = -1;
}

/* Something changed outside a dispatch (a deferred reply, a kill): the timer must know. */
static void
server_changed(struct nb_ipc_server *s)
{
	if (!s->dispatching)
		server_rearm(s);
}

/* ---- server API ---- */

struct nb_ipc_server *
nb_ipc_server_new(const struct nb_ipc_server_opts *opts, struct nb_err *e)
{
	struct nb_ipc_server *s = calloc(1, sizeof(*s));
	if (!s) {
		nb_err_set(e, ENOMEM, "out of memory");
		return NULL;
	}
	s->tfd = -1;
	s->spare_fd = -1;
	s->timer_kind = SRC_TIMER;
	s->armed = -1;
	struct nb_ipc_server_opts o = opts ? *opts : (struct nb_ipc_server_opts){ 0 };
	s->max_clients = o.max_clients ? o.max_clients : NB_IPC_DEFAULT_MAX_CLIENTS;
	s->max_queue = o.max_queue ? o.max_queue : NB_IPC_DEFAULT_MAX_QUEUE;
	s->stall_ms = o.stall_timeout_ms > 0 ? o.stall_timeout_ms : NB_IPC_DEFAULT_STALL_TIMEOUT_MS;
	s->idle_ms = o.idle_timeout_ms > 0 ? o.idle_timeout_ms : 0;
	s->allow_peer = o.allow_peer;
	s->allow_data = o.data;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		nb_err_setp(e, errno, "epoll_create1");
		goto fail;
	}
	s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->tfd < 0) {
		nb_err_setp(e, errno, "timerfd_create");
		goto fail;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &s->timer_kind };
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->tfd, &ev) < 0) {
		nb_err_setp(e, errno, "epoll_ctl");
		goto fail;
	}
	s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return s;
fail:
	if (s->tfd >= 0)
		close(s->tfd);
	if (s->epfd >= 0)
		close(s->epfd);
	free(s);
	return NULL;
}

int
nb_ipc_server_add_method(struct nb_ipc_server *s, const char *method, nb_ipc_handler_fn fn,
			 void *data, struct nb_err *e)
{
	if (!method || !*method || !fn)
		return nb_err_set(e, EINVAL, "ipc: a method needs a name and a handler");
	if (server_find_method(s, method))
		return nb_err_set(e, EEXIST, "ipc: method \"%s\" is already registered", method);
	struct method *m = realloc(s->methods, (s->nmethods + 1) * sizeof(*m));
	if (!m)
		return nb_err_set(e, ENOMEM, "out of memory");
	s->methods = m;
	char *name = strdup(method);
	if (!name)
		return nb_err_set(e, ENOMEM, "out of memory");
	m[s->nmethods++] = (struct method){ .name = name, .fn = fn, .data = data };
	return 0;
}

int
nb_ipc_server_fd(const struct nb_ipc_server *s)
{
	return s->epfd;
}

int
nb_ipc_server_dispatch(struct nb_ipc_server *s, int timeout_ms)
{
	struct epoll_event evs[64];
	int n = epoll_wait(s->epfd, evs, (int)NB_ARRAY_SIZE(evs), timeout_ms);
	if (n < 0) {
		if (errno != EINTR)
			return -errno;
		n = 0;
	}
	s->dispatching++;
	for (int i = 0; i < n; i++) {
		enum src_kind *k = evs[i].data.ptr;
		if (*k == SRC_TIMER) {
			uint64_t ticks;
			ssize_t r = read(s->tfd, &ticks, sizeof(ticks));
			(void)r;
			s->armed = -1;
		} else if (*k == SRC_LISTENER) {
			listener_on_readable(s, (struct listener *)k);
		} else {
			conn_on_event((struct conn *)k, evs[i].events);
		}
	}
	server_reap(s);
	server_check_timers(s);
	server_reap(s);
	s->dispatching--;
	server_rearm(s);
	return n;
}

void
nb_ipc_server_stats(const struct nb_ipc_server *s, struct nb_ipc_stats *out)
{
	*out = s->stats;
	out->clients = s->nconns;
}

int
nb_ipc_server_feed(struct nb_ipc_server *s, const struct nb_ipc_peer *peer, const void *data,
		   size_t len, size_t chunk, char **out, size_t *out_len)
{
	*out = NULL;
	*out_len = 0;
	struct conn *c = conn_new(s, -1, peer, NULL);
	if (!c)
		return -ENOMEM;
	int r = 0;
	s->dispatching++;
	const char *p = data;
	size_t off = 0;
	if (chunk == 0)
		chunk = len ? len : 1;
	while (off < len && !c->dead && !c->closing) {
		if (!c->rbuf && !(c->rbuf = malloc(NB_IPC_MAX_MSG))) {
			r = -ENOMEM;
			break;
		}
		size_t n = NB_IPC_MAX_MSG - c->rlen;
		n = n < chunk ? n : chunk;
		n = n < len - off ? n : len - off;
		memcpy(c->rbuf + c->rlen, p + off, n);
		size_t old = c->rlen;
		c->rlen += n;
		off += n;
		conn_process(c, old);
	}
	if (r == 0)
		r = (c->dead || c->closing) ? 1 : 0;
	size_t total = 0;
	for (struct out_chunk *ch = c->wq_head; ch; ch = ch->next)
		total += ch->len - ch->off;
	char *buf = malloc(total + 1);
	if (buf) {
		size_t o = 0;
		for (struct out_chunk *ch = c->wq_head; ch; ch = ch->next) {
			memcpy(buf + o, ch->buf + ch->off, ch->len - ch->off);
			o += ch->len - ch->off;
		}
		buf[o] = '\0';
		*out = buf;
		*out_len = o;
	} else if (r == 0) {
		r = -ENOMEM;
	}
	conn_kill(c, NULL); /* the peer hangs up: deferred calls are cancelled */
	server_reap(s);
	s->dispatching--;
	server_rearm(s);
	return r;
}

void
nb_ipc_server_free(struct nb_ipc_server *s)
{
	if (!s)
		return;
	s->dispatching++;
	while (s->listeners) {
		struct listener *l = s->listeners;
		s->listeners = l->next;
		listener_close(s, l);
	}
	while (s->head)
		conn_kill(s->head, NULL);
	server_reap(s);
	for (size_t i = 0; i < s->nmethods; i++)
		free(s->methods[i].name);
	free(s->methods);
	close(s->tfd);
	close(s->epfd);
	if (s->spare_fd >= 0)
		close(s->spare_fd);
	free(s);
}

/* ---- calls ---- */

const struct nb_ipc_peer *
nb_ipc_call_peer(const struct nb_ipc_call *call)
{
	return &call->peer;
}

const char *
nb_ipc_call_method(const struct nb_ipc_call *call)
{
	return call->method;
}

void *
nb_ipc_call_data(const struct nb_ipc_call *call)
{
	return call->data;
}

void *
nb_ipc_call_tag(const struct nb_ipc_call *call)
{
	return call->tag;
}

bool
nb_ipc_call_is_notification(const struct nb_ipc_call *call)
{
	return call->id == NULL;
}

bool
nb_ipc_call_alive(const struct nb_ipc_call *call)
{
	return call->conn && !call->conn->dead;
}

void
nb_ipc_call_on_cancel(struct nb_ipc_call *call, void (*fn)(struct nb_ipc_call *, void *),
		      void *data)
{
	call->cancel = fn;
	call->cancel_data = data;
}

int
nb_ipc_call_notify(struct nb_ipc_call *call, const char *method, json_t *params)
{
	struct conn *c = call->conn;
	if (!c || c->dead || call->ended) {
		json_decref(params);
		return -EPIPE;
	}
	json_t *m = rpc_msg();
	if (!m || json_object_set_new(m, "method", json_string(method)) < 0 ||
	    (params && json_object_set_new(m, "params", steal_ptr(&params)) < 0)) {
		json_decref(params);
		json_decref(m);
		return -ENOMEM;
	}
	return conn_send(c, m);
}

int
nb_ipc_call_reply(struct nb_ipc_call *call, json_t *result)
{
	return call_end(call, rpc_result(call->id, result));
}

int
nb_ipc_call_reply_error(struct nb_ipc_call *call, int code, json_t *data, const char *fmt, ...)
{
	char msg[sizeof(((struct nb_ipc_error *)0)->message)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return call_end(call, rpc_error(call->id, code ? code : NB_IPC_INTERNAL_ERROR, msg, data));
}

int
nb_ipc_error_set(struct nb_ipc_error *err, int code, const char *fmt, ...)
{
	if (err) {
		err->code = code;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return NB_IPC_ERROR;
}

/* ---- params ---- */

static const char *
type_name(json_type t)
{
	switch (t) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a real number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

int
nb_ipc_param_json(const json_t *params, const char *name, size_t pos, json_type type, bool required,
		  json_t **out, struct nb_ipc_error *err)
{
	json_t *v = NULL;
	if (json_is_object(params)) {
		v = json_object_get(params, name);
	} else if (json_is_array(params)) {
		if (pos == NB_IPC_NAMED_ONLY)
			return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
						"invalid params: \"%s\" must be given by name "
						"(params must be an object)",
						name);
		v = json_array_get(params, pos);
	}
	if (!v) {
		if (required)
			return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
						"invalid params: \"%s\" is missing", name);
		return 0;
	}
	bool ok = json_typeof(v) == type || (type == JSON_TRUE && json_is_boolean(v));
	if (!ok)
		return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
					"invalid params: \"%s\" must be %s, not %s", name,
					type_name(type), type_name(json_typeof(v)));
	*out = v;
	return 1;
}

int
nb_ipc_param_string(const json_t *params, const char *name, size_t pos, bool required,
		    const char **out, struct nb_ipc_error *err)
{
	json_t *v;
	int r = nb_ipc_param_json(params, name, pos, JSON_STRING, required, &v, err);
	if (r == 1)
		*out = json_string_value(v);
	return r;
}

int
nb_ipc_param_int(const json_t *params, const char *name, size_t pos, bool required, int64_t *out,
		 struct nb_ipc_error *err)
{
	json_t *v;
	int r = nb_ipc_param_json(params, name, pos, JSON_INTEGER, required, &v, err);
	if (r == 1)
		*out = (int64_t)json_integer_value(v);
	return r;
}

int
nb_ipc_param_bool(const json_t *params, const char *name, size_t pos, bool required, bool *out,
		  struct nb_ipc_error *err)
{
	json_t *v;
	int r = nb_ipc_param_json(params, name, pos, JSON_TRUE, required, &v, err);
	if (r == 1)
		*out = json_is_true(v);
	return r;
}

int
nb_ipc_params_check(const json_t *params, const char *const *names, size_t n,
		    struct nb_ipc_error *err)
{
	if (json_is_array(params)) {
		if (json_array_size(params) > n)
			return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
						"invalid params: at most %zu arguments, got %zu", n,
						json_array_size(params));
		return 0;
	}
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)params, key, v)
	{
		size_t i = 0;
		while (i < n && strcmp(names[i], key) != 0)
			i++;
		if (i == n)
			return nb_ipc_error_set(err, NB_IPC_INVALID_PARAMS,
						"invalid params: unknown parameter \"%.64s\"", key);
	}
	return 0;
}

/* ---- client ---- */

struct nb_ipc_client {
	int fd;
	int64_t next_id;
	void (*on_notify)(const char *, json_t *, void *);
	void *notify_data;
	struct nb_ipc_error last;
	size_t rlen, rscan;
	char rbuf[NB_IPC_MAX_MSG];
};

static int64_t
deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

/* Milliseconds left until @deadline for poll(): -1 for none, 0 when past. */
static int
time_left(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t left = deadline - now_ms();
	return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

int
nb_ipc_errno(int rpc_code)
{
	switch (rpc_code) {
	case NB_IPC_PARSE_ERROR:
		return EBADMSG;
	case NB_IPC_INVALID_REQUEST:
		return EPROTO;
	case NB_IPC_METHOD_NOT_FOUND:
		return ENOSYS;
	case NB_IPC_INVALID_PARAMS:
		return EINVAL;
	case NB_IPC_INTERNAL_ERROR:
		return EIO;
	case NB_IPC_PEER_DENIED:
		return EACCES;
	case NB_IPC_SERVER_BUSY:
		return EBUSY;
	case NB_IPC_TIMED_OUT:
		return ETIMEDOUT;
	default:
		return EREMOTEIO;
	}
}

struct nb_ipc_client *
nb_ipc_connect(const char *path, int timeout_ms, struct nb_err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t plen = strlen(path);
	if (plen == 0 || plen >= sizeof(sa.sun_path)) {
		nb_err_set(e, ENAMETOOLONG, "%s: not a usable socket path (empty or too long)",
			   path);
		return NULL;
	}
	memcpy(sa.sun_path, path, plen + 1);
	int64_t deadline = deadline_of(timeout_ms);
	_cleanup_close_ int fd = -1;
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			nb_err_setp(e, errno, "socket");
			return NULL;
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		int err = errno;
		close(steal_fd(&fd));
		if (err == EINTR)
			continue;
		if (err == EAGAIN) { /* the server's backlog is full: it is alive, wait */
			int left = time_left(deadline);
			if (left == 0) {
				nb_err_set(e, ETIMEDOUT,
					   "%s: the server is not accepting connections", path);
				return NULL;
			}
			poll(NULL, 0, left < 0 || left > 10 ? 10 : left);
			continue;
		}
		if (err == ENOENT || err == ECONNREFUSED)
			nb_err_setp(e, err, "cannot connect to %s: the daemon is not running",
				    path);
		else
			nb_err_setp(e, err, "cannot connect to %s", path);
		return NULL;
	}
	struct nb_ipc_client *c = malloc(sizeof(*c));
	if (!c) {
		nb_err_set(e, ENOMEM, "out of memory");
		return NULL;
	}
	c->fd = steal_fd(&fd);
	c->next_id = 1;
	c->on_notify = NULL;
	c->notify_data = NULL;
	c->last = (struct nb_ipc_error){ 0 };
	c->rlen = c->rscan = 0;
	return c;
}

void
nb_ipc_client_free(struct nb_ipc_client *c)
{
	if (!c)
		return;
	close(c->fd);
	json_decref(c->last.data);
	free(c);
}

int
nb_ipc_client_fd(const struct nb_ipc_client *c)
{
	return c->fd;
}

void
nb_ipc_client_on_notify(struct nb_ipc_client *c,
			void (*fn)(const char *method, json_t *params, void *data), void *data)
{
	c->on_notify = fn;
	c->notify_data = data;
}

const struct nb_ipc_error *
nb_ipc_client_last_error(const struct nb_ipc_client *c)
{
	return &c->last;
}

static int
client_write(struct nb_ipc_client *c, const char *buf, size_t len, int64_t deadline,
	     struct nb_err *e)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(c->fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			if (errno == EPIPE || errno == ECONNRESET)
				return nb_err_set(e, ECONNRESET,
						  "the server closed the connection");
			return nb_err_setp(e, errno, "send");
		}
		struct pollfd p = { .fd = c->fd, .events = POLLOUT };
		int pr = poll(&p, 1, time_left(deadline));
		if (pr == 0)
			return nb_err_set(e, ETIMEDOUT, "the server is not reading its socket");
		if (pr < 0)
			return nb_err_setp(e, errno, "poll");
	}
	return 0;
}

/* Sends a request (@id >= 0) or a notification (@id < 0). */
static int
client_send(struct nb_ipc_client *c, const char *method, const json_t *params, int64_t id,
	    int64_t deadline, struct nb_err *e)
{
	if (params && !json_is_object(params) && !json_is_array(params))
		return nb_err_set(e, EINVAL, "%s: params must be an object or an array", method);
	json_t *m = rpc_msg();
	if (!m || json_object_set_new(m, "method", json_string(method)) < 0 ||
	    (id >= 0 && json_object_set_new(m, "id", json_integer(id)) < 0) ||
	    (params && json_object_set(m, "params", (json_t *)params) < 0)) {
		json_decref(m);
		return nb_err_set(e, ENOMEM, "%s: cannot build the request", method);
	}
	_cleanup_free_ char *line = NULL;
	size_t len;
	int r = rpc_line(m, &line, &len);
	if (r == -EMSGSIZE)
		return nb_err_set(e, EMSGSIZE, "%s: request over %d bytes", method, NB_IPC_MAX_MSG);
	if (r < 0)
		return nb_err_set(e, -r, "%s: cannot build the request", method);
	return client_write(c, line, len, deadline, e);
}

static int
client_read(struct nb_ipc_client *c, int64_t deadline, json_t **msg, struct nb_err *e)
{
	*msg = NULL;
	for (;;) {
		char *nl = memchr(c->rbuf + c->rscan, '\n', c->rlen - c->rscan);
		if (nl) {
			size_t len = (size_t)(nl - c->rbuf);
			bool blank = is_blank(c->rbuf, len);
			json_error_t jerr;
			json_t *m = blank ? NULL
					  : json_loadb(c->rbuf, len, JSON_REJECT_DUPLICATES, &jerr);
			memmove(c->rbuf, nl + 1, c->rlen - len - 1);
			c->rlen -= len + 1;
			c->rscan = 0;
			if (blank)
				continue;
			if (!m)
				return nb_err_set(e, EPROTO,
						  "malformed message from the server: %s",
						  jerr.text);
			json_t *v = json_object_get(m, "jsonrpc");
			if (!json_is_string(v) || strcmp(json_string_value(v), "2.0") != 0) {
				json_decref(m);
				return nb_err_set(e, EPROTO,
						  "message from the server is not JSON-RPC 2.0");
			}
			*msg = m;
			return 0;
		}
		c->rscan = c->rlen;
		if (c->rlen == NB_IPC_MAX_MSG)
			return nb_err_set(e, EMSGSIZE, "message from the server over %d bytes",
					  NB_IPC_MAX_MSG);
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int pr = poll(&p, 1, time_left(deadline));
		if (pr == 0)
			return nb_err_set(e, ETIMEDOUT, "no answer from the server in time");
		if (pr < 0)
			return nb_err_setp(e, errno, "poll");
		ssize_t n = recv(c->fd, c->rbuf + c->rlen, NB_IPC_MAX_MSG - c->rlen, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return nb_err_set(e, ECONNRESET, "the server closed the connection");
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				continue;
			return nb_err_setp(e, errno, "recv");
		}
		c->rlen += (size_t)n;
	}
}

int
nb_ipc_read_message(struct nb_ipc_client *c, int timeout_ms, json_t **msg, struct nb_err *e)
{
	return client_read(c, deadline_of(timeout_ms), msg, e);
}

int
nb_ipc_send_request(struct nb_ipc_client *c, const char *method, const json_t *params,
		    int timeout_ms, int64_t *id, struct nb_err *e)
{
	int64_t my = c->next_id++;
	int r = client_send(c, method, params, my, deadline_of(timeout_ms), e);
	if (r == 0 && id)
		*id = my;
	return r;
}

int
nb_ipc_notify(struct nb_ipc_client *c, const char *method, const json_t *params, int timeout_ms,
	      struct nb_err *e)
{
	return client_send(c, method, params, -1, deadline_of(timeout_ms), e);
}

int
nb_ipc_call(struct nb_ipc_client *c, const char *method, const json_t *params, int timeout_ms,
	    json_t **result, struct nb_err *e)
{
	if (result)
		*result = NULL;
	json_decref(c->last.data);
	c->last = (struct nb_ipc_error){ 0 };
	int64_t deadline = deadline_of(timeout_ms);
	int64_t id = c->next_id++;
	int sent = client_send(c, method, params, id, deadline, e);
	if (sent < 0 && sent != -ECONNRESET)
		return sent;
	/* Closed under us: a server that refuses (busy, peer denied) says why first, and that
	 * line may be waiting. Look without waiting; otherwise report the closed connection. */
	if (sent < 0)
		deadline = now_ms();
	for (;;) {
		_cleanup_json_ json_t *m = NULL;
		struct nb_err scratch;
		int r = client_read(c, deadline, &m, sent < 0 ? &scratch : e);
		if (r < 0)
			return sent < 0 ? sent : r;
		json_t *mid = json_object_get(m, "id");
		json_t *meth = json_object_get(m, "method");
		if (!mid && json_is_string(meth)) {
			if (c->on_notify)
				c->on_notify(json_string_value(meth), json_object_get(m, "params"),
					     c->notify_data);
			continue;
		}
		/* A late reply to an earlier call that timed out: not ours. */
		if (json_is_integer(mid) && json_integer_value(mid) != id)
			continue;
		json_t *res = json_object_get(m, "result");
		json_t *err = json_object_get(m, "error");
		if (!(json_is_integer(mid) || json_is_null(mid)) ||
		    (res != NULL) == (err != NULL) || (res && json_is_null(mid)))
			return nb_err_set(e, EPROTO, "%s: malformed reply from the server", method);
		if (res) {
			if (result)
				*result = json_incref(res);
			return 0;
		}
		/* An error with id null answers us too: the server could not read our id. */
		json_t *code = json_object_get(err, "code");
		json_t *msg = json_object_get(err, "message");
		if (!json_is_integer(code) || !json_is_string(msg))
			return nb_err_set(e, EPROTO, "%s: malformed error from the server", method);
		c->last.code = (int)json_integer_value(code);
		text_clean(c->last.message, sizeof(c->last.message), json_string_value(msg));
		json_t *data = json_object_get(err, "data");
		c->last.data = data ? json_incref(data) : NULL;
		return nb_err_set(e, nb_ipc_errno(c->last.code), "%s", c->last.message);
	}
}
