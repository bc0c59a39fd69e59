/*
 * daemon.c: from a validated nulld_config to a running supervisor: the units in dependency
 * order, the loop, and what plugs into it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "parts.h"

void nulld_agents_hooks(struct nulld *d);

static int
add_service(struct nulld *d, const struct nulld_config *c, const size_t *order, size_t k,
	    struct nb_err *e)
{
	const struct nulld_service_config *sc = &c->services[order[k]];
	struct nulld_unit *u = calloc(1, sizeof(*u));
	if (!u)
		return nb_err_set(e, ENOMEM, "out of memory");
	int r = nulld_unit_init(u);
	if (r < 0) {
		free(u);
		return nb_err_setp(e, -r, "timerfd");
	}
	u->name = strdup(sc->name);
	size_t n = 0;
	while (sc->argv[n])
		n++;
	u->argv = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; u->argv && i < n; i++)
		u->argv[i] = strdup(sc->argv[i]);
	size_t nd = 0;
	while (sc->depends_on[nd])
		nd++;
	u->deps = calloc(nd + 1, sizeof(size_t));
	/* Dependencies come earlier in @order, so their unit index is their position there. */
	for (size_t i = 0; u->deps && i < nd; i++)
		for (size_t j = 0; j < k; j++)
			if (strcmp(c->services[order[j]].name, sc->depends_on[i]) == 0)
				u->deps[u->n_deps++] = j;
	u->restart = sc->restart;
	u->readiness = sc->readiness;
	u->ready_timeout_secs = sc->ready_timeout_secs;
	char path[4200];
	snprintf(path, sizeof(path), "%s/logs/%s.log", d->opt.state_dir, sc->name);
	u->log_path = strdup(path);
	if (!u->name || !u->argv || !u->deps || !u->log_path) {
		nulld_unit_free(d, u);
		return nb_err_set(e, ENOMEM, "out of memory");
	}
	r = nulld_add_unit(d, u);
	if (r < 0) {
		nulld_unit_free(d, u);
		return nb_err_setp(e, -r, "add service %s", sc->name);
	}
	return 0;
}

int
nulld_supervise(const struct nulld_config *c, const struct nulld_options *o, struct nb_err *e)
{
	struct nulld d = { .opt = *o,
			   .epfd = -1,
			   .sig_fd = -1,
			   .leftover_timer = -1,
			   .start_ms = nulld_now_ms() };
	_cleanup_free_ size_t *order = NULL;
	int r = nulld_order(c, &order, e);
	if (r < 0)
		return r;
	r = nulld_loop_init(&d, e);
	for (size_t k = 0; r == 0 && k < c->n_services; k++)
		r = add_service(&d, c, order, k, e);
	d.n_services = d.n_units;
	/* The audit log first: every later decision is recorded, agents restored included. */
	if (r == 0)
		r = nulld_audit_open(&d, e);
	if (r == 0) {
		nulld_agents_hooks(&d);
		r = nulld_agents_init(&d, e);
	}
	if (r == 0)
		r = nulld_control_open(&d, e);
	if (r == 0) {
		log_info("supervising %zu service(s) and %zu agent(s); state in %s", d.n_services,
			 d.n_units - d.n_services, o->state_dir);
		nulld_audit(&d, "nulld", "nulld.start", "nulld", NB_AUDIT_ALLOWED, NULL,
			    "pid %d, %zu service(s), %zu agent(s)", (int)getpid(), d.n_services,
			    d.n_units - d.n_services);
		r = nulld_loop_run(&d);
		if (r < 0)
			nb_err_setp(e, -r, "epoll_wait");
		else
			nulld_audit(&d, "nulld", "nulld.stop", "nulld", NB_AUDIT_ALLOWED, NULL,
				    "every unit stopped");
	}
	nulld_control_close(&d);
	nulld_agents_free(&d);
	nulld_audit_close(&d);
	for (size_t i = 0; i < d.n_units; i++)
		nulld_unit_free(&d, d.units[i]);
	free(d.units);
	if (d.sig_fd >= 0)
		close(d.sig_fd);
	if (d.leftover_timer >= 0)
		close(d.leftover_timer);
	if (d.epfd >= 0)
		close(d.epfd);
	return r;
}
