/*
 * main.c: `warden [--state-dir DIR] [--socket PATH] [--key-file FILE]`.
 *
 * Sections:
 *   options     flags, then nulld's environment (NULLBOX_STATE_DIR, NULLBOX_SOCKET,
 *               NULLBOX_READY_FD), then defaults
 *   hardening   no core dumps, no ptrace by other users, memory locked, JSON memory wiped
 *   main        key, unlock, socket, readiness, the loop (SIGTERM/SIGINT: clean exit)
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cleanup.h"
#include "key.h"
#include "log.h"
#include "warden.h"

#define DEFAULT_STATE_DIR "/var/lib/nullbox"
#define DEFAULT_SOCKET "/run/nullbox/warden.sock"

#define EV_SERVER 1
#define EV_SIGNAL 2

static void
usage(FILE *f)
{
	fprintf(f,
		"Usage: warden [--state-dir DIR] [--socket PATH] [--key-file FILE]\n"
		"\n"
		"NullBox's secret vault: keeps secrets encrypted in DIR/warden/vault and hands\n"
		"them to nulld and egress (root) over a Unix socket. Normally started by nulld.\n"
		"\n"
		"  --state-dir DIR   nulld's state dir (default: $NULLBOX_STATE_DIR, else\n"
		"                    " DEFAULT_STATE_DIR ")\n"
		"  --socket PATH     warden's socket (default: warden.sock next to\n"
		"                    $NULLBOX_SOCKET; else " DEFAULT_SOCKET " for the default\n"
		"                    state dir, DIR/warden.sock otherwise)\n"
		"  --key-file FILE   the master key (mode 0600, owned by warden's user). Without\n"
		"                    it: $NULLBOX_VAULT_KEY (for tests only), else a prompt on the\n"
		"                    terminal or the console\n"
		"\n"
		"Under nulld, audit records go to nulld ($NULLBOX_SOCKET); standalone they are\n"
		"logged to stderr. docs/WARDEN.md has the details.\n");
}

/* ---- hardening ---- */

/*
 * jansson's memory is wiped on free: request and reply objects carry secret values. The pointer
 * is malloc's own, because lib/ipc frees what json_dumps() returns with free().
 */
static void *
wipe_malloc(size_t n)
{
	return malloc(n);
}

static void
wipe_free(void *p)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, malloc_usable_size(p));
	free(p);
}

static void
harden(void)
{
	/*
	 * Not dumpable: no core file with the key in it, and /proc/PID/mem, environ and ptrace
	 * are closed to every uid but root.
	 */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	struct rlimit none = { 0, 0 };
	setrlimit(RLIMIT_CORE, &none);
	/*
	 * All of warden's memory locked, not only the key and the vault's values: requests and
	 * replies pass values through lib/ipc's buffers and jansson, which must not reach swap
	 * either. MCL_ONFAULT locks pages as they are touched, not the whole address space at
	 * once. Only as root (CAP_IPC_LOCK): for others RLIMIT_MEMLOCK would make later
	 * allocations (Argon2's 64 MiB) fail.
	 */
	if (geteuid() == 0 && mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) < 0)
		log_perr("mlockall (memory may be swapped)");
	json_set_alloc_funcs(wipe_malloc, wipe_free);
	umask(077);
}

/* ---- main ---- */

static int
ready_fd_from_env(void)
{
	const char *s = getenv("NULLBOX_READY_FD");
	if (!s || !*s)
		return -1;
	char *end;
	long fd = strtol(s, &end, 10);
	if (*end || fd < 0 || fd > INT_MAX) {
		log_warn("NULLBOX_READY_FD=%s is not a file descriptor; ignored", s);
		return -1;
	}
	return (int)fd;
}

/* The socket by the rule nullctl derives it with: next to nulld's. */
static void
default_socket(const char *state_dir, const char *nulld_socket, char *buf, size_t len)
{
	if (nulld_socket) {
		char copy[PATH_MAX];
		snprintf(copy, sizeof(copy), "%s", nulld_socket);
		snprintf(buf, len, "%s/warden.sock", dirname(copy));
		return;
	}
	char abs[PATH_MAX];
	const char *d = realpath(state_dir, abs) ? abs : state_dir;
	if (strcmp(d, DEFAULT_STATE_DIR) == 0)
		snprintf(buf, len, "%s", DEFAULT_SOCKET);
	else
		snprintf(buf, len, "%s/warden.sock", state_dir);
}

static int
get_key(const char *key_file, const char *vault_path, struct wd_key *k, struct nb_err *e)
{
	if (key_file)
		return wd_key_from_file(key_file, k, e);
	bool found = false;
	int r = wd_key_from_env(k, &found, e);
	if (r < 0 || found)
		return r;
	struct stat st;
	bool exists = lstat(vault_path, &st) == 0;
	log_info("waiting for the master key of %s on the terminal", vault_path);
	return wd_key_from_console(vault_path, !exists, k, e);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "socket", required_argument, NULL, 'S' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *state_dir = NULL, *socket_path = NULL, *key_file = NULL;
	nb_log_init("warden");
	int c;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			state_dir = optarg;
			break;
		case 'S':
			socket_path = optarg;
			break;
		case 'k':
			key_file = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "warden: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	const char *env_state = getenv("NULLBOX_STATE_DIR");
	const char *nulld_socket = getenv("NULLBOX_SOCKET");
	if (nulld_socket && !*nulld_socket)
		nulld_socket = NULL;
	if (!state_dir)
		state_dir = env_state && *env_state ? env_state : DEFAULT_STATE_DIR;
	char sock_buf[PATH_MAX + 32];
	if (!socket_path) {
		default_socket(state_dir, nulld_socket, sock_buf, sizeof(sock_buf));
		socket_path = sock_buf;
	}
	int ready_fd = ready_fd_from_env();

	harden();
	signal(SIGPIPE, SIG_IGN);

	char dir[PATH_MAX + 16], vault_path[PATH_MAX + 32];
	snprintf(dir, sizeof(dir), "%s/warden", state_dir);
	snprintf(vault_path, sizeof(vault_path), "%s/%s", dir, WD_VAULT_FILE);

	struct nb_err e = { 0 };
	struct wd_key key = { 0 };
	struct warden w = { .nulld_socket = nulld_socket, .epfd = -1 };
	if (get_key(key_file, vault_path, &key, &e) < 0) {
		log_err("%s", e.msg);
		return 1;
	}
	bool created = false;
	int r = wd_vault_open(dir, key.buf, key.len, &w.vault, &created, &e);
	/* The derived key is all warden keeps: the master key goes now, whatever happened. */
	wd_key_clear(&key);
	if (r < 0) {
		log_err("cannot unlock the vault: %s", e.msg);
		return 1;
	}
	if (!wd_secure_all_locked())
		log_warn("could not lock the key's memory (RLIMIT_MEMLOCK): it may be swapped");

	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	_cleanup_close_ int sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	_cleanup_close_ int epfd = epoll_create1(EPOLL_CLOEXEC);
	w.srv = nb_ipc_server_new(NULL, &e);
	if (sfd < 0 || epfd < 0 || !w.srv) {
		log_perr("cannot set up the event loop%s%s", e.msg[0] ? ": " : "", e.msg);
		wd_vault_free(w.vault);
		return 1;
	}
	w.epfd = epfd;
	/* 0600: the file mode is the first gate; SO_PEERCRED in every method is the second. */
	if (nb_ipc_server_listen(w.srv, socket_path, 0600, (gid_t)-1, NULL, &e) < 0 ||
	    warden_methods_add(&w, &e) < 0) {
		log_err("%s", e.msg);
		nb_ipc_server_free(w.srv);
		wd_vault_free(w.vault);
		return 1;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_SERVER };
	epoll_ctl(epfd, EPOLL_CTL_ADD, nb_ipc_server_fd(w.srv), &ev);
	ev.data.u64 = EV_SIGNAL;
	epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev);

	const struct wd_kdf *kdf = wd_vault_kdf(w.vault);
	log_info("%s %s (%zu secrets, %s t=%u m=%u p=%u); socket %s; audit %s%s",
		 created ? "created" : "unlocked", vault_path, wd_vault_count(w.vault),
		 wd_kdf_name(kdf->id), kdf->t, kdf->m, kdf->p, socket_path,
		 nulld_socket ? "to nulld at " : "to this log (standalone)",
		 nulld_socket ? nulld_socket : "");
	if (ready_fd >= 0) {
		if (dprintf(ready_fd, "ready\n") < 0)
			log_perr("writing readiness to fd %d", ready_fd);
		close(ready_fd);
	}

	for (;;) {
		struct epoll_event evs[8];
		int n = epoll_wait(epfd, evs, 8, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_perr("epoll_wait");
			break;
		}
		bool stop = false;
		for (int i = 0; i < n; i++) {
			switch (evs[i].data.u64) {
			case EV_SERVER:
				nb_ipc_server_dispatch(w.srv, 0);
				break;
			case WD_EV_AUDIT:
				warden_audit_drain(&w);
				break;
			case EV_SIGNAL: {
				struct signalfd_siginfo si;
				while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGHUP)
						continue;
					log_info("signal %u: stopping", si.ssi_signo);
					stop = true;
				}
				break;
			}
			}
		}
		if (stop)
			break;
	}
	/* The last replies from nulld, so a refused record still shows in this log. */
	warden_audit_drain(&w);
	warden_audit_close(&w);
	nb_ipc_server_free(w.srv);
	wd_vault_free(w.vault);
	return 0;
}
