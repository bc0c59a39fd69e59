/*
 * log.c: stderr logging with a program[pid] prefix. One write(2) per line, so lines from a
 * parent and its sandboxed child do not interleave mid-line.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *log_program = "nullbox";
static int log_level = -1;

void
nb_log_init(const char *program)
{
	log_program = program;
}

void
nb_log_set_level(enum nb_log_level level)
{
	log_level = (int)level;
}

static void log_emit(enum nb_log_level level, const char *suffix, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void
log_emit(enum nb_log_level level, const char *suffix, const char *fmt, va_list ap)
{
	static const char *const names[] = { "debug", "info", "warning", "error" };
	if (log_level < 0) {
		const char *d = getenv("NULLBOX_DEBUG");
		log_level = (d && strcmp(d, "1") == 0) ? NB_LOG_DEBUG : NB_LOG_INFO;
	}
	if ((int)level < log_level)
		return;
	char line[1024];
	int n = snprintf(line, sizeof(line), "%s[%d]: %s: ", log_program, (int)getpid(),
			 names[level]);
	if (n < 0)
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	size_t len = strlen(line);
	if (suffix)
		len += (size_t)snprintf(line + len, sizeof(line) - len, ": %s", suffix);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

void
nb_log(enum nb_log_level level, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	log_emit(level, NULL, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
nb_log_perr(const char *fmt, ...)
{
	int saved = errno;
	char buf[128];
	const char *s = strerror_r(saved, buf, sizeof(buf));
	va_list ap;
	va_start(ap, fmt);
	log_emit(NB_LOG_ERR, s, fmt, ap);
	va_end(ap);
	errno = saved;
}
