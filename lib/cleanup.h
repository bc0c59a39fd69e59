#pragma once
/*
 * Scope-bound cleanup, in the manner of bubblewrap and systemd: a variable declared with one of
 * these attributes is released when it leaves scope, and steal_ptr()/steal_fd() hand ownership on.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(nb_freep)
#define _cleanup_close_ _cleanup_(nb_closep)
#define _cleanup_fclose_ _cleanup_(nb_fclosep)
#define _cleanup_strv_ _cleanup_(nb_strv_freep)

static inline void
nb_freep(void *p)
{
	free(*(void **)p);
}

/* Closes *fd if it is >= 0, keeping errno as it was. */
static inline void
nb_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void
nb_fclosep(FILE **f)
{
	if (*f) {
		int saved = errno;
		fclose(*f);
		errno = saved;
	}
}

/* Frees a NULL-terminated array of strings and the array itself. */
static inline void
nb_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static inline void
nb_strv_freep(char ***v)
{
	nb_strv_free(*v);
}

/* Returns *pp and sets it to NULL, so a _cleanup_ variable no longer owns it. */
static inline void *
nb_steal_ptr(void *pp)
{
	void **p = (void **)pp;
	void *r = *p;
	*p = NULL;
	return r;
}

/* Returns *fd and sets it to -1. */
static inline int
nb_steal_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

#define steal_ptr(pp) nb_steal_ptr(pp)
#define steal_fd(fd) nb_steal_fd(fd)
#define NB_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
