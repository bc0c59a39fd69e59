/*
 * json.c: canonical JSON (sorted keys, compact, integers only) and SHA-256 through libcrypto.
 */
#include "json.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>

#include "cleanup.h"

/* True if @v holds a real number anywhere. Depth is bounded by jansson's parser (2048). */
static int
json_has_real(const json_t *v)
{
	if (json_is_real(v))
		return 1;
	const char *k;
	json_t *c;
	size_t i;
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, c)
		{
			if (json_has_real(c))
				return 1;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, c)
		{
			if (json_has_real(c))
				return 1;
		}
	}
	return 0;
}

int
nb_json_canonical(const json_t *v, char **out, size_t *len, struct nb_err *e)
{
	*out = NULL;
	if (!v)
		return nb_err_set(e, EINVAL, "canonical json: no value");
	/* Reals are refused: their decimal form differs between libraries and versions. */
	if (json_has_real(v))
		return nb_err_set(e, EINVAL,
				  "canonical json: floating point numbers are not allowed");
	char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	if (!s)
		return nb_err_set(e, ENOMEM, "canonical json: serialisation failed");
	if (len)
		*len = strlen(s);
	*out = s;
	return 0;
}

int
nb_sha256(const void *buf, size_t len, uint8_t out[NB_SHA256_LEN])
{
	unsigned int n = 0;
	if (EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) != 1 || n != NB_SHA256_LEN)
		return -EIO;
	return 0;
}

void
nb_hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int
nb_json_sha256_hex(const json_t *v, char out[NB_SHA256_HEX_LEN + 1], struct nb_err *e)
{
	_cleanup_free_ char *s = NULL;
	size_t len = 0;
	int r = nb_json_canonical(v, &s, &len, e);
	if (r < 0)
		return r;
	uint8_t d[NB_SHA256_LEN];
	if (nb_sha256(s, len, d) < 0)
		return nb_err_set(e, EIO, "sha256: libcrypto failed");
	nb_hex(d, sizeof(d), out);
	return 0;
}
