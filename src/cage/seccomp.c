/*
 * seccomp.c: the text profile (policy/cage.seccomp) -> a libseccomp filter, and its loading.
 *
 * The profile format is documented at the top of policy/cage.seccomp; this file is its only
 * reader. No BPF is written here and no syscall list lives in C: the policy is data.
 *
 * Sections:
 *   tables     errno names and the symbolic constants the profile may use
 *   lexer      one line -> blank-separated tokens
 *   parser     tokens -> struct sc_rule, with the checks libseccomp does not make itself
 *              (duplicates, conflicts, a rule that repeats the default, pseudo syscalls)
 *   compile    cage_seccomp_compile(): the whole file -> scmp_filter_ctx
 *   apply      cage_seccomp_apply(), cage_seccomp_free()
 *
 * libseccomp 2.5 quirks this file works around (each one is tested in tests/unit/sandbox):
 *   - it silently accepts a duplicate rule, even one with a different action (the first wins);
 *   - it refuses two comparisons on one argument in one rule (EINVAL, no reason given);
 *   - it refuses a rule whose action is the default action (EACCES);
 *   - it resolves names of syscalls that do not exist on this architecture to negative pseudo
 *     numbers and accepts rules on them, which then match nothing.
 */
#include "cage.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/personality.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include "cleanup.h"
#include "err.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
/* The kernel's name for the type bits of socket(2)'s second argument (include/linux/net.h). */
#define SC_SOCK_TYPE_MASK 0xf

#define SC_MAX_LINE 1024
#define SC_MAX_TOKENS 64
#define SC_MAX_RULES 4096

struct cage_seccomp {
	scmp_filter_ctx ctx;
};

/* ---- tables ---- */

struct sc_name {
	const char *name;
	uint64_t value;
};

/* Tables, laid out by hand. */
/* clang-format off */
#define SC_E(x) { #x, x }
static const struct sc_name sc_errnos[] = {
	SC_E(EPERM),   SC_E(ENOENT),  SC_E(ESRCH),  SC_E(EINTR),  SC_E(EIO),
	SC_E(ENXIO),   SC_E(E2BIG),   SC_E(EBADF),  SC_E(EAGAIN), SC_E(ENOMEM),
	SC_E(EACCES),  SC_E(EFAULT),  SC_E(EBUSY),  SC_E(EEXIST), SC_E(EXDEV),
	SC_E(ENODEV),  SC_E(ENOTDIR), SC_E(EISDIR), SC_E(EINVAL), SC_E(ENFILE),
	SC_E(EMFILE),  SC_E(ENOTTY),  SC_E(ENOSPC), SC_E(EROFS),  SC_E(ENOSYS),
	SC_E(ENOTSUP), SC_E(EOPNOTSUPP), SC_E(EAFNOSUPPORT), SC_E(EPROTONOSUPPORT),
	SC_E(ESOCKTNOSUPPORT), SC_E(EPFNOSUPPORT), SC_E(ECONNREFUSED), SC_E(ENETUNREACH),
	SC_E(EHOSTUNREACH),
};

/*
 * Only the constants policy/cage.seccomp uses, so a name in the profile is one a reviewer can
 * find here with its value. Add what a new rule needs.
 */
static const struct sc_name sc_constants[] = {
	SC_E(CLONE_NEWNS),     SC_E(CLONE_NEWUTS),
	SC_E(CLONE_NEWIPC),    SC_E(CLONE_NEWUSER),
	SC_E(CLONE_NEWPID),    SC_E(CLONE_NEWNET),
	SC_E(CLONE_NEWCGROUP), SC_E(CLONE_NEWTIME),
	SC_E(AF_INET),	       SC_E(AF_INET6),
	SC_E(AF_PACKET),       SC_E(SOCK_RAW),
	SC_E(SOCK_PACKET),     { "SOCK_TYPE_MASK", SC_SOCK_TYPE_MASK },
	SC_E(TIOCSTI),	       SC_E(TIOCLINUX),
	SC_E(TIOCSETD),	       SC_E(PER_LINUX),
};
#undef SC_E
/* clang-format on */

static const struct sc_name *
sc_lookup(const struct sc_name *t, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].name, name) == 0)
			return &t[i];
	return NULL;
}

/* ---- lexer ---- */

struct sc_parser {
	const char *path;
	unsigned line;
	struct nb_err *e;
	scmp_filter_ctx ctx; /* created by the `default` statement */
	uint32_t act_default;
	unsigned default_line;
	struct sc_rule *rules;
	size_t n_rules;
};

struct sc_rule {
	int nr;
	unsigned line;
	unsigned n_cmp;
	struct scmp_arg_cmp cmp[6]; /* sorted by argument */
};

/* Sets the parse error "seccomp: FILE:LINE: REASON". */
static int sc_fail(struct sc_parser *p, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
sc_fail(struct sc_parser *p, int code, const char *fmt, ...)
{
	char reason[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	return nb_err_set(p->e, code, "seccomp: %s:%u: %s", p->path, p->line, reason);
}

/*
 * Splits @s in place at blanks, after cutting the comment. Anything but printable ASCII and
 * tabs is refused: a profile is security data, and a stray control character or look-alike
 * letter should not quietly change what a token means.
 */
static int
sc_tokenize(struct sc_parser *p, char *s, char **tok, size_t *n_tok)
{
	size_t n = 0;
	char *hash = strchr(s, '#');
	if (hash)
		*hash = '\0';
	for (char *c = s; *c; c++) {
		unsigned char u = (unsigned char)*c;
		if (u != '\t' && (u < 0x20 || u > 0x7e))
			return sc_fail(p, EINVAL, "unexpected byte 0x%02x", u);
	}
	for (char *save = NULL, *t = strtok_r(s, " \t", &save); t;
	     t = strtok_r(NULL, " \t", &save)) {
		if (n == SC_MAX_TOKENS)
			return sc_fail(p, EINVAL, "more than %d tokens", SC_MAX_TOKENS);
		tok[n++] = t;
	}
	*n_tok = n;
	return 0;
}

/* ---- parser ---- */

static int
sc_parse_number(struct sc_parser *p, const char *s, uint64_t *out)
{
	const char *digits = s;
	int base = 10;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		digits = s + 2;
	} else if (s[0] == '0' && s[1] != '\0') {
		return sc_fail(p, EINVAL,
			       "bad number '%s' (a leading 0 is refused: write 0x for hex)", s);
	}
	for (const char *c = digits; *c; c++)
		if (base == 16 ? !isxdigit((unsigned char)*c) : !isdigit((unsigned char)*c))
			return sc_fail(p, EINVAL, "bad number '%s'", s);
	if (*digits == '\0')
		return sc_fail(p, EINVAL, "bad number '%s'", s);
	errno = 0;
	unsigned long long v = strtoull(digits, NULL, base);
	if (errno == ERANGE)
		return sc_fail(p, ERANGE, "number '%s' does not fit in 64 bits", s);
	*out = v;
	return 0;
}

static bool
sc_is_identifier(const char *s)
{
	if (!isupper((unsigned char)*s) && *s != '_')
		return false;
	for (; *s; s++)
		if (!isupper((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

static int
sc_parse_value(struct sc_parser *p, const char *s, uint64_t *out)
{
	if (isdigit((unsigned char)s[0]))
		return sc_parse_number(p, s, out);
	if (!sc_is_identifier(s))
		return sc_fail(p, EINVAL, "bad value '%s' (a number or a constant)", s);
	const struct sc_name *c = sc_lookup(sc_constants, NB_ARRAY_SIZE(sc_constants), s);
	if (!c)
		return sc_fail(p, EINVAL, "unknown constant '%s'", s);
	*out = c->value;
	return 0;
}

/* Parses ACTION at tok[*i...], advancing *i past it. */
static int
sc_parse_action(struct sc_parser *p, char **tok, size_t n, size_t *i, uint32_t *act)
{
	if (*i >= n)
		return sc_fail(p, EINVAL, "missing action (allow, errno NAME, kill, log)");
	const char *a = tok[(*i)++];
	if (strcmp(a, "allow") == 0) {
		*act = SCMP_ACT_ALLOW;
	} else if (strcmp(a, "kill") == 0) {
		/* The process, not the thread: a half-killed multithreaded agent helps nobody. */
		*act = SCMP_ACT_KILL_PROCESS;
	} else if (strcmp(a, "log") == 0) {
		*act = SCMP_ACT_LOG;
	} else if (strcmp(a, "errno") == 0) {
		if (*i >= n)
			return sc_fail(p, EINVAL, "errno needs a name (errno EPERM)");
		const char *name = tok[(*i)++];
		const struct sc_name *en = sc_lookup(sc_errnos, NB_ARRAY_SIZE(sc_errnos), name);
		if (!en)
			return sc_fail(p, EINVAL, "unknown errno name '%s'", name);
		*act = SCMP_ACT_ERRNO((uint32_t)en->value);
	} else {
		return sc_fail(p, EINVAL, "unknown action '%s' (allow, errno NAME, kill, log)", a);
	}
	return 0;
}

static int
sc_parse_arg(struct sc_parser *p, const char *s, unsigned *arg)
{
	if (strncmp(s, "arg", 3) != 0 || s[3] < '0' || s[3] > '5' || s[4] != '\0')
		return sc_fail(p, EINVAL, "bad argument '%s' (arg0..arg5)", s);
	*arg = (unsigned)(s[3] - '0');
	return 0;
}

static const struct {
	const char *tok;
	enum scmp_compare op;
} sc_ops[] = {
	{ "==", SCMP_CMP_EQ }, { "!=", SCMP_CMP_NE }, { "<", SCMP_CMP_LT },
	{ "<=", SCMP_CMP_LE }, { ">", SCMP_CMP_GT },  { ">=", SCMP_CMP_GE },
};

/* Parses one COND at tok[*i...] into @c, advancing *i past it. */
static int
sc_parse_cond(struct sc_parser *p, char **tok, size_t n, size_t *i, struct scmp_arg_cmp *c)
{
	int r;
	unsigned arg = 0;
	if ((r = sc_parse_arg(p, tok[(*i)++], &arg)) < 0)
		return r;
	if (*i >= n)
		return sc_fail(p, EINVAL, "missing operator after 'arg%u'", arg);
	const char *op = tok[(*i)++];
	*c = (struct scmp_arg_cmp){ .arg = arg };

	if (strcmp(op, "&") == 0) {
		uint64_t mask, value;
		if (*i >= n)
			return sc_fail(p, EINVAL, "missing mask after '&'");
		if ((r = sc_parse_value(p, tok[(*i)++], &mask)) < 0)
			return r;
		if (mask == 0)
			return sc_fail(p, EINVAL, "mask is 0: the condition would always hold");
		value = mask;
		if (*i < n && strcmp(tok[*i], "==") == 0) {
			(*i)++;
			if (*i >= n)
				return sc_fail(p, EINVAL, "missing value after '=='");
			if ((r = sc_parse_value(p, tok[(*i)++], &value)) < 0)
				return r;
			if (value & ~mask)
				return sc_fail(p, EINVAL,
					       "value 0x%" PRIx64
					       " has bits outside mask 0x%" PRIx64
					       ": the condition never holds",
					       value, mask);
		}
		c->op = SCMP_CMP_MASKED_EQ;
		c->datum_a = mask;
		c->datum_b = value;
		return 0;
	}
	for (size_t k = 0; k < NB_ARRAY_SIZE(sc_ops); k++) {
		if (strcmp(op, sc_ops[k].tok) == 0) {
			if (*i >= n)
				return sc_fail(p, EINVAL, "missing value after '%s'", op);
			c->op = sc_ops[k].op;
			return sc_parse_value(p, tok[(*i)++], &c->datum_a);
		}
	}
	return sc_fail(p, EINVAL, "bad operator '%s' (==, !=, <, <=, >, >=, &)", op);
}

/* Resolves NAME or NAME:NR to this architecture's syscall number. */
static int
sc_parse_syscall(struct sc_parser *p, char *s, int *nr)
{
	char *colon = strchr(s, ':');
	if (colon)
		*colon = '\0';
	for (const char *c = s; *c; c++)
		if (!islower((unsigned char)*c) && !isdigit((unsigned char)*c) && *c != '_')
			return sc_fail(p, EINVAL, "bad syscall name '%s'", s);
	if (*s == '\0')
		return sc_fail(p, EINVAL, "missing syscall name");
	int resolved = seccomp_syscall_resolve_name(s);
	if (!colon) {
		if (resolved == __NR_SCMP_ERROR)
			return sc_fail(p, EINVAL, "unknown syscall '%s'", s);
		/* libseccomp gives names of other architectures' syscalls a negative pseudo
		 * number and accepts rules on it that match nothing: a rule that looks like a
		 * denial and is none. */
		if (resolved < 0)
			return sc_fail(p, EINVAL,
				       "syscall '%s' does not exist on this architecture", s);
		*nr = resolved;
		return 0;
	}
	uint64_t want;
	int r = sc_parse_number(p, colon + 1, &want);
	if (r < 0)
		return r;
	/* The numbers written in the profile are x86_64's; elsewhere they would name another
	 * syscall, or none. */
	if (seccomp_arch_native() != SCMP_ARCH_X86_64)
		return sc_fail(p, EINVAL, "'%s:%s': syscall numbers in the profile are x86_64's", s,
			       colon + 1);
	if (want > INT_MAX)
		return sc_fail(p, EINVAL, "syscall number '%s' out of range", colon + 1);
	if (resolved != __NR_SCMP_ERROR && resolved < 0)
		return sc_fail(p, EINVAL, "syscall '%s' does not exist on this architecture", s);
	if (resolved >= 0 && (uint64_t)resolved != want)
		return sc_fail(p, EINVAL, "syscall '%s' is %d, not %s", s, resolved, colon + 1);
	/* A number libseccomp knows under another name is a typo that would filter the wrong
	 * syscall. */
	char *known = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, (int)want);
	if (known && strcmp(known, s) != 0) {
		r = sc_fail(p, EINVAL, "syscall %s is '%s', not '%s'", colon + 1, known, s);
		free(known);
		return r;
	}
	free(known);
	*nr = (int)want;
	return 0;
}

static int
sc_cmp_by_arg(const void *a, const void *b)
{
	const struct scmp_arg_cmp *x = a, *y = b;
	return (x->arg > y->arg) - (x->arg < y->arg);
}

static bool
sc_same_conds(const struct sc_rule *a, const struct sc_rule *b)
{
	if (a->n_cmp != b->n_cmp)
		return false;
	for (unsigned k = 0; k < a->n_cmp; k++) {
		const struct scmp_arg_cmp *x = &a->cmp[k], *y = &b->cmp[k];
		if (x->arg != y->arg || x->op != y->op || x->datum_a != y->datum_a ||
		    x->datum_b != y->datum_b)
			return false;
	}
	return true;
}

static int
sc_parse_default(struct sc_parser *p, char **tok, size_t n)
{
	size_t i = 1;
	uint32_t act;
	int r;
	if (p->ctx)
		return sc_fail(p, EINVAL, "'default' given twice (first at line %u)",
			       p->default_line);
	if ((r = sc_parse_action(p, tok, n, &i, &act)) < 0)
		return r;
	if (i < n)
		return sc_fail(p, EINVAL, "unexpected '%s' after the default action", tok[i]);
	p->ctx = seccomp_init(act);
	if (!p->ctx)
		return sc_fail(p, ENOMEM, "libseccomp: cannot create a filter");
	p->act_default = act;
	p->default_line = p->line;

	/* A call from another architecture's ABI (i386 through int 0x80) is a way around every
	 * rule written for this one: kill the process. libseccomp's own default kills only the
	 * calling thread. */
	r = seccomp_attr_set(p->ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	/* cage sets no_new_privs itself, at a chosen point; cage_seccomp_apply() checks it is
	 * set rather than have libseccomp set it quietly and hide an ordering mistake. */
	if (r == 0)
		r = seccomp_attr_set(p->ctx, SCMP_FLTATR_CTL_NNP, 0);
	/* Every thread gets the filter, or loading fails: no thread may run unfiltered. */
	if (r == 0)
		r = seccomp_attr_set(p->ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (r < 0)
		return sc_fail(p, -r, "libseccomp: cannot set filter attributes: %s", strerror(-r));
	/* The kernel's errno from seccomp_load() instead of libseccomp's ECANCELED: optional,
	 * it only makes a load failure easier to read. */
	(void)seccomp_attr_set(p->ctx, SCMP_FLTATR_API_SYSRAWRC, 1);

	/* x32 calls (nr | 0x40000000) carry the x86_64 audit arch, so the arch check alone does
	 * not stop them. libseccomp sends them to the bad-arch action as long as x32 is not in
	 * the filter; make sure it is not (tests/unit/sandbox checks the kernel kills them). */
	if (seccomp_arch_native() == SCMP_ARCH_X86_64 &&
	    seccomp_arch_exist(p->ctx, SCMP_ARCH_X32) != -EEXIST)
		return sc_fail(p, EINVAL, "libseccomp: the x32 ABI is in the filter");
	return 0;
}

static int
sc_parse_rule(struct sc_parser *p, char **tok, size_t n)
{
	struct sc_rule rule = { .line = p->line };
	size_t i = 1;
	uint32_t act;
	int r;

	if (!p->ctx)
		return sc_fail(p, EINVAL, "a rule before the 'default' line");
	if ((r = sc_parse_syscall(p, tok[0], &rule.nr)) < 0)
		return r;
	if ((r = sc_parse_action(p, tok, n, &i, &act)) < 0)
		return r;
	while (i < n) {
		if (rule.n_cmp > 0) {
			if (strcmp(tok[i], "&&") != 0)
				return sc_fail(p, EINVAL, "expected '&&' before '%s'", tok[i]);
			if (++i >= n)
				return sc_fail(p, EINVAL, "missing condition after '&&'");
		}
		if (rule.n_cmp == NB_ARRAY_SIZE(rule.cmp))
			return sc_fail(p, EINVAL, "more than %zu conditions",
				       NB_ARRAY_SIZE(rule.cmp));
		struct scmp_arg_cmp *c = &rule.cmp[rule.n_cmp];
		if ((r = sc_parse_cond(p, tok, n, &i, c)) < 0)
			return r;
		for (unsigned k = 0; k < rule.n_cmp; k++)
			if (rule.cmp[k].arg == c->arg)
				return sc_fail(
					p, EINVAL,
					"arg%u compared twice in one rule (libseccomp allows "
					"one comparison per argument: split the rule)",
					c->arg);
		rule.n_cmp++;
	}
	qsort(rule.cmp, rule.n_cmp, sizeof(rule.cmp[0]), sc_cmp_by_arg);

	if (act == p->act_default)
		return sc_fail(p, EINVAL, "the rule repeats the default action (line %u)",
			       p->default_line);
	/* libseccomp takes a duplicate without a word, even with another action, and keeps the
	 * first; and an unconditional rule silently swallows the conditional ones. Both are
	 * mistakes in a profile: refuse them. */
	for (size_t k = 0; k < p->n_rules; k++) {
		const struct sc_rule *o = &p->rules[k];
		if (o->nr != rule.nr)
			continue;
		if (sc_same_conds(o, &rule))
			return sc_fail(p, EEXIST, "duplicate rule for '%s' (first at line %u)",
				       tok[0], o->line);
		if (o->n_cmp == 0 || rule.n_cmp == 0)
			return sc_fail(
				p, EEXIST,
				"conflicting rules for '%s' (line %u): an unconditional rule "
				"must be the only rule of its syscall",
				tok[0], o->line);
	}
	if (p->n_rules == SC_MAX_RULES)
		return sc_fail(p, E2BIG, "more than %d rules", SC_MAX_RULES);

	/* _exact: on the native architecture a rule is never rewritten; if libseccomp would have
	 * to (it does for multiplexed syscalls elsewhere), fail rather than load something else. */
	r = seccomp_rule_add_exact_array(p->ctx, act, rule.nr, rule.n_cmp, rule.cmp);
	if (r < 0)
		return sc_fail(p, -r, "libseccomp refused the rule: %s", strerror(-r));

	struct sc_rule *grown = realloc(p->rules, (p->n_rules + 1) * sizeof(*grown));
	if (!grown)
		return sc_fail(p, ENOMEM, "out of memory");
	p->rules = grown;
	p->rules[p->n_rules++] = rule;
	return 0;
}

static int
sc_parse_line(struct sc_parser *p, char *line)
{
	char *tok[SC_MAX_TOKENS];
	size_t n = 0;
	int r = sc_tokenize(p, line, tok, &n);
	if (r < 0 || n == 0)
		return r;
	if (strcmp(tok[0], "default") == 0)
		return sc_parse_default(p, tok, n);
	return sc_parse_rule(p, tok, n);
}

/* ---- compile ---- */

int
cage_seccomp_compile(const char *path, struct cage_seccomp **out, struct nb_err *e)
{
	struct sc_parser p = { .path = path, .e = e };
	_cleanup_fclose_ FILE *f = NULL;
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int r = 0;

	*out = NULL;
	f = fopen(path, "re");
	if (!f)
		return nb_err_setp(e, errno, "seccomp: %s", path);

	errno = 0;
	while ((len = getline(&line, &cap, f)) >= 0) {
		p.line++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if ((size_t)len != strlen(line)) {
			r = sc_fail(&p, EINVAL, "NUL byte in line");
			goto fail;
		}
		if (len > SC_MAX_LINE) {
			r = sc_fail(&p, EINVAL, "line longer than %d characters", SC_MAX_LINE);
			goto fail;
		}
		if ((r = sc_parse_line(&p, line)) < 0)
			goto fail;
		errno = 0;
	}
	if (ferror(f)) {
		r = nb_err_setp(e, errno ? errno : EIO, "seccomp: %s: read", path);
		goto fail;
	}
	if (!p.ctx) {
		if (p.line == 0)
			p.line = 1;
		r = sc_fail(&p, EINVAL, "no 'default' line");
		goto fail;
	}

	struct cage_seccomp *s = calloc(1, sizeof(*s));
	if (!s) {
		r = nb_err_set(e, ENOMEM, "seccomp: out of memory");
		goto fail;
	}
	s->ctx = steal_ptr(&p.ctx);
	free(p.rules);
	*out = s;
	return 0;
fail:
	if (p.ctx)
		seccomp_release(p.ctx);
	free(p.rules);
	return r;
}

/* ---- apply ---- */

int
cage_seccomp_apply(struct cage_seccomp *s, struct nb_err *e)
{
	/* The filter is built with CTL_NNP off (see sc_parse_default): no_new_privs must already
	 * be set, by the caller, or a setuid binary could still gain privileges. */
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return nb_err_set(e, EPERM, "seccomp: no_new_privs is not set: refusing to load");
	int r = seccomp_load(s->ctx);
	if (r < 0)
		return nb_err_setp(e, -r, "seccomp: load the filter");
	return 0;
}

void
cage_seccomp_free(struct cage_seccomp *s)
{
	if (!s)
		return;
	seccomp_release(s->ctx);
	free(s);
}
