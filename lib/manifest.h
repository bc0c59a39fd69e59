#pragma once
/*
 * AGENT.toml: the manifest that says what one agent may do.
 *
 * nb_manifest_load() reads and validates the whole file; any unknown key, wrong type, relative
 * path, out-of-range number, duplicate key or invalid UTF-8 is refused with an error of the form
 * "FILE:LINE: FIELD: REASON" (FIELD is the dotted key, e.g. "capabilities.max_memory_mb").
 * Nothing is half-filled on failure: the struct is left zeroed.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum nb_runtime { NB_RUNTIME_BINARY = 0, NB_RUNTIME_PYTHON = 1 };

/* [agent] restart: what nulld does when the agent ends (cage run ignores it). */
enum nb_restart { NB_RESTART_ON_FAILURE = 0, NB_RESTART_ALWAYS, NB_RESTART_NEVER };

enum nb_risk { NB_RISK_LOW = 0, NB_RISK_MEDIUM, NB_RISK_HIGH, NB_RISK_CRITICAL };

#define NB_AGENT_NAME_MAX 64

/* One `[capabilities.network] allow` entry: "host", "*.suffix", either with ":port". */
struct nb_net_allow {
	char *host;    /* lower-cased; for a wildcard the full pattern, e.g. "*.example.com" */
	bool wildcard; /* host starts with "*." */
	uint16_t port; /* 0 = any port */
};

struct nb_tool {
	char *name;
	enum nb_risk risk;
};

struct nb_health_check {
	bool present;
	uint16_t port;		/* 1..65535, required when present */
	char *path;		/* must start with '/', default "/health" */
	uint32_t interval_secs; /* 1..86400, default 10 */
	uint32_t max_failures;	/* 1..1000, default 3 */
};

struct nb_manifest {
	char *path; /* the file it was loaded from, as given */
	char *dir;  /* absolute directory containing the file */

	/* [agent] */
	char name[NB_AGENT_NAME_MAX + 1]; /* required, [A-Za-z0-9_-]{1,64} */
	char *version;			  /* required, non-empty */
	enum nb_runtime runtime;	  /* required: "binary" | "python" */
	char *entry;		 /* required, non-empty; relative to the agent dir or absolute */
	enum nb_restart restart; /* default on-failure */

	/* [capabilities] */
	bool shell;		  /* default false */
	char **credential_refs;	  /* NULL-terminated; names [A-Za-z_][A-Za-z0-9_]* ; never NULL */
	uint32_t max_cpu_percent; /* 1..100, default 25 */
	uint64_t max_memory_mb;	  /* 1..1048576, default 256 */
	uint32_t max_pids;	  /* 1..65536, default 64 */
	uint64_t max_api_calls_per_hour; /* 0 = unlimited (default) */

	/* [capabilities.network] */
	struct nb_net_allow *net_allow;
	size_t n_net_allow;

	/* [capabilities.filesystem]: absolute, normalised (no "." / ".." / "//" / trailing '/') */
	char **fs_read;	 /* NULL-terminated; never NULL */
	char **fs_write; /* NULL-terminated; never NULL */

	/* [capabilities.ctxgraph]: key prefixes ("" = every key); NULL-terminated, never NULL */
	char **ctx_read;
	char **ctx_write;

	/* [capabilities.health_check] */
	struct nb_health_check health;

	/* [tools] NAME = { risk = "..." } */
	struct nb_tool *tools;
	size_t n_tools;
};

/*
 * Loads and validates @path into @m (which the caller provides; it is overwritten).
 * Returns 0, or a negative errno with @e set ("FILE:LINE: FIELD: REASON"; I/O errors name the
 * file and the errno). On failure @m is left zeroed and owns nothing.
 */
int nb_manifest_load(const char *path, struct nb_manifest *m, struct nb_err *e);

/*
 * As nb_manifest_load(), from a buffer; @path is used in messages and as m->path, and m->dir is
 * the directory part of @path made absolute against the cwd (no file system access otherwise).
 */
int nb_manifest_parse(const char *path, const char *buf, size_t len, struct nb_manifest *m,
		      struct nb_err *e);

/* Frees everything @m owns and zeroes it. Safe on a zeroed struct. */
void nb_manifest_free(struct nb_manifest *m);

/* The manifest's spelling of @r ("binary", "python"), or "unknown" outside the enum. Static. */
const char *nb_runtime_name(enum nb_runtime r);
/* The manifest's spelling of @r ("low" .. "critical"), or "unknown" outside the enum. Static. */
const char *nb_risk_name(enum nb_risk r);
