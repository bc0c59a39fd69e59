/*
 * spawn.c: from a struct cage_config to a running, confined agent.
 *
 * Sections:
 *   protocol   messages on the sync socket between cage (host side) and the sandbox's init
 *   child      runs in the new namespaces: cgroup namespace, hostname, loopback, root file
 *              system, no_new_privs, Landlock, credentials and capabilities, seccomp
 *   init       PID 1 of the sandbox: starts the agent, forwards signals, reaps, reports status
 *   parent     cgroup, clone, uid maps, signal forwarding, result, cleanup
 *
 * Order of construction (each step fails closed, and its error travels back to the parent as a
 * struct nb_err over the sync socket, so `cage` prints why):
 *   parent: compile seccomp -> cgroup (+ guard process) -> clone(NEWNS|NEWPID|NEWIPC|NEWUTS|NEWNET
 *           [|NEWUSER]), straight into the cgroup with clone3(CLONE_INTO_CGROUP) on cgroup v2 ->
 *           uid/gid maps -> "i" -> attach to the cgroup (unless already in it) -> "g"
 *   child:  (after "i") hostname -> lo up -> rootfs + pivot_root -> (after "g") NEWCGROUP ->
 *           no_new_privs -> Landlock -> drop groups/gid/uid and every capability -> seccomp ->
 *           fork the agent
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <grp.h>
#include <time.h>
#include <unistd.h>

#include "cage-internal.h"
#include "cgroup.h"
#include "cleanup.h"
#include "log.h"

/* ---- protocol ---- */

enum cage_msg_type {
	MSG_ERROR = 1,	 /* setup or exec failed: err is set, exit_code says how cage exits */
	MSG_STARTED = 2, /* the agent's execve succeeded; landlock_abi is set */
	MSG_STATUS = 3,	 /* the agent ended: wstatus is its wait status */
};

struct cage_msg {
	int type;
	int exit_code;
	int wstatus;
	int landlock_abi;
	struct nb_err err;
};

/* Signals cage passes on to the agent. Everything else keeps its default meaning for cage. */
static const int forwarded_signals[] = { SIGHUP,  SIGINT,   SIGQUIT, SIGTERM, SIGUSR1,
					 SIGUSR2, SIGWINCH, SIGCONT, SIGALRM };

static void
send_msg(int fd, const struct cage_msg *m)
{
	ssize_t w;
	do {
		/* MSG_NOSIGNAL: a gone peer must not kill us with SIGPIPE. The exec pipe is no
		 * socket (ENOTSOCK); its reader, init, outlives the writer. */
		w = send(fd, m, sizeof(*m), MSG_NOSIGNAL);
		if (w < 0 && errno == ENOTSOCK)
			w = write(fd, m, sizeof(*m));
	} while (w < 0 && errno == EINTR);
}

static _Noreturn void
child_fail(int fd, int exit_code, const struct nb_err *e)
{
	struct cage_msg m = { .type = MSG_ERROR, .exit_code = exit_code, .err = *e };
	send_msg(fd, &m);
	_exit(exit_code);
}

/* ---- child ---- */

static int
loopback_up(struct nb_err *e)
{
	_cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return nb_err_setp(e, errno, "network: socket");
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return nb_err_setp(e, errno, "network: lo flags");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		return nb_err_setp(e, errno, "network: bring lo up");
	return 0;
}

/*
 * Drops every capability for good: bounding set (so no exec can bring one back), ambient,
 * then uid/gid (which clears permitted and effective when leaving uid 0), then capset to zero
 * for the user-namespace case where the uid does not change.
 */
static int
drop_privileges(const struct cage_config *c, struct nb_err *e)
{
	for (int cap = 0; cap <= 63; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return nb_err_setp(e, errno, "capabilities: drop bounding cap %d", cap);
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return nb_err_setp(e, errno, "capabilities: clear ambient");
	/* No supplementary group of cage's caller survives (in a user namespace setgroups is
	 * denied, and the caller's groups are unmapped there anyway). */
	if (setgroups(0, NULL) < 0 && errno != EPERM)
		return nb_err_setp(e, errno, "credentials: setgroups");
	if (setresgid(c->gid, c->gid, c->gid) < 0)
		return nb_err_setp(e, errno, "credentials: setresgid %u", (unsigned)c->gid);
	if (setresuid(c->uid, c->uid, c->uid) < 0)
		return nb_err_setp(e, errno, "credentials: setresuid %u", (unsigned)c->uid);
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { 0 };
	if (syscall(SYS_capset, &hdr, data) < 0)
		return nb_err_setp(e, errno, "capabilities: capset");
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return nb_err_setp(e, errno, "capabilities: keepcaps");
	return 0;
}

/* Looks @file up in the agent's PATH, as execvpe does, inside the sandbox. */
static const char *
agent_path_lookup(const char *file, char *const *envp, char *buf, size_t len)
{
	if (strchr(file, '/'))
		return file;
	const char *path = "/usr/bin:/bin";
	for (char *const *p = envp; *p; p++)
		if (strncmp(*p, "PATH=", 5) == 0)
			path = *p + 5;
	while (*path) {
		size_t n = strcspn(path, ":");
		snprintf(buf, len, "%.*s/%s", (int)n, path, file);
		if (access(buf, X_OK) == 0)
			return buf;
		path += n + (path[n] == ':');
	}
	return NULL;
}

/* The agent, between fork and exec: a new session (no controlling tty), default signals. */
static _Noreturn void
agent_exec(const struct cage_config *c, int exec_fd)
{
	struct nb_err e = { 0 };
	sigset_t none;
	sigemptyset(&none);
	for (size_t i = 0; i < NB_ARRAY_SIZE(forwarded_signals); i++)
		signal(forwarded_signals[i], SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/*
	 * A new session detaches the agent from cage's terminal, so it cannot push input into it
	 * (TIOCSTI is also refused by seccomp) or signal cage's process group.
	 */
	setsid();
	/* No descriptor of cage's caller leaks into the agent (exec_fd is close-on-exec too). */
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	/* No core files: a crashing agent's memory (placeholders, tokens in flight) stays put. */
	struct rlimit core = { 0, 0 };
	setrlimit(RLIMIT_CORE, &core);
	if (chdir(c->cwd) < 0) {
		nb_err_setp(&e, errno, "exec: chdir %s", c->cwd);
		child_fail(exec_fd, CAGE_EXIT_FAILURE, &e);
	}
	char buf[4096];
	const char *path = agent_path_lookup(c->argv[0], c->envp, buf, sizeof(buf));
	if (!path) {
		nb_err_set(&e, ENOENT, "exec: %s: command not found in the sandbox", c->argv[0]);
		child_fail(exec_fd, CAGE_EXIT_NOT_FOUND, &e);
	}
	execve(path, c->argv, c->envp);
	int err = errno;
	nb_err_setp(&e, err, "exec: %s", path);
	child_fail(exec_fd, err == ENOENT ? CAGE_EXIT_NOT_FOUND : CAGE_EXIT_CANNOT_EXEC, &e);
}

/*
 * PID 1 of the sandbox. It is as confined as the agent (same uid, Landlock, seccomp), waits for
 * signals with sigwaitinfo, forwards what cage forwards, reaps every orphan, and when the agent
 * ends reports its status and exits: the kernel then kills whatever is left in the namespace.
 */
static _Noreturn void
sandbox_init(const struct cage_config *c, int sync_fd, int landlock_abi)
{
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		struct nb_err e;
		nb_err_setp(&e, errno, "init: pipe");
		child_fail(sync_fd, CAGE_EXIT_FAILURE, &e);
	}
	pid_t agent = fork();
	if (agent < 0) {
		struct nb_err e;
		nb_err_setp(&e, errno, "init: fork");
		child_fail(sync_fd, CAGE_EXIT_FAILURE, &e);
	}
	if (agent == 0) {
		close(sync_fd);
		close(pipefd[0]);
		agent_exec(c, pipefd[1]);
	}
	close(pipefd[1]);
	/* The exec pipe closes on a successful execve; an error message arrives otherwise. */
	struct cage_msg m;
	ssize_t n;
	do {
		n = read(pipefd[0], &m, sizeof(m));
	} while (n < 0 && errno == EINTR);
	close(pipefd[0]);
	if (n == (ssize_t)sizeof(m)) {
		send_msg(sync_fd, &m);
		waitpid(agent, NULL, 0);
		_exit(m.exit_code);
	}
	struct cage_msg started = { .type = MSG_STARTED, .landlock_abi = landlock_abi };
	send_msg(sync_fd, &started);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	for (size_t i = 0; i < NB_ARRAY_SIZE(forwarded_signals); i++)
		sigaddset(&set, forwarded_signals[i]);
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si);
		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			kill(agent, sig);
			continue;
		}
		int ws;
		pid_t p;
		while ((p = waitpid(-1, &ws, WNOHANG)) > 0) {
			if (p != agent)
				continue;
			struct cage_msg st = { .type = MSG_STATUS, .wstatus = ws };
			send_msg(sync_fd, &st);
			_exit(WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws));
		}
	}
}

static _Noreturn void
sandbox_child(const struct cage_config *c, struct cage_seccomp *filter, int sync_fd)
{
	struct nb_err e = { 0 };
	int abi = 0;
	char go;

	/* If cage dies, so does the sandbox: init's death kills every process in the namespace. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
		nb_err_setp(&e, errno, "prctl: pdeathsig");
		child_fail(sync_fd, CAGE_EXIT_FAILURE, &e);
	}
	/* Wait until the parent wrote the id maps (a user namespace); EOF: cage is gone. */
	if (read(sync_fd, &go, 1) != 1)
		_exit(CAGE_EXIT_FAILURE);
	/*
	 * init is a copy of cage: its memory (including /proc/1/environ, cage's own environment)
	 * must not be readable by the agent, which runs under the same uid. Not dumpable makes
	 * /proc/1/{environ,mem,fd,...} and ptrace refuse every other process. execve resets this
	 * for the agent itself. Only after the id maps are written: a non-dumpable process's
	 * /proc/PID/{uid,gid}_map belong to root, and an unprivileged cage could not write them.
	 */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		nb_err_setp(&e, errno, "prctl: dumpable");
		child_fail(sync_fd, CAGE_EXIT_FAILURE, &e);
	}
	/*
	 * And init holds no copy of cage's environment at all: the strings are wiped in place,
	 * since /proc/PID/environ reads that memory, not the environ array.
	 */
	for (char **p = environ; p && *p; p++)
		explicit_bzero(*p, strlen(*p));
	clearenv();
	if (sethostname(c->name, strlen(c->name)) < 0) {
		nb_err_setp(&e, errno, "namespaces: sethostname");
		child_fail(sync_fd, CAGE_EXIT_FAILURE, &e);
	}
	/*
	 * The root file system is built while the parent moves us into the cgroup (on cgroup v1 the
	 * move can wait ~10 ms for an RCU grace period). Nothing untrusted runs yet; only the few
	 * kernel objects of the mounts are charged to cage's own cgroup instead of the agent's.
	 */
	if (loopback_up(&e) < 0 || cage_rootfs_setup(c, &e) < 0)
		child_fail(sync_fd, CAGE_EXIT_FAILURE, &e);
	/* Now in the agent's cgroup, or cage is gone. */
	if (read(sync_fd, &go, 1) != 1)
		_exit(CAGE_EXIT_FAILURE);
	/* After the cgroup attach: the agent's cgroup becomes the root of what it can see. */
	if (unshare(CLONE_NEWCGROUP) < 0) {
		nb_err_setp(&e, errno, "namespaces: cgroup");
		child_fail(sync_fd, CAGE_EXIT_FAILURE, &e);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		nb_err_setp(&e, errno, "prctl: no_new_privs");
		child_fail(sync_fd, CAGE_EXIT_FAILURE, &e);
	}
	size_t n_rules = 0;
	_cleanup_free_ struct cage_ll_rule *rules = cage_rootfs_landlock_rules(c, &n_rules);
	if (!rules) {
		nb_err_set(&e, ENOMEM, "landlock: out of memory");
		child_fail(sync_fd, CAGE_EXIT_FAILURE, &e);
	}
	if (cage_landlock_apply(rules, n_rules, &abi, &e) < 0)
		child_fail(sync_fd, CAGE_EXIT_FAILURE, &e);
	if (drop_privileges(c, &e) < 0)
		child_fail(sync_fd, CAGE_EXIT_FAILURE, &e);
	/* A change of credentials clears the parent-death signal: set it again, then make sure
	 * cage did not die in between (its end of the sync socket would be closed). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
		nb_err_setp(&e, errno, "prctl: pdeathsig");
		child_fail(sync_fd, CAGE_EXIT_FAILURE, &e);
	}
	struct pollfd alive = { .fd = sync_fd, .events = POLLIN };
	if (poll(&alive, 1, 0) > 0 && (alive.revents & (POLLHUP | POLLERR)))
		_exit(CAGE_EXIT_FAILURE);
	/* Last: from here on only what the profile allows, for init and agent alike. */
	if (cage_seccomp_apply(filter, &e) < 0)
		child_fail(sync_fd, CAGE_EXIT_FAILURE, &e);
	sandbox_init(c, sync_fd, abi);
}

/* ---- parent ---- */

/*
 * The cgroup must not outlive cage even when cage is killed with SIGKILL (the sandbox itself dies
 * then through its parent-death signal, but nobody would remove the cgroup). This small process,
 * in its own session so terminal signals do not reach it, waits on a pipe: a byte means cage
 * cleaned up itself; end-of-file without one means cage died, and it removes the cgroup.
 * Returns the write end of the pipe and the guard's pid in *guard, or -1 (then cage runs without
 * this safety net).
 */
static int
start_cgroup_guard(struct nb_cgroup *cg, pid_t *guard)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid > 0) {
		close(p[0]);
		*guard = pid;
		return p[1];
	}
	close(p[1]);
	setsid();
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
	}
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	char b;
	ssize_t n;
	do {
		n = read(p[0], &b, 1);
	} while (n < 0 && errno == EINTR);
	if (n == 1)
		_exit(0);
	struct nb_err e = { 0 };
	if (nb_cgroup_destroy(cg, &e) < 0)
		log_warn("after cage died: %s", e.msg);
	_exit(0);
}

static int
write_id_maps(pid_t pid, struct nb_err *e)
{
	char path[64], uid_map[64], gid_map[64];
	/* Only our own ids, mapped to themselves: the agent is us, without capabilities. */
	snprintf(uid_map, sizeof(uid_map), "%u %u 1\n", (unsigned)getuid(), (unsigned)getuid());
	snprintf(gid_map, sizeof(gid_map), "%u %u 1\n", (unsigned)getgid(), (unsigned)getgid());
	const char *const maps[][2] = {
		{ "setgroups", "deny" },
		{ "uid_map", uid_map },
		{ "gid_map", gid_map },
	};
	for (size_t i = 0; i < NB_ARRAY_SIZE(maps); i++) {
		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, maps[i][0]);
		size_t len = strlen(maps[i][1]);
		_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, maps[i][1], len) != (ssize_t)len)
			return nb_err_setp(e, errno, "namespaces: write %s", path);
	}
	return 0;
}

/* struct clone_args of linux/sched.h (5.7+), spelled out: that header clashes with <sched.h>. */
struct cage_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
		set_tid_size, cgroup;
};
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/*
 * clone(2) into the new namespaces, as fork does (returns 0 in the child). With a cgroup v2
 * directory fd, clone3(CLONE_INTO_CGROUP) starts the child in its cgroup, so nothing has to be
 * migrated (a migration waits for an RCU grace period); *in_cgroup tells whether that happened.
 * Kernels without clone3 or CLONE_INTO_CGROUP fall back to clone and a later attach.
 */
static pid_t
clone_sandbox(unsigned long flags, int cgroup_fd, bool *in_cgroup)
{
	*in_cgroup = false;
	if (cgroup_fd >= 0) {
		struct cage_clone_args a = { .flags = flags | CLONE_INTO_CGROUP,
					     .exit_signal = SIGCHLD,
					     .cgroup = (uint64_t)cgroup_fd };
		long pid = syscall(SYS_clone3, &a, sizeof(a));
		if (pid >= 0) {
			*in_cgroup = pid > 0;
			return (pid_t)pid;
		}
		if (errno != ENOSYS && errno != E2BIG && errno != EINVAL)
			return -1;
		log_debug("clone3(CLONE_INTO_CGROUP): %m; falling back to clone and attach");
	}
	return (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
}

static uint64_t
now_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void
fill_status(struct cage_result *res, int ws)
{
	if (WIFEXITED(ws)) {
		res->status = CAGE_STATUS_EXITED;
		res->exit_code = WEXITSTATUS(ws);
	} else if (WIFSIGNALED(ws)) {
		res->status = CAGE_STATUS_SIGNALED;
		res->signal = WTERMSIG(ws);
		res->exit_code = 128 + res->signal;
	}
}

/*
 * Waits for the sandbox's init, forwarding signals to it and reading its messages. Returns the
 * init's wait status; *msg_err / res are filled from what init reported.
 */
static int
supervise(pid_t pid, int sync_fd, int sig_fd, struct cage_result *res, struct nb_err *e,
	  bool *had_error)
{
	bool sync_open = true, have_status = false;
	for (;;) {
		struct pollfd pfd[2] = { { .fd = sig_fd, .events = POLLIN },
					 { .fd = sync_open ? sync_fd : -1, .events = POLLIN } };
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents) {
			struct cage_msg m;
			ssize_t n = recv(sync_fd, &m, sizeof(m), 0);
			if (n == (ssize_t)sizeof(m)) {
				if (m.type == MSG_ERROR && !*had_error) {
					*e = m.err;
					*had_error = true;
					res->exit_code = m.exit_code;
				} else if (m.type == MSG_STARTED) {
					res->landlock_abi = m.landlock_abi;
				} else if (m.type == MSG_STATUS) {
					fill_status(res, m.wstatus);
					have_status = true;
				}
			} else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
				sync_open = false;
			}
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;
			if (read(sig_fd, &si, sizeof(si)) != sizeof(si))
				continue;
			if ((int)si.ssi_signo != SIGCHLD) {
				kill(pid, (int)si.ssi_signo);
				continue;
			}
			int ws;
			if (waitpid(pid, &ws, WNOHANG) == pid) {
				/* Drain what init sent before it died. */
				struct cage_msg m;
				while (sync_open &&
				       recv(sync_fd, &m, sizeof(m), MSG_DONTWAIT) == sizeof(m)) {
					if (m.type == MSG_STATUS) {
						fill_status(res, m.wstatus);
						have_status = true;
					} else if (m.type == MSG_ERROR && !*had_error) {
						*e = m.err;
						*had_error = true;
						res->exit_code = m.exit_code;
					}
				}
				if (!have_status && !*had_error)
					fill_status(res, ws);
				return ws;
			}
		}
	}
	return -1;
}

int
cage_run(const struct cage_config *c, struct cage_result *res, struct nb_err *e)
{
	*res = (struct cage_result){ .status = CAGE_STATUS_ERROR, .exit_code = CAGE_EXIT_FAILURE };
	uint64_t t0 = now_usec();
	struct cage_seccomp *filter = NULL;
	struct nb_cgroup *cg = NULL;
	int sync[2] = { -1, -1 };
	int sig_fd = -1;
	int guard_fd = -1;
	pid_t guard_pid = -1;
	sigset_t mask, oldmask;
	bool had_error = false;
	int r;

	r = cage_seccomp_compile(c->seccomp_profile, &filter, e);
	if (r < 0)
		return r;

	char cgname[128];
	snprintf(cgname, sizeof(cgname), "nullbox-%s-%d", c->name, (int)getpid());
	struct nb_cgroup_limits lim = { .memory_bytes = c->memory_bytes,
					.cpu_percent = c->cpu_percent,
					.max_pids = c->max_pids };
	r = nb_cgroup_create(cgname, &lim, &cg, e);
	if (r < 0)
		goto out;
	snprintf(res->cgroup_mode, sizeof(res->cgroup_mode), "%s", nb_cgroup_mode(cg));
	guard_fd = start_cgroup_guard(cg, &guard_pid);

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync) < 0) {
		r = nb_err_setp(e, errno, "socketpair");
		goto out;
	}
	/* Signals are read from a signalfd; the child restores the mask before it runs the agent.
	 */
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	for (size_t i = 0; i < NB_ARRAY_SIZE(forwarded_signals); i++)
		sigaddset(&mask, forwarded_signals[i]);
	sigprocmask(SIG_BLOCK, &mask, &oldmask);
	sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sig_fd < 0) {
		r = nb_err_setp(e, errno, "signalfd");
		goto out_mask;
	}

	unsigned long flags =
		CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET;
	if (geteuid() != 0)
		flags |= CLONE_NEWUSER;
	fflush(NULL);
	bool in_cgroup = false;
	pid_t pid = clone_sandbox(flags, nb_cgroup_v2_fd(cg), &in_cgroup);
	if (pid < 0) {
		r = nb_err_setp(e, errno, "namespaces: clone");
		goto out_mask;
	}
	if (pid == 0) {
		close(sync[0]);
		close(sig_fd);
		/* Only cage may hold the guard's pipe: the guard acts when cage is gone, even if
		 * the sandbox is frozen and cannot die yet. */
		if (guard_fd >= 0)
			close(guard_fd);
		sandbox_child(c, filter, sync[1]);
	}
	res->pid = pid;
	close(sync[1]);
	sync[1] = -1;

	r = 0;
	if (flags & CLONE_NEWUSER)
		r = write_id_maps(pid, e);
	if (r == 0 && write(sync[0], "i", 1) != 1)
		r = nb_err_setp(e, errno, "sync: start the sandbox");
	if (r == 0 && !in_cgroup)
		r = nb_cgroup_attach(cg, pid, e);
	if (r == 0 && write(sync[0], "g", 1) != 1)
		r = nb_err_setp(e, errno, "sync: start the sandbox");
	if (r < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		goto out_mask;
	}
	supervise(pid, sync[0], sig_fd, res, e, &had_error);
	res->wall_usec = now_usec() - t0;
	struct nb_cgroup_stats st = { 0 };
	struct nb_err se = { 0 };
	if (nb_cgroup_stats(cg, &st, &se) == 0) {
		res->oom_kills = st.oom_kills;
		res->cpu_usec = st.cpu_usec;
		res->memory_peak_bytes = st.memory_peak_bytes;
	} else {
		log_warn("%s", se.msg);
	}
	if (had_error) {
		res->status = CAGE_STATUS_ERROR;
		r = -(e->code ? e->code : EIO);
	}
out_mask:
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
out:
	if (cg) {
		struct nb_err de = { 0 };
		/* Always removed, also after an error: nothing of the sandbox outlives cage. */
		if (nb_cgroup_destroy(cg, &de) < 0) {
			log_warn("%s", de.msg);
			if (r == 0 && !had_error) {
				*e = de;
				r = -(de.code ? de.code : EIO);
			}
		}
	}
	if (guard_fd >= 0) {
		/* Tell the guard that the cgroup is gone (or was never made by us). */
		if (write(guard_fd, "d", 1) != 1)
			log_debug("cgroup guard already gone");
		close(guard_fd);
		/* It exits at once; reaped here, nothing cage started outlives it. */
		while (waitpid(guard_pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (sig_fd >= 0)
		close(sig_fd);
	if (sync[0] >= 0)
		close(sync[0]);
	if (sync[1] >= 0)
		close(sync[1]);
	cage_seccomp_free(filter);
	return r;
}
