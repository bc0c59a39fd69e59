/*
 * bench-warden: how long a secret read takes through warden's socket once the vault is unlocked,
 * beside a raw in-process lookup of the same secret.
 *
 *   bench-warden [-n N] [--warmup N] [--warden PATH] [--standalone]
 *
 * Sections:
 *   options     command line, where warden is
 *   fake nulld  a thread serving audit.append on a socket named like nulld's, so every read pays
 *               for its audit record as it does under nulld (--standalone: warden logs instead)
 *   warden      the real binary, started with NULLBOX_VAULT_KEY and a readiness pipe
 *   timing      N vault.get calls {name, host, agent} over one connection (what egress does),
 *               each timed with CLOCK_MONOTONIC; then N raw lookups (wd_vault_find plus a copy of
 *               the value) in a vault opened in this process from the same file and key
 *   output      median, p95, mean, min per kind, the ratio, and the target (median < 100 µs)
 *
 * Figures are printed, never asserted. Everything lives in one mkdtemp(3) directory, removed at
 * the end; the only process signalled is the warden this benchmark started, by pid.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-warden-paths.h"
#include "ipc.h"
#include "vault.h"

#define KEY "bench-warden-master-key"
#define NAME "OPENAI_API_KEY"
#define VALUE "sk-bench-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGH"
#define HOST "api.openai.com"

static char tmp[64] = "/tmp/nb-bench-warden.XXXXXX";

/* ---- fake nulld ---- */

struct sink {
	struct nb_ipc_server *srv;
	volatile bool stop;
	uint64_t records;
};

static int
m_audit_append(struct nb_ipc_call *call, json_t *params, json_t **result, struct nb_ipc_error *err)
{
	struct sink *s = nb_ipc_call_data(call);
	s->records++;
	*result = json_object();
	return NB_IPC_OK;
}

static void *
sink_run(void *arg)
{
	struct sink *s = arg;
	while (!s->stop)
		nb_ipc_server_dispatch(s->srv, 50);
	return NULL;
}

/* ---- timing ---- */

static uint64_t
now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct stats {
	double median, p95, mean, min;
};

static struct stats
stats_of(uint64_t *ns, size_t n)
{
	qsort(ns, n, sizeof(*ns), cmp_u64);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += (double)ns[i];
	return (struct stats){ .median = (double)ns[n / 2] / 1e3,
			       .p95 = (double)ns[(n * 95) / 100] / 1e3,
			       .mean = sum / (double)n / 1e3,
			       .min = (double)ns[0] / 1e3 };
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static _Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void
die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "bench-warden: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	char log[128];
	snprintf(log, sizeof(log), "%s/warden.log", tmp);
	FILE *f = fopen(log, "r");
	if (f) {
		char line[512];
		fprintf(stderr, "---- warden's log:\n");
		while (fgets(line, sizeof(line), f))
			fputs(line, stderr);
		fclose(f);
	}
	nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	exit(1);
}

/* ---- warden ---- */

static pid_t
start_warden(const char *bin, const char *state, const char *nulld_sock)
{
	int p[2];
	if (pipe(p) < 0)
		die("pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		char log[128];
		snprintf(log, sizeof(log), "%s/warden.log", tmp);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		dup2(p[1], 3);
		char sock_env[200];
		snprintf(sock_env, sizeof(sock_env), "NULLBOX_SOCKET=%s", nulld_sock);
		char *envp[] = { "NULLBOX_VAULT_KEY=" KEY, "NULLBOX_READY_FD=3",
				 nulld_sock ? sock_env : NULL, NULL };
		execle(bin, bin, "--state-dir", state, (char *)NULL, envp);
		_exit(127);
	}
	close(p[1]);
	struct pollfd pf = { .fd = p[0], .events = POLLIN };
	char buf[16];
	if (poll(&pf, 1, 60000) != 1 || read(p[0], buf, sizeof(buf)) <= 0)
		die("%s did not announce readiness within 60 s", bin);
	close(p[0]);
	return pid;
}

static json_t *
call(struct nb_ipc_client *c, const char *method, json_t *params)
{
	struct nb_err e = { 0 };
	json_t *res = NULL;
	if (nb_ipc_call(c, method, params, 10000, &res, &e) < 0)
		die("call failed: %s", e.msg);
	return res;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "warmup", required_argument, NULL, 'w' },
		{ "warden", required_argument, NULL, 'W' },
		{ "standalone", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	size_t n = 10000, warmup = 500;
	const char *bin = BENCH_WARDEN_PATH;
	bool standalone = false;
	int c;
	while ((c = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			n = strtoul(optarg, NULL, 10);
			break;
		case 'w':
			warmup = strtoul(optarg, NULL, 10);
			break;
		case 'W':
			bin = optarg;
			break;
		case 's':
			standalone = true;
			break;
		default:
			fprintf(c == 'h' ? stdout : stderr,
				"Usage: bench-warden [-n N] [--warmup N] [--warden PATH] "
				"[--standalone]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (n < 20)
		n = 20;
	if (geteuid() != 0) {
		fprintf(stderr, "bench-warden: run as root (warden hands values only to uid 0)\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(tmp))
		die("mkdtemp: %s", strerror(errno));
	char state[128], nulld_sock[160], warden_sock[160], vdir[160];
	snprintf(state, sizeof(state), "%s/state", tmp);
	snprintf(nulld_sock, sizeof(nulld_sock), "%s/nulld.sock", state);
	snprintf(warden_sock, sizeof(warden_sock), "%s/warden.sock", state);
	snprintf(vdir, sizeof(vdir), "%s/warden", state);
	mkdir(state, 0700);

	struct sink sink = { 0 };
	pthread_t sink_thread;
	struct nb_err e = { 0 };
	if (!standalone) {
		if (!(sink.srv = nb_ipc_server_new(NULL, &e)) ||
		    nb_ipc_server_listen(sink.srv, nulld_sock, 0600, (gid_t)-1, NULL, &e) < 0 ||
		    nb_ipc_server_add_method(sink.srv, "audit.append", m_audit_append, &sink, &e) <
			    0)
			die("fake nulld: %s", e.msg);
		pthread_create(&sink_thread, NULL, sink_run, &sink);
	}
	uint64_t t0 = now_ns();
	pid_t pid = start_warden(bin, state, standalone ? NULL : nulld_sock);
	double unlock_ms = (double)(now_ns() - t0) / 1e6;

	struct nb_ipc_client *cl = nb_ipc_connect(warden_sock, 5000, &e);
	if (!cl)
		die("%s", e.msg);
	json_t *p = json_pack("{s:s, s:s}", "name", NAME, "value", VALUE);
	json_decref(call(cl, "vault.set", p));
	json_decref(p);
	p = json_pack("{s:s, s:[s]}", "name", NAME, "hosts", HOST);
	json_decref(call(cl, "vault.bind", p));
	json_decref(p);

	json_t *get = json_pack("{s:s, s:s, s:s}", "name", NAME, "host", HOST, "agent", "bench");
	uint64_t *ns = calloc(n, sizeof(*ns));
	for (size_t i = 0; i < warmup; i++)
		json_decref(call(cl, "vault.get", get));
	for (size_t i = 0; i < n; i++) {
		uint64_t a = now_ns();
		json_t *r = call(cl, "vault.get", get);
		ns[i] = now_ns() - a;
		if (i == 0 && strcmp(json_string_value(json_object_get(r, "value")) ?: "", VALUE))
			die("vault.get returned another value");
		json_decref(r);
	}
	struct stats sock = stats_of(ns, n);
	json_decref(get);
	nb_ipc_client_free(cl);

	/* The raw peer: the same file, the same key, in this process. */
	struct wd_vault *v = NULL;
	if (wd_vault_open(vdir, (const uint8_t *)KEY, strlen(KEY), &v, NULL, &e) < 0)
		die("%s", e.msg);
	static char out[WD_VALUE_MAX + 1];
	volatile size_t sink_len = 0;
	for (size_t i = 0; i < n + warmup; i++) {
		uint64_t a = now_ns();
		const struct wd_secret *s = wd_vault_find(v, NAME);
		memcpy(out, s->value, s->value_len + 1);
		sink_len += s->value_len;
		if (i >= warmup)
			ns[i - warmup] = now_ns() - a;
	}
	struct stats raw = stats_of(ns, n);
	wd_vault_free(v);
	free(ns);

	kill(pid, SIGTERM);
	int status = 0;
	waitpid(pid, &status, 0);
	if (!standalone) {
		sink.stop = true;
		pthread_join(sink_thread, NULL);
		nb_ipc_server_free(sink.srv);
	}

	printf("warden: %zu vault.get calls over one connection after %zu warm-up, vs a raw "
	       "in-process lookup\n",
	       n, warmup);
	printf("start + unlock (Argon2id t=3 m=64 MiB p=1, new vault): %.0f ms\n", unlock_ms);
	printf("audit: %s\n", standalone ? "standalone (a log line per read)"
					 : "to a fake nulld (audit.append per read)");
	if (!standalone)
		printf("audit records received: %llu (expected %zu)\n",
		       (unsigned long long)sink.records, n + warmup + 2);
	printf("\n%-34s %10s %10s %10s %10s\n", "µs per read", "median", "p95", "mean", "min");
	printf("%-34s %10.2f %10.2f %10.2f %10.2f\n", "vault.get through warden.sock", sock.median,
	       sock.p95, sock.mean, sock.min);
	printf("%-34s %10.3f %10.3f %10.3f %10.3f\n", "raw lookup (wd_vault_find + copy)",
	       raw.median, raw.p95, raw.mean, raw.min);
	printf("\nratio socket / raw (median): %.0f\n",
	       sock.median / (raw.median > 0 ? raw.median : 0.001));
	printf("target (issue 6): median < 100 µs through the socket: %s (%.1f µs)\n",
	       sock.median < 100 ? "met" : "NOT met", sock.median);
	nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
