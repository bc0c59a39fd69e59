#pragma once
/*
 * What plugs into the supervisor: the audit log (audit.c), the agents (agents.c) and the control
 * socket (control.c). Each keeps its state behind a pointer in struct nulld.
 */
#include <jansson.h>
#include <stdbool.h>

#include "audit.h"
#include "ipc.h"
#include "supervise.h"

/* ---- audit.c ---- */

/*
 * Opens the audit log in STATE/audit (one writer: nulld), creating its key on first use.
 * Returns 0 or a negative errno with @e set (a log that does not verify is refused: it is never
 * rewritten; `nullctl audit verify` says where it breaks).
 */
int nulld_audit_open(struct nulld *d, struct nb_err *e);
void nulld_audit_close(struct nulld *d);
/*
 * Appends one record; the reason is formatted. @detail (may be NULL) is borrowed. A failure is
 * logged (the decision it records has already been taken). Followers get the record.
 */
void nulld_audit(struct nulld *d, const char *actor, const char *action, const char *object,
		 enum nb_audit_verdict v, json_t *detail, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
/* The directory of the log (for readers). */
const char *nulld_audit_dir(const struct nulld *d);
/* Streams records matching @f appended from now on to @call (a deferred call) as "audit"
 * notifications, starting after the log's current end. Returns 0 or -errno. */
int nulld_audit_follow(struct nulld *d, struct nb_ipc_call *call, const char *agent,
		       unsigned verdicts);

/* ---- agents.c ---- */

/* Loads the agents recorded in STATE/agents and adds them as units (started once services are
 * up). An agent whose manifest no longer loads is reported and skipped. */
int nulld_agents_init(struct nulld *d, struct nb_err *e);
void nulld_agents_free(struct nulld *d);
/*
 * Adds and starts the agent of the manifest at @path (absolute AGENT.toml or its directory),
 * named @name (NULL: the manifest's). Records it in the state dir so it comes back after a
 * restart of nulld. Returns its unit, or NULL with @e set.
 */
struct nulld_unit *nulld_agent_add(struct nulld *d, const char *path, const char *name,
				   struct nb_err *e);
struct nulld_unit *nulld_agent_find(struct nulld *d, const char *name);
/* [A-Za-z0-9_-]{1,64}, the manifest's rule for agent names. */
bool nulld_agent_valid_name(const char *s);
/* Stops the agent and forgets it (state dir entry removed); its logs stay. */
int nulld_agent_remove(struct nulld *d, struct nulld_unit *u, struct nb_err *e);
int nulld_agent_pause(struct nulld *d, struct nulld_unit *u, bool pause, struct nb_err *e);
/* The unit as JSON, as `status` and `agent.*` return it. */
json_t *nulld_unit_json(struct nulld *d, struct nulld_unit *u);
/* Up to @lines last lines of the agent's log (current and rotated files). */
char *nulld_agent_log_tail(struct nulld *d, const char *name, int lines);
/* Streams the agent's output from now on to @call as "log" notifications. */
int nulld_agent_follow_logs(struct nulld *d, struct nulld_unit *u, struct nb_ipc_call *call);

/* ---- control.c ---- */

/* Serves the control socket (mode 0600, root or nulld's own uid only) in the loop. */
int nulld_control_open(struct nulld *d, struct nb_err *e);
void nulld_control_close(struct nulld *d);
