/*
 * store.c: ctxgraph's entries in SQLite (see store.h). The only file with SQL in it.
 *
 * Sections:
 *   schema      the table, its indexes, the triggers that keep entries immutable, pragmas
 *   statements  prepared once and kept; read statements per scope shape, made on first use
 *   open/close
 *   writes      INSERT OR IGNORE in one transaction
 *   reads       latest, by prefix, history, by agent
 *
 * Prefix queries are ranges, never LIKE: the keys that start with P are exactly those in
 * [P, P || 0xFF), because keys are valid UTF-8 (checked before they get here) and no byte of
 * valid UTF-8 is 0xFF; SQLite's default BINARY collation compares the bytes. So '%' and '_' in a
 * key or prefix mean themselves, and the (key, seq) index serves the range.
 */
#include "store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

#define SCHEMA_VERSION 1
#define BUSY_TIMEOUT_MS 5000

/* ---- schema ---- */

/*
 * seq is unique (its own index): "the next seq" is MAX(seq) + 1 read inside the INSERT, so it is
 * right even if several writers ever share the file, and MAX is one index probe.
 * The triggers make an entry immutable for everyone who opens the file through SQLite, not only
 * for this code.
 */
static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS entries ("
	" hash TEXT PRIMARY KEY NOT NULL,"
	" agent TEXT NOT NULL,"
	" key TEXT NOT NULL,"
	" value TEXT NOT NULL,"
	" created_at INTEGER NOT NULL,"
	" seq INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS entries_key_seq ON entries(key, seq);"
	"CREATE INDEX IF NOT EXISTS entries_agent_seq ON entries(agent, seq);"
	"CREATE UNIQUE INDEX IF NOT EXISTS entries_seq ON entries(seq);"
	"CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries"
	" BEGIN SELECT RAISE(ABORT, 'ctxgraph entries are immutable'); END;"
	"CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries"
	" BEGIN SELECT RAISE(ABORT, 'ctxgraph entries are immutable'); END;";

/* ---- statements ---- */

enum read_kind { Q_LATEST, Q_PREFIX, Q_HISTORY, Q_AGENT, Q_KINDS };

/* Each read's SQL: the part before the scope's filter and the part after it. Columns: hash,
 * agent, key, value, created_at, seq. For Q_PREFIX, MAX(seq) makes SQLite take the other (bare)
 * columns from the row with the largest seq of each key: the latest visible entry per key. */
static const char *const read_sql[Q_KINDS][2] = {
	[Q_LATEST] = { "SELECT hash, agent, key, value, created_at, seq FROM entries"
		       " WHERE key = ?1",
		       " ORDER BY seq DESC LIMIT 1" },
	[Q_PREFIX] = { "SELECT hash, agent, key, value, created_at, MAX(seq) FROM entries"
		       " WHERE key >= ?1 AND key < ?2 AND key > ?3",
		       " GROUP BY key ORDER BY key LIMIT ?4" },
	[Q_HISTORY] = { "SELECT hash, agent, key, value, created_at, seq FROM entries"
			" WHERE key = ?1 AND seq > ?2",
			" ORDER BY seq LIMIT ?3" },
	[Q_AGENT] = { "SELECT hash, agent, key, value, created_at, seq FROM entries"
		      " WHERE agent = ?1 AND seq > ?2",
		      " ORDER BY seq LIMIT ?3" },
};

/* Scope parameters are numbered from here: ?10 the agent, then ?11/?12, ?13/?14 ... per prefix. */
#define SCOPE_PARAM 10

/* Statement shapes per read: [0] no filter, [1 + n] a filter with n prefix ranges. */
#define SHAPES (CTXGRAPH_STORE_MAX_PREFIXES + 2)

struct ctxgraph_store {
	sqlite3 *db;
	sqlite3_stmt *insert, *existing, *begin, *commit, *rollback;
	sqlite3_stmt *reads[Q_KINDS][SHAPES];
};

static int
db_err(struct ctxgraph_store *s, struct nb_err *e, int rc, const char *what)
{
	int code;
	switch (rc & 0xff) { /* the primary code of an extended one */
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		code = EBUSY;
		break;
	case SQLITE_FULL:
		code = ENOSPC;
		break;
	case SQLITE_NOMEM:
		code = ENOMEM;
		break;
	case SQLITE_READONLY:
		code = EROFS;
		break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		code = EUCLEAN;
		break;
	default:
		code = EIO;
	}
	return nb_err_set(e, code, "ctxgraph store: %s: %s", what,
			  s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
}

static int
prepare(struct ctxgraph_store *s, const char *sql, sqlite3_stmt **out, struct nb_err *e)
{
	int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
	if (rc != SQLITE_OK)
		return db_err(s, e, rc, "prepare");
	return 0;
}

/* The statement for @kind with @scope's shape, prepared on first use. */
static int
read_stmt(struct ctxgraph_store *s, enum read_kind kind, const struct ctxgraph_scope *scope,
	  sqlite3_stmt **out, struct nb_err *e)
{
	size_t shape = scope->all ? 0 : 1 + scope->n_prefixes;
	if (!scope->all && scope->n_prefixes > CTXGRAPH_STORE_MAX_PREFIXES)
		return nb_err_set(e, EINVAL, "ctxgraph store: more than %d prefixes in a scope",
				  CTXGRAPH_STORE_MAX_PREFIXES);
	if (s->reads[kind][shape]) {
		*out = s->reads[kind][shape];
		return 0;
	}
	/* " AND (agent = ?10 OR (key >= ?11 AND key < ?12) OR ...)": at most ~40 bytes a range. */
	char filter[64 + 48 * CTXGRAPH_STORE_MAX_PREFIXES] = "";
	if (shape > 0) {
		size_t o =
			(size_t)snprintf(filter, sizeof(filter), " AND (agent = ?%d", SCOPE_PARAM);
		for (size_t i = 0; i < scope->n_prefixes; i++) {
			int lo = SCOPE_PARAM + 1 + 2 * (int)i;
			o += (size_t)snprintf(filter + o, sizeof(filter) - o,
					      " OR (key >= ?%d AND key < ?%d)", lo, lo + 1);
		}
		snprintf(filter + o, sizeof(filter) - o, ")");
	}
	char sql[1024 + sizeof(filter)];
	snprintf(sql, sizeof(sql), "%s%s%s", read_sql[kind][0], filter, read_sql[kind][1]);
	int r = prepare(s, sql, &s->reads[kind][shape], e);
	if (r < 0)
		return r;
	*out = s->reads[kind][shape];
	return 0;
}

/* P || 0xFF: the exclusive upper end of the keys that start with P (see the header). */
static char *
range_end(const char *prefix, size_t *len)
{
	size_t n = strlen(prefix);
	char *end = malloc(n + 2);
	if (!end)
		return NULL;
	memcpy(end, prefix, n);
	end[n] = (char)0xFF;
	end[n + 1] = '\0';
	*len = n + 1;
	return end;
}

/* Binds the scope's parameters. The range ends are copied by SQLite (TRANSIENT). */
static int
bind_scope(struct ctxgraph_store *s, sqlite3_stmt *st, const struct ctxgraph_scope *scope,
	   struct nb_err *e)
{
	if (scope->all)
		return 0;
	int rc = scope->agent ? sqlite3_bind_text(st, SCOPE_PARAM, scope->agent, -1, SQLITE_STATIC)
			      : sqlite3_bind_null(st, SCOPE_PARAM);
	for (size_t i = 0; rc == SQLITE_OK && i < scope->n_prefixes; i++) {
		int lo = SCOPE_PARAM + 1 + 2 * (int)i;
		size_t elen;
		_cleanup_free_ char *end = range_end(scope->prefixes[i], &elen);
		if (!end)
			return nb_err_set(e, ENOMEM, "out of memory");
		rc = sqlite3_bind_text(st, lo, scope->prefixes[i], -1, SQLITE_STATIC);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_text(st, lo + 1, end, (int)elen, SQLITE_TRANSIENT);
	}
	if (rc != SQLITE_OK)
		return db_err(s, e, rc, "bind");
	return 0;
}

/* Steps @st and hands each row to @fn. Returns the number of rows handed over, or -errno. */
static int
run_read(struct ctxgraph_store *s, sqlite3_stmt *st, ctxgraph_row_fn fn, void *data,
	 struct nb_err *e)
{
	int n = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct ctxgraph_entry en = {
			.hash = (const char *)sqlite3_column_text(st, 0),
			.agent = (const char *)sqlite3_column_text(st, 1),
			.key = (const char *)sqlite3_column_text(st, 2),
			.value = (const char *)sqlite3_column_text(st, 3),
			.value_len = (size_t)sqlite3_column_bytes(st, 3),
			.created_at = sqlite3_column_int64(st, 4),
			.seq = sqlite3_column_int64(st, 5),
		};
		if (!en.hash || !en.agent || !en.key || !en.value) {
			sqlite3_reset(st);
			return nb_err_set(e, EUCLEAN, "ctxgraph store: a row with a NULL column");
		}
		n++;
		int r = fn(&en, data);
		if (r != 0) {
			sqlite3_reset(st);
			return r < 0 ? r : n;
		}
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_err(s, e, rc, "read");
	return n;
}

/* ---- open/close ---- */

static int
exec(struct ctxgraph_store *s, const char *sql, struct nb_err *e)
{
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		int r = nb_err_set(e, (rc & 0xff) == SQLITE_FULL ? ENOSPC : EIO,
				   "ctxgraph store: %s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return r;
	}
	return 0;
}

/* The single integer or text a pragma answers, into @buf. */
static int
pragma(struct ctxgraph_store *s, const char *sql, char *buf, size_t size, struct nb_err *e)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_err(s, e, rc, sql);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		snprintf(buf, size, "%s", t ? (const char *)t : "");
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		buf[0] = '\0';
		rc = SQLITE_OK;
	}
	int r = rc == SQLITE_OK ? 0 : db_err(s, e, rc, sql);
	sqlite3_finalize(st);
	return r;
}

static int
setup(struct ctxgraph_store *s, bool memory, struct nb_err *e)
{
	char buf[64];
	int rc = sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
	if (rc != SQLITE_OK)
		return db_err(s, e, rc, "busy_timeout");
	/* Defensive mode: no writable_schema or other ways for SQL to corrupt the file. */
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	int r = pragma(s, "PRAGMA journal_mode=WAL", buf, sizeof(buf), e);
	if (r < 0)
		return r;
	if (strcmp(buf, memory ? "memory" : "wal") != 0)
		return nb_err_set(e, EIO, "ctxgraph store: cannot switch to WAL mode (got %s)",
				  buf);
	/*
	 * Why FULL: with WAL, NORMAL already survives a crash of the process, but a commit can be
	 * lost to a power failure. An acknowledged write is a promise to the agent; FULL syncs the
	 * WAL at every commit so the promise holds across power loss too.
	 */
	r = exec(s, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF; PRAGMA trusted_schema=OFF;",
		 e);
	if (r < 0)
		return r;
	r = pragma(s, "PRAGMA user_version", buf, sizeof(buf), e);
	if (r < 0)
		return r;
	long version = strtol(buf, NULL, 10);
	if (version > SCHEMA_VERSION)
		return nb_err_set(e, EPROTO,
				  "ctxgraph store: the database has schema version %ld, newer than "
				  "this ctxgraph's (%d); refusing to use it",
				  version, SCHEMA_VERSION);
	r = exec(s, "BEGIN IMMEDIATE", e);
	if (r < 0)
		return r;
	r = exec(s, schema_sql, e);
	if (r == 0 && version < SCHEMA_VERSION) {
		char sql[64];
		snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", SCHEMA_VERSION);
		r = exec(s, sql, e);
	}
	if (r == 0)
		r = exec(s, "COMMIT", e);
	if (r < 0) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return r;
	}
	/* RETURNING gives the seq of a new row; an ignored INSERT returns no row. */
	r = prepare(s,
		    "INSERT OR IGNORE INTO entries (hash, agent, key, value, created_at, seq)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, (SELECT IFNULL(MAX(seq), 0) + 1 FROM entries))"
		    " RETURNING seq",
		    &s->insert, e);
	if (r == 0)
		r = prepare(s, "SELECT seq, created_at FROM entries WHERE hash = ?1", &s->existing,
			    e);
	if (r == 0)
		r = prepare(s, "BEGIN IMMEDIATE", &s->begin, e);
	if (r == 0)
		r = prepare(s, "COMMIT", &s->commit, e);
	if (r == 0)
		r = prepare(s, "ROLLBACK", &s->rollback, e);
	return r;
}

int
ctxgraph_store_open(const char *path, struct ctxgraph_store **out, struct nb_err *e)
{
	*out = NULL;
	struct ctxgraph_store *s = calloc(1, sizeof(*s));
	if (!s)
		return nb_err_set(e, ENOMEM, "out of memory");
	bool memory = strcmp(path, ":memory:") == 0;
	/* NOFOLLOW: the database is ours; a symlink put in its place must not redirect writes. */
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
		    SQLITE_OPEN_EXRESCODE | (memory ? 0 : SQLITE_OPEN_NOFOLLOW);
	int rc = sqlite3_open_v2(path, &s->db, flags, NULL);
	if (rc != SQLITE_OK) {
		int r = nb_err_set(e, (rc & 0xff) == SQLITE_CANTOPEN ? EACCES : EIO,
				   "%s: cannot open: %s", path,
				   s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		ctxgraph_store_close(s);
		return r;
	}
	int r = setup(s, memory, e);
	if (r < 0) {
		nb_err_prefix(e, "%s", path);
		ctxgraph_store_close(s);
		return r;
	}
	*out = s;
	return 0;
}

void
ctxgraph_store_close(struct ctxgraph_store *s)
{
	if (!s)
		return;
	sqlite3_finalize(s->insert);
	sqlite3_finalize(s->existing);
	sqlite3_finalize(s->begin);
	sqlite3_finalize(s->commit);
	sqlite3_finalize(s->rollback);
	for (size_t k = 0; k < Q_KINDS; k++)
		for (size_t i = 0; i < SHAPES; i++)
			sqlite3_finalize(s->reads[k][i]);
	/* sqlite3_close checkpoints the WAL when it is the last connection. */
	sqlite3_close_v2(s->db);
	free(s);
}

/* ---- writes ---- */

static int
step_done(struct ctxgraph_store *s, sqlite3_stmt *st, const char *what, struct nb_err *e)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_err(s, e, rc, what);
	return 0;
}

static int
put_one(struct ctxgraph_store *s, struct ctxgraph_put *p, struct nb_err *e)
{
	sqlite3_stmt *st = s->insert;
	int rc = sqlite3_bind_text(st, 1, p->hash, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, p->agent, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 3, p->key, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 4, p->value, (int)p->value_len, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 5, p->created_at);
	if (rc != SQLITE_OK) {
		sqlite3_clear_bindings(st);
		return db_err(s, e, rc, "bind");
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		p->created = true;
		p->seq = sqlite3_column_int64(st, 0);
		p->stored_at = p->created_at;
		rc = sqlite3_step(st);
	} else {
		p->created = false;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return db_err(s, e, rc, "insert");
	if (p->created)
		return 0;
	/* Already there: report the stored entry's seq and time. */
	st = s->existing;
	rc = sqlite3_bind_text(st, 1, p->hash, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		p->seq = sqlite3_column_int64(st, 0);
		p->stored_at = sqlite3_column_int64(st, 1);
		rc = SQLITE_DONE;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_CORRUPT; /* ignored, yet not there */
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return db_err(s, e, rc, "lookup");
	return 0;
}

int
ctxgraph_store_put(struct ctxgraph_store *s, struct ctxgraph_put *items, size_t n, struct nb_err *e)
{
	if (n == 0)
		return 0;
	/* One write is its own (autocommit) transaction; several share one, all or none. */
	bool txn = n > 1;
	if (txn) {
		int r = step_done(s, s->begin, "begin", e);
		if (r < 0)
			return r;
	}
	int created = 0;
	for (size_t i = 0; i < n; i++) {
		int r = put_one(s, &items[i], e);
		if (r < 0) {
			if (txn)
				step_done(s, s->rollback, "rollback", NULL);
			return r;
		}
		created += items[i].created;
	}
	if (txn) {
		int r = step_done(s, s->commit, "commit", e);
		if (r < 0) {
			/* A failed COMMIT may leave the transaction open: end it, nothing stored.
			 */
			if (!sqlite3_get_autocommit(s->db))
				step_done(s, s->rollback, "rollback", NULL);
			return r;
		}
	}
	return created;
}

/* ---- reads ---- */

int
ctxgraph_store_latest(struct ctxgraph_store *s, const char *key, const struct ctxgraph_scope *scope,
		      ctxgraph_row_fn fn, void *data, struct nb_err *e)
{
	sqlite3_stmt *st;
	int r = read_stmt(s, Q_LATEST, scope, &st, e);
	if (r < 0)
		return r;
	int rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (rc != SQLITE_OK)
		return db_err(s, e, rc, "bind");
	r = bind_scope(s, st, scope, e);
	if (r == 0)
		r = run_read(s, st, fn, data, e);
	sqlite3_clear_bindings(st);
	return r;
}

int
ctxgraph_store_prefix(struct ctxgraph_store *s, const char *prefix, const char *after,
		      const struct ctxgraph_scope *scope, int64_t limit, ctxgraph_row_fn fn,
		      void *data, struct nb_err *e)
{
	sqlite3_stmt *st;
	int r = read_stmt(s, Q_PREFIX, scope, &st, e);
	if (r < 0)
		return r;
	size_t elen;
	_cleanup_free_ char *end = range_end(prefix, &elen);
	if (!end)
		return nb_err_set(e, ENOMEM, "out of memory");
	/* Keys are never empty, so "greater than the empty string" means from the first. */
	int rc = sqlite3_bind_text(st, 1, prefix, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, end, (int)elen, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 3, after ? after : "", -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, limit);
	if (rc != SQLITE_OK) {
		sqlite3_clear_bindings(st);
		return db_err(s, e, rc, "bind");
	}
	r = bind_scope(s, st, scope, e);
	if (r == 0)
		r = run_read(s, st, fn, data, e);
	sqlite3_clear_bindings(st);
	return r;
}

/* History and by-agent: the same shape, on key or on agent. */
static int
seq_read(struct ctxgraph_store *s, enum read_kind kind, const char *what, int64_t after_seq,
	 const struct ctxgraph_scope *scope, int64_t limit, ctxgraph_row_fn fn, void *data,
	 struct nb_err *e)
{
	sqlite3_stmt *st;
	int r = read_stmt(s, kind, scope, &st, e);
	if (r < 0)
		return r;
	int rc = sqlite3_bind_text(st, 1, what, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, after_seq);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, limit);
	if (rc != SQLITE_OK) {
		sqlite3_clear_bindings(st);
		return db_err(s, e, rc, "bind");
	}
	r = bind_scope(s, st, scope, e);
	if (r == 0)
		r = run_read(s, st, fn, data, e);
	sqlite3_clear_bindings(st);
	return r;
}

int
ctxgraph_store_history(struct ctxgraph_store *s, const char *key, int64_t after_seq,
		       const struct ctxgraph_scope *scope, int64_t limit, ctxgraph_row_fn fn,
		       void *data, struct nb_err *e)
{
	return seq_read(s, Q_HISTORY, key, after_seq, scope, limit, fn, data, e);
}

int
ctxgraph_store_by_agent(struct ctxgraph_store *s, const char *agent, int64_t after_seq,
			const struct ctxgraph_scope *scope, int64_t limit, ctxgraph_row_fn fn,
			void *data, struct nb_err *e)
{
	return seq_read(s, Q_AGENT, agent, after_seq, scope, limit, fn, data, e);
}

int
ctxgraph_store_count(struct ctxgraph_store *s, int64_t *out, struct nb_err *e)
{
	char buf[32];
	int r = pragma(s, "SELECT COUNT(*) FROM entries", buf, sizeof(buf), e);
	if (r == 0)
		*out = strtoll(buf, NULL, 10);
	return r;
}
