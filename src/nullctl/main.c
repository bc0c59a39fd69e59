/*
 * main.c: `nullctl [OPTIONS] COMMAND [ARGS...]`.
 *
 * Sections:
 *   commands   the table of commands: words, arguments, options, help text, handler
 *   help       --help, usage errors
 *   parsing    global options (anywhere before "--") and each command's own
 *   connection the socket to use, connecting, calling, turning failures into messages
 *
 * The table is the one source of what nullctl accepts: `nullctl --help`, every `COMMAND
 * --help`, usage errors, and (checked by the tests) docs/man/nullctl.1 all follow it.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "nullctl.h"

#ifndef NULLBOX_VERSION
#define NULLBOX_VERSION "unknown"
#endif

/* ---- commands ---- */

enum {
	OPT_NAME = 1 << 0,
	OPT_LINES = 1 << 1,
	OPT_FOLLOW = 1 << 2,
	OPT_RAW = 1 << 3,
	OPT_AGENT = 1 << 4,
	OPT_VERDICT = 1 << 5,
	OPT_LIMIT = 1 << 6,
	OPT_VALUE = 1 << 7,
	OPT_INJECT = 1 << 8,
};

struct ctl_opt {
	const char *name; /* without the leading "--" */
	bool has_arg;
	unsigned id;
};

static const struct ctl_opt cmd_opts[] = {
	{ "name", true, OPT_NAME },	 { "lines", true, OPT_LINES },
	{ "follow", false, OPT_FOLLOW }, { "raw", false, OPT_RAW },
	{ "agent", true, OPT_AGENT },	 { "verdict", true, OPT_VERDICT },
	{ "limit", true, OPT_LIMIT },	 { "value", true, OPT_VALUE },
	{ "inject", true, OPT_INJECT },
};

struct ctl_cmd {
	const char *words;   /* "agent start" */
	const char *args;    /* "DIR|AGENT.toml [--name N]" */
	const char *summary; /* for the list in `nullctl --help` */
	const char *help;    /* what `nullctl WORDS --help` adds under the usage line */
	unsigned opts;
	size_t min_pos, max_pos;
	int (*run)(struct ctl *c, const struct ctl_args *a);
};

static const struct ctl_cmd commands[] = {
	{ "status", "", "show nulld, its services and its agents",
	  "Shows nulld (pid, uptime, state dir), then a table of its services (NAME STATE\n"
	  "PID SINCE RESTARTS LAST EXIT) and one of its agents (NAME STATE PID SINCE\n"
	  "RESTARTS HEALTH). SINCE is how long the unit has been in its state.\n",
	  0, 0, 0, ctl_cmd_status },
	{ "agent start", "DIR|AGENT.toml [--name N]", "start an agent from its manifest",
	  "Starts an agent in its own cage, as its manifest (AGENT.toml, or DIR/AGENT.toml)\n"
	  "grants. The path is made absolute before it is sent to nulld. nulld keeps the\n"
	  "agent: it is restarted by the manifest's policy and comes back after nulld\n"
	  "restarts.\n"
	  "\n"
	  "Options:\n"
	  "  --name N          the agent's name (default: the manifest's)\n",
	  OPT_NAME, 1, 1, ctl_cmd_agent_start },
	{ "agent stop", "NAME", "stop an agent and forget it",
	  "Stops the agent (SIGTERM, then SIGKILL after 5 s) and removes it from nulld: it\n"
	  "does not come back when nulld restarts. Its logs stay in the state dir.\n",
	  0, 1, 1, ctl_cmd_agent_stop },
	{ "agent restart", "NAME", "stop an agent and start it again",
	  "Stops the agent and starts it again from the same manifest.\n", 0, 1, 1,
	  ctl_cmd_agent_restart },
	{ "agent pause", "NAME", "freeze every process of an agent",
	  "Freezes the agent's processes (cgroup freezer) until `nullctl agent resume`.\n", 0, 1, 1,
	  ctl_cmd_agent_pause },
	{ "agent resume", "NAME", "thaw a paused agent",
	  "Thaws an agent frozen by `nullctl agent pause`.\n", 0, 1, 1, ctl_cmd_agent_resume },
	{ "agent status", "NAME", "show one agent in detail",
	  "Shows one agent as \"key: value\" lines: name, manifest, state, pid, since,\n"
	  "failures, restarts, last exit, health.\n",
	  0, 1, 1, ctl_cmd_agent_status },
	{ "agent list", "", "list the agents",
	  "Lists the agents in a table: NAME STATE PID SINCE RESTARTS HEALTH.\n", 0, 0, 0,
	  ctl_cmd_agent_list },
	{ "agent logs", "NAME [--lines N] [--follow] [--raw]",
	  "print an agent's output (stdout and stderr)",
	  "Prints the last lines of what the agent wrote to its stdout and stderr.\n"
	  "\n"
	  "Options:\n"
	  "  --lines N         how many lines (default 100)\n"
	  "  --follow          then keep printing new output as it comes, until interrupted\n"
	  "                    (exit 0) or until nulld ends the stream (exit 1)\n"
	  "  --raw             print the output exactly as the agent wrote it; by default\n"
	  "                    control characters are escaped when standard output is a\n"
	  "                    terminal, so the agent cannot drive the terminal\n",
	  OPT_LINES | OPT_FOLLOW | OPT_RAW, 1, 1, ctl_cmd_agent_logs },
	{ "audit", "[--agent A] [--verdict V] [--limit N] [--follow]", "print audit records",
	  "Prints audit records in a table: TIME ACTOR ACTION OBJECT VERDICT REASON. Long\n"
	  "cells are cut (--json has them whole); control characters are escaped.\n"
	  "\n"
	  "Options:\n"
	  "  --agent A         only records whose actor is agent A\n"
	  "  --verdict V       only records with verdict V: allowed, denied or deferred\n"
	  "  --limit N         at most the N most recent records\n"
	  "  --follow          then keep printing new records as they are written, until\n"
	  "                    interrupted (exit 0) or until nulld ends the stream (exit 1)\n",
	  OPT_AGENT | OPT_VERDICT | OPT_LIMIT | OPT_FOLLOW, 0, 0, ctl_cmd_audit },
	{ "audit verify", "", "check the audit log's hash chain",
	  "Walks the audit log's hash chain from the genesis value and checks the signed\n"
	  "head. Prints \"audit log OK: N records\" (exit 0), or \"audit log BROKEN at record\n"
	  "K: REASON\" (exit 1) when a record was edited, deleted, reordered or the log was\n"
	  "truncated.\n",
	  0, 0, 0, ctl_cmd_audit_verify },
	{ "ctx write", "AGENT KEY JSON", "write an entry to ctxgraph as an agent",
	  "Writes an entry to ctxgraph, the agents' shared memory, as agent AGENT: KEY\n"
	  "(UTF-8, at most 256 bytes, no control characters) and JSON, any JSON value\n"
	  "without floating point numbers (a string needs its quotes: '\"text\"'; at most\n"
	  "16 KiB as canonical JSON). Entries are immutable: the same write twice is one\n"
	  "entry. Prints the entry's hash. The ctx commands talk to ctxgraph's control\n"
	  "socket, ctxgraph.sock in the directory of nulld's socket; only root may use it,\n"
	  "and there the operator sees every entry. A write is recorded in the audit log.\n",
	  0, 3, 3, ctl_cmd_ctx_write },
	{ "ctx read", "KEY", "print the latest entry of a key",
	  "Prints the latest entry with KEY as \"key: value\" lines: key, agent, hash, seq,\n"
	  "created, value (JSON).\n",
	  0, 1, 1, ctl_cmd_ctx_read },
	{ "ctx query", "[PREFIX] [--limit N]", "list the keys under a prefix",
	  "Lists the latest entry of every key that starts with PREFIX (without PREFIX:\n"
	  "every key), in byte order of the keys, in a table: SEQ CREATED AGENT KEY VALUE.\n"
	  "'%' and '_' are ordinary characters.\n"
	  "\n"
	  "Options:\n"
	  "  --limit N         at most N keys (default: all)\n",
	  OPT_LIMIT, 0, 1, ctl_cmd_ctx_query },
	{ "ctx history", "KEY", "list every entry of a key, oldest first",
	  "Lists every entry ever written with KEY, oldest first, in a table: SEQ CREATED\n"
	  "AGENT KEY VALUE.\n",
	  0, 1, 1, ctl_cmd_ctx_history },
	{ "ctx by-agent", "AGENT", "list every entry an agent wrote, oldest first",
	  "Lists every entry written as agent AGENT, oldest first, in a table: SEQ CREATED\n"
	  "AGENT KEY VALUE.\n",
	  0, 1, 1, ctl_cmd_ctx_by_agent },
	{ "service restart", "NAME", "restart a service",
	  "Restarts one of nulld's services (warden, egress, ctxgraph, or one from\n"
	  "nulld.toml), including one held after repeated failures.\n",
	  0, 1, 1, ctl_cmd_service_restart },
	{ "shutdown", "", "stop every agent and service, then nulld",
	  "Asks nulld to stop the agents and services in reverse dependency order (SIGTERM,\n"
	  "then SIGKILL after 5 s) and to exit.\n",
	  0, 0, 0, ctl_cmd_shutdown },
	{ "vault set", "NAME [--value V] [--inject MODE]", "store a secret in warden's vault",
	  "Stores secret NAME in warden's vault, or replaces its value. The value is read\n"
	  "from standard input when it is not a terminal (one trailing newline dropped),\n"
	  "else prompted for without echo. NAME: letters, digits and '_', not starting\n"
	  "with a digit. The vault commands talk to warden's socket, warden.sock in the\n"
	  "directory of nulld's socket; only root may use it.\n"
	  "\n"
	  "Options:\n"
	  "  --value V         the value on the command line (a warning is printed: other\n"
	  "                    users can see it in the process list)\n"
	  "  --inject MODE     how agents get it: placeholder (the default for a new secret;\n"
	  "                    egress swaps it in requests to the bound hosts) or env (the\n"
	  "                    real value in the agent's environment)\n",
	  OPT_VALUE | OPT_INJECT, 1, 1, ctl_cmd_vault_set },
	{ "vault list", "", "list the secrets (names and hosts, never values)",
	  "Lists the secrets in a table: NAME INJECT HOSTS. Values are never shown.\n", 0, 0, 0,
	  ctl_cmd_vault_list },
	{ "vault delete", "NAME", "delete a secret", "Deletes secret NAME from the vault.\n", 0, 1,
	  1, ctl_cmd_vault_delete },
	/* 1 + 64 hosts: warden's limit per secret, so a longer list is a usage error here. */
	{ "vault bind", "NAME HOST...", "set the hosts a secret may be sent to",
	  "Sets the hosts secret NAME may be sent to (replacing the previous list): egress\n"
	  "puts the real value only into requests to these hosts. A HOST is a name\n"
	  "(api.example.com) or a wildcard over a domain (*.example.com); no addresses or\n"
	  "ports.\n",
	  0, 2, 65, ctl_cmd_vault_bind },
};

#define GLOBAL_OPTIONS_HELP                                                                        \
	"Options (before or after the command):\n"                                                 \
	"  --socket PATH     nulld's control socket (default: $NULLBOX_SOCKET, else\n"             \
	"                    " CTL_DEFAULT_SOCKET ")\n"                                            \
	"  --state-dir DIR   the state dir nulld was started with: its socket is\n"                \
	"                    DIR/nulld.sock (" CTL_DEFAULT_SOCKET "\n"                             \
	"                    for " CTL_DEFAULT_STATE_DIR ")\n"                                     \
	"  --json            print results as JSON, one object per line, for scripts\n"            \
	"  --timeout SECS    wait at most SECS seconds for nulld (default 30; 0: forever)\n"       \
	"  -h, --help        print help (`nullctl COMMAND --help`: that command's)\n"              \
	"  --version         print nullctl's version\n"

#define TRAILER_HELP                                                                               \
	"Exit status:\n"                                                                           \
	"  0   success\n"                                                                          \
	"  1   refused or failed: nulld's reason is printed, or that nulld is not running\n"       \
	"  2   usage error: unknown command or option, missing or extra argument\n"                \
	"\n"                                                                                       \
	"Environment:\n"                                                                           \
	"  NULLBOX_SOCKET    the control socket when neither --socket nor --state-dir is\n"        \
	"                    given\n"                                                              \
	"  LC_ALL, LC_CTYPE, LANG\n"                                                               \
	"                    in a UTF-8 locale printable non-ASCII characters are\n"               \
	"                    shown as they are; otherwise they are escaped\n"

/* ---- help ---- */

static bool
words_start_with(const char *words, const char *first)
{
	size_t n = strlen(first);
	return strncmp(words, first, n) == 0 && (words[n] == ' ' || words[n] == '\0');
}

static void
print_usage_line(FILE *f, const struct ctl_cmd *cmd, const char *lead)
{
	fprintf(f, "%snullctl %s%s%s\n", lead, cmd->words, cmd->args[0] ? " " : "", cmd->args);
}

static void
print_command_list(FILE *f, const char *group)
{
	for (size_t i = 0; i < NB_ARRAY_SIZE(commands); i++) {
		const struct ctl_cmd *cmd = &commands[i];
		if (group && !words_start_with(cmd->words, group))
			continue;
		char syn[128];
		snprintf(syn, sizeof(syn), "%s%s%s", cmd->words, cmd->args[0] ? " " : "",
			 cmd->args);
		if (strlen(syn) <= 30)
			fprintf(f, "  %-32s%s\n", syn, cmd->summary);
		else
			fprintf(f, "  %s\n  %-32s%s\n", syn, "", cmd->summary);
	}
}

static void
print_main_help(FILE *f)
{
	fputs("Usage: nullctl [OPTIONS] COMMAND [ARGS...]\n"
	      "\n"
	      "Controls nulld, the NullBox supervisor, over its control socket.\n"
	      "\n"
	      "Commands:\n",
	      f);
	print_command_list(f, NULL);
	fputs("  help [COMMAND]                  print help, for one command if named\n"
	      "\n" GLOBAL_OPTIONS_HELP "\n" TRAILER_HELP,
	      f);
}

static void
print_cmd_help(FILE *f, const struct ctl_cmd *cmd)
{
	print_usage_line(f, cmd, "Usage: ");
	fprintf(f, "\n%s\n", cmd->help);
	fputs("Global options: --socket PATH, --state-dir DIR, --json, --timeout SECS\n"
	      "(see `nullctl --help`). Exit status: 0 ok, 1 refused or failed, 2 usage error.\n",
	      f);
}

/* `nullctl agent --help`: the commands of a group. */
static void
print_group_help(FILE *f, const char *group)
{
	bool first = true;
	for (size_t i = 0; i < NB_ARRAY_SIZE(commands); i++) {
		if (words_start_with(commands[i].words, group)) {
			print_usage_line(f, &commands[i], first ? "Usage: " : "       ");
			first = false;
		}
	}
	fputs("\nCommands:\n", f);
	print_command_list(f, group);
	fprintf(f,
		"\nRun `nullctl %s COMMAND --help` for one command, `nullctl --help` for the\n"
		"global options.\n",
		group);
}

/* Usage errors name the command (or group) they are about; NULL: the whole program. */
static int usage_error_v(const struct ctl_cmd *cmd, const char *group, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static int
usage_error_v(const struct ctl_cmd *cmd, const char *group, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* The message quotes what the user typed: escape it like anything else shown. */
	char *esc = ctl_escape(msg, strlen(msg), CTL_ESC_LINE, 0, NULL);
	fprintf(stderr, "nullctl: %s\n", esc);
	free(esc);
	if (cmd) {
		print_usage_line(stderr, cmd, "Usage: ");
		fprintf(stderr, "Try `nullctl %s --help` for more.\n", cmd->words);
	} else if (group) {
		bool first = true;
		for (size_t i = 0; i < NB_ARRAY_SIZE(commands); i++) {
			if (words_start_with(commands[i].words, group)) {
				print_usage_line(stderr, &commands[i],
						 first ? "Usage: " : "       ");
				first = false;
			}
		}
		fprintf(stderr, "Try `nullctl %s --help` for more.\n", group);
	} else {
		fputs("Usage: nullctl [OPTIONS] COMMAND [ARGS...]\n"
		      "Try `nullctl --help` for the commands and options.\n",
		      stderr);
	}
	return CTL_EXIT_USAGE;
}

int
ctl_usage_error(const struct ctl_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = usage_error_v(cmd, NULL, fmt, ap);
	va_end(ap);
	return r;
}

static int group_usage_error(const char *group, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
group_usage_error(const char *group, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = usage_error_v(NULL, group, fmt, ap);
	va_end(ap);
	return r;
}

int
ctl_fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	char *esc = ctl_escape(msg, strlen(msg), CTL_ESC_LINE, 0, NULL);
	fflush(stdout);
	fprintf(stderr, "nullctl: %s\n", esc);
	free(esc);
	return CTL_EXIT_FAIL;
}

/* ---- parsing ---- */

/* A non-negative decimal integer up to @max, nothing else (no sign, no blanks, no suffix). */
static bool
parse_count(const char *s, int64_t max, int64_t *out)
{
	int64_t v = 0;
	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (*s - '0');
		if (v > max)
			return false;
	}
	*out = v;
	return true;
}

enum global_result { G_NOT_GLOBAL, G_OK, G_HELP, G_VERSION, G_ERROR };

/*
 * Handles argv[*i] if it is a global option (consuming its value); on G_ERROR the usage error
 * has been printed for @cmd (NULL: the program) and *exit_code set.
 */
static enum global_result
parse_global(struct ctl *c, int argc, char **argv, int *i, const struct ctl_cmd *cmd,
	     int *exit_code)
{
	const char *arg = argv[*i];
	if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
		return G_HELP;
	if (strcmp(arg, "--version") == 0)
		return G_VERSION;
	if (strcmp(arg, "--json") == 0) {
		c->json = true;
		return G_OK;
	}
	static const char *const valued[] = { "socket", "state-dir", "timeout" };
	for (size_t k = 0; k < NB_ARRAY_SIZE(valued); k++) {
		size_t n = strlen(valued[k]);
		if (strncmp(arg, "--", 2) != 0 || strncmp(arg + 2, valued[k], n) != 0 ||
		    (arg[2 + n] != '=' && arg[2 + n] != '\0'))
			continue;
		const char *v = arg[2 + n] == '=' ? arg + 3 + n : NULL;
		if (!v && *i + 1 < argc)
			v = argv[++*i];
		int64_t secs = 0;
		if (!v)
			*exit_code = ctl_usage_error(cmd, "--%s needs a value", valued[k]);
		else if (!v[0])
			*exit_code = ctl_usage_error(cmd, "--%s: empty value", valued[k]);
		else if (k == 2 && !parse_count(v, INT_MAX / 1000, &secs))
			*exit_code = ctl_usage_error(
				cmd, "--timeout: '%s' is not a number of seconds", v);
		if (*exit_code)
			return G_ERROR;
		if (k == 0) {
			c->socket_path = v;
			c->socket_explicit = true;
		} else if (k == 1) {
			c->state_dir = v;
		} else {
			c->timeout_ms = secs == 0 ? -1 : (int)secs * 1000;
		}
		return G_OK;
	}
	return G_NOT_GLOBAL;
}

static const struct ctl_cmd *
find_cmd(const char *words)
{
	for (size_t i = 0; i < NB_ARRAY_SIZE(commands); i++)
		if (strcmp(commands[i].words, words) == 0)
			return &commands[i];
	return NULL;
}

static bool
is_group(const char *w)
{
	return strcmp(w, "agent") == 0 || strcmp(w, "service") == 0 || strcmp(w, "vault") == 0 ||
	       strcmp(w, "ctx") == 0;
}

/* `nullctl help [WORDS...]`. */
static int
run_help(int argc, char **argv, int i)
{
	int n = argc - i;
	if (n == 0) {
		print_main_help(stdout);
		return CTL_EXIT_OK;
	}
	if (n == 1 && is_group(argv[i])) {
		print_group_help(stdout, argv[i]);
		return CTL_EXIT_OK;
	}
	char words[128];
	snprintf(words, sizeof(words), "%s%s%s", argv[i], n > 1 ? " " : "",
		 n > 1 ? argv[i + 1] : "");
	const struct ctl_cmd *cmd = n <= 2 ? find_cmd(words) : NULL;
	if (!cmd)
		return ctl_usage_error(NULL, "help: no command '%s'", words);
	print_cmd_help(stdout, cmd);
	return CTL_EXIT_OK;
}

/* Parses argv[i..] for @cmd: its own options, global ones, positionals. */
static int
parse_cmd_args(struct ctl *c, int argc, char **argv, int i, const struct ctl_cmd **cmdp,
	       struct ctl_args *a, const char **pos)
{
	const struct ctl_cmd *cmd = *cmdp;
	bool help = false, dashdash = false;
	unsigned seen = 0;
	int code = 0;
	for (; i < argc; i++) {
		const char *arg = argv[i];
		if (dashdash || arg[0] != '-' || arg[1] == '\0') {
			pos[a->n_pos++] = arg;
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			dashdash = true;
			continue;
		}
		switch (parse_global(c, argc, argv, &i, cmd, &code)) {
		case G_OK:
			continue;
		case G_HELP:
			help = true;
			continue;
		case G_VERSION:
			printf("nullctl %s\n", NULLBOX_VERSION);
			return -1;
		case G_ERROR:
			return code;
		case G_NOT_GLOBAL:
			break;
		}
		const struct ctl_opt *o = NULL;
		size_t n = 0;
		for (size_t k = 0; arg[1] == '-' && k < NB_ARRAY_SIZE(cmd_opts); k++) {
			n = strlen(cmd_opts[k].name);
			if (strncmp(arg + 2, cmd_opts[k].name, n) == 0 &&
			    (arg[2 + n] == '\0' || arg[2 + n] == '=')) {
				o = &cmd_opts[k];
				break;
			}
		}
		if (!o || !(cmd->opts & o->id))
			return ctl_usage_error(cmd, "%s: unknown option '%s'", cmd->words, arg);
		const char *v = NULL;
		if (o->has_arg) {
			if (arg[2 + n] == '=')
				v = arg + 3 + n;
			else if (i + 1 < argc)
				v = argv[++i];
			else
				return ctl_usage_error(cmd, "%s: --%s needs a value", cmd->words,
						       o->name);
		} else if (arg[2 + n] == '=') {
			return ctl_usage_error(cmd, "%s: --%s takes no value", cmd->words, o->name);
		}
		seen |= o->id;
		switch (o->id) {
		case OPT_NAME:
			a->name = v;
			break;
		case OPT_AGENT:
			a->agent = v;
			break;
		case OPT_VERDICT:
			if (strcmp(v, "allowed") && strcmp(v, "denied") && strcmp(v, "deferred"))
				return ctl_usage_error(cmd,
						       "%s: --verdict must be allowed, denied or "
						       "deferred, not '%s'",
						       cmd->words, v);
			a->verdict = v;
			break;
		case OPT_LINES:
		case OPT_LIMIT:
			if (!parse_count(v, INT32_MAX, o->id == OPT_LINES ? &a->lines : &a->limit))
				return ctl_usage_error(cmd, "%s: --%s: '%s' is not a count",
						       cmd->words, o->name, v);
			break;
		case OPT_FOLLOW:
			a->follow = true;
			break;
		case OPT_RAW:
			a->raw = true;
			break;
		case OPT_VALUE:
			a->value = v;
			break;
		case OPT_INJECT:
			if (strcmp(v, "placeholder") && strcmp(v, "env"))
				return ctl_usage_error(cmd,
						       "%s: --inject must be placeholder or env, "
						       "not '%s'",
						       cmd->words, v);
			a->inject = v;
			break;
		}
		if ((o->id == OPT_NAME || o->id == OPT_AGENT) && !v[0])
			return ctl_usage_error(cmd, "%s: --%s: empty value", cmd->words, o->name);
	}
	/* `audit verify` is audit with the word verify: resolve it before help and checks. */
	if (strcmp(cmd->words, "audit") == 0 && a->n_pos >= 1 && strcmp(pos[0], "verify") == 0) {
		cmd = *cmdp = find_cmd("audit verify");
		a->n_pos--;
		memmove(pos, pos + 1, a->n_pos * sizeof(*pos));
		if (seen && !help)
			return ctl_usage_error(cmd, "audit verify takes no --agent, --verdict, "
						    "--limit or --follow");
	}
	if (help) {
		print_cmd_help(stdout, cmd);
		return -1;
	}
	if (a->n_pos < cmd->min_pos) {
		/* Name the first argument missing: "vault bind NAME" lacks HOST, not NAME. */
		const char *want = cmd->args;
		for (size_t k = 0; k < a->n_pos && strchr(want, ' '); k++)
			want = strchr(want, ' ') + 1;
		return ctl_usage_error(cmd, "%s: missing argument %.*s", cmd->words,
				       (int)strcspn(want, " "), want);
	}
	if (a->n_pos > cmd->max_pos)
		return ctl_usage_error(cmd, "%s: unexpected argument '%s'", cmd->words,
				       pos[cmd->max_pos]);
	for (size_t k = 0; k < a->n_pos; k++)
		if (!pos[k][0])
			return ctl_usage_error(cmd, "%s: empty argument", cmd->words);
	return 0;
}

/* ---- connection ---- */

/* The socket nulld listens on for state dir @dir, by nulld's own rule (src/nulld/main.c). */
static void
socket_for_state_dir(struct ctl *c, const char *dir)
{
	char abs[PATH_MAX];
	const char *d = realpath(dir, abs) ? abs : dir;
	if (strcmp(d, CTL_DEFAULT_STATE_DIR) == 0)
		c->socket_path = CTL_DEFAULT_SOCKET;
	else
		c->socket_path =
			(snprintf(c->socket_buf, sizeof(c->socket_buf), "%s/nulld.sock", dir),
			 c->socket_buf);
}

static void
resolve_socket(struct ctl *c)
{
	if (c->socket_path)
		return;
	if (c->state_dir) {
		socket_for_state_dir(c, c->state_dir);
		return;
	}
	const char *env = getenv("NULLBOX_SOCKET");
	if (env && env[0]) {
		c->socket_path = env;
		c->socket_explicit = true;
		return;
	}
	c->socket_path = CTL_DEFAULT_SOCKET;
}

int
ctl_connect(struct ctl *c)
{
	if (c->client)
		return 0;
	struct nb_err e = { 0 };
	c->client = nb_ipc_connect(c->socket_path, c->timeout_ms, &e);
	if (c->client)
		return 0;
	if (e.code == ENOENT || e.code == ECONNREFUSED) {
		/* Say how to start the nulld this command was aimed at. */
		const char *dir = c->state_dir ? c->state_dir : CTL_DEFAULT_STATE_DIR;
		struct ctl probe = { 0 };
		socket_for_state_dir(&probe, dir);
		bool own_socket = strcmp(probe.socket_path, c->socket_path) != 0;
		return ctl_fail("nulld is not running (%s %s); start it with: nulld --state-dir "
				"%s%s%s",
				e.code == ENOENT ? "no socket at" : "nothing listens on",
				c->socket_path, dir, own_socket ? " --socket " : "",
				own_socket ? c->socket_path : "");
	}
	if (e.code == EACCES || e.code == EPERM)
		return ctl_fail("%s (only root, or nulld's configured group, may control nulld)",
				e.msg);
	return ctl_fail("%s", e.msg[0] ? e.msg : strerror(e.code));
}

int
ctl_report_ipc_error(struct ctl *c, const char *method, int r, const struct nb_err *e)
{
	const struct nb_ipc_error *rpc = c->client ? nb_ipc_client_last_error(c->client) : NULL;
	if (rpc && rpc->code != 0) {
		const char *msg = rpc->message[0] ? rpc->message : e->msg;
		if (rpc->code == NB_IPC_METHOD_NOT_FOUND)
			return ctl_fail("nulld does not know '%s' (is it older than nullctl?): %s",
					method, msg);
		return ctl_fail("%s", msg);
	}
	switch (-r) {
	case ETIMEDOUT:
		return ctl_fail("no reply from nulld to '%s' within %d s (see --timeout)", method,
				c->timeout_ms / 1000);
	case ECONNRESET:
	case EPIPE:
		return ctl_fail("nulld closed the connection during '%s'", method);
	default:
		return ctl_fail("%s: %s", method, e->msg[0] ? e->msg : strerror(-r));
	}
}

int
ctl_call(struct ctl *c, const char *method, json_t *params, json_t **result)
{
	int r = ctl_connect(c);
	if (r)
		return r;
	struct nb_err e = { 0 };
	r = nb_ipc_call(c->client, method, params, c->timeout_ms, result, &e);
	if (r < 0)
		return ctl_report_ipc_error(c, method, r, &e);
	return 0;
}

int
main(int argc, char **argv)
{
	struct ctl c = { .timeout_ms = CTL_DEFAULT_TIMEOUT_SECS * 1000 };
	int i = 1, code = 0;
	ctl_output_init();

	for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		switch (parse_global(&c, argc, argv, &i, NULL, &code)) {
		case G_OK:
			continue;
		case G_HELP:
			print_main_help(stdout);
			return CTL_EXIT_OK;
		case G_VERSION:
			printf("nullctl %s\n", NULLBOX_VERSION);
			return CTL_EXIT_OK;
		case G_ERROR:
			return code;
		case G_NOT_GLOBAL:
			return ctl_usage_error(NULL, "unknown option '%s'", argv[i]);
		}
	}
	if (i >= argc)
		return ctl_usage_error(NULL, "missing command");
	if (strcmp(argv[i], "help") == 0)
		return run_help(argc, argv, i + 1);

	char words[64];
	const char *w1 = argv[i++];
	if (is_group(w1)) {
		if (i >= argc)
			return group_usage_error(w1, "%s: missing command", w1);
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			print_group_help(stdout, w1);
			return CTL_EXIT_OK;
		}
		snprintf(words, sizeof(words), "%s %s", w1, argv[i]);
		if (!find_cmd(words))
			return group_usage_error(w1, "%s: unknown command '%s'", w1, argv[i]);
		i++;
	} else {
		snprintf(words, sizeof(words), "%s", w1);
	}
	const struct ctl_cmd *cmd = find_cmd(words);
	if (!cmd || strchr(w1, ' '))
		return ctl_usage_error(NULL, "unknown command '%s'", w1);

	_cleanup_free_ const char **pos = calloc((size_t)argc + 1, sizeof(*pos));
	if (!pos)
		return ctl_fail("out of memory");
	struct ctl_args a = { .pos = pos, .lines = -1, .limit = -1 };
	int r = parse_cmd_args(&c, argc, argv, i, &cmd, &a, pos);
	if (r)
		return r < 0 ? CTL_EXIT_OK : r;
	resolve_socket(&c);

	r = cmd->run(&c, &a);
	nb_ipc_client_free(c.client);
	if (fflush(stdout) != 0 || ferror(stdout))
		return ctl_fail("writing to standard output: %s", strerror(errno));
	return r;
}
