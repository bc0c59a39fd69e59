/*
 * audit.c: nulld is the audit log's one writer (lib/audit.c does the chain, the head and the
 * MAC). Every decision nulld takes, and every record another service sends it, goes through
 * nulld_audit(); `nullctl audit --follow` streams are fed from here.
 *
 * Key: STATE/audit/audit.key, created 0600 on first start. Later warden will hold it; the
 * lib/audit API takes the key bytes, so only this file changes then.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "log.h"
#include "parts.h"

struct follower {
	struct nb_ipc_call *call; /* NULL once ended (the client went away) */
	struct nb_audit_iter *it;
	struct follower *next;
};

struct nulld_auditlog {
	struct nb_audit *log;
	char dir[4200];
	struct follower *followers;
};

const char *
nulld_audit_dir(const struct nulld *d)
{
	const struct nulld_auditlog *a = d->audit;
	return a ? a->dir : NULL;
}

int
nulld_audit_open(struct nulld *d, struct nb_err *e)
{
	struct nulld_auditlog *a = calloc(1, sizeof(*a));
	if (!a)
		return nb_err_set(e, ENOMEM, "out of memory");
	snprintf(a->dir, sizeof(a->dir), "%s/audit", d->opt.state_dir);
	if (mkdir(a->dir, 0700) < 0 && errno != EEXIST) {
		free(a);
		return nb_err_setp(e, errno, "%s: mkdir", a->dir);
	}
	char keypath[4300];
	snprintf(keypath, sizeof(keypath), "%s/%s", a->dir, NB_AUDIT_KEY_NAME);
	uint8_t key[NB_AUDIT_KEY_LEN];
	int r = nb_audit_key_load(keypath, NB_AUDIT_KEY_CREATE, key, e);
	if (r == 0)
		r = nb_audit_open(a->dir, key, NULL, &a->log, e);
	OPENSSL_cleanse(key, sizeof(key));
	if (r < 0) {
		free(a);
		return r;
	}
	d->audit = a;
	return 0;
}

static void
drop_follower(struct nulld_auditlog *a, struct follower *f)
{
	for (struct follower **pp = &a->followers; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	nb_audit_iter_free(f->it);
	free(f);
}

static json_t *
record_json(const struct nb_audit_record *rec)
{
	return json_loadb(rec->line, rec->line_len, JSON_REJECT_DUPLICATES, NULL);
}

/* Ends and forgets the followers whose client went away. */
static void
sweep_followers(struct nulld_auditlog *a)
{
	struct follower *f = a->followers;
	while (f) {
		struct follower *next = f->next;
		if (!f->call)
			drop_follower(a, f);
		f = next;
	}
}

/* Sends each follower what was appended since it last read. */
static void
feed_followers(struct nulld_auditlog *a)
{
	for (struct follower *f = a->followers; f; f = f->next) {
		struct nb_audit_record rec;
		struct nb_err e = { 0 };
		while (f->call && nb_audit_iter_next(f->it, &rec, &e) == 1) {
			json_t *p = json_pack("{s:o*}", "record", record_json(&rec));
			/* A failed send drops the client; the cancel callback then ends the call.
			 */
			if (nb_ipc_call_notify(f->call, "audit", p) < 0 && f->call &&
			    !nb_ipc_call_alive(f->call)) {
				nb_ipc_call_reply(f->call, NULL);
				f->call = NULL;
			}
		}
	}
	sweep_followers(a);
}

/*
 * Copies @in to @out with control characters (C0, DEL, C1) and invalid UTF-8 bytes written as
 * \xNN: an agent's name or a path from a request must not be able to drop a record (lib/audit
 * refuses control characters) nor drive a terminal that shows it. Never empty: "-" for "".
 */
static const char *
clean_field(const char *in, char *out, size_t len)
{
	size_t o = 0;
	const unsigned char *p = (const unsigned char *)in;
	while (*p && o + 5 < len) {
		size_t n = *p < 0x80	     ? 1
			   : (*p >> 5) == 6  ? 2
			   : (*p >> 4) == 14 ? 3
			   : (*p >> 3) == 30 ? 4
					     : 0;
		bool ok = n > 0;
		for (size_t k = 1; ok && k < n; k++)
			ok = (p[k] >> 6) == 2;
		bool ctl = *p < 0x20 || *p == 0x7f || (n == 2 && *p == 0xc2 && p[1] < 0xa0);
		if (!ok || ctl) {
			o += (size_t)snprintf(out + o, len - o, "\\x%02x", *p);
			p++;
			continue;
		}
		if (o + n >= len)
			break;
		memcpy(out + o, p, n);
		o += n;
		p += n;
	}
	out[o] = '\0';
	if (o == 0)
		snprintf(out, len, "-");
	return out;
}

void
nulld_audit(struct nulld *d, const char *actor_in, const char *action, const char *object_in,
	    enum nb_audit_verdict v, json_t *detail, const char *fmt, ...)
{
	struct nulld_auditlog *a = d->audit;
	char raw[1024], reason[1024], actor[256], object[1024], act[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	clean_field(raw, reason, sizeof(reason));
	clean_field(actor_in, actor, sizeof(actor));
	clean_field(object_in, object, sizeof(object));
	clean_field(action, act, sizeof(act));
	action = act;
	if (!a) {
		log_warn("audit log not open: %s %s %s %s: %s", actor, action, object,
			 nb_audit_verdict_name(v), reason);
		return;
	}
	struct nb_err e = { 0 };
	if (nb_audit_append(a->log, actor, action, object, v, reason, detail, NULL, &e) < 0)
		log_err("audit: %s (record: %s %s %s)", e.msg, actor, action, object);
	feed_followers(a);
}

/* Runs inside the IPC layer (dispatch or a send): only end the call and mark the follower. */
static void
follower_cancelled(struct nb_ipc_call *call, void *data)
{
	struct nulld_auditlog *a = data;
	for (struct follower *f = a->followers; f; f = f->next) {
		if (f->call == call) {
			nb_ipc_call_reply(call, NULL);
			f->call = NULL;
			return;
		}
	}
}

int
nulld_audit_follow(struct nulld *d, struct nb_ipc_call *call, const char *agent, unsigned verdicts)
{
	struct nulld_auditlog *a = d->audit;
	if (!a)
		return -ENOENT;
	struct follower *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	struct nb_audit_filter filter = { .actor = agent, .verdicts = verdicts };
	struct nb_err e = { 0 };
	int r = nb_audit_iter_open(a->dir, &filter, NB_AUDIT_ITER_FOLLOW, &f->it, &e);
	if (r < 0) {
		free(f);
		return r;
	}
	/* Skip what exists: the caller already sent it as the result's "records". */
	struct nb_audit_record rec;
	while ((r = nb_audit_iter_next(f->it, &rec, &e)) == 1)
		;
	f->call = call;
	f->next = a->followers;
	a->followers = f;
	nb_ipc_call_on_cancel(call, follower_cancelled, a);
	return 0;
}

void
nulld_audit_close(struct nulld *d)
{
	struct nulld_auditlog *a = d->audit;
	if (!a)
		return;
	for (struct follower *f = a->followers; f; f = f->next) {
		if (f->call)
			nb_ipc_call_reply(f->call, NULL);
		f->call = NULL;
	}
	sweep_followers(a);
	struct nb_err e = { 0 };
	if (nb_audit_close(a->log, &e) < 0)
		log_err("audit: %s", e.msg);
	free(a);
	d->audit = NULL;
}
