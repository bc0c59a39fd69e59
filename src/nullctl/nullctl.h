#pragma once
/*
 * nullctl: the command line people and scripts drive nulld with, JSON-RPC over nulld's control
 * socket (lib/ipc.h).
 *
 * Files:
 *   main.c      the command table and its help texts (one source for --help, usage errors and
 *               the man page's content), argument parsing, the connection and error mapping
 *   commands.c  one function per command: the request it sends and how it prints the reply
 *   output.c    what reaches the terminal: escaping of daemon- and agent-supplied strings,
 *               display widths, tables, durations
 *   vault.c     the vault commands, which talk to warden's socket (warden.sock next to nulld's)
 *   ctx.c       the ctx commands, which talk to ctxgraph's socket (ctxgraph.sock next to nulld's)
 *
 * Exit codes: 0 ok, 1 refused or failed (nulld's message is printed), 2 usage.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ipc.h"

#define CTL_EXIT_OK 0
#define CTL_EXIT_FAIL 1
#define CTL_EXIT_USAGE 2

#define CTL_DEFAULT_STATE_DIR "/var/lib/nullbox"
#define CTL_DEFAULT_SOCKET "/run/nullbox/nulld.sock"
#define CTL_DEFAULT_TIMEOUT_SECS 30

/* The global options and the connection, shared by every command. */
struct ctl {
	const char *socket_path; /* resolved: --socket, --state-dir, $NULLBOX_SOCKET or default */
	const char *state_dir;	 /* --state-dir as given, NULL if not */
	bool socket_explicit;	 /* from --socket or $NULLBOX_SOCKET */
	bool json;
	int timeout_ms; /* -1: forever */
	struct nb_ipc_client *client;
	char socket_buf[4200];
};

/* A parsed command line for one command: its option values and positional arguments. */
struct ctl_args {
	const char *const *pos; /* positional arguments after the command words */
	size_t n_pos;
	const char *name;    /* --name */
	const char *agent;   /* --agent */
	const char *verdict; /* --verdict */
	int64_t lines;	     /* --lines; -1 if not given */
	int64_t limit;	     /* --limit; -1 if not given */
	bool follow;	     /* --follow */
	bool raw;	     /* --raw */
	const char *value;   /* --value */
	const char *inject;  /* --inject: "placeholder" or "env" */
};

struct ctl_cmd;

/* ---- main.c ---- */

/*
 * Prints "nullctl: MESSAGE" (formatted) on stderr, then @cmd's usage and a pointer to its
 * --help. Returns CTL_EXIT_USAGE.
 */
int ctl_usage_error(const struct ctl_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Prints "nullctl: MESSAGE" on stderr; the formatted text is escaped (it may hold what nulld or
 * an agent said). Returns CTL_EXIT_FAIL.
 */
int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Connects to nulld if not yet connected. Returns 0, or CTL_EXIT_FAIL after printing why (for a
 * missing daemon: that it is not running and the command that starts it).
 */
int ctl_connect(struct ctl *c);

/*
 * Calls @method with @params (borrowed; NULL: none) and waits for the reply within the
 * --timeout. Returns 0 with *result a new reference, or CTL_EXIT_FAIL after printing nulld's
 * error message (or the transport's) on stderr.
 */
int ctl_call(struct ctl *c, const char *method, json_t *params, json_t **result);

/*
 * Prints the reason a transport-level or JSON-RPC failure @r (negative errno from lib/ipc, with
 * @e) happened during @method. Returns CTL_EXIT_FAIL.
 */
int ctl_report_ipc_error(struct ctl *c, const char *method, int r, const struct nb_err *e);

/* ---- commands.c ---- */

int ctl_cmd_status(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_agent_start(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_agent_stop(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_agent_restart(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_agent_pause(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_agent_resume(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_agent_status(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_agent_list(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_agent_logs(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_audit(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_audit_verify(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_service_restart(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_shutdown(struct ctl *c, const struct ctl_args *a);

/* ---- vault.c ---- */

int ctl_cmd_vault_set(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_vault_list(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_vault_delete(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_vault_bind(struct ctl *c, const struct ctl_args *a);

/* ---- ctx.c ---- */

int ctl_cmd_ctx_write(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_ctx_read(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_ctx_query(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_ctx_history(struct ctl *c, const struct ctl_args *a);
int ctl_cmd_ctx_by_agent(struct ctl *c, const struct ctl_args *a);

/* ---- output.c ---- */

/*
 * Reads the terminal's character set from the locale (LC_CTYPE). Call once, first: it decides
 * whether printable non-ASCII characters are shown as they are (UTF-8) or escaped.
 */
void ctl_output_init(void);

/* How ctl_escape() treats newlines and tabs. */
enum ctl_escape_mode {
	CTL_ESC_LINE, /* one line: \n, \t, \r become visible escapes (cells, messages, values) */
	CTL_ESC_TEXT, /* a stream of lines (agent logs on a terminal): \n and \t pass, \r\n too */
};

/*
 * Makes @s (@len bytes) safe for a terminal: control characters (C0, DEL, C1), invisible and
 * direction-changing characters (bidi overrides, zero-width), backslashes and invalid UTF-8
 * become visible escapes (\x1b, \u{202e}, \\), so nothing from nulld or an agent can move the
 * cursor, recolour, retitle or reorder what the operator reads. Printable non-ASCII is kept
 * in a UTF-8 locale and escaped otherwise. When @max_width is not 0 the text is cut to at most
 * that many display columns, ending in an ellipsis. Returns a new string (never NULL: aborts on
 * out-of-memory) and its display width in *width (may be NULL).
 */
char *ctl_escape(const char *s, size_t len, enum ctl_escape_mode mode, size_t max_width,
		 size_t *width);

/* Writes ctl_escape(@s, CTL_ESC_LINE, no limit) to @f. NULL prints "-". */
void ctl_print_escaped(FILE *f, const char *s);

/* A human duration: 850 -> "0s", 5000 -> "5s", 192000 -> "3m12s", 3720000 -> "1h02m",
 * 183600000 -> "2d03h". Writes into @buf (at least 16 bytes), returns @buf. */
char *ctl_duration(uint64_t ms, char *buf, size_t size);

/*
 * A table for people: a heading row, rows of cells, columns two spaces apart and padded to
 * their widest cell, each column capped at a maximum width (0: none; longer cells are cut with
 * an ellipsis). Every cell is escaped (ctl_escape()) on the way in, so any string is safe to add.
 */
struct ctl_table;

/* @heads: @ncols column headings; @max: their maximum widths (NULL: none). Aborts on ENOMEM. */
struct ctl_table *ctl_table_new(size_t ncols, const char *const *heads, const size_t *max);
void ctl_table_free(struct ctl_table *t);
/* Adds a row of ncols cells; a NULL or empty cell shows as "-". */
void ctl_table_add(struct ctl_table *t, const char *const *cells);
/* Prints the heading and every row added so far, then forgets the rows (widths stay). */
void ctl_table_print(struct ctl_table *t, FILE *f);
/*
 * For streams: fixes the column widths to what they are now (at least @min, may be NULL), so
 * later ctl_table_print() calls line up with what was already printed. The heading is printed
 * only by the first ctl_table_print().
 */
void ctl_table_freeze(struct ctl_table *t, const size_t *min);

/* Prints @v as one line of compact, ASCII-only JSON on stdout and flushes. */
void ctl_print_json(const json_t *v);

/* Typed, lenient reads of reply members: absent or of another type gives NULL / @dflt. */
const char *ctl_json_str(const json_t *o, const char *key);
int64_t ctl_json_int(const json_t *o, const char *key, int64_t dflt);

/*
 * Connects c->client (if not yet) to SERVICE's socket beside nulld's, DIR/SERVICE.sock. On
 * failure prints why (not running, or @who_may: "only root may ...") and returns the exit
 * status to use (1); 0 when connected.
 */
int ctl_service_connect(struct ctl *c, const char *service, const char *who_may);

/*
 * Calls @method on SERVICE (connecting first, see ctl_service_connect). Returns 0 with *result
 * set, or prints why it failed (the service's own error message when it answered with one) and
 * returns the exit status to use (1).
 */
int ctl_service_call(struct ctl *c, const char *service, const char *who_may, const char *method,
		     json_t *params, json_t **result);
