#pragma once
/*
 * JSON helpers on top of jansson: canonical serialisation and SHA-256 (OpenSSL libcrypto).
 *
 * Canonical JSON here means: object keys sorted by byte value, no insignificant white space,
 * strings in UTF-8 with only the escapes JSON requires, integers in plain decimal. It is what
 * hashes in the audit chain and in ctxgraph are computed over, so it must never change.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define NB_SHA256_LEN 32
#define NB_SHA256_HEX_LEN 64

/*
 * Serialises @v canonically into a new NUL-terminated string (*out, owned by the caller, free())
 * and its length (*len, may be NULL). Reals are refused (EINVAL): their text form is not stable.
 * Returns 0 or a negative errno with @e set.
 */
int nb_json_canonical(const json_t *v, char **out, size_t *len, struct nb_err *e);

/* SHA-256 of @len bytes at @buf into @out. Returns 0, or -EIO if libcrypto fails. */
int nb_sha256(const void *buf, size_t len, uint8_t out[NB_SHA256_LEN]);

/* Lower-case hex of @n bytes into @out (2n+1 bytes, NUL-terminated). */
void nb_hex(const uint8_t *in, size_t n, char *out);

/* SHA-256 of the canonical form of @v, in lower-case hex (65 bytes with the NUL). */
int nb_json_sha256_hex(const json_t *v, char out[NB_SHA256_HEX_LEN + 1], struct nb_err *e);

static inline void
nb_json_decrefp(json_t **v)
{
	if (*v)
		json_decref(*v);
}
#define _cleanup_json_ __attribute__((cleanup(nb_json_decrefp)))
