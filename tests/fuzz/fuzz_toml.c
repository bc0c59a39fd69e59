/*
 * fuzz_toml.c: libFuzzer target for the raw TOML parser (nb_toml_parse) and the message
 * formatters, with the tree's invariants checked on every accepted input.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_toml: %s:%d: check failed: %s\n", __FILE__,          \
				__LINE__, #cond);                                                  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* No control characters: what the formatters produce must be safe to print. */
static void
check_printable(const char *s)
{
	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		CHECK(*c >= 0x20 && *c != 0x7F && !(c[0] == 0xC2 && c[1] >= 0x80 && c[1] <= 0x9F));
}

static void
walk(const struct nb_toml_node *n, unsigned max_line, int depth)
{
	char buf[96];
	CHECK(depth <= 2 * NB_TOML_MAX_DEPTH + 2);
	CHECK(n->line >= 1 && n->line <= max_line);
	switch (n->type) {
	case NB_TOML_STRING:
		nb_toml_format_string(buf, sizeof(buf), n->string, 16);
		check_printable(buf);
		break;
	case NB_TOML_ARRAY:
		for (size_t i = 0; i < n->array.n; i++) {
			CHECK(n->array.items[i]->type == n->array.items[0]->type);
			walk(n->array.items[i], max_line, depth + 1);
		}
		break;
	case NB_TOML_TABLE:
		CHECK(n->table.n <= NB_TOML_MAX_KEYS);
		for (size_t i = 0; i < n->table.n; i++) {
			const struct nb_toml_entry *en = &n->table.entries[i];
			CHECK(en->line >= 1 && en->line <= max_line);
			CHECK(nb_toml_get(n, en->key) == en);
			nb_toml_format_key(buf, sizeof(buf), en->key);
			check_printable(buf);
			walk(en->value, max_line, depth + 1);
		}
		break;
	case NB_TOML_INTEGER:
	case NB_TOML_BOOLEAN:
		break;
	default:
		CHECK(!"unknown node type");
	}
}

/* libFuzzer's entry point: runs nb_toml_parse() on @data; aborts if a promise is broken. Returns 0.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nb_toml_node *root = NULL;
	struct nb_err e = { 0 };
	int r = nb_toml_parse("fuzz.toml", (const char *)data, size, &root, &e);
	if (r < 0) {
		CHECK(root == NULL);
		CHECK(r == -EINVAL || r == -ENOMEM);
		check_printable(e.msg);
		return 0;
	}
	unsigned lines = 1;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	CHECK(root && root->type == NB_TOML_TABLE);
	walk(root, lines, 0);
	nb_toml_free(root);

	/* The formatters also take arbitrary bytes from callers. */
	char *s = malloc(size + 1);
	if (s) {
		char buf[64];
		memcpy(s, data, size);
		s[size] = '\0';
		nb_toml_format_string(buf, sizeof(buf), s, size % 40);
		check_printable(buf);
		nb_toml_format_key(buf, 1 + size % sizeof(buf), s);
		check_printable(buf);
		free(s);
	}
	return 0;
}
