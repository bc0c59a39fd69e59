/*
 * vault.c: `nullctl vault set|list|delete|bind`, against warden rather than nulld.
 *
 * Which socket: warden listens on warden.sock in the directory of nulld's control socket
 * (src/warden/main.c), so nullctl takes the nulld socket it resolved (--socket, --state-dir,
 * $NULLBOX_SOCKET or the default) and replaces the file name: /run/nullbox/nulld.sock gives
 * /run/nullbox/warden.sock, DIR/nulld.sock gives DIR/warden.sock.
 *
 * The contract (warden's src/warden/warden.h):
 *   vault.set     {name, value, inject?}    -> {name, inject, hosts, created}
 *   vault.list    {}                        -> {secrets: [{name, inject, hosts}]}
 *   vault.delete  {name}                    -> {name}
 *   vault.bind    {name, hosts: [HOST...]}  -> {name, hosts}
 * A value goes to warden and never comes back: nothing here prints one.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cleanup.h"
#include "json.h"
#include "nullctl.h"

/* The largest value read from stdin or the terminal; warden has its own, lower limit. */
#define VALUE_READ_MAX 65536

/* ---- connection ---- */

static int
vault_call(struct ctl *c, const char *method, json_t *params, json_t **result)
{
	return ctl_service_call(c, "warden", "use the vault", method, params, result);
}

static int
unexpected(const char *method)
{
	return ctl_fail("unexpected reply from warden to '%s' (is it a different version?)",
			method);
}

/* "a, b, c" of a JSON array of strings, or "-". */
static void
join_hosts(const json_t *hosts, char *buf, size_t len)
{
	size_t i, at = 0;
	json_t *h;
	buf[0] = '\0';
	json_array_foreach(hosts, i, h)
	{
		const char *s = json_string_value(h);
		if (s && at < len)
			at += (size_t)snprintf(buf + at, len - at, "%s%s", at ? ", " : "", s);
	}
	if (!buf[0])
		snprintf(buf, len, "-");
}

/* ---- vault set ---- */

/* Reads the value: all of stdin, or a line typed without echo. *out is wiped by the caller. */
static int
read_value(const char *name, char **out, size_t *len)
{
	char *buf = calloc(1, VALUE_READ_MAX + 2);
	if (!buf)
		return ctl_fail("out of memory");
	size_t n = 0;
	bool tty = isatty(STDIN_FILENO);
	struct termios old, quiet;
	if (tty) {
		if (tcgetattr(STDIN_FILENO, &old) < 0) {
			free(buf);
			return ctl_fail("the terminal: %s", strerror(errno));
		}
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
		quiet.c_lflag |= ECHONL;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
		fprintf(stderr, "Value for %s: ", name);
		fflush(stderr);
	}
	for (;;) {
		ssize_t k = read(STDIN_FILENO, buf + n, VALUE_READ_MAX + 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
		if (n > VALUE_READ_MAX || (tty && memchr(buf + n - (size_t)k, '\n', (size_t)k)))
			break;
	}
	if (tty)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	if (tty) {
		char *nl = memchr(buf, '\n', n);
		if (nl)
			n = (size_t)(nl - buf) + 1;
	}
	if (n > VALUE_READ_MAX) {
		OPENSSL_cleanse(buf, VALUE_READ_MAX + 2);
		free(buf);
		return ctl_fail("vault set: the value is larger than %d bytes", VALUE_READ_MAX);
	}
	/* One trailing newline is how `echo` and a terminal end a value, not part of it. */
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

int
ctl_cmd_vault_set(struct ctl *c, const struct ctl_args *a)
{
	const char *name = a->pos[0];
	char *value = NULL;
	size_t len = 0;
	if (a->value) {
		fprintf(stderr,
			"nullctl: warning: --value puts the secret on the command line, where "
			"other users can see it (ps, /proc/PID/cmdline); pipe it on standard "
			"input instead\n");
		len = strlen(a->value);
		value = strdup(a->value);
		if (!value)
			return ctl_fail("out of memory");
	} else {
		int r = read_value(name, &value, &len);
		if (r)
			return r;
	}
	json_t *jv = json_stringn(value, len);
	OPENSSL_cleanse(value, len);
	free(value);
	if (!jv)
		return ctl_fail("vault set: the value is empty, holds a NUL byte or is not UTF-8 "
				"text");
	_cleanup_json_ json_t *params = json_pack("{s:s, s:o}", "name", name, "value", jv);
	_cleanup_json_ json_t *res = NULL;
	if (!params)
		return ctl_fail("out of memory");
	if (a->inject)
		json_object_set_new(params, "inject", json_string(a->inject));
	int r = vault_call(c, "vault.set", params, &res);
	if (r)
		return r;
	if (c->json) {
		ctl_print_json(res);
		return CTL_EXIT_OK;
	}
	if (!json_is_object(res))
		return unexpected("vault.set");
	fputs("stored ", stdout);
	ctl_print_escaped(stdout, ctl_json_str(res, "name"));
	printf(" (%s, inject ", json_is_true(json_object_get(res, "created")) ? "new" : "replaced");
	ctl_print_escaped(stdout, ctl_json_str(res, "inject"));
	fputs(")\n", stdout);
	return CTL_EXIT_OK;
}

/* ---- vault list, delete, bind ---- */

int
ctl_cmd_vault_list(struct ctl *c, const struct ctl_args *a)
{
	_cleanup_json_ json_t *params = json_object(), *res = NULL;
	int r = vault_call(c, "vault.list", params, &res);
	if (r)
		return r;
	if (c->json) {
		ctl_print_json(res);
		return CTL_EXIT_OK;
	}
	json_t *secrets = json_object_get(res, "secrets");
	if (!json_is_array(secrets))
		return unexpected("vault.list");
	if (json_array_size(secrets) == 0) {
		puts("(none)");
		return CTL_EXIT_OK;
	}
	static const char *const heads[] = { "NAME", "INJECT", "HOSTS" };
	static const size_t max[] = { 40, 12, 80 };
	struct ctl_table *t = ctl_table_new(3, heads, max);
	size_t i;
	json_t *s;
	json_array_foreach(secrets, i, s)
	{
		char hosts[1024];
		join_hosts(json_object_get(s, "hosts"), hosts, sizeof(hosts));
		const char *cells[] = { ctl_json_str(s, "name"), ctl_json_str(s, "inject"), hosts };
		ctl_table_add(t, cells);
	}
	ctl_table_print(t, stdout);
	ctl_table_free(t);
	return CTL_EXIT_OK;
}

int
ctl_cmd_vault_delete(struct ctl *c, const struct ctl_args *a)
{
	_cleanup_json_ json_t *params = json_pack("{s:s}", "name", a->pos[0]), *res = NULL;
	int r = vault_call(c, "vault.delete", params, &res);
	if (r)
		return r;
	if (c->json) {
		ctl_print_json(res);
		return CTL_EXIT_OK;
	}
	fputs("deleted ", stdout);
	ctl_print_escaped(stdout, a->pos[0]);
	fputc('\n', stdout);
	return CTL_EXIT_OK;
}

int
ctl_cmd_vault_bind(struct ctl *c, const struct ctl_args *a)
{
	json_t *hosts = json_array();
	for (size_t i = 1; hosts && i < a->n_pos; i++)
		json_array_append_new(hosts, json_string(a->pos[i]));
	_cleanup_json_ json_t *params = json_pack("{s:s, s:o}", "name", a->pos[0], "hosts", hosts);
	_cleanup_json_ json_t *res = NULL;
	if (!params)
		return ctl_fail("vault bind: the host names must be UTF-8 text");
	int r = vault_call(c, "vault.bind", params, &res);
	if (r)
		return r;
	if (c->json) {
		ctl_print_json(res);
		return CTL_EXIT_OK;
	}
	if (!json_is_object(res))
		return unexpected("vault.bind");
	char list[2048];
	join_hosts(json_object_get(res, "hosts"), list, sizeof(list));
	fputs("bound ", stdout);
	ctl_print_escaped(stdout, ctl_json_str(res, "name"));
	fputs(" to ", stdout);
	ctl_print_escaped(stdout, list);
	fputc('\n', stdout);
	return CTL_EXIT_OK;
}
