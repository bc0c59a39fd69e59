/*
 * main.c: `nulld --state-dir DIR [--config nulld.toml] [--socket PATH] [--foreground]`.
 *
 * On a host nulld is a daemon like any other. As PID 1 (the image) it must never exit: the kernel
 * panics when init dies. So as PID 1 every fatal error ends in a recovery hold that prints why
 * and goes on reaping, in the manner of catatonit and tini.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "supervise.h"

#define DEFAULT_STATE_DIR "/var/lib/nullbox"
#define DEFAULT_SOCKET "/run/nullbox/nulld.sock"

static void
usage(FILE *f)
{
	fprintf(f,
		"Usage: nulld [--state-dir DIR] [--config FILE] [--socket PATH] [--foreground]\n"
		"\n"
		"Starts NullBox's services in dependency order, supervises them and the agents,\n"
		"and serves the control socket that nullctl talks to.\n"
		"\n"
		"  --state-dir DIR   state (logs, agents, audit log); default " DEFAULT_STATE_DIR
		"\n"
		"  --config FILE     nulld.toml; default: DIR/nulld.toml if present, else the\n"
		"                    built-in services (warden, egress, ctxgraph, when installed)\n"
		"  --socket PATH     control socket; default " DEFAULT_SOCKET " with the default\n"
		"                    state dir, DIR/nulld.sock otherwise\n"
		"  --foreground      stay attached to the terminal (nulld never forks itself; this\n"
		"                    is accepted for clarity)\n");
}

/* As PID 1: print why, then reap forever. Never returns. */
static _Noreturn void
recovery_hold(const char *why)
{
	fprintf(stderr, "nulld: FATAL: %s\nnulld: holding in recovery (PID 1 must not exit)\n",
		why);
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		int sig;
		sigwait(&all, &sig);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}

static int
fatal(bool pid1, const char *why)
{
	if (pid1)
		recovery_hold(why);
	fprintf(stderr, "nulld: %s\n", why);
	return 1;
}

static int
mkdir_private(const char *path, struct nb_err *e)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return nb_err_setp(e, errno, "%s: mkdir", path);
	struct stat st;
	if (stat(path, &st) < 0)
		return nb_err_setp(e, errno, "%s", path);
	/* The state holds logs and the audit key: it must be ours alone. */
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 0077))
		return nb_err_set(e, EPERM,
				  "%s: must be a directory owned by uid %u with no group or other "
				  "access (mode 0700)",
				  path, (unsigned)geteuid());
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 'd' },
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "control-group", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *state_dir = DEFAULT_STATE_DIR, *config = NULL, *socket_path = NULL;
	const char *control_group = NULL;
	bool pid1 = getpid() == 1;
	int o;
	nb_log_init("nulld");
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'd':
			state_dir = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 's':
			socket_path = optarg;
			break;
		case 'f':
			break;
		case 'g':
			control_group = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			if (pid1)
				break; /* a bad kernel command line must not stop the system */
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc && !pid1) {
		fprintf(stderr, "nulld: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	/*
	 * Four descriptors per agent (pidfd, timer, log and result pipes): the usual soft limit of
	 * 1024 would stop at about 250 agents. Take the hard limit.
	 */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
			log_perr("setrlimit(RLIMIT_NOFILE)");
	}

	struct nb_err e = { 0 };
	char state_abs[PATH_MAX], sock[PATH_MAX + 32], conf[PATH_MAX + 32], bindir[PATH_MAX];
	if (mkdir_private(state_dir, &e) < 0 || !realpath(state_dir, state_abs))
		return fatal(pid1, e.code ? e.msg : "state dir: cannot resolve");
	if (!socket_path) {
		if (strcmp(state_abs, DEFAULT_STATE_DIR) == 0)
			socket_path = DEFAULT_SOCKET;
		else
			socket_path =
				(snprintf(sock, sizeof(sock), "%s/nulld.sock", state_abs), sock);
	}
	char logs[PATH_MAX + 32];
	snprintf(logs, sizeof(logs), "%s/logs", state_abs);
	if (mkdir_private(logs, &e) < 0)
		return fatal(pid1, e.msg);

	struct nulld_config c = { 0 };
	int r;
	if (!config) {
		snprintf(conf, sizeof(conf), "%s/nulld.toml", state_abs);
		if (access(conf, F_OK) == 0)
			config = conf;
	}
	if (config) {
		r = nulld_config_load(config, &c, &e);
	} else {
		ssize_t n = readlink("/proc/self/exe", bindir, sizeof(bindir) - 1);
		bindir[n > 0 ? n : 0] = '\0';
		char *slash = strrchr(bindir, '/');
		if (slash)
			*slash = '\0';
		r = nulld_config_defaults(bindir, &c, &e);
	}
	if (r < 0)
		return fatal(pid1, e.msg);

	struct nulld_options opt = { .state_dir = state_abs,
				     .socket_path = socket_path,
				     .pid1 = pid1,
				     .control_gid = (gid_t)-1 };
	if (control_group) {
		struct group *g = getgrnam(control_group);
		if (!g) {
			nulld_config_free(&c);
			snprintf(conf, sizeof(conf), "--control-group: no group named %.64s",
				 control_group);
			return fatal(pid1, conf);
		}
		opt.control_gid = g->gr_gid;
	}
	r = nulld_supervise(&c, &opt, &e);
	nulld_config_free(&c);
	if (r < 0)
		return fatal(pid1, e.msg);
	if (pid1) {
		/* Everything stopped cleanly: flush and power off, as init does. */
		sync();
		reboot(RB_POWER_OFF);
		recovery_hold("reboot(RB_POWER_OFF) failed");
	}
	return 0;
}
