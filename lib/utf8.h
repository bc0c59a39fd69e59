#pragma once
/* UTF-8, strictly (RFC 3629): what jansson accepts is what NullBox's own checks accept. */
#include <stddef.h>
#include <stdint.h>

/*
 * Length (1-4) of the valid UTF-8 sequence at @s, with @n bytes left, and its code point in *cp
 * (may be NULL). 0 if invalid: a bad lead or continuation byte, an overlong form, a surrogate,
 * beyond U+10FFFF, or cut short by @n. NUL is a valid one-byte sequence.
 */
size_t nb_utf8_seq(const unsigned char *s, size_t n, uint32_t *cp);
