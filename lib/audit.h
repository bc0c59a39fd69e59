#pragma once
/*
 * The tamper-evident audit log: one JSON record per line, hash-chained from a fixed genesis value,
 * with a head file that signs (HMAC-SHA256) the sequence number and hash of the last record so
 * that truncation is caught as well as editing, deletion, insertion and reordering.
 *
 * The exact format (precise enough to write an independent verifier), the fsync policy, what
 * verification can and cannot detect, and the recovery procedure are in docs/AUDIT.md.
 *
 * Files, all in one directory (nulld's state dir):
 *   audit.log   the records, appended with O_APPEND, one write(2) per record
 *   audit.head  {"hash":..,"mac":..,"seq":..}, replaced atomically after records are durable
 *   audit.key   32 random bytes, mode 0600 (a default key source; the key is passed in as bytes,
 *               so warden can hold it later)
 *
 * One writer per log (an exclusive flock on audit.log); any number of readers and verifiers.
 * Nothing here is async-signal-safe. Every function that can fail returns a negative errno (or
 * NULL) and fills a struct nb_err; messages never contain bytes copied raw from a log, so they
 * are safe to print on a terminal.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"
#include "json.h"

#define NB_AUDIT_KEY_LEN 32
/* Longest actor, action, object or reason, in bytes. */
#define NB_AUDIT_FIELD_MAX 4096
/* Longest record line, in bytes, counting its '\n'. */
#define NB_AUDIT_LINE_MAX 65536
/* Deepest nesting of arrays and objects inside `detail` (the detail object itself is depth 1). */
#define NB_AUDIT_DETAIL_DEPTH_MAX 32
/* SHA-256 of this string (no NUL) is the `prev` of record 1. */
#define NB_AUDIT_GENESIS_INPUT "nullbox-audit-genesis-v1"

#define NB_AUDIT_LOG_NAME "audit.log"
#define NB_AUDIT_HEAD_NAME "audit.head"
#define NB_AUDIT_KEY_NAME "audit.key"

enum nb_audit_verdict {
	NB_AUDIT_ALLOWED = 0,
	NB_AUDIT_DENIED = 1,
	NB_AUDIT_DEFERRED = 2,
};

/* "allowed", "denied", "deferred"; NULL for a value outside the enum. */
const char *nb_audit_verdict_name(enum nb_audit_verdict v);

/* Parses a verdict name (exact, lower case). Returns 0, or -EINVAL with @e set. */
int nb_audit_verdict_parse(const char *s, enum nb_audit_verdict *out, struct nb_err *e);

/* The genesis hash: SHA-256(NB_AUDIT_GENESIS_INPUT). */
void nb_audit_genesis(uint8_t out[NB_SHA256_LEN]);

/* ---- key ---- */

enum {
	NB_AUDIT_KEY_CREATE = 1 << 0, /* create the file (0600, 32 random bytes) if it is missing */
};

/*
 * Reads the 32-byte key at @path into @key. The file must be a regular file (symlinks are not
 * followed), owned by the effective uid, with no permission bits for group or others, and exactly
 * 32 bytes long. With NB_AUDIT_KEY_CREATE and no file, a fresh key from getrandom(2) is written
 * to a temporary file in the same directory, fsync'ed and linked into place (so a crash never
 * leaves a short key), then the directory is fsync'ed.
 * Returns 0, or a negative errno with @e set (e.g. -EPERM "audit key /x/audit.key has mode 0644:
 * it must not be accessible to group or others (chmod 600)"). On error @key is zeroed.
 * The caller owns @key and should OPENSSL_cleanse() it when done.
 */
int nb_audit_key_load(const char *path, unsigned flags, uint8_t key[NB_AUDIT_KEY_LEN],
		      struct nb_err *e);

/* ---- writer ---- */

enum nb_audit_sync {
	/* Default: every record is fdatasync'ed and the head re-signed before append returns. */
	NB_AUDIT_SYNC_EVERY = 0,
	/*
	 * Records are written at once but made durable and signed at most every batch_ms: by the
	 * append that finds the oldest pending record at least that old, by nb_audit_flush(), and
	 * by nb_audit_close(). The caller must call nb_audit_flush() when nb_audit_flush_due()
	 * says so (e.g. from a timerfd), or pending records stay unsigned.
	 */
	NB_AUDIT_SYNC_BATCH = 1,
};

struct nb_audit_opts {
	enum nb_audit_sync sync;
	unsigned batch_ms; /* SYNC_BATCH only: 1..1000; 0 = 100 */
	/* Walk the whole chain (nb_audit_verify()) before accepting the log, not only its tail. */
	bool full_verify;
};

struct nb_audit; /* opaque: one open writer */

/*
 * Opens the log in directory @dir for appending, as its only writer. @key is copied (and wiped
 * again by nb_audit_close()). @opts may be NULL (NB_AUDIT_SYNC_EVERY).
 *
 * With no audit.log and no audit.head, a new log is started: an empty audit.log (0600) and a head
 * that signs seq 0 and the genesis hash. Otherwise the log must end in a complete record whose
 * hash recomputes, and audit.head must carry a valid MAC under @key naming that record's seq and
 * hash; anything else (a partial last line, records after the signed head, a truncated log, a
 * forged head, a wrong key) is refused with -EBADMSG and a message that says what is wrong and to
 * run verify; the files are never truncated or rewritten. Only the tail is checked, so the open
 * is fast on a large log, unless opts->full_verify asks for the whole chain to be walked too
 * (a record edited in the middle does not stop appends otherwise: appending cannot hide it, and
 * nb_audit_verify() still reports it).
 *
 * Returns 0 and *@out, or a negative errno with @e set: -EWOULDBLOCK when another writer holds
 * the log ("... is locked by another writer (pid N?)"), -EBADMSG as above, -EPERM/-ENOENT/... for
 * files that cannot be opened.
 */
int nb_audit_open(const char *dir, const uint8_t key[NB_AUDIT_KEY_LEN],
		  const struct nb_audit_opts *opts, struct nb_audit **out, struct nb_err *e);

/*
 * Appends one record. @actor, @action, @object and @reason must be valid UTF-8, 1 to
 * NB_AUDIT_FIELD_MAX bytes, without control characters (C0, DEL, C1). @detail is NULL or a JSON
 * object (borrowed, not modified) without reals, without U+0000 in any string and nested at most
 * NB_AUDIT_DETAIL_DEPTH_MAX deep; its strings may hold other control characters (JSON escapes
 * them). The whole line must fit in NB_AUDIT_LINE_MAX.
 *
 * The record is written with one write(2) on an O_APPEND descriptor, then made durable and
 * signed according to the sync policy. *@seq_out (may be NULL) is set to the record's seq as soon
 * as the record is in the file, else to 0: a caller that gets an error with *@seq_out != 0 must
 * not append the record again (the message says what failed afterwards: a failed fdatasync makes
 * the writer refuse all further appends; a failed head update is retried by the next append or
 * flush).
 * Returns 0, or a negative errno with @e set: -EINVAL for a bad field ("audit: actor: ..."),
 * -EIO/-ENOSPC/... for the file, -EBADFD once the writer has refused further appends.
 */
int nb_audit_append(struct nb_audit *log, const char *actor, const char *action, const char *object,
		    enum nb_audit_verdict verdict, const char *reason, json_t *detail,
		    uint64_t *seq_out, struct nb_err *e);

/*
 * Makes every record written so far durable (fdatasync) and signs the head over the last one.
 * A no-op when nothing is pending. Returns 0 or a negative errno with @e set.
 */
int nb_audit_flush(struct nb_audit *log, struct nb_err *e);

/*
 * Milliseconds until a SYNC_BATCH writer must be flushed (0 = now), or -1 if nothing is pending.
 * Always -1 for SYNC_EVERY.
 */
long nb_audit_flush_due(const struct nb_audit *log);

/* The seq of the last record in the log (0 for an empty log), and its hash in hex. */
uint64_t nb_audit_seq(const struct nb_audit *log);
void nb_audit_last_hash(const struct nb_audit *log, char out[NB_SHA256_HEX_LEN + 1]);

/*
 * Flushes pending records, wipes the key copy, releases the lock and frees @log (may be NULL).
 * Returns 0, or the flush's negative errno with @e set; @log is freed either way.
 */
int nb_audit_close(struct nb_audit *log, struct nb_err *e);

/* ---- checking records one line at a time (verify, iterators, a remote collector) ---- */

/* Where a chain stands: the last record accepted. seq 0 and the genesis hash at the start. */
struct nb_audit_chain {
	uint64_t seq;
	uint8_t hash[NB_SHA256_LEN];
};

void nb_audit_chain_init(struct nb_audit_chain *c);

/*
 * Checks that @line (@len bytes, without its '\n'; need not be NUL-terminated) is the record that
 * follows @c: valid JSON in canonical form, exactly the expected fields with the expected types
 * and limits, seq = c->seq + 1, prev = c->hash, and a hash that recomputes. On success advances
 * @c and returns 0. On failure leaves @c unchanged and returns -EBADMSG with @e set to
 * "record N: REASON" (N = c->seq + 1, the record's line number).
 */
int nb_audit_chain_check(struct nb_audit_chain *c, const char *line, size_t len, struct nb_err *e);

/* ---- verify ---- */

enum nb_audit_problem {
	NB_AUDIT_OK = 0,
	NB_AUDIT_BAD_RECORD,	/* a record fails nb_audit_chain_check() */
	NB_AUDIT_PARTIAL_LINE,	/* the log ends in bytes without a '\n' */
	NB_AUDIT_TRUNCATED,	/* fewer records than the signed head names (or no log) */
	NB_AUDIT_UNSIGNED_TAIL, /* records after the one the head signs */
	NB_AUDIT_HEAD_MISMATCH, /* the head's hash differs from the log's record at that seq */
	NB_AUDIT_HEAD_INVALID,	/* the head fails its MAC, or cannot be parsed */
	NB_AUDIT_NO_HEAD,	/* records, but no head file */
};

struct nb_audit_report {
	enum nb_audit_problem problem;
	uint64_t records;   /* complete records that passed the chain check */
	uint64_t first_bad; /* 1-based record (= line) number of the first bad or missing record;
			       0 when the problem is the head itself or there is none */
	bool head_checked;  /* false when verified without a key (the chain only) */
	uint64_t head_seq;  /* what the head signs, when head_checked */
	char last_hash[NB_SHA256_HEX_LEN + 1]; /* of the last good record (genesis if none) */
	char msg[512];			       /* one line, "" when problem is NB_AUDIT_OK */
};

enum {
	/*
	 * A writer may be appending: when the log has records the head does not sign yet (or a
	 * partial last line), re-read the head and the log for up to NB_AUDIT_LIVE_WAIT_MS before
	 * reporting. Without it the files are taken as they are (nulld not running).
	 */
	NB_AUDIT_VERIFY_LIVE = 1 << 0,
};
#define NB_AUDIT_LIVE_WAIT_MS 2000

/*
 * Verifies the log. @path is the directory holding audit.log and audit.head, or the log file
 * itself (the head is then the audit.head beside it). The log is streamed, never loaded whole.
 * With @key, the head is checked as well (MAC, and that it names the last record); with @key NULL
 * only the chain is (e.g. a collector without the key), and report->head_checked is false.
 * No log and no head is a valid, empty log.
 *
 * Returns 0 when the log verifies; -EBADMSG when it does not, with @report saying where and why
 * and @e holding report->msg, e.g. "record 17: hash mismatch (edited?)"; another negative errno
 * when it could not be read (@e set). @report is always filled.
 */
int nb_audit_verify(const char *path, const uint8_t *key, unsigned flags,
		    struct nb_audit_report *report, struct nb_err *e);

/*
 * Recovery after a crash, run by an operator (never automatically): when every record up to the
 * one the head signs verifies and the head is valid, whatever follows that record (a partial
 * line, or records that were written but never signed) is copied to
 * "audit.log.tail-SEQ-UNIXTIME" beside the log, the log is cut back to the signed record, and a
 * record (actor "nullbox-audit", action "audit.recover") is appended that names the file and the
 * SHA-256 and size of what was moved. Anything else (a bad record the head signs, a truncated log,
 * a head that fails its MAC) is refused: that is not a crash, and cutting would hide it.
 * Takes the writer lock, so nulld must not be running.
 * Returns 0 (with @report describing what was found; problem NB_AUDIT_OK if there was nothing to
 * do), or a negative errno with @e set.
 */
int nb_audit_recover(const char *dir, const uint8_t key[NB_AUDIT_KEY_LEN],
		     struct nb_audit_report *report, struct nb_err *e);

/* ---- reading ---- */

struct nb_audit_filter {
	const char *actor; /* exact match; NULL = any */
	unsigned verdicts; /* bit mask of 1u << NB_AUDIT_*; 0 = any */
};

/* One record, as returned by nb_audit_iter_next(). Valid until the next call or _free(). */
struct nb_audit_record {
	uint64_t seq;
	const char *time; /* RFC 3339 UTC, microseconds: "2024-05-01T12:34:56.123456Z" */
	const char *actor, *action, *object, *reason;
	enum nb_audit_verdict verdict;
	json_t *detail;		 /* borrowed; NULL when absent */
	const char *hash, *prev; /* hex */
	const char *line;	 /* the record as stored, without '\n' (for --json output) */
	size_t line_len;
};

enum {
	/*
	 * Follow the log: at its end nb_audit_iter_next() returns 0 and keeps any partial line, and
	 * nb_audit_iter_wait() waits for more.
	 */
	NB_AUDIT_ITER_FOLLOW = 1 << 0,
};

struct nb_audit_iter; /* opaque */

/*
 * Opens @path (directory or log file, as for nb_audit_verify()) for reading records that match
 * @filter (may be NULL). A missing log reads as empty unless following (then -ENOENT).
 * Returns 0 and *@out, or a negative errno with @e set.
 */
int nb_audit_iter_open(const char *path, const struct nb_audit_filter *filter, unsigned flags,
		       struct nb_audit_iter **out, struct nb_err *e);

/*
 * Reads the next matching record into @rec. Every record read, matching or not, goes through
 * nb_audit_chain_check(), so the records returned form a valid chain from genesis (the head is
 * not checked here: that is nb_audit_verify()'s job).
 * Returns 1 with @rec filled, 0 at the end of the log, or a negative errno with @e set:
 * -EBADMSG at the first bad record ("record N: ..."), -EIO etc. for read errors. After an error
 * every further call returns the same error.
 */
int nb_audit_iter_next(struct nb_audit_iter *it, struct nb_audit_record *rec, struct nb_err *e);

/*
 * Following only: waits up to @timeout_ms (-1 = forever) for the log to change. Returns 1 when it
 * may have grown (call nb_audit_iter_next() again), 0 on timeout, or a negative errno with @e set
 * (-EINTR if a signal arrived).
 */
int nb_audit_iter_wait(struct nb_audit_iter *it, int timeout_ms, struct nb_err *e);

/* Following only: a descriptor that polls readable when the log may have changed, or -1 (then
 * poll nb_audit_iter_wait() with a timeout). Owned by the iterator. */
int nb_audit_iter_fd(const struct nb_audit_iter *it);

void nb_audit_iter_free(struct nb_audit_iter *it);
