/*
 * key.c: the master key from a key file, the environment (tests) or the console (key.h).
 */
#include "key.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cleanup.h"
#include "vault.h"

void
wd_key_clear(struct wd_key *k)
{
	wd_secure_free(k->buf);
	k->buf = NULL;
	k->len = 0;
}

/* A locked buffer big enough for any key and the line end around it. */
static int
key_alloc(struct wd_key *k, struct nb_err *e)
{
	wd_key_clear(k);
	if (!(k->buf = wd_secure_alloc(WD_PASSPHRASE_MAX + 2)))
		return nb_err_set(e, ENOMEM, "out of memory");
	return 0;
}

/* Drops one trailing "\n" or "\r\n": editors add one, and nobody means it as part of the key. */
static void
strip_newline(struct wd_key *k)
{
	if (k->len > 0 && k->buf[k->len - 1] == '\n')
		k->len--;
	if (k->len > 0 && k->buf[k->len - 1] == '\r')
		k->len--;
}

int
wd_key_from_file(const char *path, struct wd_key *k, struct nb_err *e)
{
	snprintf(k->source, sizeof(k->source), "key file %s", path);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return nb_err_setp(e, errno, "%s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return nb_err_setp(e, errno, "%s: stat", path);
	if (!S_ISREG(st.st_mode))
		return nb_err_set(e, EINVAL, "%s: the key file is not a regular file", path);
	/*
	 * Why refuse rather than warn: a key file others can read has leaked already, and one
	 * others can write lets them choose the key of the next vault warden creates.
	 */
	if (st.st_mode & 077)
		return nb_err_set(e, EPERM,
				  "%s: mode %04o lets other users at the master key; chmod 0600 "
				  "it (and consider the key compromised)",
				  path, (unsigned)(st.st_mode & 07777));
	if (st.st_uid != geteuid())
		return nb_err_set(e, EPERM, "%s: owned by uid %u, not by warden's uid %u", path,
				  (unsigned)st.st_uid, (unsigned)geteuid());
	int r = key_alloc(k, e);
	if (r < 0)
		return r;
	size_t cap = WD_PASSPHRASE_MAX + 2;
	for (;;) {
		ssize_t n = read(fd, k->buf + k->len, cap - k->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = nb_err_setp(e, errno, "%s: read", path);
			wd_key_clear(k);
			return r;
		}
		if (n == 0)
			break;
		k->len += (size_t)n;
		if (k->len == cap) {
			wd_key_clear(k);
			return nb_err_set(e, EINVAL, "%s: longer than %d bytes", path,
					  WD_PASSPHRASE_MAX);
		}
	}
	strip_newline(k);
	if (k->len == 0 || k->len > WD_PASSPHRASE_MAX) {
		wd_key_clear(k);
		return nb_err_set(e, EINVAL, "%s: %s", path,
				  k->len ? "the key is too long" : "the key file is empty");
	}
	return 0;
}

int
wd_key_from_env(struct wd_key *k, bool *found, struct nb_err *e)
{
	*found = false;
	char *v = getenv("NULLBOX_VAULT_KEY");
	if (!v)
		return 0;
	*found = true;
	snprintf(k->source, sizeof(k->source), "NULLBOX_VAULT_KEY");
	size_t n = strlen(v);
	int r = 0;
	if (n == 0 || n > WD_PASSPHRASE_MAX)
		r = nb_err_set(e, EINVAL, "NULLBOX_VAULT_KEY: the key must be 1 to %d bytes",
			       WD_PASSPHRASE_MAX);
	else if ((r = key_alloc(k, e)) == 0)
		memcpy(k->buf, v, (k->len = n));
	/* The initial environment lives in our stack: overwriting it hides it from /proc. */
	OPENSSL_cleanse(v, n);
	unsetenv("NULLBOX_VAULT_KEY");
	return r;
}

/* Reads one line from @fd into @k without the newline; EOF before one ends it too. */
static int
read_line(int fd, struct wd_key *k, struct nb_err *e)
{
	int r = key_alloc(k, e);
	if (r < 0)
		return r;
	uint8_t c = 0;
	for (;;) {
		ssize_t n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = nb_err_setp(e, errno, "reading the master key");
			break;
		}
		if (n == 0 || c == '\n')
			break;
		if (k->len == WD_PASSPHRASE_MAX) {
			r = nb_err_set(e, EINVAL, "the master key is longer than %d bytes",
				       WD_PASSPHRASE_MAX);
			break;
		}
		k->buf[k->len++] = c;
	}
	OPENSSL_cleanse(&c, sizeof(c));
	if (r == 0 && k->len > 0 && k->buf[k->len - 1] == '\r')
		k->len--;
	if (r == 0 && k->len == 0)
		r = nb_err_set(e, EINVAL, "the master key is empty");
	if (r < 0)
		wd_key_clear(k);
	return r;
}

/* Prompts once with echo off; the terminal's settings are put back whatever happens. */
static int
prompt(int fd, const char *text, struct wd_key *k, struct nb_err *e)
{
	struct termios old, quiet;
	if (tcgetattr(fd, &old) < 0)
		return nb_err_setp(e, errno, "the terminal");
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
	quiet.c_lflag |= ECHONL | ICANON;
	if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0)
		return nb_err_setp(e, errno, "the terminal: turning echo off");
	if (write(fd, text, strlen(text)) < 0) {
		/* Nothing to do: the read below fails too if the terminal is gone. */
	}
	int r = read_line(fd, k, e);
	tcsetattr(fd, TCSAFLUSH, &old);
	return r;
}

int
wd_key_from_console(const char *vault_path, bool confirm, struct wd_key *k, struct nb_err *e)
{
	static const char *const ttys[] = { "/dev/tty", "/dev/console" };
	_cleanup_close_ int fd = -1;
	const char *tty = NULL;
	for (size_t i = 0; i < NB_ARRAY_SIZE(ttys) && fd < 0; i++) {
		/* O_NOCTTY: opening the console must not make it warden's controlling terminal. */
		fd = open(ttys[i], O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (fd >= 0 && !isatty(fd)) {
			close(fd);
			fd = -1;
		}
		if (fd >= 0)
			tty = ttys[i];
	}
	if (fd < 0)
		return nb_err_set(
			e, ENOTTY,
			"no master key: give --key-file FILE (mode 0600), or start warden "
			"on a terminal to type it (NULLBOX_VAULT_KEY is for tests)");
	snprintf(k->source, sizeof(k->source), "%s", tty);
	char text[4400];
	snprintf(text, sizeof(text),
		 "warden: %s master key for %s: ", confirm ? "new vault: choose a" : "vault",
		 vault_path);
	int r = prompt(fd, text, k, e);
	if (r < 0 || !confirm)
		return r;
	struct wd_key again = { 0 };
	r = prompt(fd, "warden: the same key again: ", &again, e);
	if (r == 0 && (again.len != k->len || CRYPTO_memcmp(again.buf, k->buf, k->len) != 0))
		r = nb_err_set(e, EINVAL, "the two keys differ; nothing was created");
	wd_key_clear(&again);
	if (r < 0)
		wd_key_clear(k);
	return r;
}
