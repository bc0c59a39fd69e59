#pragma once
/*
 * store.h: ctxgraph's storage. The only module that speaks SQL, so another engine (dqlite, for
 * memory shared across hosts) can replace the local SQLite file behind this interface alone.
 *
 * The model: an entry is immutable and named by its hash (see ctxgraph_entry_hash()); a write
 * that names an existing hash changes nothing (idempotent). Every stored entry gets a sequence
 * number, unique and increasing in the order entries were stored; history and pagination follow
 * it. Keys compare as bytes (UTF-8), never through LIKE or GLOB, so '%' and '_' are plain
 * characters.
 *
 * Durability: SQLite in WAL mode with synchronous=FULL: when ctxgraph_store_put() returns 0 the
 * entries are in the WAL and the WAL is fsync'ed; they survive the process being killed and the
 * machine losing power.
 *
 * Reads hand rows to a callback; strings in the row are valid only during the callback. A store
 * is used by one thread.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "json.h"

/* Read prefixes one scope may carry (a filter of this many ranges is still one SQL statement). */
#define CTXGRAPH_STORE_MAX_PREFIXES 32

struct ctxgraph_store;

/* One stored entry, as a read hands it to its callback (strings borrowed for the call). */
struct ctxgraph_entry {
	const char *hash;  /* 64 lower-case hex digits */
	const char *agent; /* who wrote it */
	const char *key;
	const char *value; /* canonical JSON */
	size_t value_len;
	int64_t created_at; /* ms since the epoch, when first stored */
	int64_t seq;	    /* store order, from 1 */
};

/* One entry to store (in), and what became of it (out). */
struct ctxgraph_put {
	const char *hash, *agent, *key, *value; /* value: canonical JSON */
	size_t value_len;
	int64_t created_at;
	/* out */
	bool created;	   /* false: an entry with this hash was already there */
	int64_t seq;	   /* the stored entry's (the existing one's when !created) */
	int64_t stored_at; /* its created_at */
};

/*
 * What a reader may see. @all: everything. Otherwise the entries written by @agent (NULL: none)
 * and those whose key starts with one of @prefixes[0..n_prefixes) (at most
 * CTXGRAPH_STORE_MAX_PREFIXES). The filter is applied inside the query, so a page is made of
 * visible entries only and "latest" means the latest visible.
 */
struct ctxgraph_scope {
	bool all;
	const char *agent;
	const char *const *prefixes;
	size_t n_prefixes;
};

/* A row for the caller: return 0 for more, 1 to stop (not an error), or a negative errno. */
typedef int (*ctxgraph_row_fn)(const struct ctxgraph_entry *entry, void *data);

/*
 * Opens (creating if needed) the database at @path (":memory:" for a private in-memory one, as
 * the fuzzer and tests use), sets WAL, synchronous=FULL and a busy timeout, and creates or checks
 * the schema. A database written by a newer schema version is refused (EPROTO) and not touched.
 * A symbolic link at @path is refused. Returns 0 with *out set, or a negative errno with @e set.
 */
int ctxgraph_store_open(const char *path, struct ctxgraph_store **out, struct nb_err *e);

/* Closes @s (checkpointing the WAL). NULL is fine. */
void ctxgraph_store_close(struct ctxgraph_store *s);

/*
 * Stores @n entries in one transaction: all or none. Each hash must be the entry's (the caller
 * computes it). Fills each item's out members. Returns the number of entries newly created, or a
 * negative errno with @e set (nothing stored).
 */
int ctxgraph_store_put(struct ctxgraph_store *s, struct ctxgraph_put *items, size_t n,
		       struct nb_err *e);

/*
 * The latest visible entry with @key, to @fn. Returns 1 if there was one, 0 if not, or a
 * negative errno (@e set, or @fn's own).
 */
int ctxgraph_store_latest(struct ctxgraph_store *s, const char *key,
			  const struct ctxgraph_scope *scope, ctxgraph_row_fn fn, void *data,
			  struct nb_err *e);

/*
 * For each key that starts with @prefix ("" : every key) and is greater than @after (NULL: from
 * the first), in byte order of the keys, the latest visible entry: at most @limit of them, to
 * @fn. Returns the number of rows handed over, or a negative errno.
 */
int ctxgraph_store_prefix(struct ctxgraph_store *s, const char *prefix, const char *after,
			  const struct ctxgraph_scope *scope, int64_t limit, ctxgraph_row_fn fn,
			  void *data, struct nb_err *e);

/* The visible entries with @key whose seq is above @after_seq, oldest first, at most @limit. */
int ctxgraph_store_history(struct ctxgraph_store *s, const char *key, int64_t after_seq,
			   const struct ctxgraph_scope *scope, int64_t limit, ctxgraph_row_fn fn,
			   void *data, struct nb_err *e);

/* The visible entries written by @agent whose seq is above @after_seq, oldest first. */
int ctxgraph_store_by_agent(struct ctxgraph_store *s, const char *agent, int64_t after_seq,
			    const struct ctxgraph_scope *scope, int64_t limit, ctxgraph_row_fn fn,
			    void *data, struct nb_err *e);

/* The number of entries, in *out. Returns 0 or a negative errno. */
int ctxgraph_store_count(struct ctxgraph_store *s, int64_t *out, struct nb_err *e);
