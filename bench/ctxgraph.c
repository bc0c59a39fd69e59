/*
 * bench-ctxgraph: what ctxgraph costs over SQLite itself, in one run.
 *
 *   bench-ctxgraph [-n N] [--batch B] [--batches M] [--reads R] [--rounds K] [--dir DIR]
 *                  [--ctxgraph PATH] [--json]
 *
 * Sections:
 *   options      command line, where ctxgraph is
 *   workspace    a private temp dir (on the file system under test), the ctxgraph it starts
 *   raw          SQLite with ctxgraph's pragmas and schema, called directly
 *   service      the same rows through an agent's socket: ctx.write, ctx.write_batch, ctx.read
 *   timing       interleaved rounds, per-kind totals, single-write latencies
 *   output       text and JSON
 *
 * Both sides write the same kind of rows (a ~100-byte JSON value under its own key) into their
 * own database in the same directory, with the same pragmas (WAL, synchronous=FULL, busy
 * timeout) and the same schema and INSERT as src/ctxgraph/store.c. Each side gets its input
 * ready-made before the clock starts: the raw side its rows (canonical JSON and hash computed),
 * the service side its request params (jansson trees), so the raw side measures SQLite alone and
 * the service side everything an agent's write costs beyond building its request: JSON-RPC over
 * the socket (serialising, parsing, both ways), the identity and ACL checks, the rate limiter,
 * canonical JSON, SHA-256, and the acknowledgement. Each write is acknowledged only after its
 * commit is durable on both sides.
 *
 * Kinds (each side): single writes (one commit each), batched writes (--batch rows per commit,
 * ctx.write_batch), the same with two batches in flight on the service side (the raw side, a
 * library call, has nothing to overlap: plain batches again), reads (the latest entry of a
 * random key written before). The kinds are run
 * in --rounds interleaved rounds, the side that goes first alternating, so the machine's noise
 * falls on both alike. Figures are printed, never asserted.
 *
 * Everything lives in one mkdtemp(3) directory that is removed at the end; the benchmark signals
 * only the ctxgraph it started, by pid.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-ctxgraph-paths.h"
#include "cleanup.h"
#include "ipc.h"
#include "json.h"

#define PROG "bench-ctxgraph"

/* The targets of issue 6, printed next to the measured ratios. */
#define TARGET_SINGLE 0.5
#define TARGET_BATCH 0.8

static _Noreturn __attribute__((format(printf, 1, 2))) void
die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, PROG ": ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- options ---- */

struct opts {
	int singles, batch, batches, reads, rounds;
	const char *dir, *ctxgraph;
	bool json;
};

static void
usage(FILE *f)
{
	fputs("Usage: " PROG " [-n N] [--batch B] [--batches M] [--reads R] [--rounds K]\n"
	      "                      [--dir DIR] [--ctxgraph PATH] [--json]\n"
	      "\n"
	      "Acknowledged writes/s and reads/s through an agent's ctxgraph socket beside raw\n"
	      "SQLite with the same pragmas and schema, in one run.\n"
	      "\n"
	      "  -n N             single writes per side (default 2000)\n"
	      "  --batch B        rows per batched write (default 100)\n"
	      "  --batches M      batched writes per side (default 50)\n"
	      "  --reads R        reads per side (default 20000)\n"
	      "  --rounds K       interleaved rounds (default 10)\n"
	      "  --dir DIR        where the databases go (default /var/tmp): the file system\n"
	      "                   under test, its fsync included\n"
	      "  --ctxgraph PATH  the ctxgraph binary (default: the build tree's)\n"
	      "  --json           the figures as one JSON object\n",
	      f);
}

static int
parse_count(const char *opt, const char *s, int min)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > 10000000)
		die("%s: '%s' is not a number from %d", opt, s, min);
	return (int)v;
}

static void
parse_opts(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){ .singles = 2000,
			    .batch = 100,
			    .batches = 50,
			    .reads = 20000,
			    .rounds = 10,
			    .dir = "/var/tmp",
			    .ctxgraph = BENCH_CTXGRAPH_PATH };
	static const struct option lo[] = {
		{ "batch", required_argument, NULL, 'b' },
		{ "batches", required_argument, NULL, 'm' },
		{ "reads", required_argument, NULL, 'r' },
		{ "rounds", required_argument, NULL, 'k' },
		{ "dir", required_argument, NULL, 'd' },
		{ "ctxgraph", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "n:h", lo, NULL)) != -1) {
		switch (c) {
		case 'n':
			o->singles = parse_count("-n", optarg, 1);
			break;
		case 'b':
			o->batch = parse_count("--batch", optarg, 1);
			break;
		case 'm':
			o->batches = parse_count("--batches", optarg, 1);
			break;
		case 'r':
			o->reads = parse_count("--reads", optarg, 1);
			break;
		case 'k':
			o->rounds = parse_count("--rounds", optarg, 1);
			break;
		case 'd':
			o->dir = optarg;
			break;
		case 'c':
			o->ctxgraph = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (o->batch > 1000)
		die("--batch: ctxgraph takes at most 1000 entries per batch");
	if (o->rounds > o->singles || o->rounds > o->batches)
		die("--rounds: at most -n and --batches");
}

/* ---- workspace ---- */

static char workdir[PATH_MAX];
static pid_t ctx_pid = -1;

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static void
cleanup(void)
{
	if (ctx_pid > 0) {
		kill(ctx_pid, SIGTERM);
		waitpid(ctx_pid, NULL, 0);
		ctx_pid = -1;
	}
	if (workdir[0])
		nftw(workdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *
fs_name(const char *dir)
{
	struct statfs sf;
	if (statfs(dir, &sf) < 0)
		return "unknown";
	switch ((unsigned long)sf.f_type) {
	case 0xEF53:
		return "ext4";
	case 0x01021994:
		return "tmpfs (fsync is free: no durability cost measured)";
	case 0x794c7630:
		return "overlayfs";
	case 0x58465342:
		return "xfs";
	case 0x9123683E:
		return "btrfs";
	default: {
		static char buf[32];
		snprintf(buf, sizeof(buf), "0x%lx", (unsigned long)sf.f_type);
		return buf;
	}
	}
}

/* Starts ctxgraph in the workspace and waits for its control socket. Returns a client. */
static struct nb_ipc_client *
start_ctxgraph(const struct opts *o)
{
	char state[PATH_MAX + 16], run[PATH_MAX + 16], sock[PATH_MAX + 32], log[PATH_MAX + 16];
	snprintf(state, sizeof(state), "%s/ctx-state", workdir);
	snprintf(run, sizeof(run), "%s/run", workdir);
	snprintf(sock, sizeof(sock), "%s/ctxgraph.sock", run);
	snprintf(log, sizeof(log), "%s/ctxgraph.log", workdir);
	if (mkdir(state, 0700) < 0 || mkdir(run, 0700) < 0)
		die("mkdir: %s", strerror(errno));
	ctx_pid = fork();
	if (ctx_pid < 0)
		die("fork: %s", strerror(errno));
	if (ctx_pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execl(o->ctxgraph, o->ctxgraph, "--state-dir", state, "--run-dir", run,
		      (char *)NULL);
		dprintf(STDERR_FILENO, "exec %s: %m\n", o->ctxgraph);
		_exit(127);
	}
	struct nb_err e = { 0 };
	for (int i = 0; i < 200; i++) {
		struct nb_ipc_client *c = nb_ipc_connect(sock, 1000, &e);
		if (c)
			return c;
		int st;
		if (waitpid(ctx_pid, &st, WNOHANG) == ctx_pid) {
			ctx_pid = -1;
			die("ctxgraph (%s) exited at start; see its log", o->ctxgraph);
		}
		usleep(25000);
	}
	die("ctxgraph did not listen within 5 s: %s", e.msg);
}

static json_t *
call(struct nb_ipc_client *c, const char *method, const json_t *params)
{
	json_t *res = NULL;
	struct nb_err e = { 0 };
	if (nb_ipc_call(c, method, params, 30000, &res, &e) < 0)
		die("%s: %s", method, e.msg);
	return res;
}

/* ---- rows ---- */

struct row {
	char key[64];
	json_t *value;
	json_t *params; /* {key, value}: the ctx.write params, ready-made like the raw side's rows
			 */
	char *canon;
	size_t canon_len;
	char hash[NB_SHA256_HEX_LEN + 1];
};

/* @n rows for @side ("raw" or "ctx"), written as agent "bench". */
static struct row *
make_rows(const char *side, const char *kind, int n)
{
	struct row *rows = calloc((size_t)n, sizeof(*rows));
	if (!rows)
		die("out of memory");
	for (int i = 0; i < n; i++) {
		struct row *r = &rows[i];
		snprintf(r->key, sizeof(r->key), "bench/%s/%s/%07d", side, kind, i);
		r->value = json_pack("{s:i,s:s,s:[i,i,i],s:b}", "i", i, "note",
				     "a value of about a hundred bytes, as agents write them", "v",
				     1, 2, 3, "ok", 1);
		r->params = json_pack("{s:s,s:O}", "key", r->key, "value", r->value);
		struct nb_err e = { 0 };
		if (nb_json_canonical(r->value, &r->canon, &r->canon_len, &e) < 0)
			die("%s", e.msg);
		size_t na = 5, nk = strlen(r->key);
		char *buf = malloc(na + 1 + nk + 1 + r->canon_len);
		memcpy(buf, "bench", 6);
		memcpy(buf + na + 1, r->key, nk + 1);
		memcpy(buf + na + 1 + nk + 1, r->canon, r->canon_len);
		uint8_t d[NB_SHA256_LEN];
		nb_sha256(buf, na + 1 + nk + 1 + r->canon_len, d);
		nb_hex(d, sizeof(d), r->hash);
		free(buf);
	}
	return rows;
}

static void
free_rows(struct row *rows, int n)
{
	for (int i = 0; i < n; i++) {
		json_decref(rows[i].value);
		json_decref(rows[i].params);
		free(rows[i].canon);
	}
	free(rows);
}

/* ---- raw ---- */

struct raw {
	sqlite3 *db;
	sqlite3_stmt *insert, *latest, *begin, *commit;
};

static void
raw_exec(struct raw *r, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(r->db, sql, NULL, NULL, &msg) != SQLITE_OK)
		die("raw sqlite: %s: %s", sql, msg);
}

static void
raw_prepare(struct raw *r, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v3(r->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
		die("raw sqlite: %s: %s", sql, sqlite3_errmsg(r->db));
}

/* ctxgraph's pragmas, schema and statements (src/ctxgraph/store.c), on the raw side. */
static void
raw_open(struct raw *r)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/raw.db", workdir);
	if (sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK)
		die("raw sqlite: open %s", path);
	sqlite3_busy_timeout(r->db, 5000);
	raw_exec(r, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
	raw_exec(r, "CREATE TABLE entries (hash TEXT PRIMARY KEY NOT NULL, agent TEXT NOT NULL,"
		    " key TEXT NOT NULL, value TEXT NOT NULL, created_at INTEGER NOT NULL,"
		    " seq INTEGER NOT NULL);"
		    "CREATE INDEX entries_key_seq ON entries(key, seq);"
		    "CREATE INDEX entries_agent_seq ON entries(agent, seq);"
		    "CREATE UNIQUE INDEX entries_seq ON entries(seq);"
		    "CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries"
		    " BEGIN SELECT RAISE(ABORT, 'immutable'); END;"
		    "CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries"
		    " BEGIN SELECT RAISE(ABORT, 'immutable'); END;");
	raw_prepare(r,
		    "INSERT OR IGNORE INTO entries (hash, agent, key, value, created_at, seq)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, (SELECT IFNULL(MAX(seq), 0) + 1 FROM entries))"
		    " RETURNING seq",
		    &r->insert);
	raw_prepare(r,
		    "SELECT hash, agent, key, value, created_at, seq FROM entries WHERE key = ?1"
		    " ORDER BY seq DESC LIMIT 1",
		    &r->latest);
	raw_prepare(r, "BEGIN IMMEDIATE", &r->begin);
	raw_prepare(r, "COMMIT", &r->commit);
}

static void
raw_step_done(struct raw *r, sqlite3_stmt *st)
{
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE)
		die("raw sqlite: %s", sqlite3_errmsg(r->db));
	sqlite3_reset(st);
}

static void
raw_insert(struct raw *r, const struct row *row)
{
	sqlite3_bind_text(r->insert, 1, row->hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(r->insert, 2, "bench", -1, SQLITE_STATIC);
	sqlite3_bind_text(r->insert, 3, row->key, -1, SQLITE_STATIC);
	sqlite3_bind_text(r->insert, 4, row->canon, (int)row->canon_len, SQLITE_STATIC);
	sqlite3_bind_int64(r->insert, 5, (int64_t)time(NULL) * 1000);
	raw_step_done(r, r->insert);
}

static void
raw_batch(struct raw *r, const struct row *rows, int n)
{
	raw_step_done(r, r->begin);
	for (int i = 0; i < n; i++)
		raw_insert(r, &rows[i]);
	raw_step_done(r, r->commit);
}

static void
raw_read(struct raw *r, const char *key)
{
	sqlite3_bind_text(r->latest, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(r->latest);
	if (rc != SQLITE_ROW || !sqlite3_column_text(r->latest, 3))
		die("raw sqlite: read %s: %s", key, sqlite3_errmsg(r->db));
	sqlite3_reset(r->latest);
}

/* ---- service ---- */

static void
ctx_single(struct nb_ipc_client *c, const struct row *row)
{
	json_t *res = call(c, "ctx.write", row->params);
	if (!json_is_true(json_object_get(res, "created")))
		die("ctx.write %s: not created", row->key);
	json_decref(res);
}

static void
ctx_batch(struct nb_ipc_client *c, json_t *params, int n)
{
	json_t *res = call(c, "ctx.write_batch", params);
	if (json_integer_value(json_object_get(res, "created")) != n)
		die("ctx.write_batch: not all created");
	json_decref(res);
}

/*
 * The batches @params[0..n) with two requests in flight: the next batch is on its way while
 * ctxgraph works on (and fsyncs) the one before, so the client's own JSON work overlaps
 * ctxgraph's. Each write is still acknowledged before it is counted.
 */
static void
ctx_batches_pipelined(struct nb_ipc_client *c, json_t **params, int n, int batch)
{
	struct nb_err e = { 0 };
	int64_t ids[2];
	int sent = 0, done = 0;
	while (done < n) {
		while (sent < n && sent - done < 2) {
			if (nb_ipc_send_request(c, "ctx.write_batch", params[sent], 30000,
						&ids[sent % 2], &e) < 0)
				die("ctx.write_batch: %s", e.msg);
			sent++;
		}
		json_t *msg = NULL;
		if (nb_ipc_read_message(c, 30000, &msg, &e) < 0)
			die("ctx.write_batch: %s", e.msg);
		json_t *res = json_object_get(msg, "result");
		if (json_integer_value(json_object_get(msg, "id")) != ids[done % 2] ||
		    json_integer_value(json_object_get(res, "created")) != batch)
			die("ctx.write_batch (pipelined): unexpected reply");
		json_decref(msg);
		done++;
	}
}

/* The ctx.write_batch params of each batch, ready-made: {entries: [{key, value}...]}. */
static json_t **
make_batches(const struct row *rows, int batches, int batch)
{
	json_t **b = calloc((size_t)batches, sizeof(*b));
	if (!b)
		die("out of memory");
	for (int i = 0; i < batches; i++) {
		json_t *arr = json_array();
		for (int k = 0; k < batch; k++)
			json_array_append(arr, rows[i * batch + k].params);
		b[i] = json_pack("{s:o}", "entries", arr);
	}
	return b;
}

static void
ctx_read(struct nb_ipc_client *c, const char *key)
{
	json_t *p = json_pack("{s:s}", "key", key);
	json_t *res = call(c, "ctx.read", p);
	if (!json_object_get(res, "value"))
		die("ctx.read %s: no value", key);
	json_decref(res);
	json_decref(p);
}

/* ---- timing ---- */

enum kind { K_SINGLE, K_BATCH, K_PIPE, K_READ, KINDS };
enum side { RAW, CTX, SIDES };

struct totals {
	uint64_t ns[SIDES][KINDS];
	uint64_t ops[SIDES][KINDS]; /* rows written or read */
	uint64_t *lat[SIDES];	    /* per single write */
	int nlat[SIDES];
};

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double
pct(uint64_t *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	int i = (int)(p * (n - 1) + 0.5);
	return (double)v[i] / 1000.0;
}

static double
rate(const struct totals *t, enum side s, enum kind k)
{
	return t->ns[s][k] ? (double)t->ops[s][k] * 1e9 / (double)t->ns[s][k] : 0;
}

/* Splits [0, n) into @rounds slices: the start of slice @i. */
static int
slice(int n, int rounds, int i)
{
	return (int)((int64_t)n * i / rounds);
}

int
main(int argc, char **argv)
{
	struct opts o;
	parse_opts(argc, argv, &o);
	signal(SIGPIPE, SIG_IGN);
	snprintf(workdir, sizeof(workdir), "%s/bench-ctxgraph.XXXXXX", o.dir);
	if (!mkdtemp(workdir))
		die("mkdtemp in %s: %s", o.dir, strerror(errno));
	atexit(cleanup);
	const char *fs = fs_name(workdir);

	struct nb_ipc_client *ctl = start_ctxgraph(&o);
	/* The benchmark's agent: every key, and no practical rate limit (the default 100/s would
	 * measure the limiter). */
	json_t *reg = json_pack("{s:s,s:[s],s:[s],s:i,s:i}", "name", "bench", "read", "", "write",
				"", "rate", 1000000, "burst", 1000000);
	json_t *res = call(ctl, "agent.register", reg);
	struct nb_err e = { 0 };
	struct nb_ipc_client *agent =
		nb_ipc_connect(json_string_value(json_object_get(res, "path")), 5000, &e);
	if (!agent)
		die("agent socket: %s", e.msg);
	json_decref(res);
	json_decref(reg);
	struct raw raw = { 0 };
	raw_open(&raw);

	int nb = o.batches * o.batch;
	struct row *singles[SIDES] = { make_rows("raw", "s", o.singles),
				       make_rows("ctx", "s", o.singles) };
	struct row *batched[SIDES] = { make_rows("raw", "b", nb), make_rows("ctx", "b", nb) };
	struct row *piped[SIDES] = { make_rows("raw", "p", nb), make_rows("ctx", "p", nb) };
	json_t **batch_params = make_batches(batched[CTX], o.batches, o.batch);
	json_t **pipe_params = make_batches(piped[CTX], o.batches, o.batch);
	struct totals t = { 0 };
	for (int s = 0; s < SIDES; s++)
		t.lat[s] = calloc((size_t)o.singles, sizeof(uint64_t));
	srand(42);

	for (int round = 0; round < o.rounds; round++) {
		for (int k = 0; k < KINDS; k++) {
			for (int turn = 0; turn < SIDES; turn++) {
				/* The side that goes first alternates with the round. */
				enum side s = (enum side)((turn + round) % SIDES);
				uint64_t t0 = now_ns();
				int done = 0;
				if (k == K_SINGLE) {
					int a = slice(o.singles, o.rounds, round),
					    b = slice(o.singles, o.rounds, round + 1);
					for (int i = a; i < b; i++) {
						uint64_t s0 = now_ns();
						if (s == RAW)
							raw_insert(&raw, &singles[s][i]);
						else
							ctx_single(agent, &singles[s][i]);
						t.lat[s][t.nlat[s]++] = now_ns() - s0;
					}
					done = b - a;
				} else if (k == K_BATCH) {
					int a = slice(o.batches, o.rounds, round),
					    b = slice(o.batches, o.rounds, round + 1);
					for (int i = a; i < b; i++) {
						if (s == RAW)
							raw_batch(&raw, &batched[s][i * o.batch],
								  o.batch);
						else
							ctx_batch(agent, batch_params[i], o.batch);
					}
					done = (b - a) * o.batch;
				} else if (k == K_PIPE) {
					/* The raw side has nothing to pipeline: plain batches. */
					int a = slice(o.batches, o.rounds, round),
					    b = slice(o.batches, o.rounds, round + 1);
					if (s == RAW)
						for (int i = a; i < b; i++)
							raw_batch(&raw, &piped[s][i * o.batch],
								  o.batch);
					else
						ctx_batches_pipelined(agent, pipe_params + a, b - a,
								      o.batch);
					done = (b - a) * o.batch;
				} else {
					/* Reads of keys written so far (singles of this side). */
					int a = slice(o.reads, o.rounds, round),
					    b = slice(o.reads, o.rounds, round + 1);
					int have = t.nlat[s];
					for (int i = a; i < b; i++) {
						const char *key = singles[s][rand() % have].key;
						if (s == RAW)
							raw_read(&raw, key);
						else
							ctx_read(agent, key);
					}
					done = b - a;
				}
				t.ns[s][k] += now_ns() - t0;
				t.ops[s][k] += (uint64_t)done;
			}
		}
	}

	double ratio[KINDS];
	for (int k = 0; k < KINDS; k++)
		ratio[k] = rate(&t, CTX, k) / rate(&t, RAW, k);
	double p50[SIDES], p95[SIDES];
	for (int s = 0; s < SIDES; s++) {
		p50[s] = pct(t.lat[s], t.nlat[s], 0.5);
		p95[s] = pct(t.lat[s], t.nlat[s], 0.95);
	}
	if (o.json) {
		json_t *out = json_pack(
			"{s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:s,"
			"s:{s:f,s:f,s:f,s:f,s:f,s:f},s:{s:f,s:f,s:f,s:f,s:f,s:f},"
			"s:{s:f,s:f,s:f,s:f,s:f,s:f}}",
			"dir", o.dir, "fs", fs, "singles", o.singles, "batch", o.batch, "batches",
			o.batches, "reads", o.reads, "rounds", o.rounds, "sqlite",
			sqlite3_libversion(), "raw", "single_writes_per_s", rate(&t, RAW, K_SINGLE),
			"batched_rows_per_s", rate(&t, RAW, K_BATCH), "batched_2_rows_per_s",
			rate(&t, RAW, K_PIPE), "reads_per_s", rate(&t, RAW, K_READ),
			"single_p50_us", p50[RAW], "single_p95_us", p95[RAW], "ctxgraph",
			"single_writes_per_s", rate(&t, CTX, K_SINGLE), "batched_rows_per_s",
			rate(&t, CTX, K_BATCH), "batched_2_rows_per_s", rate(&t, CTX, K_PIPE),
			"reads_per_s", rate(&t, CTX, K_READ), "single_p50_us", p50[CTX],
			"single_p95_us", p95[CTX], "ratio", "single", ratio[K_SINGLE], "batched",
			ratio[K_BATCH], "batched_2", ratio[K_PIPE], "reads", ratio[K_READ],
			"target_single", TARGET_SINGLE, "target_batched", TARGET_BATCH);
		char *s = json_dumps(out, JSON_COMPACT);
		puts(s);
		free(s);
		json_decref(out);
	} else {
		printf("bench-ctxgraph: %d single writes, %d batches of %d, %d reads per side, "
		       "%d interleaved rounds\n",
		       o.singles, o.batches, o.batch, o.reads, o.rounds);
		printf("directory %s (%s), SQLite %s, WAL + synchronous=FULL on both sides\n\n",
		       o.dir, fs, sqlite3_libversion());
		printf("%-34s %14s %14s %8s %8s %5s\n", "", "raw SQLite", "ctxgraph", "ratio",
		       "target", "met");
		static const char *const names[KINDS] = { "single writes/s (1 commit each)",
							  "batched rows/s",
							  "batched rows/s, 2 in flight",
							  "reads/s (latest by key)" };
		static const double targets[KINDS] = { TARGET_SINGLE, TARGET_BATCH, TARGET_BATCH,
						       0 };
		for (int k = 0; k < KINDS; k++) {
			char tgt[16] = "-", met[8] = "-";
			if (targets[k] > 0) {
				snprintf(tgt, sizeof(tgt), ">= %.1f", targets[k]);
				snprintf(met, sizeof(met), "%s",
					 ratio[k] >= targets[k] ? "yes" : "NO");
			}
			printf("%-34s %14.0f %14.0f %8.2f %8s %5s\n", names[k], rate(&t, RAW, k),
			       rate(&t, CTX, k), ratio[k], tgt, met);
		}
		printf("\nsingle write latency, us: raw p50 %.0f p95 %.0f; ctxgraph p50 %.0f p95 "
		       "%.0f\n",
		       p50[RAW], p95[RAW], p50[CTX], p95[CTX]);
	}

	for (int i = 0; i < o.batches; i++) {
		json_decref(batch_params[i]);
		json_decref(pipe_params[i]);
	}
	free(batch_params);
	free(pipe_params);
	for (int s = 0; s < SIDES; s++) {
		free_rows(singles[s], o.singles);
		free_rows(batched[s], nb);
		free_rows(piped[s], nb);
		free(t.lat[s]);
	}
	sqlite3_finalize(raw.insert);
	sqlite3_finalize(raw.latest);
	sqlite3_finalize(raw.begin);
	sqlite3_finalize(raw.commit);
	sqlite3_close(raw.db);
	nb_ipc_client_free(agent);
	nb_ipc_client_free(ctl);
	return 0;
}
