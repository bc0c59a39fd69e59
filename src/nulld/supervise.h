#pragma once
/*
 * The supervisor's types: a unit (a service or an agent), the loop, and the hooks through which
 * the agent manager, the audit log and the control socket follow what happens.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "nulld.h"

enum unit_state {
	UNIT_WAITING,  /* not started: its dependencies are not up yet */
	UNIT_STARTING, /* running, readiness not announced yet */
	UNIT_UP,       /* running and ready */
	UNIT_BACKOFF,  /* ended; restarts when its timer fires */
	UNIT_HELD,     /* failed too often in a row; waits for an operator */
	UNIT_STOPPING, /* SIGTERM sent; SIGKILL when its timer fires */
	UNIT_DOWN,     /* ended, and stays so (policy, stop, shutdown) */
	UNIT_PAUSED,   /* an agent frozen by its cgroup freezer */
};

struct nulld;
struct nulld_unit;

enum nulld_watch_kind {
	NULLD_W_SIGNAL,
	NULLD_W_PIDFD,
	NULLD_W_READY,
	NULLD_W_LOG,
	NULLD_W_TIMER,
	NULLD_W_EXTERNAL, /* anything else in the loop (control socket...): fn is called */
};

/* What an epoll event points to. */
struct nulld_watch {
	enum nulld_watch_kind kind;
	struct nulld_unit *unit;
	void (*fn)(struct nulld *d, struct nulld_watch *w, uint32_t events);
};

struct nulld_unit {
	char *name;
	char **argv;
	size_t *deps; /* indices into nulld.units */
	size_t n_deps;
	enum nulld_restart restart;
	enum nulld_readiness readiness;
	uint32_t ready_timeout_secs;
	bool agent;   /* an agent (cage run ...), not a service */
	bool removed; /* an agent being removed: never started again */
	bool want_down;
	bool restart_now; /* an operator (or a failed health check) asked for a restart */
	bool result_pipe; /* give the unit a pipe on fd 3 for its result (cage --json-fd 3) */
	int result_fd;	  /* our end of it, read when the unit exits */
	char result[2048];
	char **extra_env; /* added to the unit's environment at its next start, then wiped */
	char *log_path;
	void *data; /* the agent manager's per-agent state */

	enum unit_state state;
	uint64_t since_ms;
	pid_t pid;
	pid_t last_pid; /* the pid of the process that ended last */
	int pidfd, ready_fd, log_fd, timer_fd, log_file;
	size_t log_size, ready_line_len;
	unsigned failures, exits;
	uint64_t backoff_ms, started_ms;
	int last_status;
	struct nulld_watch w_pid, w_ready, w_log, w_timer;
};

struct nulld_hooks {
	void (*state_changed)(struct nulld *d, struct nulld_unit *u);
	void (*started)(struct nulld *d, struct nulld_unit *u);
	void (*exited)(struct nulld *d, struct nulld_unit *u, int status, bool failed);
	void (*held)(struct nulld *d, struct nulld_unit *u);
	void (*stopping)(struct nulld *d, struct nulld_unit *u);
	bool (*may_start)(struct nulld *d, struct nulld_unit *u);
	void (*reaped)(struct nulld *d, pid_t pid, int status);
	void (*after_events)(struct nulld *d);
	void (*log_data)(struct nulld *d, struct nulld_unit *u, const char *buf, size_t n);
	/* Right before a start: may rewrite u->argv and set u->extra_env. Negative: do not start
	 * (counted as a failure, restarted by the policy). */
	int (*before_start)(struct nulld *d, struct nulld_unit *u);
};

struct nulld {
	struct nulld_options opt;
	struct nulld_unit **units; /* services in dependency order, then agents */
	size_t n_units;
	size_t n_services;
	int epfd, sig_fd;
	struct nulld_watch w_sig;
	bool shutting_down;
	uint64_t leftovers_ms; /* when the shutdown started on what units left behind */
	int leftover_timer;    /* wakes the loop while those are being stopped */
	uint64_t start_ms;
	struct nulld_hooks hooks;
	void *agents;  /* agents.c */
	void *control; /* control.c */
	void *audit;   /* the audit log */
};

uint64_t nulld_now_ms(void);
const char *nulld_unit_state_name(enum unit_state s);

/* Creates the loop's epoll, blocks and watches signals, becomes a subreaper (host mode). */
int nulld_loop_init(struct nulld *d, struct nb_err *e);
/* Runs until a shutdown completes (0) or epoll fails (negative errno). */
int nulld_loop_run(struct nulld *d);

/* Adds @fd to the loop; events call @w (kind NULLD_W_EXTERNAL: w->fn). Returns 0 or -errno. */
int nulld_watch(struct nulld *d, int fd, struct nulld_watch *w, uint32_t events);

/* Sets a new unit's fds to -1, its state WAITING, and creates its timerfd. 0 or -errno. */
int nulld_unit_init(struct nulld_unit *u);
/* Appends @u (owned by @d from now on) to the units and watches its timer. 0 or -errno. */
int nulld_add_unit(struct nulld *d, struct nulld_unit *u);
/* Closes what @u holds and frees it. The caller has removed it from d->units. */
void nulld_unit_free(struct nulld *d, struct nulld_unit *u);
int nulld_unit_start(struct nulld *d, struct nulld_unit *u);
/* SIGTERM now, SIGKILL after 5 s; a unit that does not run goes DOWN at once. */
void nulld_unit_stop(struct nulld *d, struct nulld_unit *u);
/* Stops @u if it runs and starts it again at once (failures reset), whatever its policy. */
void nulld_unit_restart(struct nulld *d, struct nulld_unit *u);
/* Signals the unit's process through its pidfd. 0 or -errno (-ESRCH: not running). */
int nulld_unit_kill(struct nulld_unit *u, int sig);
void nulld_unit_set_state(struct nulld *d, struct nulld_unit *u, enum unit_state s);
/* Starts every WAITING unit whose dependencies are up, in order. */
void nulld_start_ready_units(struct nulld *d);
/* Begins the shutdown: units stop in reverse dependency order; the loop returns when done. */
void nulld_shutdown(struct nulld *d, const char *why);
