/*
 * supervise.c: services as a state x event table, and the one epoll loop that drives them.
 *
 * Sections:
 *   units       a supervised process (a service from nulld.toml; agents reuse it)
 *   loop        epoll over signalfd, pidfds, timerfds, readiness pipes and log pipes
 *   start       fork/exec with the readiness fd, the log pipe and a clean environment
 *   events      ready, exit, timer; the restart policy with backoff; hold
 *   shutdown    reverse dependency order, SIGTERM then SIGKILL after 5 s
 *
 * States and what moves a unit between them (s6-supervise's model):
 *
 *   WAITING  --deps up-->          STARTING (readiness notify) or UP (readiness none)
 *   STARTING --line on ready fd--> UP          --ready timeout--> SIGKILL (counts as failure)
 *   UP       --60 s-->             UP, failures reset to 0
 *   any run  --exit-->             BACKOFF (1 s, doubling to 30 s) | HELD (after 6 failures in a
 *                                  row) | DOWN (policy says no restart, or stop was asked)
 *   BACKOFF  --timer-->            STARTING
 *   STOPPING --exit-->             DOWN        --5 s--> SIGKILL
 */
#include "supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"

#define BACKOFF_FIRST_MS 1000u
#define BACKOFF_MAX_MS 30000u
#define STABLE_MS 60000u
#define HOLD_AFTER 6
#define STOP_TIMEOUT_MS 5000u
#define LOG_MAX_BYTES (1024 * 1024)
#define LOG_KEEP 2

static const char *const state_names[] = {
	[UNIT_WAITING] = "waiting", [UNIT_STARTING] = "starting", [UNIT_UP] = "up",
	[UNIT_BACKOFF] = "backoff", [UNIT_HELD] = "held",	  [UNIT_STOPPING] = "stopping",
	[UNIT_DOWN] = "down",	    [UNIT_PAUSED] = "paused",
};

const char *
nulld_unit_state_name(enum unit_state s)
{
	return s < NB_ARRAY_SIZE(state_names) && state_names[s] ? state_names[s] : "?";
}

uint64_t
nulld_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- loop ---- */

int
nulld_watch(struct nulld *d, int fd, struct nulld_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };
	return epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* Stops watching and closes *fd (sets it to -1). */
static void
unwatch_close(struct nulld *d, int *fd)
{
	if (*fd < 0)
		return;
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, *fd, NULL);
	close(*fd);
	*fd = -1;
}

static void
arm_timer(struct nulld_unit *u, uint64_t ms)
{
	struct itimerspec its = { .it_value = { .tv_sec = (time_t)(ms / 1000),
						.tv_nsec = (long)(ms % 1000) * 1000000L } };
	if (ms == 0)
		its.it_value.tv_nsec = 1; /* 0 would disarm */
	timerfd_settime(u->timer_fd, 0, &its, NULL);
}

static void
disarm_timer(struct nulld_unit *u)
{
	struct itimerspec its = { 0 };
	timerfd_settime(u->timer_fd, 0, &its, NULL);
}

void
nulld_unit_set_state(struct nulld *d, struct nulld_unit *u, enum unit_state s)
{
	if (u->state != s)
		log_debug("%s %s: %s -> %s", u->agent ? "agent" : "service", u->name,
			  nulld_unit_state_name(u->state), nulld_unit_state_name(s));
	u->state = s;
	u->since_ms = nulld_now_ms();
	if (d->hooks.state_changed)
		d->hooks.state_changed(d, u);
}

/* ---- logs ---- */

static void
log_open(struct nulld_unit *u)
{
	if (u->log_file >= 0 || !u->log_path)
		return;
	u->log_file =
		open(u->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	struct stat st;
	u->log_size = (u->log_file >= 0 && fstat(u->log_file, &st) == 0) ? (size_t)st.st_size : 0;
}

/* Keeps LOG_KEEP older files: name.log.1 (newest) .. name.log.N. */
static void
log_rotate(struct nulld_unit *u)
{
	char from[4200], to[4200];
	for (int i = LOG_KEEP; i > 1; i--) {
		snprintf(from, sizeof(from), "%s.%d", u->log_path, i - 1);
		snprintf(to, sizeof(to), "%s.%d", u->log_path, i);
		rename(from, to);
	}
	snprintf(to, sizeof(to), "%s.1", u->log_path);
	close(u->log_file);
	u->log_file = -1;
	rename(u->log_path, to);
	log_open(u);
}

static void
on_log(struct nulld *d, struct nulld_unit *u)
{
	char buf[16384];
	ssize_t n = read(u->log_fd, buf, sizeof(buf));
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			unwatch_close(d, &u->log_fd);
		return;
	}
	log_open(u);
	if (u->log_file < 0) {
		if (d->hooks.log_data)
			d->hooks.log_data(d, u, buf, (size_t)n);
		return;
	}
	if (write(u->log_file, buf, (size_t)n) == n)
		u->log_size += (size_t)n;
	if (d->hooks.log_data)
		d->hooks.log_data(d, u, buf, (size_t)n);
	if (u->log_size > LOG_MAX_BYTES)
		log_rotate(u);
}

/* ---- start ---- */

static _Noreturn void
exec_child(struct nulld *d, struct nulld_unit *u, int ready_w, int log_w, bool notify, pid_t parent)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/*
	 * A unit does not outlive nulld: a restarted nulld would otherwise start a second copy next
	 * to an orphan. SIGKILL, because cage's sandbox and cgroup guard clean up after it anyway.
	 * (As PID 1 nulld never dies.)
	 */
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (getppid() != parent)
		_exit(127); /* nulld died before the line above */
	setsid();
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null >= 0)
		dup2(null, STDIN_FILENO);
	if (log_w >= 0) {
		dup2(log_w, STDOUT_FILENO);
		dup2(log_w, STDERR_FILENO);
	}
	/* The readiness fd is always fd 3, as s6 services expect a fixed number. */
	if (ready_w >= 0) {
		if (ready_w != 3) {
			dup2(ready_w, 3);
		} else {
			int fl = fcntl(3, F_GETFD);
			fcntl(3, F_SETFD, fl & ~FD_CLOEXEC);
		}
	}
	close_range(ready_w >= 0 ? 4 : 3, ~0U, CLOSE_RANGE_CLOEXEC);
	char state[4200], sock[4200], name[128];
	snprintf(state, sizeof(state), "NULLBOX_STATE_DIR=%s", d->opt.state_dir);
	snprintf(sock, sizeof(sock), "NULLBOX_SOCKET=%s", d->opt.socket_path);
	snprintf(name, sizeof(name), "%s=%s", u->agent ? "NULLBOX_AGENT" : "NULLBOX_SERVICE",
		 u->name);
	/* A clean environment: what a unit gets from nulld, never what nulld was started with. */
	char *base[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			 "LANG=C.UTF-8", state, sock, name };
	char *envp[NB_ARRAY_SIZE(base) + 66];
	size_t k = 0;
	for (size_t i = 0; i < NB_ARRAY_SIZE(base); i++)
		envp[k++] = base[i];
	if (notify)
		envp[k++] = "NULLBOX_READY_FD=3";
	for (char **x = u->extra_env; x && *x && k < NB_ARRAY_SIZE(envp) - 1; x++)
		envp[k++] = *x;
	envp[k] = NULL;
	execve(u->argv[0], u->argv, envp);
	dprintf(STDERR_FILENO, "nulld: exec %s: %m\n", u->argv[0]);
	_exit(127);
}

/* Secrets may sit in extra_env: wiped, not just freed. */
static void
wipe_extra_env(struct nulld_unit *u)
{
	for (char **x = u->extra_env; x && *x; x++) {
		explicit_bzero(*x, strlen(*x));
		free(*x);
	}
	free(u->extra_env);
	u->extra_env = NULL;
}

static void apply_policy(struct nulld *d, struct nulld_unit *u, bool failed);

int
nulld_unit_start(struct nulld *d, struct nulld_unit *u)
{
	int ready[2] = { -1, -1 }, logp[2] = { -1, -1 };
	if (d->hooks.before_start && d->hooks.before_start(d, u) < 0) {
		wipe_extra_env(u);
		apply_policy(d, u, true);
		return -ECANCELED;
	}
	bool notify = u->readiness == NULLD_READY_NOTIFY;
	/* fd 3 is the readiness pipe, or for a unit with a result (cage), the result pipe. */
	bool fd3 = notify || u->result_pipe;
	if ((fd3 && pipe2(ready, O_CLOEXEC | O_NONBLOCK) < 0) ||
	    pipe2(logp, O_CLOEXEC | O_NONBLOCK) < 0) {
		log_perr("%s: pipe", u->name);
		goto fail;
	}
	/* The child's ends block: a service writes its readiness line with a plain write. */
	if (fd3)
		fcntl(ready[1], F_SETFL, 0);
	fcntl(logp[1], F_SETFL, 0);
	pid_t self = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		log_perr("%s: fork", u->name);
		goto fail;
	}
	if (pid == 0)
		exec_child(d, u, ready[1], logp[1], notify, self);
	wipe_extra_env(u);
	if (fd3)
		close(ready[1]);
	close(logp[1]);
	u->pid = pid;
	u->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	u->result[0] = '\0';
	if (notify) {
		u->ready_fd = ready[0];
	} else if (u->result_pipe) {
		if (u->result_fd >= 0)
			close(u->result_fd);
		u->result_fd = ready[0];
	}
	u->log_fd = logp[0];
	u->started_ms = nulld_now_ms();
	u->ready_line_len = 0;
	if (u->pidfd >= 0)
		nulld_watch(d, u->pidfd, &u->w_pid, EPOLLIN);
	if (u->ready_fd >= 0)
		nulld_watch(d, u->ready_fd, &u->w_ready, EPOLLIN);
	nulld_watch(d, u->log_fd, &u->w_log, EPOLLIN);
	log_info("%s %s: started (pid %d)", u->agent ? "agent" : "service", u->name, (int)pid);
	if (notify) {
		nulld_unit_set_state(d, u, UNIT_STARTING);
		arm_timer(u, (uint64_t)u->ready_timeout_secs * 1000u);
	} else {
		nulld_unit_set_state(d, u, UNIT_UP);
		arm_timer(u, STABLE_MS);
	}
	if (d->hooks.started)
		d->hooks.started(d, u);
	return 0;
fail:
	wipe_extra_env(u);
	for (int i = 0; i < 2; i++) {
		if (ready[i] >= 0)
			close(ready[i]);
		if (logp[i] >= 0)
			close(logp[i]);
	}
	return -errno;
}

/* Sends @sig through the pidfd when there is one: never to a recycled pid. */
int
nulld_unit_kill(struct nulld_unit *u, int sig)
{
	if (u->pid <= 0)
		return -ESRCH;
	if (u->pidfd >= 0)
		return syscall(SYS_pidfd_send_signal, u->pidfd, sig, NULL, 0) < 0 ? -errno : 0;
	return kill(u->pid, sig) < 0 ? -errno : 0;
}

/* ---- events ---- */

static bool
deps_up(struct nulld *d, const struct nulld_unit *u)
{
	for (size_t i = 0; i < u->n_deps; i++)
		if (d->units[u->deps[i]]->state != UNIT_UP)
			return false;
	return true;
}

/* Starts, in dependency order, every waiting unit whose dependencies are all up. */
void
nulld_start_ready_units(struct nulld *d)
{
	if (d->shutting_down)
		return;
	for (size_t i = 0; i < d->n_units; i++) {
		struct nulld_unit *u = d->units[i];
		if (u->state == UNIT_WAITING && !u->removed && deps_up(d, u) &&
		    (!d->hooks.may_start || d->hooks.may_start(d, u)))
			nulld_unit_start(d, u);
	}
}

static void
on_ready(struct nulld *d, struct nulld_unit *u)
{
	char buf[256];
	ssize_t n = read(u->ready_fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* Closed without a line: not ready; the timeout or the exit decides. */
		unwatch_close(d, &u->ready_fd);
		return;
	}
	if (u->state != UNIT_STARTING)
		return;
	if (!memchr(buf, '\n', (size_t)n)) {
		u->ready_line_len += (size_t)n;
		return;
	}
	/* One line is the whole protocol: nothing more is read. */
	unwatch_close(d, &u->ready_fd);
	log_info("%s %s: ready after %llu ms", u->agent ? "agent" : "service", u->name,
		 (unsigned long long)(nulld_now_ms() - u->started_ms));
	nulld_unit_set_state(d, u, UNIT_UP);
	arm_timer(u, STABLE_MS);
	nulld_start_ready_units(d);
}

static void
describe_status(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else
		snprintf(buf, len, "ended (status 0x%x)", st);
}

static void
on_exit_status(struct nulld *d, struct nulld_unit *u, int st)
{
	char how[96];
	describe_status(st, how, sizeof(how));
	bool was_starting = u->state == UNIT_STARTING;
	bool failed = !(WIFEXITED(st) && WEXITSTATUS(st) == 0) || was_starting;
	/*
	 * Take what the unit wrote last, then let the pipe go: an orphan it left (or cage's
	 * guard) may hold the other end for a long time, so read only what is there now.
	 */
	for (int i = 0; i < 64 && u->log_fd >= 0; i++) {
		int avail = 0;
		if (ioctl(u->log_fd, FIONREAD, &avail) < 0 || avail <= 0)
			break;
		on_log(d, u);
	}
	unwatch_close(d, &u->log_fd);
	unwatch_close(d, &u->pidfd);
	unwatch_close(d, &u->ready_fd);
	if (u->result_fd >= 0) {
		/* The unit wrote its result just before it exited: it is in the pipe now. */
		ssize_t n = read(u->result_fd, u->result, sizeof(u->result) - 1);
		u->result[n > 0 ? n : 0] = '\0';
		close(u->result_fd);
		u->result_fd = -1;
	}
	disarm_timer(u);
	u->last_pid = u->pid;
	u->pid = 0;
	u->last_status = st;
	u->exits++;
	log_info("%s %s: %s%s", u->agent ? "agent" : "service", u->name, how,
		 was_starting ? " before it was ready" : "");
	if (d->hooks.exited)
		d->hooks.exited(d, u, st, failed);

	if (u->restart_now && !d->shutting_down && !u->want_down) {
		/* Asked for: a restart at once, whatever the policy, with a clean slate. */
		u->restart_now = false;
		u->failures = 0;
		nulld_unit_set_state(d, u, UNIT_WAITING);
		nulld_start_ready_units(d);
		return;
	}
	if (u->state == UNIT_STOPPING || d->shutting_down || u->want_down) {
		nulld_unit_set_state(d, u, UNIT_DOWN);
		return;
	}
	apply_policy(d, u, failed);
}

/* After an end (or a start that could not happen): down, backoff or held, by the policy. */
static void
apply_policy(struct nulld *d, struct nulld_unit *u, bool failed)
{
	if (d->shutting_down || u->want_down) {
		nulld_unit_set_state(d, u, UNIT_DOWN);
		return;
	}
	if (u->restart == NULLD_RESTART_NEVER ||
	    (u->restart == NULLD_RESTART_ON_FAILURE && !failed)) {
		nulld_unit_set_state(d, u, UNIT_DOWN);
		return;
	}
	/*
	 * A clean exit of an "always" unit is no failure: it comes back after the first backoff
	 * step, and is never held for it.
	 */
	if (!failed) {
		u->backoff_ms = BACKOFF_FIRST_MS;
		nulld_unit_set_state(d, u, UNIT_BACKOFF);
		arm_timer(u, BACKOFF_FIRST_MS);
		return;
	}
	u->failures++;
	if (u->failures >= HOLD_AFTER) {
		log_err("%s %s: held after %u failures in a row; it will not be restarted until "
			"asked to (nullctl)",
			u->agent ? "agent" : "service", u->name, u->failures);
		nulld_unit_set_state(d, u, UNIT_HELD);
		if (d->hooks.held)
			d->hooks.held(d, u);
		return;
	}
	uint64_t delay = BACKOFF_FIRST_MS << (u->failures - 1);
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	log_info("%s %s: restarting in %llu ms (failure %u)", u->agent ? "agent" : "service",
		 u->name, (unsigned long long)delay, u->failures);
	u->backoff_ms = delay;
	nulld_unit_set_state(d, u, UNIT_BACKOFF);
	arm_timer(u, delay);
}

static struct nulld_unit *
unit_by_pid(struct nulld *d, pid_t pid)
{
	for (size_t i = 0; i < d->n_units; i++)
		if (d->units[i]->pid == pid)
			return d->units[i];
	return NULL;
}

/* Reaps every child that has ended: our units, and orphans (as PID 1 or subreaper). */
static void
reap_all(struct nulld *d)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		struct nulld_unit *u = unit_by_pid(d, pid);
		if (u)
			on_exit_status(d, u, st);
		else if (d->hooks.reaped)
			d->hooks.reaped(d, pid, st);
	}
}

static void
on_timer(struct nulld *d, struct nulld_unit *u)
{
	uint64_t ticks;
	if (read(u->timer_fd, &ticks, sizeof(ticks)) != sizeof(ticks))
		return;
	switch (u->state) {
	case UNIT_STARTING:
		log_err("%s %s: not ready after %u s: killing it", u->agent ? "agent" : "service",
			u->name, u->ready_timeout_secs);
		nulld_unit_kill(u, SIGKILL);
		break;
	case UNIT_UP:
		if (u->failures)
			log_info("%s %s: stable for a minute, failure count reset",
				 u->agent ? "agent" : "service", u->name);
		u->failures = 0;
		break;
	case UNIT_BACKOFF:
		nulld_unit_set_state(d, u, UNIT_WAITING);
		nulld_start_ready_units(d);
		break;
	case UNIT_STOPPING:
		log_warn("%s %s: still running %u s after SIGTERM: SIGKILL",
			 u->agent ? "agent" : "service", u->name, STOP_TIMEOUT_MS / 1000);
		nulld_unit_kill(u, SIGKILL);
		break;
	default:
		break;
	}
}

/* ---- shutdown ---- */

static bool
unit_running(const struct nulld_unit *u)
{
	return u->pid > 0;
}

void
nulld_unit_stop(struct nulld *d, struct nulld_unit *u)
{
	if (unit_running(u)) {
		if (u->state == UNIT_STOPPING)
			return;
		if (d->hooks.stopping)
			d->hooks.stopping(d, u);
		nulld_unit_kill(u, SIGTERM);
		nulld_unit_set_state(d, u, UNIT_STOPPING);
		arm_timer(u, STOP_TIMEOUT_MS);
	} else if (u->state != UNIT_DOWN) {
		disarm_timer(u);
		nulld_unit_set_state(d, u, UNIT_DOWN);
	}
}

void
nulld_unit_restart(struct nulld *d, struct nulld_unit *u)
{
	u->want_down = false;
	if (unit_running(u)) {
		u->restart_now = true;
		nulld_unit_stop(d, u);
		return;
	}
	disarm_timer(u);
	u->failures = 0;
	nulld_unit_set_state(d, u, UNIT_WAITING);
	nulld_start_ready_units(d);
}

/* True if some running unit depends on @i (directly). */
static bool
has_running_dependent(struct nulld *d, size_t i)
{
	for (size_t j = 0; j < d->n_units; j++) {
		const struct nulld_unit *v = d->units[j];
		if (!unit_running(v))
			continue;
		for (size_t k = 0; k < v->n_deps; k++)
			if (v->deps[k] == i)
				return true;
	}
	return false;
}

/* Stops, in reverse dependency order, every unit nothing running depends on any more. */
static void
shutdown_step(struct nulld *d)
{
	for (size_t n = d->n_units; n-- > 0;) {
		struct nulld_unit *u = d->units[n];
		if (u->state == UNIT_DOWN || u->state == UNIT_STOPPING)
			continue;
		if (!has_running_dependent(d, n))
			nulld_unit_stop(d, u);
	}
}

static bool
all_down(struct nulld *d)
{
	for (size_t i = 0; i < d->n_units; i++)
		if (unit_running(d->units[i]))
			return false;
	return true;
}

void
nulld_shutdown(struct nulld *d, const char *why)
{
	if (!d->shutting_down)
		log_info("shutting down (%s)", why);
	d->shutting_down = true;
	shutdown_step(d);
}

static void
on_leftover_timer(struct nulld *d, struct nulld_watch *w, uint32_t events)
{
	uint64_t ticks;
	if (read(d->leftover_timer, &ticks, sizeof(ticks)) < 0)
		return; /* the loop runs the shutdown step again after this event */
}

/* Wakes the loop in 200 ms, to look at the leftovers again. */
static void
arm_leftover_timer(struct nulld *d)
{
	static struct nulld_watch w = { NULLD_W_EXTERNAL, NULL, on_leftover_timer };
	if (d->leftover_timer < 0) {
		d->leftover_timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (d->leftover_timer < 0 || nulld_watch(d, d->leftover_timer, &w, EPOLLIN) < 0)
			return;
	}
	struct itimerspec its = { .it_value = { .tv_nsec = 200000000L } };
	timerfd_settime(d->leftover_timer, 0, &its, NULL);
}

/*
 * After every unit stopped, what is left are processes the units left behind: they became our
 * children (we are their subreaper, or PID 1). SIGTERM, then SIGKILL 5 s later. Returns true when
 * none is left.
 */
static bool
kill_leftovers(struct nulld *d)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	bool any = false;
	if (!d->leftovers_ms)
		d->leftovers_ms = nulld_now_ms();
	int sig = nulld_now_ms() - d->leftovers_ms >= STOP_TIMEOUT_MS ? SIGKILL : SIGTERM;
	for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n")) {
		pid_t pid = (pid_t)atoi(tok);
		if (pid <= 0)
			continue;
		/* Pin it first: only a child of ours that is still this process gets the signal. */
		int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pfd < 0)
			continue;
		if (!any || sig == SIGKILL)
			log_info("left over from a unit: pid %d: %s", (int)pid,
				 sig == SIGKILL ? "SIGKILL" : "SIGTERM");
		syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0);
		close(pfd);
		any = true;
	}
	if (any)
		arm_leftover_timer(d);
	return !any;
}

/* ---- the loop ---- */

static void
on_signal(struct nulld *d)
{
	struct signalfd_siginfo si;
	while (read(d->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap_all(d);
			break;
		case SIGTERM:
		case SIGINT:
		case SIGPWR:
			nulld_shutdown(d, strsignal((int)si.ssi_signo));
			break;
		default:
			break;
		}
	}
}

int
nulld_unit_init(struct nulld_unit *u)
{
	u->pid = 0;
	u->pidfd = u->ready_fd = u->log_fd = u->log_file = u->result_fd = -1;
	u->state = UNIT_WAITING;
	u->w_pid = (struct nulld_watch){ NULLD_W_PIDFD, u, NULL };
	u->w_ready = (struct nulld_watch){ NULLD_W_READY, u, NULL };
	u->w_log = (struct nulld_watch){ NULLD_W_LOG, u, NULL };
	u->w_timer = (struct nulld_watch){ NULLD_W_TIMER, u, NULL };
	u->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	return u->timer_fd < 0 ? -errno : 0;
}

void
nulld_unit_free(struct nulld *d, struct nulld_unit *u)
{
	if (!u)
		return;
	unwatch_close(d, &u->pidfd);
	unwatch_close(d, &u->ready_fd);
	unwatch_close(d, &u->log_fd);
	unwatch_close(d, &u->timer_fd);
	if (u->log_file >= 0)
		close(u->log_file);
	if (u->result_fd >= 0)
		close(u->result_fd);
	wipe_extra_env(u);
	free(u->name);
	nb_strv_free(u->argv);
	free(u->deps);
	free(u->log_path);
	free(u);
}

int
nulld_add_unit(struct nulld *d, struct nulld_unit *u)
{
	struct nulld_unit **nu = realloc(d->units, (d->n_units + 1) * sizeof(*nu));
	if (!nu)
		return -ENOMEM;
	d->units = nu;
	d->units[d->n_units++] = u;
	return nulld_watch(d, u->timer_fd, &u->w_timer, EPOLLIN);
}

int
nulld_loop_init(struct nulld *d, struct nb_err *e)
{
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->epfd < 0)
		return nb_err_setp(e, errno, "epoll_create1");
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGPWR);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	d->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (d->sig_fd < 0)
		return nb_err_setp(e, errno, "signalfd");
	d->w_sig = (struct nulld_watch){ NULLD_W_SIGNAL, NULL, NULL };
	int r = nulld_watch(d, d->sig_fd, &d->w_sig, EPOLLIN);
	if (r < 0)
		return nb_err_setp(e, -r, "epoll_ctl");
	/* Orphans of our services come to us, not to the host's init: we reap them. */
	if (!d->opt.pid1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		log_perr("PR_SET_CHILD_SUBREAPER");
	return 0;
}

int
nulld_loop_run(struct nulld *d)
{
	struct epoll_event evs[64];
	nulld_start_ready_units(d);
	for (;;) {
		if (d->shutting_down) {
			shutdown_step(d);
			if (all_down(d) && kill_leftovers(d))
				return 0;
		}
		int n = epoll_wait(d->epfd, evs, (int)NB_ARRAY_SIZE(evs), -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct nulld_watch *w = evs[i].data.ptr;
			struct nulld_unit *u = w->unit;
			switch (w->kind) {
			case NULLD_W_SIGNAL:
				on_signal(d);
				break;
			case NULLD_W_PIDFD:
				/* The exit itself is collected by reap_all (one place reaps). */
				reap_all(d);
				break;
			case NULLD_W_READY:
				if (u->ready_fd >= 0)
					on_ready(d, u);
				break;
			case NULLD_W_LOG:
				if (u->log_fd >= 0)
					on_log(d, u);
				break;
			case NULLD_W_TIMER:
				if (u->timer_fd >= 0)
					on_timer(d, u);
				break;
			case NULLD_W_EXTERNAL:
				w->fn(d, w, evs[i].events);
				break;
			}
		}
		if (d->hooks.after_events)
			d->hooks.after_events(d);
	}
}
