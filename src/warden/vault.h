#pragma once
/*
 * vault: warden's secrets, in memory and in the vault file (docs/WARDEN.md has the format).
 *
 * This is the part of warden that has no socket: the file format (parse and decrypt, encrypt and
 * write), the key derivation, and the secrets held while warden runs. The service (server.c), the
 * unit tests, the fuzz harness and the benchmark all link it directly.
 *
 * The file, all integers big-endian:
 *   0   8  magic "NBVAULT\0"
 *   8   2  format version (WD_VAULT_VERSION)
 *   10  1  KDF id (WD_KDF_ARGON2ID, WD_KDF_PBKDF2_SHA256)
 *   11  1  reserved, 0
 *   12  4  KDF t (Argon2 passes; PBKDF2 iterations)
 *   16  4  KDF m (Argon2 memory in KiB; 0 for PBKDF2)
 *   20  4  KDF p (Argon2 lanes; 0 for PBKDF2)
 *   24  16 salt
 *   40  12 GCM nonce, fresh for every write
 *   52  4  ciphertext length N
 *   56  N  ciphertext: AES-256-GCM of the secrets as JSON
 *   56+N 16 GCM tag
 * The 56 header bytes are the GCM additional data: a changed parameter, salt or length fails the
 * tag like a changed ciphertext does.
 *
 * Memory: the derived key, the decrypted plaintext and every secret value live in pages of their
 * own that are mlock'ed (best effort: RLIMIT_MEMLOCK may refuse a non-root process), excluded from
 * core dumps, and wiped with OPENSSL_cleanse() before they are unmapped.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define WD_VAULT_MAGIC "NBVAULT" /* with its NUL: 8 bytes */
#define WD_VAULT_MAGIC_LEN 8
#define WD_VAULT_VERSION 1
#define WD_VAULT_HEADER_LEN 56
#define WD_VAULT_TAG_LEN 16
#define WD_VAULT_SALT_LEN 16
#define WD_VAULT_NONCE_LEN 12
#define WD_VAULT_KEY_LEN 32
/* The file name inside STATE/warden/. */
#define WD_VAULT_FILE "vault"

/* Limits on what a vault holds; a request or a file beyond them is refused. */
#define WD_NAME_MAX 128	    /* a secret's name: [A-Za-z_][A-Za-z0-9_]{0,127} */
#define WD_VALUE_MAX 16384  /* bytes of one value */
#define WD_HOSTS_MAX 64	    /* hosts one secret is bound to */
#define WD_HOST_MAX 253	    /* a host name, as DNS allows */
#define WD_SECRETS_MAX 1024 /* secrets in one vault */
#define WD_PASSPHRASE_MAX 1024
/* The largest ciphertext a file may declare: every limit above at once fits well within it. */
#define WD_PLAINTEXT_MAX (64u * 1024 * 1024)

enum wd_kdf_id {
	WD_KDF_ARGON2ID = 1,
	WD_KDF_PBKDF2_SHA256 = 2,
};

/* A key derivation and its cost, as stored in the header. */
struct wd_kdf {
	uint8_t id; /* enum wd_kdf_id */
	uint32_t t; /* Argon2id passes, or PBKDF2 iterations */
	uint32_t m; /* Argon2id memory in KiB; 0 for PBKDF2 */
	uint32_t p; /* Argon2id lanes; 0 for PBKDF2 */
};

/*
 * What a file's header may ask for. A header is attacker-controlled until the tag checks, and the
 * KDF runs before that, so its cost is capped: a planted file must not make warden allocate
 * gigabytes or spin for minutes. (The floors are what the algorithms themselves require.)
 */
struct wd_kdf_limits {
	uint32_t argon2_t_min, argon2_t_max;
	uint32_t argon2_m_min, argon2_m_max; /* KiB */
	uint32_t argon2_p_min, argon2_p_max;
	uint32_t pbkdf2_min, pbkdf2_max;
};

/*
 * The parameters of a new vault and the limits on a file's. Production values by default:
 * Argon2id t=3, m=64 MiB, p=1 (PBKDF2-SHA256 600000 iterations without libargon2).
 * TEST HOOK: the unit tests, the fuzz harness and nothing else lower both, so that they are not
 * KDF-bound; warden itself never writes them.
 */
extern struct wd_kdf wd_kdf_default;
extern struct wd_kdf_limits wd_kdf_limits;

/* True if this build can derive keys with Argon2id (libargon2 was found). */
bool wd_kdf_have_argon2(void);

/* "argon2id" / "pbkdf2-sha256" / "unknown". */
const char *wd_kdf_name(uint8_t id);

enum wd_inject {
	WD_INJECT_PLACEHOLDER = 0, /* the agent gets NULLBOX_PLACEHOLDER_...; egress swaps it */
	WD_INJECT_ENV = 1,	   /* the agent gets the value itself in its environment */
};

/* "placeholder" / "env"; and back (returns -1 for anything else). */
const char *wd_inject_name(enum wd_inject i);
int wd_inject_parse(const char *s);

struct wd_secret {
	char name[WD_NAME_MAX + 1];
	char *value;	  /* value_len + 1 bytes of locked memory (wd_secure_alloc), NUL-ended */
	size_t value_len; /* 1..WD_VALUE_MAX; the value holds no NUL */
	char **hosts;	  /* n_hosts normalised host patterns (wd_host_normalise), sorted */
	size_t n_hosts;
	enum wd_inject inject;
};

struct wd_vault;

/* ---- locked memory ---- */

/*
 * @n bytes, zeroed, in pages of their own: mlock'ed (best effort), MADV_DONTDUMP. Returns NULL
 * (errno ENOMEM) when out of memory. Free with wd_secure_free(), which wipes them.
 */
void *wd_secure_alloc(size_t n);
/* Wipes, unlocks and unmaps what wd_secure_alloc() returned. NULL is fine. */
void wd_secure_free(void *p);
/* True if every wd_secure_alloc() so far got its pages locked (for warden's startup log). */
bool wd_secure_all_locked(void);

/* ---- names and hosts ---- */

/* True if @s is a valid secret name: [A-Za-z_][A-Za-z0-9_]{0,127}. */
bool wd_name_valid(const char *s);

/*
 * Checks host pattern @s the way the manifest's network allow does: a DNS name ("api.example.com")
 * or a leading wildcard over at least two labels ("*.example.com"); no IP address, port, scheme,
 * path, underscore or non-ASCII. Writes the lower-cased pattern to @out (WD_HOST_MAX + 3 bytes).
 * Returns 0, or -EINVAL with @e saying why ("HOST: ...").
 */
int wd_host_normalise(const char *s, char out[WD_HOST_MAX + 3], struct nb_err *e);

/*
 * True if host @host (any case, an optional trailing dot) is covered by normalised @pattern:
 * equal, or for "*.example.com" any name below example.com (not example.com itself).
 */
bool wd_host_match(const char *pattern, const char *host);

/* ---- the vault ---- */

/*
 * Opens the vault in directory @dir (the file @dir/vault), creating @dir (0700) and an empty
 * vault when there is no file yet (*created = true; @created may be NULL). @pass (@pass_len
 * bytes) is the master key; the derived key stays in locked memory in the returned vault.
 * A wrong key, a corrupt, truncated or foreign file, a newer format version or KDF parameters
 * out of bounds are refused with a message naming the file and the reason, and the file is never
 * written in those cases. An existing directory must be ours and a directory; modes wider than
 * 0700 / 0600 are narrowed (with a log line). Returns 0, or a negative errno with @e set.
 */
int wd_vault_open(const char *dir, const uint8_t *pass, size_t pass_len, struct wd_vault **out,
		  bool *created, struct nb_err *e);

/*
 * Parses and decrypts the @len bytes of a vault file at @buf with master key @pass. @label names
 * the file in messages. The result has no file behind it (wd_vault_save() refuses) unless it came
 * through wd_vault_open(). Returns 0, or -EINVAL (not a vault, truncated, bad parameters),
 * -EPROTONOSUPPORT (a newer version or an unknown KDF), -EBADMSG (wrong key or altered file),
 * -ENOMEM, with @e set.
 */
int wd_vault_parse(const uint8_t *buf, size_t len, const char *label, const uint8_t *pass,
		   size_t pass_len, struct wd_vault **out, struct nb_err *e);

/*
 * An empty vault with a fresh salt and @kdf (NULL: wd_kdf_default), its key derived from @pass;
 * no file behind it. Returns 0 or a negative errno with @e set.
 */
int wd_vault_new(const struct wd_kdf *kdf, const uint8_t *pass, size_t pass_len,
		 struct wd_vault **out, struct nb_err *e);

/*
 * Encrypts @v with a fresh nonce into a new file image: *out (malloc'ed; ciphertext only, so it
 * holds nothing secret) and *len. Returns 0 or a negative errno with @e set.
 */
int wd_vault_serialise(const struct wd_vault *v, uint8_t **out, size_t *len, struct nb_err *e);

/*
 * Writes @v to its file: a temporary file in the same directory (0600), fsync, rename over the
 * vault, fsync of the directory. On any failure (ENOSPC...) the temporary file is removed and the
 * old vault is untouched. Returns 0 or a negative errno with @e set.
 */
int wd_vault_save(struct wd_vault *v, struct nb_err *e);

/*
 * Wraps @len bytes of @plaintext in a vault file keyed by @pass with @kdf and @salt (a fresh
 * nonce): what wd_vault_serialise() does with the JSON it builds. For the fuzz harness, which needs
 * valid files around arbitrary plaintext. *out is malloc'ed. Returns 0 or a negative errno with @e
 * set.
 */
int wd_vault_seal(const struct wd_kdf *kdf, const uint8_t salt[WD_VAULT_SALT_LEN],
		  const uint8_t *pass, size_t pass_len, const uint8_t *plaintext, size_t len,
		  uint8_t **out, size_t *out_len, struct nb_err *e);

/* Wipes every key and value and frees @v. NULL is fine. */
void wd_vault_free(struct wd_vault *v);

/* The file behind @v (NULL if none), its KDF, and its salt. */
const char *wd_vault_path(const struct wd_vault *v);
const struct wd_kdf *wd_vault_kdf(const struct wd_vault *v);

/* The number of secrets and the i-th in name order (valid until the next change). */
size_t wd_vault_count(const struct wd_vault *v);
const struct wd_secret *wd_vault_at(const struct wd_vault *v, size_t i);

/* The secret named @name, or NULL. Valid until the next change. */
const struct wd_secret *wd_vault_find(const struct wd_vault *v, const char *name);

/*
 * The changes. Each applies to memory, then writes the file (when @v has one); if the write fails
 * the change is undone, so memory always matches the file. @inject < 0 keeps the current mode (a
 * new secret: placeholder). *created (may be NULL) says whether the name was new.
 * Return 0, -EINVAL (bad name, value, host), -ENOENT (no such secret), -ENOSPC (WD_SECRETS_MAX),
 * or what wd_vault_save() returns, with @e set.
 */
int wd_vault_set(struct wd_vault *v, const char *name, const char *value, size_t value_len,
		 int inject, bool *created, struct nb_err *e);
int wd_vault_delete(struct wd_vault *v, const char *name, struct nb_err *e);
/* Replaces the secret's hosts with @hosts (validated and normalised; duplicates merged). */
int wd_vault_bind(struct wd_vault *v, const char *name, const char *const *hosts, size_t n_hosts,
		  struct nb_err *e);
