/*
 * config.c: nulld.toml.
 *
 *   [service.NAME]
 *   binary = "/usr/lib/nullbox/warden"   # absolute
 *   args = ["--flag"]                     # optional
 *   depends_on = ["other"]                # optional
 *   restart = "always" | "on-failure" | "never"   # default "always"
 *   readiness = "notify" | "none"         # default "notify": the service writes a line on
 *                                         # the fd named by $NULLBOX_READY_FD when it is ready
 *   ready_timeout_secs = 30               # 1..3600
 */
#include "nulld.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "toml.h"

#define NULLD_CONFIG_MAX (256 * 1024)

static int field_err(struct nb_err *e, const char *file, unsigned line, const char *field,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int
field_err(struct nb_err *e, const char *file, unsigned line, const char *field, const char *fmt,
	  ...)
{
	char reason[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	return nb_err_set(e, EINVAL, "%s:%u: %s: %s", file, line, field, reason);
}

static bool
valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return false;
	return true;
}

static int
strv_add(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 2) * sizeof(char *));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return -ENOMEM;
	nv[++*n] = NULL;
	return 0;
}

static int
string_array(const char *file, const struct nb_toml_entry *en, const char *field, char ***out,
	     size_t *n, struct nb_err *e)
{
	const struct nb_toml_node *v = en->value;
	if (v->type != NB_TOML_ARRAY)
		return field_err(e, file, en->line, field, "expected an array of strings, found %s",
				 nb_toml_type_name(v->type));
	for (size_t i = 0; i < v->array.n; i++) {
		if (v->array.items[i]->type != NB_TOML_STRING)
			return field_err(e, file, v->array.items[i]->line, field,
					 "expected strings, found %s",
					 nb_toml_type_name(v->array.items[i]->type));
		if (strv_add(out, n, v->array.items[i]->string) < 0)
			return nb_err_set(e, ENOMEM, "out of memory");
	}
	return 0;
}

static int
load_service(const char *file, const struct nb_toml_entry *te, struct nulld_service_config *s,
	     struct nb_err *e)
{
	char field[160];
	size_t nargv = 0, ndeps = 0;
	const char *binary = NULL;
	unsigned binary_line = te->line;
	char **args = NULL;
	size_t nargs = 0;
	int r = 0;

	snprintf(field, sizeof(field), "service.%s", te->key);
	if (!valid_name(te->key))
		return field_err(e, file, te->line, field,
				 "a service name is 1-64 characters of A-Z a-z 0-9 _ -");
	if (te->value->type != NB_TOML_TABLE)
		return field_err(e, file, te->line, field, "expected a table, found %s",
				 nb_toml_type_name(te->value->type));
	*s = (struct nulld_service_config){ .restart = NULLD_RESTART_ALWAYS,
					    .readiness = NULLD_READY_NOTIFY,
					    .ready_timeout_secs = 30,
					    .line = te->line };
	if (!(s->name = strdup(te->key)) || !(s->depends_on = calloc(1, sizeof(char *))))
		return nb_err_set(e, ENOMEM, "out of memory");
	const struct nb_toml_node *t = te->value;
	for (size_t i = 0; i < t->table.n && r == 0; i++) {
		const struct nb_toml_entry *en = &t->table.entries[i];
		const struct nb_toml_node *v = en->value;
		snprintf(field, sizeof(field), "service.%s.%s", te->key, en->key);
		if (strcmp(en->key, "binary") == 0) {
			if (v->type != NB_TOML_STRING)
				r = field_err(e, file, en->line, field,
					      "expected a string, found %s",
					      nb_toml_type_name(v->type));
			else if (v->string[0] != '/')
				r = field_err(e, file, en->line, field,
					      "must be an absolute path, got \"%s\"", v->string);
			binary = v->string;
			binary_line = en->line;
		} else if (strcmp(en->key, "args") == 0) {
			r = string_array(file, en, field, &args, &nargs, e);
		} else if (strcmp(en->key, "depends_on") == 0) {
			r = string_array(file, en, field, &s->depends_on, &ndeps, e);
		} else if (strcmp(en->key, "restart") == 0 || strcmp(en->key, "readiness") == 0) {
			bool restart = en->key[2] == 's';
			const char *opts = restart ? "\"always\", \"on-failure\" or \"never\""
						   : "\"notify\" or \"none\"";
			if (v->type != NB_TOML_STRING)
				r = field_err(e, file, en->line, field, "expected %s, found %s",
					      opts, nb_toml_type_name(v->type));
			else if (restart && strcmp(v->string, "always") == 0)
				s->restart = NULLD_RESTART_ALWAYS;
			else if (restart && strcmp(v->string, "on-failure") == 0)
				s->restart = NULLD_RESTART_ON_FAILURE;
			else if (restart && strcmp(v->string, "never") == 0)
				s->restart = NULLD_RESTART_NEVER;
			else if (!restart && strcmp(v->string, "notify") == 0)
				s->readiness = NULLD_READY_NOTIFY;
			else if (!restart && strcmp(v->string, "none") == 0)
				s->readiness = NULLD_READY_NONE;
			else
				r = field_err(e, file, en->line, field, "expected %s, got \"%s\"",
					      opts, v->string);
		} else if (strcmp(en->key, "ready_timeout_secs") == 0) {
			if (v->type != NB_TOML_INTEGER)
				r = field_err(e, file, en->line, field,
					      "expected an integer, found %s",
					      nb_toml_type_name(v->type));
			else if (v->integer < 1 || v->integer > 3600)
				r = field_err(e, file, en->line, field,
					      "must be between 1 and 3600, got %lld",
					      (long long)v->integer);
			else
				s->ready_timeout_secs = (uint32_t)v->integer;
		} else {
			r = field_err(e, file, en->line, field,
				      "unknown key (expected binary, args, depends_on, restart, "
				      "readiness, ready_timeout_secs)");
		}
	}
	if (r == 0 && !binary) {
		snprintf(field, sizeof(field), "service.%s.binary", te->key);
		r = field_err(e, file, binary_line, field, "missing required key");
	}
	if (r == 0) {
		r = strv_add(&s->argv, &nargv, binary);
		for (size_t i = 0; r == 0 && i < nargs; i++)
			r = strv_add(&s->argv, &nargv, args[i]);
		if (r < 0)
			r = nb_err_set(e, ENOMEM, "out of memory");
	}
	nb_strv_free(args);
	return r;
}

int
nulld_config_load(const char *path, struct nulld_config *c, struct nb_err *e)
{
	*c = (struct nulld_config){ 0 };
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return nb_err_setp(e, errno, "%s: cannot open", path);
	_cleanup_free_ char *buf = malloc(NULLD_CONFIG_MAX + 1);
	if (!buf)
		return nb_err_set(e, ENOMEM, "out of memory");
	size_t len = fread(buf, 1, NULLD_CONFIG_MAX + 1, f);
	if (ferror(f))
		return nb_err_setp(e, EIO, "%s: read", path);
	if (len > NULLD_CONFIG_MAX)
		return nb_err_set(e, EFBIG, "%s: larger than %d bytes", path, NULLD_CONFIG_MAX);
	_cleanup_toml_ struct nb_toml_node *root = NULL;
	int r = nb_toml_parse(path, buf, len, &root, e);
	if (r < 0)
		return r;
	if (!(c->path = strdup(path)))
		return nb_err_set(e, ENOMEM, "out of memory");
	for (size_t i = 0; i < root->table.n && r == 0; i++) {
		const struct nb_toml_entry *en = &root->table.entries[i];
		if (strcmp(en->key, "service") != 0) {
			r = field_err(e, path, en->line, en->key,
				      "unknown table or key (expected [service.NAME] tables)");
			break;
		}
		if (en->value->type != NB_TOML_TABLE) {
			r = field_err(e, path, en->line, "service",
				      "expected [service.NAME] tables");
			break;
		}
		const struct nb_toml_node *svcs = en->value;
		c->services = calloc(svcs->table.n ? svcs->table.n : 1, sizeof(*c->services));
		if (!c->services) {
			r = nb_err_set(e, ENOMEM, "out of memory");
			break;
		}
		for (size_t k = 0; k < svcs->table.n && r == 0; k++) {
			c->n_services++;
			r = load_service(path, &svcs->table.entries[k], &c->services[k], e);
		}
	}
	if (r < 0)
		nulld_config_free(c);
	return r;
}

int
nulld_config_defaults(const char *bindir, struct nulld_config *c, struct nb_err *e)
{
	static const char *const names[] = { "warden", "egress", "ctxgraph" };
	*c = (struct nulld_config){ 0 };
	c->services = calloc(NB_ARRAY_SIZE(names), sizeof(*c->services));
	if (!c->services)
		return nb_err_set(e, ENOMEM, "out of memory");
	const char *prev = NULL;
	for (size_t i = 0; i < NB_ARRAY_SIZE(names); i++) {
		char bin[4200];
		/* Installed next to nulld, or (a build tree) in src/NAME/NAME beside src/nulld. */
		snprintf(bin, sizeof(bin), "%s/%s", bindir, names[i]);
		if (access(bin, X_OK) < 0)
			snprintf(bin, sizeof(bin), "%s/../%s/%s", bindir, names[i], names[i]);
		if (access(bin, X_OK) < 0) {
			log_info("service %s: not installed (next to nulld), not started",
				 names[i]);
			continue;
		}
		char real[4096];
		if (realpath(bin, real))
			snprintf(bin, sizeof(bin), "%s", real);
		struct nulld_service_config *s = &c->services[c->n_services++];
		size_t na = 0, nd = 0;
		*s = (struct nulld_service_config){ .restart = NULLD_RESTART_ALWAYS,
						    .readiness = NULLD_READY_NOTIFY,
						    .ready_timeout_secs = 30 };
		int r = (s->name = strdup(names[i])) ? 0 : -ENOMEM;
		r = r ?: strv_add(&s->argv, &na, bin);
		s->depends_on = calloc(1, sizeof(char *));
		if (!s->depends_on)
			r = -ENOMEM;
		/* The design's order: warden -> egress -> ctxgraph, each after the one before. */
		if (r == 0 && prev)
			r = strv_add(&s->depends_on, &nd, prev);
		if (r < 0) {
			nulld_config_free(c);
			return nb_err_set(e, ENOMEM, "out of memory");
		}
		prev = names[i];
	}
	return 0;
}

void
nulld_config_free(struct nulld_config *c)
{
	for (size_t i = 0; i < c->n_services; i++) {
		free(c->services[i].name);
		nb_strv_free(c->services[i].argv);
		nb_strv_free(c->services[i].depends_on);
	}
	free(c->services);
	free(c->path);
	*c = (struct nulld_config){ 0 };
}

static ssize_t
find_service(const struct nulld_config *c, const char *name)
{
	for (size_t i = 0; i < c->n_services; i++)
		if (strcmp(c->services[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

/* Names the cycle that Kahn's algorithm left behind, starting from a node on it. */
static int
report_cycle(const struct nulld_config *c, const bool *done, struct nb_err *e)
{
	size_t n = c->n_services;
	_cleanup_free_ size_t *path = calloc(n + 1, sizeof(size_t));
	_cleanup_free_ ssize_t *pos = malloc(n * sizeof(ssize_t));
	if (!path || !pos)
		return nb_err_set(e, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		pos[i] = -1;
	size_t cur = 0;
	while (cur < n && done[cur])
		cur++;
	/* Every node left has an unfinished dependency: walking those must come back round. */
	size_t len = 0;
	while (pos[cur] < 0) {
		pos[cur] = (ssize_t)len;
		path[len++] = cur;
		for (char **d = c->services[cur].depends_on; *d; d++) {
			ssize_t k = find_service(c, *d);
			if (k >= 0 && !done[k]) {
				cur = (size_t)k;
				break;
			}
		}
	}
	char msg[400];
	size_t m = 0;
	/* path[pos[cur]..] is the cycle; print it in dependency order, closing the loop. */
	for (size_t i = (size_t)pos[cur]; i < len && m < sizeof(msg); i++)
		m += (size_t)snprintf(msg + m, sizeof(msg) - m, "%s -> ",
				      c->services[path[i]].name);
	if (m < sizeof(msg))
		snprintf(msg + m, sizeof(msg) - m, "%s", c->services[cur].name);
	return nb_err_set(e, ELOOP, "%s: dependency cycle: %s (each depends on the next)",
			  c->path ? c->path : "built-in services", msg);
}

int
nulld_order(const struct nulld_config *c, size_t **order, struct nb_err *e)
{
	size_t n = c->n_services;
	*order = NULL;
	_cleanup_free_ size_t *out = calloc(n + 1, sizeof(size_t));
	_cleanup_free_ size_t *missing = calloc(n + 1, sizeof(size_t));
	_cleanup_free_ bool *done = calloc(n + 1, sizeof(bool));
	if (!out || !missing || !done)
		return nb_err_set(e, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		for (char **d = c->services[i].depends_on; *d; d++) {
			if (find_service(c, *d) < 0)
				return nb_err_set(
					e, ENOENT,
					"%s:%u: service.%s.depends_on: unknown service \"%s\"",
					c->path ? c->path : "built-in services",
					c->services[i].line, c->services[i].name, *d);
			if (strcmp(*d, c->services[i].name) == 0)
				return nb_err_set(
					e, ELOOP,
					"%s:%u: service.%s.depends_on: a service cannot depend on itself",
					c->path ? c->path : "built-in services",
					c->services[i].line, c->services[i].name);
			missing[i]++;
		}
	}
	/* Kahn: repeatedly take the first (file order) service whose dependencies are all done. */
	size_t k = 0;
	for (bool progress = true; progress && k < n;) {
		progress = false;
		for (size_t i = 0; i < n; i++) {
			if (done[i] || missing[i] > 0)
				continue;
			done[i] = true;
			out[k++] = i;
			progress = true;
			for (size_t j = 0; j < n; j++)
				for (char **d = c->services[j].depends_on; *d; d++)
					if (strcmp(*d, c->services[i].name) == 0)
						missing[j]--;
			break;
		}
	}
	if (k < n)
		return report_cycle(c, done, e);
	*order = steal_ptr(&out);
	return 0;
}
