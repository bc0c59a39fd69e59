#pragma once
/*
 * ctxgraph: memory that agents share, where nobody can write as someone else.
 *
 * Files:
 *   main.c     options and environment, the event loop, readiness, audit records to nulld
 *   service.c  registrations (one socket per agent), identity from the socket, ACLs, limits,
 *              the JSON-RPC methods (docs/CTXGRAPH.md lists them)
 *   entry.c    pure functions: names, keys, values, the entry hash, cursors, token buckets
 *   store.c    SQLite (store.h): the only file with SQL
 */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "ipc.h"
#include "json.h"
#include "store.h"

#define CTXGRAPH_NAME_MAX 64	 /* agent names: [A-Za-z0-9_-]{1,64}, as in AGENT.toml */
#define CTXGRAPH_KEY_MAX 256	 /* bytes of UTF-8 */
#define CTXGRAPH_VALUE_MAX 16384 /* bytes of canonical JSON */
#define CTXGRAPH_LIMIT_MAX 1000	 /* entries per page */
#define CTXGRAPH_LIMIT_DEFAULT 100
#define CTXGRAPH_BATCH_MAX 1000				  /* entries per ctx.write_batch */
#define CTXGRAPH_PREFIXES_MAX CTXGRAPH_STORE_MAX_PREFIXES /* per read or write list */
#define CTXGRAPH_DEFAULT_RATE 100			  /* writes per second per agent */
#define CTXGRAPH_DEFAULT_BURST 200
#define CTXGRAPH_RATE_MAX 1000000
/* Cursors: "k" + hex of a key, or "s" + a decimal seq. */
#define CTXGRAPH_CURSOR_MAX (1 + 2 * CTXGRAPH_KEY_MAX + 1)

/* Application error codes (JSON-RPC leaves -32768..-32000 to itself). */
#define CTXGRAPH_ERR_FAILED 1	  /* valid, but it could not be done (storage) */
#define CTXGRAPH_ERR_NOT_FOUND 2  /* no such entry or agent */
#define CTXGRAPH_ERR_DENIED 10	  /* ACL, forged identity, operator-only method */
#define CTXGRAPH_ERR_TOO_LARGE 11 /* key or value over its limit */
#define CTXGRAPH_ERR_RATE 12	  /* write rate over the agent's limit; data: {retry_after_ms} */

/* ---- entry.c ---- */

/* True if @name is a valid agent name. */
bool ctxgraph_name_valid(const char *name);

/*
 * Checks a key of @len bytes (or a prefix, when @prefix: then it may be empty): at most
 * CTXGRAPH_KEY_MAX bytes, no NUL (@len must be strlen), valid UTF-8, no control characters (C0,
 * DEL, C1). Returns 0, -EINVAL or -E2BIG (too long), with the reason in @why (@size bytes).
 */
int ctxgraph_key_check(const char *key, size_t len, bool prefix, char *why, size_t size);

/*
 * Copies @in into @out (@size > 0 bytes) as valid UTF-8 without control characters (each bad
 * byte or control character becomes '?'), cut at a character boundary: for untrusted strings
 * (a claimed agent name) on their way to logs and audit records.
 */
void ctxgraph_text_clip(const char *in, char *out, size_t size);

/*
 * The canonical JSON of @v (lib/json.h) in *out (malloc'd) and *len. Refuses reals (EINVAL) and
 * more than CTXGRAPH_VALUE_MAX bytes (E2BIG). Returns 0 or a negative errno with @e set.
 */
int ctxgraph_value_canonical(const json_t *v, char **out, size_t *len, struct nb_err *e);

/*
 * The entry hash: lower-case hex SHA-256 of @agent 0x00 @key 0x00 @value (canonical JSON,
 * @value_len bytes) into @out. Neither @agent nor @key holds a NUL, so the split is unambiguous.
 * Returns 0 or -EIO. Not thread-safe (one digest context is reused).
 */
int ctxgraph_entry_hash(const char *agent, const char *key, const char *value, size_t value_len,
			char out[NB_SHA256_HEX_LEN + 1]);

/* True if @key starts with @prefix (bytes; "" matches everything). */
bool ctxgraph_prefix_match(const char *key, const char *prefix);

/* Cursors: opaque to clients. @out holds CTXGRAPH_CURSOR_MAX bytes. */
void ctxgraph_cursor_from_key(const char *key, char *out);
void ctxgraph_cursor_from_seq(int64_t seq, char *out);
/* Parse a cursor made by the functions above into @key (CTXGRAPH_KEY_MAX + 1 bytes) or @seq.
 * Returns 0, or -EINVAL for anything else. */
int ctxgraph_cursor_key(const char *cursor, char *key);
int ctxgraph_cursor_seq(const char *cursor, int64_t *seq);

/* A token bucket: @burst tokens at most, refilled at @rate a second. Zeroed: full. */
struct ctxgraph_bucket {
	bool primed;
	double tokens;
	int64_t last_ns;
};

/*
 * Takes @n tokens at monotonic time @now_ns if there are that many, and returns true. Otherwise
 * takes none, returns false and sets *retry_ms (may be NULL) to when there will be (-1 if @n is
 * over @burst: never).
 */
bool ctxgraph_bucket_take(struct ctxgraph_bucket *b, double rate, double burst, double n,
			  int64_t now_ns, int64_t *retry_ms);

/* ---- service.c ---- */

/* What the service asks of its surroundings; every member may be NULL. */
struct ctxgraph_hooks {
	/*
	 * Records a decision in the audit log (nulld's, or a test's). @verdict: "allowed" or
	 * "denied"; @detail is borrowed. The service has already logged it.
	 */
	void (*audit)(void *data, const char *action, const char *object, const char *verdict,
		      const char *reason, json_t *detail);
	void *audit_data;
	/* Monotonic ns for rate limits, and wall-clock ms for created_at (NULL: the real ones). */
	int64_t (*now_ns)(void *data);
	int64_t (*wall_ms)(void *data);
	void *clock_data;
};

struct ctxgraph_config {
	/* Sockets: <run_dir>/ctxgraph.sock (control) and <run_dir>/ctxgraph/NAME.sock (agents).
	 * NULL: none at all; calls come only through nb_ipc_server_feed() (tests, fuzzer). */
	const char *run_dir;
	/* Default write limits for agents registered without their own (0: the defaults). */
	int64_t write_rate, write_burst;
	struct ctxgraph_hooks hooks;
};

struct ctxgraph;

/*
 * Makes the service on @store (borrowed; it must outlive the service) with its own JSON-RPC
 * server, its methods, and (with a run dir) the control socket, mode 0600, for root and our own
 * uid only. Returns 0 with *out set, or a negative errno with @e set.
 */
int ctxgraph_new(struct ctxgraph_store *store, const struct ctxgraph_config *cfg,
		 struct ctxgraph **out, struct nb_err *e);

/* Closes every socket (removing the files) and frees @g. NULL is fine. */
void ctxgraph_free(struct ctxgraph *g);

/* The JSON-RPC server, for the event loop (nb_ipc_server_fd/dispatch) and for feeding. */
struct nb_ipc_server *ctxgraph_server(struct ctxgraph *g);

/* An agent's registration. */
struct ctxgraph_agent_opts {
	const char *const *read;  /* key prefixes it may read ("" : everything) */
	size_t n_read;		  /* <= CTXGRAPH_PREFIXES_MAX */
	const char *const *write; /* key prefixes it may write */
	size_t n_write;
	bool has_uid; /* only this peer uid may connect to its socket */
	uid_t uid;
	int64_t rate, burst; /* writes per second and burst; 0: the service's defaults */
};

/*
 * Registers agent @name, or updates the ACLs and limits of one already registered (its socket
 * and connections stay). With a run dir, makes its socket <run>/ctxgraph/@name.sock (0666 in a
 * 0711 directory); *path (may be NULL) then points to it (owned by @g; NULL without a run dir).
 * *created (may be NULL): false for an update. Returns 0, or a negative errno with @e set
 * (EINVAL: bad name or prefix; others from the socket).
 */
int ctxgraph_agent_register(struct ctxgraph *g, const char *name,
			    const struct ctxgraph_agent_opts *opts, const char **path,
			    bool *created, struct nb_err *e);

/*
 * Unregisters @name: its socket goes away and connections still open on it are refused from
 * their next call. Returns 0, or -ENOENT with @e set.
 */
int ctxgraph_agent_unregister(struct ctxgraph *g, const char *name, struct nb_err *e);

/*
 * Who calls fed through nb_ipc_server_feed() (no listener, so no socket identity) are: the
 * operator (@operator), the registered agent @agent, or nobody (both unset: refused, the
 * default). Returns 0, or -ENOENT if @agent is not registered.
 */
int ctxgraph_feed_as(struct ctxgraph *g, bool operator, const char * agent);
