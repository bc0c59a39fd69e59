#pragma once
/*
 * Logging to stderr as "program[pid]: level: message". Every call keeps errno as it found it,
 * so a log line never changes what the caller reports next. log_perr appends ": %m".
 */
#include <stdarg.h>

enum nb_log_level { NB_LOG_DEBUG, NB_LOG_INFO, NB_LOG_WARN, NB_LOG_ERR };

/* Sets the program name used as prefix (not copied: pass a string literal). */
void nb_log_init(const char *program);
/* Messages below @level are dropped. The default is NB_LOG_INFO, or DEBUG when NULLBOX_DEBUG=1. */
void nb_log_set_level(enum nb_log_level level);
void nb_log(enum nb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* As nb_log at ERR, with ": strerror(errno)" appended. */
void nb_log_perr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define log_debug(...) nb_log(NB_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) nb_log(NB_LOG_INFO, __VA_ARGS__)
#define log_warn(...) nb_log(NB_LOG_WARN, __VA_ARGS__)
#define log_err(...) nb_log(NB_LOG_ERR, __VA_ARGS__)
#define log_perr(...) nb_log_perr(__VA_ARGS__)
