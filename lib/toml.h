#pragma once
/*
 * A small, strict TOML parser for the subset NullBox's configuration files use.
 *
 * Accepted: comments; [table] and [a."b"] headers; `key = value` with bare or "quoted" keys;
 * basic and literal strings; decimal 64-bit integers; booleans; arrays (multi-line, trailing
 * comma, comments, one element type); one-line inline tables.
 * Refused, each with a reason: dotted keys in key/value lines, floats, dates and times, multi-line
 * strings, arrays of tables, hex/octal/binary integers, duplicate keys, a table defined twice, a
 * key that is both a table and a value, control characters, invalid UTF-8, input over
 * NB_TOML_MAX_SIZE, nesting deeper than NB_TOML_MAX_DEPTH.
 *
 * The parser holds no global state and never reads outside the buffer it is given (which need
 * not be NUL-terminated). Every key and value remembers the line it starts on, so that whoever
 * checks the tree can say where a problem is.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define NB_TOML_MAX_SIZE (1024 * 1024)
/* Arrays and inline tables inside each other, and components of one [a.b.c] header. */
#define NB_TOML_MAX_DEPTH 32
/* Keys in one table: lookups are linear, this keeps a hostile file from making them quadratic. */
#define NB_TOML_MAX_KEYS 4096

enum nb_toml_type {
	NB_TOML_TABLE = 1,
	NB_TOML_ARRAY,
	NB_TOML_STRING,
	NB_TOML_INTEGER,
	NB_TOML_BOOLEAN,
};

/* How a table came to be. */
enum nb_toml_origin {
	NB_TOML_ROOT = 1,
	NB_TOML_HEADER,	  /* [name] */
	NB_TOML_IMPLICIT, /* only named as the parent in a header, e.g. "a" in [a.b] */
	NB_TOML_INLINE,	  /* { ... }, closed: nothing may be added later */
};

struct nb_toml_node;

struct nb_toml_entry {
	char *key;     /* NUL-terminated UTF-8; may be empty if it was quoted ("") */
	unsigned line; /* 1-based line of the key (of the header for tables made by headers) */
	struct nb_toml_node *value;
};

struct nb_toml_node {
	enum nb_toml_type type;
	unsigned line; /* 1-based line where the value starts (a table: its header; the root: 1) */
	union {
		char *string; /* valid UTF-8, NUL-terminated, never holds a NUL itself */
		int64_t integer;
		bool boolean;
		struct {
			struct nb_toml_node **items;
			size_t n;
		} array; /* all items have the same type */
		struct {
			struct nb_toml_entry *entries; /* in the order they first appear */
			size_t n;
			enum nb_toml_origin origin;
		} table;
	};
};

/*
 * Parses @len bytes at @buf into a tree (*root, a table, owned by the caller: nb_toml_free()).
 * A leading UTF-8 byte order mark is skipped. @name is used only in messages.
 * Returns 0, or -EINVAL with @e set to "NAME:LINE: FIELD: REASON", where FIELD is the dotted path
 * of the key being parsed (e.g. `tools.search.risk`, `a.list[2]`) or `syntax` when no key is
 * known yet; or -ENOMEM. On failure *root is NULL.
 */
int nb_toml_parse(const char *name, const char *buf, size_t len, struct nb_toml_node **root,
		  struct nb_err *e);

/* Frees @n and everything below it. NULL is fine. */
void nb_toml_free(struct nb_toml_node *n);

static inline void
nb_toml_freep(struct nb_toml_node **n)
{
	nb_toml_free(*n);
}
#define _cleanup_toml_ __attribute__((cleanup(nb_toml_freep)))

/* The entry for @key in @table, or NULL if there is none (or @table is not a table). */
const struct nb_toml_entry *nb_toml_get(const struct nb_toml_node *table, const char *key);

/* "table", "array", "string", "integer", "boolean" (or "value" for anything else). */
const char *nb_toml_type_name(enum nb_toml_type t);

/*
 * Writes @key as it would appear in a dotted path into @out (@size > 0 bytes, always
 * NUL-terminated, truncated if needed): unchanged if it is a non-empty bare key, else in double
 * quotes with `"`, `\`, control characters and C1 controls escaped, so that it is safe to print.
 */
void nb_toml_format_key(char *out, size_t size, const char *key);

/*
 * Writes @s in double quotes into @out (@size > 0, always NUL-terminated), escaped like
 * nb_toml_format_key(), keeping at most @max_chars characters of @s and marking a cut with "...".
 * For echoing user input in error messages.
 */
void nb_toml_format_string(char *out, size_t size, const char *s, size_t max_chars);
