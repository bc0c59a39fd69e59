/*
 * main.c: the `cage` command line.
 *
 *   cage run --manifest AGENT.toml [--json] [--uid N --gid N] [--seccomp-profile FILE] [--] CMD...
 *
 * Exit status: the agent's own; 128+N when a signal N ended it; 125 when cage could not build the
 * sandbox (the reason on stderr as "cage: STAGE: REASON"); 126/127 when CMD cannot run / is not
 * found in the sandbox.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cage-internal.h"
#include "cage-paths.h"
#include "cleanup.h"
#include "json.h"
#include "log.h"

static void
usage(FILE *f)
{
	fprintf(f,
		"Usage: cage run --manifest AGENT.toml [OPTIONS] [--] [CMD ARGS...]\n"
		"\n"
		"Runs CMD (default: the manifest's runtime and entry) in a sandbox with exactly what\n"
		"AGENT.toml grants.\n"
		"\n"
		"Options:\n"
		"  -m, --manifest FILE         the agent's AGENT.toml (required)\n"
		"      --json                  print the result as one JSON line on stdout at the end\n"
		"      --json-fd N             write it to descriptor N instead (the agent shares\n"
		"                              stdout and could print a look-alike line)\n"
		"      --name NAME             the agent's name (default: the manifest's [agent] name)\n"
		"      --placeholder NAME=VALUE  the placeholder the agent gets for credential NAME\n"
		"                              (default: one cage makes up); repeatable\n"
		"      --ctxgraph-socket PATH  bind this socket at " CAGE_CTX_SOCKET "\n"
		"      --uid N, --gid N        the agent's ids (root only; default 65534)\n"
		"      --seccomp-profile FILE  seccomp profile (default: the installed policy/cage.seccomp)\n"
		"  -h, --help                  this help\n"
		"      --version               version\n"
		"\n"
		"Exit status: the agent's; 128+N if signal N ended it; 125 if the sandbox could not be\n"
		"built; 126 if CMD could not be executed; 127 if CMD was not found.\n");
}

static char *
default_profile(void)
{
	static const char *const dirs[] = { CAGE_POLICY_DIR, CAGE_SOURCE_POLICY_DIR };
	const char *env = getenv("NULLBOX_POLICY_DIR");
	char path[PATH_MAX];
	if (env && *env) {
		snprintf(path, sizeof(path), "%s/cage.seccomp", env);
		return strdup(path);
	}
	for (size_t i = 0; i < NB_ARRAY_SIZE(dirs); i++) {
		snprintf(path, sizeof(path), "%s/cage.seccomp", dirs[i]);
		if (access(path, R_OK) == 0)
			return strdup(path);
	}
	snprintf(path, sizeof(path), "%s/cage.seccomp", dirs[0]);
	return strdup(path);
}

static void
print_json(int fd, const char *agent, const struct cage_result *res, const struct nb_err *e)
{
	static const char *const status[] = { "exited", "signaled", "error" };
	_cleanup_json_ json_t *o = json_pack(
		"{s:s, s:s, s:i, s:i, s:I, s:I, s:I, s:I, s:s, s:i, s:i}", "agent",
		agent ? agent : "", "status", status[res->status], "exit_code", res->exit_code,
		"signal", res->signal, "oom_kills", (json_int_t)res->oom_kills, "cpu_usec",
		(json_int_t)res->cpu_usec, "wall_usec", (json_int_t)res->wall_usec,
		"memory_peak_bytes", (json_int_t)res->memory_peak_bytes, "cgroup", res->cgroup_mode,
		"landlock_abi", res->landlock_abi, "pid", (int)res->pid);
	if (!o)
		return;
	if (e && e->code)
		json_object_set_new(o, "error", json_string(e->msg));
	char *s = json_dumps(o, JSON_COMPACT);
	if (s) {
		fflush(stdout);
		dprintf(fd, "%s\n", s);
		free(s);
	}
}

/* The manifest's rule for [agent] name: it becomes a hostname and part of a cgroup name. */
static bool
valid_agent_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > NB_AGENT_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return false;
	return true;
}

static int
parse_id(const char *s, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || !*s || *end || v >= 0xffffffffUL)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static int
cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "manifest", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ "json-fd", required_argument, NULL, 'J' },
		{ "name", required_argument, NULL, 'n' },
		{ "placeholder", required_argument, NULL, 'P' },
		{ "ctxgraph-socket", required_argument, NULL, 'C' },
		{ "uid", required_argument, NULL, 'u' },
		{ "gid", required_argument, NULL, 'g' },
		{ "seccomp-profile", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *manifest = NULL, *profile = NULL, *name = NULL, *ctx_socket = NULL;
	char *placeholders[65] = { 0 };
	size_t n_placeholders = 0;
	bool json = false, have_uid = false, have_gid = false;
	int json_fd = STDOUT_FILENO;
	unsigned uid = CAGE_DEFAULT_UID, gid = CAGE_DEFAULT_GID;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "+m:h", opts, NULL)) != -1) {
		switch (o) {
		case 'm':
			manifest = optarg;
			break;
		case 'j':
			json = true;
			json_fd = STDOUT_FILENO;
			break;
		case 'J': {
			unsigned v;
			if (parse_id(optarg, &v) < 0 || v < 3 || v > 65535 ||
			    fcntl((int)v, F_GETFD) < 0) {
				fprintf(stderr,
					"cage: --json-fd: not an open descriptor above 2: %s\n",
					optarg);
				return 2;
			}
			json = true;
			json_fd = (int)v;
			/* Only cage writes there: it must not leak into the sandbox. */
			fcntl(json_fd, F_SETFD, FD_CLOEXEC);
			break;
		}
		case 'u':
		case 'g':
			if (parse_id(optarg, o == 'u' ? &uid : &gid) < 0) {
				fprintf(stderr, "cage: --%s: not a valid id: %s\n",
					o == 'u' ? "uid" : "gid", optarg);
				return 2;
			}
			/* uid 0 without capabilities still owns root's files: never an agent's. */
			if ((o == 'u' ? uid : gid) == 0) {
				fprintf(stderr, "cage: --%s 0: an agent never runs as root\n",
					o == 'u' ? "uid" : "gid");
				return 2;
			}
			*(o == 'u' ? &have_uid : &have_gid) = true;
			break;
		case 's':
			profile = optarg;
			break;
		case 'P':
			if (n_placeholders >= NB_ARRAY_SIZE(placeholders) - 1) {
				fprintf(stderr, "cage: --placeholder: at most 64\n");
				return 2;
			}
			placeholders[n_placeholders++] = optarg;
			break;
		case 'C':
			ctx_socket = optarg;
			break;
		case 'n':
			if (!valid_agent_name(optarg)) {
				fprintf(stderr,
					"cage: --name: 1-64 characters of A-Z a-z 0-9 _ - (got "
					"\"%.64s\")\n",
					optarg);
				return 2;
			}
			name = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!manifest) {
		fprintf(stderr, "cage: run: --manifest is required\n");
		usage(stderr);
		return 2;
	}
	if (geteuid() != 0 && (have_uid || have_gid)) {
		fprintf(stderr,
			"cage: --uid/--gid need root; unprivileged, the agent runs as you\n");
		return 2;
	}

	struct nb_err e = { 0 };
	struct cage_result res = { .status = CAGE_STATUS_ERROR, .exit_code = CAGE_EXIT_FAILURE };
	struct nb_manifest m = { 0 };
	struct cage_config c = { 0 };
	int r = nb_manifest_load(manifest, &m, &e);
	if (r == 0 && name)
		snprintf(m.name, sizeof(m.name), "%s", name);
	if (r == 0)
		r = cage_config_from_manifest(&m, argv + optind, &c, &e);
	if (r == 0) {
		if (geteuid() != 0) {
			/* Unprivileged: a user namespace maps only our own ids. */
			c.uid = getuid();
			c.gid = getgid();
		} else {
			c.uid = uid;
			c.gid = gid;
		}
		c.seccomp_profile = profile ? strdup(profile) : default_profile();
		if (!c.seccomp_profile)
			r = nb_err_set(&e, ENOMEM, "out of memory");
	}
	if (r == 0)
		r = cage_config_credentials(&c, &m, placeholders, &e);
	if (r == 0 && ctx_socket)
		r = cage_config_ctx_socket(&c, ctx_socket, &e);
	if (r == 0)
		r = cage_run(&c, &res, &e);
	if (r < 0 || e.code)
		fprintf(stderr, "cage: %s\n", e.msg);
	if (json)
		print_json(json_fd, m.name[0] ? m.name : NULL, &res, &e);
	cage_config_free(&c);
	nb_manifest_free(&m);
	return res.exit_code;
}

int
main(int argc, char **argv)
{
	nb_log_init("cage");
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("cage (NullBox) %s\n", NULLBOX_VERSION);
		return 0;
	}
	fprintf(stderr, "cage: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
