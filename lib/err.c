/*
 * err.c: the nb_err helpers. No allocation anywhere, so these are safe between clone and exec.
 */
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
nb_err_clear(struct nb_err *e)
{
	if (e) {
		e->code = 0;
		e->msg[0] = '\0';
	}
}

int
nb_err_vset(struct nb_err *e, int code, const char *fmt, va_list ap)
{
	code = abs(code);
	if (code == 0)
		code = EIO;
	if (e) {
		e->code = code;
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	}
	return -code;
}

int
nb_err_set(struct nb_err *e, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = nb_err_vset(e, code, fmt, ap);
	va_end(ap);
	return r;
}

int
nb_err_setp(struct nb_err *e, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = nb_err_vset(e, code, fmt, ap);
	va_end(ap);
	if (e) {
		size_t n = strlen(e->msg);
		char buf[128];
		/* strerror_r (GNU) may return a static string instead of filling buf. */
		const char *s = strerror_r(e->code, buf, sizeof(buf));
		snprintf(e->msg + n, sizeof(e->msg) - n, ": %s", s);
	}
	return r;
}

int
nb_err_prefix(struct nb_err *e, const char *fmt, ...)
{
	if (!e)
		return -EIO;
	char old[sizeof(e->msg)];
	memcpy(old, e->msg, sizeof(old));
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(e->msg))
		snprintf(e->msg + n, sizeof(e->msg) - (size_t)n, ": %s", old);
	if (e->code == 0)
		e->code = EIO;
	return -e->code;
}
