#pragma once
/*
 * child.h: run a check in a forked child and bring its verdict back to cmocka.
 *
 * Landlock and seccomp cannot be undone, so every test that applies them does so in a child.
 * cmocka's assertions must not run there (a failure would longjmp into a copy of the runner),
 * so the child uses CHILD_CHECK*, which write a message on a pipe and _exit(1); the parent
 * turns the message, or the signal that killed the child, into a cmocka failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct child_result {
	int status;	/* from waitpid() */
	char msg[1024]; /* what the child reported, "" if nothing */
};

static int child_report_fd = -1;

static inline void child_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static inline void
child_fail(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = (int)sizeof(buf) - 1;
	if (child_report_fd >= 0 && n > 0) {
		ssize_t w = write(child_report_fd, buf, (size_t)n);
		(void)w;
	}
	_exit(1);
}

#define CHILD_CHECK(cond, ...)                                                                     \
	do {                                                                                       \
		if (!(cond))                                                                       \
			child_fail(__VA_ARGS__);                                                   \
	} while (0)

/* @expr must fail with errno @err (the kernel's verdict under the filter or ruleset). */
#define CHILD_EXPECT_ERRNO(expr, err)                                                              \
	do {                                                                                       \
		errno = 0;                                                                         \
		long r_ = (long)(expr);                                                            \
		int e_ = errno;                                                                    \
		if (r_ != -1 || e_ != (err))                                                       \
			child_fail("%s:%d: %s returned %ld, errno %d (%s); want -1, %s", __FILE__, \
				   __LINE__, #expr, r_, e_, strerror(e_), #err);                   \
	} while (0)

/* @expr must succeed (return >= 0). */
#define CHILD_EXPECT_OK(expr)                                                                      \
	do {                                                                                       \
		errno = 0;                                                                         \
		long r_ = (long)(expr);                                                            \
		int e_ = errno;                                                                    \
		if (r_ < 0)                                                                        \
			child_fail("%s:%d: %s failed: %s", __FILE__, __LINE__, #expr,              \
				   strerror(e_));                                                  \
	} while (0)

/* Runs @fn(@arg) in a child; fn returning means success (exit 0). */
static inline void
child_run(void (*fn)(void *), void *arg, struct child_result *res)
{
	int p[2];
	memset(res, 0, sizeof(*res));
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(res->msg, sizeof(res->msg), "pipe: %s", strerror(errno));
		res->status = -1;
		return;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(res->msg, sizeof(res->msg), "fork: %s", strerror(errno));
		res->status = -1;
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		close(p[0]);
		child_report_fd = p[1];
		fn(arg);
		_exit(0);
	}
	close(p[1]);
	size_t got = 0;
	ssize_t n;
	while (got < sizeof(res->msg) - 1 &&
	       (n = read(p[0], res->msg + got, sizeof(res->msg) - 1 - got)) > 0)
		got += (size_t)n;
	res->msg[got] = '\0';
	close(p[0]);
	while (waitpid(pid, &res->status, 0) < 0 && errno == EINTR)
		;
}

/* Fails the cmocka test unless the child exited 0. */
#define assert_child_ok(res)                                                                       \
	do {                                                                                       \
		const struct child_result *c_ = (res);                                             \
		if (c_->status == -1)                                                              \
			fail_msg("%s", c_->msg);                                                   \
		else if (WIFSIGNALED(c_->status))                                                  \
			fail_msg("child killed by signal %d (%s) %s", WTERMSIG(c_->status),        \
				 strsignal(WTERMSIG(c_->status)), c_->msg);                        \
		else if (WEXITSTATUS(c_->status) != 0)                                             \
			fail_msg("child failed: %s", c_->msg[0] ? c_->msg : "(no message)");       \
	} while (0)
