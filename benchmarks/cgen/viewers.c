/* viewers.c: the load generator's viewer worker in C (libc only: epoll, mmap).

   One process holds N client WebSockets to one server and counts the room events they receive,
   like benchmarks/loadgen.py `_Worker` with benchmarks/wsclient.py, but reading ~10x more frames
   per core: fan-out cells of a million deliveries/s become measurable.

   Usage: viewers HOST PORT DIALECT ROOM SHM_PATH SHM_CAP [CPUS]
     DIALECT: giftcast-msgpack (giftcast, the floor, the baselines), giftcast-json, socketio.
     CPUS: comma-separated cores to pin to. RLIMIT_NOFILE is raised to its hard limit.

   Commands: one line each on stdin, words separated by spaces; one JSON line answers each on
   stdout, with the same keys as `_Worker` (benchmarks/cviewers.py is the harness's side):
     connect N CONCURRENCY TIMEOUT_MS RCVBUF T TOKEN*T G ROOMS*G   (ROOMS: a,b,c; conn i joins
             group i % G with token i % T; G = 0: ROOM)         → {"ok","failed","errors","secs"}
     mark                                          → {}  (opens a measurement window)
     collect                                       → {"wall_s","cpu_s","delivered","hist",...}
     received LO HI                                → {"received","min_per_seq","max_per_seq",...}
     await LO HI N TIMEOUT_MS                      → {"met","received"} once N room events with seqs
             LO..HI have arrived (counted as they come), or at the timeout with met false
     stall                                         → {"stalled"}  (stop reading every connection)
     close                                         → {}
     exit (or EOF)                                 → exits
   A command the worker does not know answers {"error": ...}.

   Latency, as in loadgen.py: SHM_PATH maps int64 pairs [seq, send_ns] at slot seq % SHM_CAP,
   written by the sender worker when the ack tells it a gift's seq. On an event, now (one
   CLOCK_MONOTONIC reading per read() chunk) minus the slot's send time goes into a histogram of
   10 µs buckets up to 2 s (benchmarks/stats.py Hist) with the exact max; an event whose slot does
   not hold its seq yet waits in a pending list resolved every 20 ms and at collect.

   Single-threaded, level-triggered epoll, non-blocking sockets. Every read() goes into one
   256 KiB buffer, after the connection's leftover bytes of an incomplete frame, so a
   connection costs only its leftover. Client frames carry a zero mask (allowed by RFC 6455:
   masking defends proxies' caches, not the server). Fragmented messages are not expected (the
   servers measured never fragment) and are ignored, as wsclient.py does. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUCKET_US 10
#define MAX_BUCKET (2000000 / BUCKET_US)
#define MAX_PENDING (1 << 20)   /* Python keeps 20k to stay responsive; 16 MiB costs C nothing */
#define RESOLVE_EVERY_NS 20000000LL
#define MAX_SEQ (1 << 26)        /* counts array bound: 256 MiB; seqs are per room, far below */
#define FIRST_GIFT_ID 100        /* socket.io acks below it are joins (as wsclient.py) */
#define READ_BUF (1 << 18)

enum { ST_CONNECTING, ST_HANDSHAKE, ST_JOINING, ST_READY, ST_CLOSED };
enum { D_MSGPACK, D_JSON, D_SOCKETIO };

typedef struct {
    int fd, state, joins_pending, token, group, close_code; /* close_code -1: none received */
    long long deadline;
    char *part, *out;          /* leftover of an incomplete frame; bytes not yet written */
    size_t plen, pcap, olen, ocap;
} Conn;

typedef struct { char key[96]; long n; } Tally;   /* a small {string: count}, as Counter */
#define TALLY_MAX 16

typedef struct {  /* the top-level fields of one message that matter */
    const char *t, *code; size_t tlen, codelen; long long seq; int has_seq, has_epoch;
} Fields;

static const char *host, *room_default; static int port, dialect;
static volatile int64_t *slots; static long long shm_cap;
static int ep;
static Conn *conns; static int nconns, nready;
static char **tokens, **groups; static int ntokens, ngroups;
static int want, started, ok, failed, active, concurrency, rcvbuf, connecting;
static long long timeout_ns, connect_t0;
static Tally connect_errors[TALLY_MAX], errors[TALLY_MAX], closed[TALLY_MAX];
static uint32_t *counts; static long long counts_cap;
static uint32_t hist[MAX_BUCKET + 1]; static long long hist_max;
static long long delivered, dropped_pending, npending, pending[MAX_PENDING][2];
static int measuring, collecting; static long long window_t0, collect_deadline;
static double window_cpu0, collect_wall, collect_cpu;
static char rbuf[READ_BUF];

static long long now_ns(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double cpu_s(void) {
    struct rusage u; getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

static void tally(Tally *t, const char *key, size_t len) {
    if (len >= sizeof t->key) len = sizeof t->key - 1;
    for (int i = 0; i < TALLY_MAX; i++) {
        if (t[i].n && strlen(t[i].key) == len && !memcmp(t[i].key, key, len)) { t[i].n++; return; }
        if (!t[i].n) { memcpy(t[i].key, key, len); t[i].key[len] = 0; t[i].n = 1; return; }
    }
    t[TALLY_MAX - 1].n++;  /* full: the rest share the last entry */
}

/* -- the reply being written: a growing string, one line per command ---------------------- */

static char *out; static size_t out_len, out_cap;

static void put(const char *fmt, ...) {
    for (;;) {
        va_list ap; va_start(ap, fmt);
        int n = vsnprintf(out + out_len, out_cap - out_len, fmt, ap);
        va_end(ap);
        if (out_len + n < out_cap) { out_len += n; return; }
        out_cap = (out_cap + n) * 2; out = realloc(out, out_cap);
        if (!out) abort();
    }
}

static void put_str(const char *s) {  /* a JSON string */
    put("\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') put("\\%c", *s);
        else if ((unsigned char)*s < 0x20) put("\\u%04x", *s);
        else put("%c", *s);
    }
    put("\"");
}

static void put_tally(const Tally *t) {
    put("{");
    for (int i = 0; i < TALLY_MAX && t[i].n; i++) { put(i ? "," : ""); put_str(t[i].key); put(":%ld", t[i].n); }
    put("}");
}

static void reply(void) {  /* out holds the reply without its newline */
    put("\n");
    for (size_t done = 0; done < out_len;) {
        ssize_t w = write(1, out + done, out_len - done);
        if (w < 0 && errno != EINTR) exit(1);
        if (w > 0) done += w;
    }
    out_len = 0;
}

/* -- events, latency ------------------------------------------------------------------------ */

static int64_t sent_ns(long long seq) {  /* the send time in the shared table, or -1 */
    volatile int64_t *slot = slots + (seq % shm_cap) * 2;
    if (__atomic_load_n(&slot[0], __ATOMIC_ACQUIRE) != seq) return -1;  /* the sender writes ns first */
    return slot[1];
}

static void hist_add(long long us) {
    long long b = us / BUCKET_US;
    hist[b < MAX_BUCKET ? (b < 0 ? 0 : b) : MAX_BUCKET]++;
    if (us > hist_max) hist_max = us;
}

static int awaiting;  /* an `await` is answered when await_left reaches 0 or at await_deadline */
static long long await_lo, await_hi, await_n, await_left, await_deadline;

static void answer_await(int met) {
    awaiting = 0;
    put("{\"met\":%s,\"received\":%lld}", met ? "true" : "false", await_n - await_left);
    reply();
}

static void seen(long long seq) {  /* any room event: counted for loss and exactly-once */
    if (seq < 0 || seq >= MAX_SEQ) { tally(errors, "seq_out_of_range", 16); return; }
    if (seq >= counts_cap) {
        long long cap = counts_cap ? counts_cap : 4096;
        while (cap <= seq) cap *= 2;
        counts = realloc(counts, cap * sizeof *counts);
        if (!counts) abort();
        memset(counts + counts_cap, 0, (cap - counts_cap) * sizeof *counts);
        counts_cap = cap;
    }
    counts[seq]++;
    if (awaiting && seq >= await_lo && seq <= await_hi && --await_left <= 0) answer_await(1);
}

static void gift_event(long long seq, long long now) {
    seen(seq);
    if (!measuring) return;
    delivered++;
    int64_t sent = sent_ns(seq);
    if (sent >= 0) hist_add((now - sent) / 1000);
    else if (npending < MAX_PENDING) { pending[npending][0] = seq; pending[npending++][1] = now; }
    else dropped_pending++;  /* an overloaded run: keep the loop responsive */
}

static void resolve_pending(void) {
    long long keep = 0;
    for (long long i = 0; i < npending; i++) {
        int64_t sent = sent_ns(pending[i][0]);
        if (sent >= 0) hist_add((pending[i][1] - sent) / 1000);
        else { pending[keep][0] = pending[i][0]; pending[keep++][1] = pending[i][1]; }
    }
    npending = keep;
}

/* -- writing -------------------------------------------------------------------------------- */

static void want_events(Conn *c) {
    struct epoll_event ev = {.events = EPOLLIN | (c->olen || c->state == ST_CONNECTING ? EPOLLOUT : 0),
                             .data.u32 = (uint32_t)(c - conns)};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void flush(Conn *c) {
    size_t done = 0;
    while (done < c->olen) {
        ssize_t w = write(c->fd, c->out + done, c->olen - done);
        if (w < 0) break;  /* EAGAIN: EPOLLOUT brings us back; an error shows on the next read */
        done += w;
    }
    memmove(c->out, c->out + done, c->olen - done);
    c->olen -= done;
    want_events(c);
}

static void xmit(Conn *c, const void *data, size_t len) {
    if (c->olen + len > c->ocap) {
        c->ocap = (c->olen + len) * 2; c->out = realloc(c->out, c->ocap);
        if (!c->out) abort();
    }
    memcpy(c->out + c->olen, data, len);
    c->olen += len;
    if (c->olen == len) flush(c);  /* nothing was queued before: try now */
}

static void send_frame(Conn *c, int op, const void *payload, size_t len) {
    uint8_t head[14]; size_t h = 2;  /* zero mask: payload goes as is */
    head[0] = 0x80 | op;
    if (len < 126) head[1] = 0x80 | len;
    else if (len < 65536) { head[1] = 0xFE; head[2] = len >> 8; head[3] = len; h = 4; }
    else { head[1] = 0xFF; for (int i = 0; i < 8; i++) head[2 + i] = (uint64_t)len >> (56 - 8 * i); h = 10; }
    memset(head + h, 0, 4);
    char frame[512];
    if (h + 4 + len > sizeof frame) { xmit(c, head, h + 4); xmit(c, payload, len); return; }
    memcpy(frame, head, h + 4); memcpy(frame + h + 4, payload, len);
    xmit(c, frame, h + 4 + len);
}

/* -- connection life ------------------------------------------------------------------------ */

static void start_more(void);

static void close_conn(Conn *c) {
    if (c->state == ST_CLOSED) return;
    char code[16];
    if (c->close_code < 0) strcpy(code, "None"); else snprintf(code, sizeof code, "%d", c->close_code);
    tally(closed, code, strlen(code));
    close(c->fd);
    c->state = ST_CLOSED;
    free(c->part); free(c->out); c->part = c->out = NULL; c->plen = c->pcap = c->olen = c->ocap = 0;
}

static void fail(Conn *c, const char *reason) {  /* a connection that never became ready */
    if (c->state < ST_READY) { tally(connect_errors, reason, strlen(reason)); failed++; active--; }
    close_conn(c);
    start_more();
}

static void ready(Conn *c) {
    c->state = ST_READY; ok++; active--; nready++;
    start_more();
}

static void joined(Conn *c) {
    if (--c->joins_pending == 0 && c->state == ST_JOINING) ready(c);
}

static void open_one(int i) {
    Conn *c = &conns[nconns++];
    memset(c, 0, sizeof *c);
    c->close_code = -1; c->token = i % ntokens; c->group = i % ngroups;
    c->state = ST_CONNECTING; c->deadline = now_ns() + timeout_ns;
    active++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) { c->state = ST_CLOSED; tally(connect_errors, strerror(errno), strlen(strerror(errno))); failed++; active--; return; }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  /* as asyncio does */
    if (rcvbuf) setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)(c - conns)};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) fail(c, strerror(errno));
}

static void start_more(void) {
    while (connecting && active < concurrency && started < want) open_one(started++);
    if (connecting && ok + failed == want) {
        connecting = 0;
        put("{\"ok\":%d,\"failed\":%d,\"errors\":", ok, failed); put_tally(connect_errors);
        put(",\"secs\":%.6f}", (now_ns() - connect_t0) / 1e9); reply();
    }
}

static void on_connected(Conn *c) {  /* TCP is up: ask for the upgrade */
    int err = 0; socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) { fail(c, strerror(err)); return; }
    char req[2048]; int n;
    if (dialect == D_SOCKETIO)
        n = snprintf(req, sizeof req, "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n");
    else
        n = snprintf(req, sizeof req, "GET /ws HTTP/1.1\r\nAuthorization: Bearer %s\r\nSec-WebSocket-Protocol: %s\r\n",
                     tokens[c->token], dialect == D_JSON ? "giftcast.json.v1" : "giftcast.msgpack.v1");
    /* A fixed key: the servers check its form only; its purpose is to defeat caching proxies. */
    n += snprintf(req + n, sizeof req - n, "Host: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", host, port);
    c->state = ST_HANDSHAKE;
    xmit(c, req, n);
    want_events(c);
}

static void send_joins(Conn *c) {
    char *rooms = groups[c->group], msg[400];
    c->joins_pending = 0;
    for (char *r = rooms; *r; c->joins_pending++) {
        size_t rl = strcspn(r, ","), n;
        if (rl > 255) rl = 255;
        if (dialect == D_SOCKETIO) {
            n = snprintf(msg, sizeof msg, "42%d[\"join\",{\"room\":\"%.*s\"}]", c->joins_pending, (int)rl, r);
            send_frame(c, 1, msg, n);
        } else if (dialect == D_JSON) {
            n = snprintf(msg, sizeof msg, "{\"t\":\"join\",\"id\":%d,\"room\":\"%.*s\"}", c->joins_pending, (int)rl, r);
            send_frame(c, 1, msg, n);
        } else {  /* {"t":"join","id":i,"room":r} in msgpack; i < 100 is a positive fixint */
            memcpy(msg, "\x83\xa1t\xa4join\xa2id", 11); n = 11;
            msg[n++] = (char)c->joins_pending;
            memcpy(msg + n, "\xa4room", 5); n += 5;
            if (rl < 32) msg[n++] = (char)(0xa0 | rl); else { msg[n++] = (char)0xd9; msg[n++] = (char)rl; }
            memcpy(msg + n, r, rl); n += rl;
            send_frame(c, 2, msg, n);
        }
        r += rl + (r[rl] == ',');
    }
}

/* -- parsing: msgpack and JSON, only the top-level fields of Fields -------------------------- */

typedef struct { const uint8_t *p, *end; } Mp;

static int mp_need(Mp *m, size_t n) { return (size_t)(m->end - m->p) >= n; }

static uint64_t be(const uint8_t *p, int n) { uint64_t v = 0; while (n--) v = v << 8 | *p++; return v; }

/* The header of the value at m->p: sets *len (bytes of a str/bin/ext payload, or items of an
   array/map) and *kind ('s' str, 'i' int with *ival, 'a' array, 'm' map, 'b' other bytes). */
static int mp_head(Mp *m, char *kind, uint64_t *len, long long *ival) {
    if (!mp_need(m, 1)) return -1;
    uint8_t b = *m->p++; int w = 0;
    *len = 0;
    if (b <= 0x7f) { *kind = 'i'; *ival = b; return 0; }
    if (b >= 0xe0) { *kind = 'i'; *ival = (int8_t)b; return 0; }
    if (b <= 0x8f) { *kind = 'm'; *len = b & 15; return 0; }
    if (b <= 0x9f) { *kind = 'a'; *len = b & 15; return 0; }
    if (b <= 0xbf) { *kind = 's'; *len = b & 31; return 0; }
    switch (b) {
    case 0xc0: case 0xc2: case 0xc3: *kind = 'b'; return 0;
    case 0xc4: case 0xc5: case 0xc6: *kind = 'b'; w = 1 << (b - 0xc4); break;
    case 0xc7: case 0xc8: case 0xc9: *kind = 'b'; w = 1 << (b - 0xc7); break;
    case 0xca: case 0xcb: *kind = 'b'; *len = b == 0xca ? 4 : 8; return 0;
    case 0xcc: case 0xcd: case 0xce: case 0xcf: case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int n = 1 << ((b - 0xcc) & 3);
        if (!mp_need(m, n)) return -1;
        uint64_t v = be(m->p, n); m->p += n; *kind = 'i';
        *ival = b < 0xd0 ? (long long)v : n == 1 ? (int8_t)v : n == 2 ? (int16_t)v : n == 4 ? (int32_t)v : (long long)v;
        return 0;
    }
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: *kind = 'b'; *len = 1 + (1 << (b - 0xd4)); return 0;
    case 0xd9: case 0xda: case 0xdb: *kind = 's'; w = 1 << (b - 0xd9); break;
    case 0xdc: case 0xdd: *kind = 'a'; w = b == 0xdc ? 2 : 4; break;
    case 0xde: case 0xdf: *kind = 'm'; w = b == 0xde ? 2 : 4; break;
    default: return -1;
    }
    if (!mp_need(m, w)) return -1;
    *len = be(m->p, w); m->p += w;
    if (b >= 0xc7 && b <= 0xc9) (*len)++;  /* ext: the type byte */
    return 0;
}

static int mp_skip(Mp *m, int depth) {
    char kind; uint64_t len; long long ival;
    if (depth > 32 || mp_head(m, &kind, &len, &ival)) return -1;
    if (kind == 'a' || kind == 'm') {
        for (uint64_t i = 0; i < len * (kind == 'm' ? 2 : 1); i++) if (mp_skip(m, depth + 1)) return -1;
        return 0;
    }
    if (kind == 'i') return 0;
    if (!mp_need(m, len)) return -1;
    m->p += len;
    return 0;
}

static int key_is(const char *k, size_t kl, const char *name) { return kl == strlen(name) && !memcmp(k, name, kl); }

static int msgpack_fields(const uint8_t *p, size_t n, Fields *f) {
    Mp m = {p, p + n}; char kind; uint64_t len, kl, vl; long long ival;
    if (mp_head(&m, &kind, &len, &ival) || kind != 'm') return -1;
    for (uint64_t i = 0; i < len; i++) {
        const uint8_t *at = m.p;
        if (mp_head(&m, &kind, &kl, &ival)) return -1;
        if (kind != 's' || !mp_need(&m, kl)) {  /* not a str key: skip key and value */
            m.p = at;
            if (mp_skip(&m, 0) || mp_skip(&m, 0)) return -1;
            continue;
        }
        const char *k = (const char *)m.p; m.p += kl;
        at = m.p;
        if (mp_head(&m, &kind, &vl, &ival)) return -1;
        if (kind == 's' && mp_need(&m, vl) && (key_is(k, kl, "t") || key_is(k, kl, "code"))) {
            if (k[0] == 't') { f->t = (const char *)m.p; f->tlen = vl; }
            else { f->code = (const char *)m.p; f->codelen = vl; }
            m.p += vl;
            continue;
        }
        if (kind == 'i' && key_is(k, kl, "seq")) { f->seq = ival; f->has_seq = 1; continue; }
        if (key_is(k, kl, "epoch")) f->has_epoch = 1;
        m.p = at;
        if (mp_skip(&m, 0)) return -1;
    }
    return 0;
}

/* The top-level fields of the JSON object at p (its '{'): keys are the strings at depth 1
   followed by ':'; values are not parsed unless they are wanted. */
static int json_fields(const char *p, const char *end, Fields *f) {
    int depth = 0;
    while (p < end) {
        char ch = *p;
        if (ch == '"') {
            const char *s = ++p;
            while (p < end && *p != '"') p += *p == '\\' ? 2 : 1;
            if (p >= end) return -1;
            size_t sl = p++ - s;
            if (depth != 1) continue;
            while (p < end && (*p == ' ' || *p == ':')) if (*p++ == ':') goto key;
            continue;
        key:
            while (p < end && *p == ' ') p++;
            if (p < end && *p == '"' && (key_is(s, sl, "t") || key_is(s, sl, "code"))) {
                const char *v = ++p;
                while (p < end && *p != '"') p += *p == '\\' ? 2 : 1;
                if (p >= end) return -1;
                if (s[0] == 't') { f->t = v; f->tlen = p - v; } else { f->code = v; f->codelen = p - v; }
                p++;
            } else if (key_is(s, sl, "seq") && p < end && (*p == '-' || (*p >= '0' && *p <= '9'))) {
                char *e; f->seq = strtoll(p, &e, 10); f->has_seq = 1; p = e;
            } else if (key_is(s, sl, "epoch")) f->has_epoch = 1;
            continue;
        }
        if (ch == '{' || ch == '[') depth++;
        else if ((ch == '}' || ch == ']') && --depth == 0) return 0;
        p++;
    }
    return -1;
}

/* -- messages: the dialects ------------------------------------------------------------------ */

static int str_is(const char *s, size_t n, const char *lit) { return s && key_is(s, n, lit); }

static void giftcast_message(Conn *c, const Fields *f, long long now) {
    if (str_is(f->t, f->tlen, "gift")) { if (f->has_seq) gift_event(f->seq, now); }
    else if (str_is(f->t, f->tlen, "joined")) joined(c);
    else if (str_is(f->t, f->tlen, "error")) {
        char why[96];
        snprintf(why, sizeof why, "join failed: %.*s", f->code ? (int)f->codelen : 1, f->code ? f->code : "?");
        if (c->state < ST_READY) fail(c, why);
        else tally(errors, f->code ? f->code : "?", f->code ? f->codelen : 1);
    } else if (f->has_seq && f->has_epoch && !str_is(f->t, f->tlen, "ack")) seen(f->seq);  /* streak_end, live, goal */
}

static void socketio_message(Conn *c, const char *p, size_t n, long long now) {
    Fields f = {0};
    char msg[1024];
    if (n >= 10 && !memcmp(p, "42[\"gift\",", 10)) {
        const char *o = memchr(p, '{', n);
        if (o && !json_fields(o, p + n, &f) && f.has_seq) gift_event(f.seq, now);
    } else if (n >= 3 && !memcmp(p, "43", 2)) {
        if (atoi(p + 2) < FIRST_GIFT_ID) joined(c);  /* viewers send no gifts: every ack is a join's */
    } else if (n == 1 && p[0] == '2') send_frame(c, 1, "3", 1);
    else if (n >= 1 && p[0] == '0') {
        int len = snprintf(msg, sizeof msg, "40{\"token\":\"%s\"}", tokens[c->token]);
        send_frame(c, 1, msg, len);
    } else if (n >= 2 && !memcmp(p, "40", 2)) { c->state = ST_JOINING; send_joins(c); }
    else if (n >= 2 && !memcmp(p, "44", 2)) fail(c, "socket.io connect refused");
}

static void message(Conn *c, const char *p, size_t n, long long now) {
    Fields f = {0};
    if (dialect == D_SOCKETIO) socketio_message(c, p, n, now);
    else if (dialect == D_MSGPACK ? !msgpack_fields((const uint8_t *)p, n, &f)
                                  : n && p[0] == '{' && !json_fields(p, p + n, &f)) giftcast_message(c, &f, now);
    else tally(errors, "undecodable", 11);
}

static void control(Conn *c, int op, const uint8_t *p, size_t n) {
    if (op == 9) send_frame(c, 10, p, n);  /* ping → pong */
    else if (op == 8) {                    /* close → close, as wsclient.py */
        c->close_code = n >= 2 ? p[0] << 8 | p[1] : 1005;
        uint8_t echo[2] = {0x03, c->close_code == 1001 ? 0xE9 : 0xE8};
        send_frame(c, 8, echo, 2);
        if (c->state < ST_READY) fail(c, "closed before ready"); else close_conn(c);
    }
}

/* Frames in p[0..n); returns the bytes consumed (the rest is an incomplete frame), or -1. */
static long frames(Conn *c, const uint8_t *p, size_t n, long long now) {
    size_t i = 0;
    while (n - i >= 2 && c->state != ST_CLOSED) {
        uint64_t len = p[i + 1] & 0x7F; size_t h = 2;
        if (p[i + 1] & 0x80) return -1;  /* a server never masks */
        if (len == 126) { if (n - i < 4) break; len = be(p + i + 2, 2); h = 4; }
        else if (len == 127) { if (n - i < 10) break; len = be(p + i + 2, 8); h = 10; }
        if (h + len > READ_BUF / 2) return -1;  /* the leftover must fit in front of a read */
        if (n - i - h < len) break;
        int op = p[i] & 0x0F;
        if (op == 1 || op == 2) message(c, (const char *)p + i + h, len, now);
        else control(c, op, p + i + h, len);
        i += h + len;
    }
    return i;
}

static long handshake(Conn *c, const char *p, size_t n) {  /* the 101, or -1 if refused */
    const char *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end) return n > READ_BUF / 2 ? -1 : 0;
    const char *eol = memchr(p, '\r', n);
    if (!memmem(p, eol - p + 1, " 101 ", 5) && !memmem(p, eol - p + 1, " 101\r", 5)) {
        char why[120];
        snprintf(why, sizeof why, "handshake refused: %.*s", (int)(eol - p < 80 ? eol - p : 80), p);
        fail(c, why);
        return -1;
    }
    if (dialect == D_SOCKETIO) c->state = ST_JOINING;  /* the server speaks first: "0{...}" */
    else { c->state = ST_JOINING; send_joins(c); }
    return end + 4 - p;
}

static void on_readable(Conn *c) {
    for (;;) {
        size_t have = c->plen;
        memcpy(rbuf, c->part, have);
        ssize_t r = read(c->fd, rbuf + have, READ_BUF - have);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (r <= 0) { if (c->state < ST_READY) fail(c, r ? strerror(errno) : "connection lost before ready"); else close_conn(c); return; }
        long long now = now_ns();
        size_t n = have + r, used = 0;
        if (c->state == ST_HANDSHAKE) {
            long u = handshake(c, rbuf, n);
            if (u < 0) { if (c->state != ST_CLOSED) fail(c, "bad handshake"); return; }
            used = u;
        }
        if (c->state >= ST_JOINING && c->state != ST_CLOSED) {
            long u = frames(c, (const uint8_t *)rbuf + used, n - used, now);
            if (u < 0) { if (c->state < ST_READY) fail(c, "protocol error"); else close_conn(c); return; }
            used += u;
        }
        if (c->state == ST_CLOSED) return;
        if (n - used > c->pcap) { c->pcap = n - used; c->part = realloc(c->part, c->pcap); if (!c->part) abort(); }
        memmove(c->part, rbuf + used, n - used);  /* memmove: c->part may be rbuf's source */
        c->plen = n - used;
        if ((size_t)r < READ_BUF - have) return;  /* drained; level-triggered epoll says when there is more */
    }
}

/* -- commands ------------------------------------------------------------------------------- */

static void cmd_connect(char *args) {
    char *save, *w = strtok_r(args, " ", &save);
    want = atoi(w ? w : "0");
    concurrency = atoi(strtok_r(NULL, " ", &save));
    timeout_ns = atoll(strtok_r(NULL, " ", &save)) * 1000000LL;
    rcvbuf = atoi(strtok_r(NULL, " ", &save));
    ntokens = atoi(strtok_r(NULL, " ", &save));
    tokens = calloc(ntokens, sizeof *tokens);
    for (int i = 0; i < ntokens; i++) tokens[i] = strdup(strtok_r(NULL, " ", &save));
    ngroups = atoi(strtok_r(NULL, " ", &save));
    groups = calloc(ngroups ? ngroups : 1, sizeof *groups);
    for (int i = 0; i < ngroups; i++) groups[i] = strdup(strtok_r(NULL, " ", &save));
    if (!ngroups) groups[ngroups++] = strdup(room_default);
    conns = realloc(conns, (nconns + want) * sizeof *conns);  /* indexes stay valid: epoll holds them */
    if (want && !conns) abort();
    if (concurrency < 1) concurrency = 1;
    started = ok = failed = active = 0;
    memset(connect_errors, 0, sizeof connect_errors);
    connect_t0 = now_ns(); connecting = 1;
    start_more();
}

static void cmd_collect(void) {
    collect_wall = (now_ns() - window_t0) / 1e9; collect_cpu = cpu_s() - window_cpu0;
    measuring = 0; collecting = 1;
    collect_deadline = now_ns() + 500000000LL;  /* acks of the window's last gifts may still come */
}

static void finish_collect(void) {
    collecting = 0;
    put("{\"wall_s\":%.6f,\"cpu_s\":%.6f,\"delivered\":%lld,\"hist\":[{", collect_wall, collect_cpu, delivered);
    for (int i = 0, first = 1; i <= MAX_BUCKET; i++) if (hist[i]) { put(first ? "\"%d\":%u" : ",\"%d\":%u", i, hist[i]); first = 0; }
    put("},%lld],\"unresolved\":%lld,\"acks\":0,\"ack_hist\":[{},0],\"sent\":0,\"throttled\":0,\"errors\":",
        hist_max, npending + dropped_pending);
    put_tally(errors);
    put(",\"seq_lo\":null,\"seq_hi\":null}");
    reply();
}

static void cmd_received(long long lo, long long hi) {
    long long sum = 0, mn = -1, mx = 0;
    for (long long s = lo; s <= hi; s++) {
        long long k = s >= 0 && s < counts_cap ? counts[s] : 0;
        sum += k; if (mn < 0 || k < mn) mn = k; if (k > mx) mx = k;
    }
    put("{\"received\":%lld,\"min_per_seq\":%lld,\"max_per_seq\":%lld,\"last\":%lld,\"conns\":%d,\"closed\":",
        sum, mn < 0 ? 0 : mn, mx, hi >= 0 && hi < counts_cap ? (long long)counts[hi] : 0, nready);
    put_tally(closed); put("}"); reply();
}

static void close_all(void) {
    for (int i = 0; i < nconns; i++) {
        if (conns[i].state == ST_CLOSED) continue;
        send_frame(&conns[i], 8, "\x03\xe8", 2);
        close_conn(&conns[i]);
    }
    nready = 0;
}

static void command(char *line) {
    char *args = strchr(line, ' ');
    if (args) *args++ = 0; else args = line + strlen(line);
    if (!strcmp(line, "connect")) { cmd_connect(args); return; }  /* answers when done */
    if (!strcmp(line, "collect")) { cmd_collect(); return; }       /* answers when resolved */
    if (!strcmp(line, "mark")) {
        resolve_pending(); npending = dropped_pending = delivered = hist_max = 0;
        memset(hist, 0, sizeof hist); memset(errors, 0, sizeof errors);
        measuring = 1; window_t0 = now_ns(); window_cpu0 = cpu_s();
        put("{}");
    } else if (!strcmp(line, "received")) {
        long long lo, hi;
        if (sscanf(args, "%lld %lld", &lo, &hi) != 2) { put("{\"error\":\"received LO HI\"}"); reply(); return; }
        cmd_received(lo, hi); return;
    } else if (!strcmp(line, "await")) {
        long long ms;
        if (sscanf(args, "%lld %lld %lld %lld", &await_lo, &await_hi, &await_n, &ms) != 4) {
            put("{\"error\":\"await LO HI N TIMEOUT_MS\"}"); reply(); return;
        }
        await_left = await_n;
        for (long long s = await_lo < 0 ? 0 : await_lo; s <= await_hi && s < counts_cap; s++) await_left -= counts[s];
        await_deadline = now_ns() + ms * 1000000LL;
        awaiting = 1;
        if (await_left <= 0) answer_await(1);
        return;  /* answered when met or timed out */
    } else if (!strcmp(line, "stall")) {
        for (int i = 0; i < nconns; i++)
            if (conns[i].state == ST_READY) epoll_ctl(ep, EPOLL_CTL_DEL, conns[i].fd, NULL);
        put("{\"stalled\":%d}", nready);
    } else if (!strcmp(line, "close")) { close_all(); put("{}"); }
    else if (!strcmp(line, "exit")) { close_all(); exit(0); }
    else { put("{\"error\":"); put_str("unknown command"); put("}"); }
    reply();
}

static char cmdbuf[1 << 22]; static size_t cmdlen;

static void on_stdin(void) {
    ssize_t r = read(0, cmdbuf + cmdlen, sizeof cmdbuf - cmdlen - 1);
    if (r <= 0) { close_all(); exit(0); }  /* the harness is gone */
    cmdlen += r;
    char *nl, *p = cmdbuf;
    while ((nl = memchr(p, '\n', cmdbuf + cmdlen - p))) { *nl = 0; command(p); p = nl + 1; }
    cmdlen -= p - cmdbuf;
    memmove(cmdbuf, p, cmdlen);
}

static void tick(long long now) {  /* every ~20 ms: latencies waiting for acks, connect timeouts */
    resolve_pending();
    if (awaiting && now > await_deadline) answer_await(0);
    if (collecting && (!npending || now > collect_deadline)) finish_collect();
    if (connecting)
        for (int i = 0; i < nconns; i++)
            if (conns[i].state < ST_READY && now > conns[i].deadline) fail(&conns[i], "timed out");
}

int main(int argc, char **argv) {
    if (argc < 7) { fprintf(stderr, "usage: viewers HOST PORT DIALECT ROOM SHM_PATH SHM_CAP [CPUS]\n"); return 2; }
    host = argv[1]; port = atoi(argv[2]); room_default = argv[4]; shm_cap = atoll(argv[6]);
    dialect = !strcmp(argv[3], "socketio") ? D_SOCKETIO : !strcmp(argv[3], "giftcast-json") ? D_JSON
            : !strncmp(argv[3], "giftcast", 8) ? D_MSGPACK : -1;
    if (dialect < 0) { fprintf(stderr, "unknown dialect %s\n", argv[3]); return 2; }
    if (argc > 7 && argv[7][0]) {
        cpu_set_t set; CPU_ZERO(&set);
        for (char *s = argv[7]; *s; s += *s == ',') CPU_SET(strtol(s, &s, 10), &set);
        if (sched_setaffinity(0, sizeof set, &set)) perror("sched_setaffinity");
    }
    signal(SIGPIPE, SIG_IGN);  /* a write to a connection the server closed: EPIPE, not death */
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }
    int shm = open(argv[5], O_RDONLY);
    void *map = shm < 0 ? MAP_FAILED : mmap(NULL, shm_cap * 16, PROT_READ, MAP_SHARED, shm, 0);
    if (map == MAP_FAILED) { perror(argv[5]); return 2; }
    slots = map;
    ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX}, evs[1024];
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
    long long last_tick = now_ns();
    for (;;) {
        int n = epoll_wait(ep, evs, 1024, 20);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u32 == UINT32_MAX) { on_stdin(); continue; }
            Conn *c = &conns[evs[i].data.u32];
            if (c->state == ST_CLOSED) continue;
            if (c->state == ST_CONNECTING) { if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c); continue; }
            if (evs[i].events & EPOLLOUT) flush(c);
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
        }
        long long now = now_ns();
        if (now - last_tick >= RESOLVE_EVERY_NS) { tick(now); last_tick = now; }
    }
}
