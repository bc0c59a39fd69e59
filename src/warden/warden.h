#pragma once
/*
 * warden: the secret vault service (docs/WARDEN.md).
 *
 * Files:
 *   vault.c   the vault file format, the KDF, the secrets in memory (vault.h)
 *   key.c     the master key: key file, $NULLBOX_VAULT_KEY (tests), console (key.h)
 *   server.c  the JSON-RPC methods, who may call them, the audit records sent to nulld
 *   main.c    options, hardening, unlock, the socket, readiness, the event loop
 *
 * Methods (JSON-RPC on warden.sock, every one for uid 0 peers only):
 *   vault.set     {name, value, inject?}        -> {name, inject, hosts, created}
 *   vault.list    {}                            -> {secrets: [{name, inject, hosts}]}
 *   vault.delete  {name}                        -> {name}
 *   vault.bind    {name, hosts: [HOST...]}      -> {name, hosts}
 *   vault.get     {name, host?, agent?}         -> {name, value, inject}
 * Application error codes: WD_ERR_FAILED, WD_ERR_NOT_FOUND, WD_ERR_DENIED.
 */
#include <stdbool.h>
#include <stdint.h>

#include "ipc.h"
#include "vault.h"

#define WD_ERR_FAILED 1	   /* valid, but could not be done (the vault could not be written) */
#define WD_ERR_NOT_FOUND 2 /* no such secret */
#define WD_ERR_DENIED 3	   /* this peer may not do this, or not for this host */

struct warden {
	struct wd_vault *vault;
	struct nb_ipc_server *srv;
	/* nulld's control socket for audit.append; NULL: standalone, audit records are logged. */
	const char *nulld_socket;
	struct nb_ipc_client *audit; /* connected on first use; NULL after a failure */
	int epfd;		     /* the outer loop's epoll fd, to watch @audit; -1: none */
	uint64_t audit_sent, audit_refused;
};

/* The epoll tag of the audit connection in the outer loop (main.c). */
#define WD_EV_AUDIT 3

/*
 * Registers the vault.* methods on @w->srv (handlers get @w). Returns 0 or a negative errno with
 * @e set.
 */
int warden_methods_add(struct warden *w, struct nb_err *e);

/*
 * Reads what nulld answered to earlier audit.append requests, without blocking: a refusal is
 * logged. Call when the audit connection's fd is readable. A broken connection is dropped (the
 * next record reconnects).
 */
void warden_audit_drain(struct warden *w);

/* Closes the audit connection. */
void warden_audit_close(struct warden *w);
