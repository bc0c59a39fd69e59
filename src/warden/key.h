#pragma once
/*
 * key: where warden's master key comes from. In order of precedence:
 *   1. a key file (--key-file F): mode 0600 or narrower, owned by warden's user, a regular file;
 *      its bytes are the key, less one trailing newline
 *   2. $NULLBOX_VAULT_KEY: for tests only (another process of the same user can read a
 *      process's environment); wiped from the environment once read
 *   3. the console: /dev/tty, else /dev/console, prompted without echo (asked twice for a new
 *      vault) - how an operator unlocks the image at boot
 * The key is held in locked memory (wd_secure_alloc) until the vault is unlocked, then wiped.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct wd_key {
	uint8_t *buf; /* locked memory; NULL when empty */
	size_t len;
	char source[4200]; /* for messages: "key file /etc/nullbox/vault.key", "NULLBOX_VAULT_KEY"
			    */
};

/*
 * Reads the key file @path into @k. Refuses (EPERM) a file readable or writable by group or
 * others, or owned by another user; EINVAL for an empty file or one over WD_PASSPHRASE_MAX bytes,
 * or not a regular file. Returns 0 or a negative errno with @e naming the file and the reason.
 */
int wd_key_from_file(const char *path, struct wd_key *k, struct nb_err *e);

/*
 * Takes the key from $NULLBOX_VAULT_KEY if set (*found), overwrites the variable's bytes in
 * place and removes it, so /proc/PID/environ no longer shows it. Returns 0, or -EINVAL for an
 * empty or oversized value, with @e set.
 */
int wd_key_from_env(struct wd_key *k, bool *found, struct nb_err *e);

/*
 * Prompts on the terminal (/dev/tty, else /dev/console) without echo for the key of @vault_path;
 * with @confirm (a new vault) asks twice and refuses a mismatch. Returns 0, -ENOTTY when there is
 * no terminal to ask on, or another negative errno, with @e set.
 */
int wd_key_from_console(const char *vault_path, bool confirm, struct wd_key *k, struct nb_err *e);

/* Wipes and frees the key. */
void wd_key_clear(struct wd_key *k);
