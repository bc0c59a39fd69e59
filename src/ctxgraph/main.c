/*
 * main.c: `ctxgraph`, the shared-memory service (see ctxgraph.h, docs/CTXGRAPH.md).
 *
 *   ctxgraph [--state-dir DIR] [--run-dir DIR] [--write-rate N] [--write-burst N]
 *
 * Sections:
 *   options   command line and the environment nulld sets
 *   audit     decisions to nulld's audit log (audit.append), when nulld runs us
 *   main      store, service, readiness, the loop, a clean stop on SIGTERM/SIGINT
 *
 * Under nulld: NULLBOX_STATE_DIR, NULLBOX_SOCKET (nulld's control socket; its directory is the
 * run dir) and NULLBOX_READY_FD (one line there once the control socket listens). Standalone:
 * --state-dir, and --run-dir or the same rule as nulld's (the state dir's own directory, or
 * /run/nullbox for /var/lib/nullbox).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "ctxgraph.h"
#include "log.h"

#define DEFAULT_STATE_DIR "/var/lib/nullbox"
#define DEFAULT_RUN_DIR "/run/nullbox"
#define AUDIT_TIMEOUT_MS 1000

/* ---- options ---- */

struct opts {
	const char *state_dir;
	const char *run_dir;
	const char *nulld_socket; /* NULL when standalone */
	int64_t rate, burst;
	char run_buf[PATH_MAX];
};

static void
usage(FILE *f)
{
	fputs("Usage: ctxgraph [--state-dir DIR] [--run-dir DIR] [--write-rate N] "
	      "[--write-burst N]\n"
	      "\n"
	      "NullBox's shared memory for agents: an SQLite store (DIR/ctxgraph.db) served over\n"
	      "RUN/ctxgraph.sock (operators, nulld) and one socket per agent (RUN/ctxgraph/NAME.sock).\n"
	      "\n"
	      "  --state-dir DIR   where the database lives (default: $NULLBOX_STATE_DIR, else\n"
	      "                    " DEFAULT_STATE_DIR ")\n"
	      "  --run-dir DIR     where the sockets go (default: the directory of $NULLBOX_SOCKET;\n"
	      "                    else " DEFAULT_RUN_DIR " for " DEFAULT_STATE_DIR
	      ", the state dir otherwise)\n"
	      "  --write-rate N    writes a second per agent, unless registered with its own (100)\n"
	      "  --write-burst N   burst of writes per agent (200)\n",
	      f);
}

static bool
parse_num(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > CTXGRAPH_RATE_MAX)
		return false;
	*out = v;
	return true;
}

static int
parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "write-rate", required_argument, NULL, 'R' },
		{ "write-burst", required_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			o->state_dir = optarg;
			break;
		case 'r':
			o->run_dir = optarg;
			break;
		case 'R':
		case 'B':
			if (!parse_num(optarg, c == 'R' ? &o->rate : &o->burst)) {
				log_err("--write-%s: '%s' is not a number from 1 to %d",
					c == 'R' ? "rate" : "burst", optarg, CTXGRAPH_RATE_MAX);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		log_err("unexpected argument '%s'", argv[optind]);
		usage(stderr);
		return 2;
	}
	const char *env = getenv("NULLBOX_SOCKET");
	o->nulld_socket = env && *env ? env : NULL;
	if (!o->state_dir) {
		env = getenv("NULLBOX_STATE_DIR");
		o->state_dir = env && *env ? env : DEFAULT_STATE_DIR;
	}
	if (!o->run_dir && o->nulld_socket) {
		/* nulld's control socket lives in the run dir; ours go next to it. */
		snprintf(o->run_buf, sizeof(o->run_buf), "%s", o->nulld_socket);
		char *slash = strrchr(o->run_buf, '/');
		if (slash == o->run_buf)
			slash[1] = '\0';
		else if (slash)
			*slash = '\0';
		else
			snprintf(o->run_buf, sizeof(o->run_buf), ".");
		o->run_dir = o->run_buf;
	}
	if (!o->run_dir)
		o->run_dir = strcmp(o->state_dir, DEFAULT_STATE_DIR) == 0 ? DEFAULT_RUN_DIR
									  : o->state_dir;
	return 0;
}

/* ---- audit ---- */

struct auditor {
	const char *socket;
	struct nb_ipc_client *client;
};

/*
 * Sends one record to nulld as an audit.append notification. Why a notification: nulld calls
 * ctxgraph (agent.register) and may be waiting on us at this very moment; a request from us
 * would then wait on nulld, and both would stall until a timeout. A notification needs no answer.
 * nulld takes the actor from our pid (we are its service), so the record says "ctxgraph" and
 * the agent is in the object and detail. A record that cannot be sent is in our log already.
 */
static void
audit_to_nulld(void *data, const char *action, const char *object, const char *verdict,
	       const char *reason, json_t *detail)
{
	struct auditor *a = data;
	struct nb_err e = { 0 };
	if (!a->socket)
		return;
	if (!a->client) {
		a->client = nb_ipc_connect(a->socket, AUDIT_TIMEOUT_MS, &e);
		if (!a->client) {
			log_warn("audit record not sent to nulld (%s %s: %s): %s", action, verdict,
				 object, e.msg);
			return;
		}
	}
	_cleanup_json_ json_t *params = json_pack("{s:s,s:s,s:s,s:s}", "action", action, "object",
						  object, "verdict", verdict, "reason", reason);
	if (params && detail)
		json_object_set(params, "detail", detail);
	if (!params || nb_ipc_notify(a->client, "audit.append", params, AUDIT_TIMEOUT_MS, &e) < 0) {
		log_warn("audit record not sent to nulld (%s %s: %s): %s", action, verdict, object,
			 params ? e.msg : "out of memory");
		/* A half-sent line would garble the next: start over on a new connection. */
		nb_ipc_client_free(a->client);
		a->client = NULL;
	}
}

/* ---- main ---- */

/* Writes the readiness line to the fd nulld named (s6 style), then closes it. */
static void
announce_ready(void)
{
	const char *env = getenv("NULLBOX_READY_FD");
	if (!env || !*env)
		return;
	char *end;
	long fd = strtol(env, &end, 10);
	if (*end || fd < 0 || fd > INT_MAX) {
		log_warn("NULLBOX_READY_FD=%s: not a file descriptor", env);
		return;
	}
	static const char line[] = "ready\n";
	if (write((int)fd, line, sizeof(line) - 1) < 0)
		log_perr("readiness fd %ld", fd);
	close((int)fd);
}

static int
ensure_dir(const char *dir)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_perr("%s: cannot create the directory", dir);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	nb_log_init("ctxgraph");
	struct opts o = { 0 };
	int r = parse_opts(argc, argv, &o);
	if (r)
		return r < 0 ? 0 : r;

	/* Files we create (the database, its WAL) are ours alone; sockets set their own mode. */
	umask(077);
	signal(SIGPIPE, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	_cleanup_close_ int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_perr("signalfd");
		return 1;
	}
	if (ensure_dir(o.state_dir) < 0)
		return 1;

	char db[PATH_MAX];
	if (snprintf(db, sizeof(db), "%s/ctxgraph.db", o.state_dir) >= (int)sizeof(db)) {
		log_err("%s: state dir path too long", o.state_dir);
		return 1;
	}
	struct nb_err e = { 0 };
	struct ctxgraph_store *store = NULL;
	if (ctxgraph_store_open(db, &store, &e) < 0) {
		log_err("%s", e.msg);
		return 1;
	}
	struct auditor aud = { .socket = o.nulld_socket };
	struct ctxgraph_config cfg = {
		.run_dir = o.run_dir,
		.write_rate = o.rate,
		.write_burst = o.burst,
		.hooks = { .audit = audit_to_nulld, .audit_data = &aud },
	};
	struct ctxgraph *g = NULL;
	if (ctxgraph_new(store, &cfg, &g, &e) < 0) {
		log_err("%s", e.msg);
		ctxgraph_store_close(store);
		return 1;
	}
	int64_t count = 0;
	ctxgraph_store_count(store, &count, NULL);
	log_info("serving %s/ctxgraph.sock; database %s (%" PRId64 " entries)%s", o.run_dir, db,
		 count, o.nulld_socket ? "" : "; standalone: decisions are logged, not audited");
	announce_ready();

	struct nb_ipc_server *srv = ctxgraph_server(g);
	int code = 0;
	for (;;) {
		struct pollfd p[2] = { { .fd = nb_ipc_server_fd(srv), .events = POLLIN },
				       { .fd = sfd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_perr("poll");
			code = 1;
			break;
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				log_info("signal %u: stopping", si.ssi_signo);
				break;
			}
		}
		if (p[0].revents & POLLIN) {
			int n = nb_ipc_server_dispatch(srv, 0);
			if (n < 0) {
				errno = -n;
				log_perr("epoll");
				code = 1;
				break;
			}
		}
	}
	ctxgraph_free(g);
	ctxgraph_store_close(store);
	nb_ipc_client_free(aud.client);
	return code;
}
