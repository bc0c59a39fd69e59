#pragma once
/*
 * One error model for all of NullBox.
 *
 * A function that can fail takes a `struct nb_err *` out-parameter, returns a negative errno
 * (or NULL), and fills the error with what a person needs to act: the file, the field, the
 * reason. Callers add their own context with nb_err_prefix(). The struct holds no pointers, so
 * a child after clone can fill it and write it unchanged over a sync socket.
 */
#include <stdarg.h>

struct nb_err {
	int code;      /* positive errno (or EINVAL for bad input); 0 = no error */
	char msg[512]; /* NUL-terminated, human readable */
};

/* Resets @e to "no error". @e may be NULL. */
void nb_err_clear(struct nb_err *e);

/*
 * Sets @e to @code (a positive errno; its sign is ignored) and the formatted message.
 * Returns -abs(code), so `return nb_err_set(e, EINVAL, "...")` reads well. @e may be NULL.
 */
int nb_err_set(struct nb_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* As nb_err_set(), and appends ": strerror(code)" to the message. */
int nb_err_setp(struct nb_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Prepends "context: " to the message already in @e (for callers that wrap a callee's error).
 * Returns -e->code (or -EIO if @e holds no code). @e may be NULL.
 */
int nb_err_prefix(struct nb_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int nb_err_vset(struct nb_err *e, int code, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
