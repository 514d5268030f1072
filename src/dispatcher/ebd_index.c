/*
 * The console's feed: an index of events by id and per-minute/per-hour
 * counters, kept in Redis by ebd for the web console and `ebd trace`.
 * Every key is in the bus's slot ({BUS}), written on the bus's command
 * connection:
 *
 *   eb:{BUS}:idx:H       HASH, H = entry id ms / 3600000: event id ->
 *                        "e:<events entry id> t:<trace entry id> ..."
 *   eb:{BUS}:idx:cursor  the last eb:{BUS}:events entry indexed
 *   eb:{BUS}:stats:m:M   HASH, M = unix s / 60: accepted, matched,
 *   eb:{BUS}:stats:h:H   delivered:T, retried:T, failed:T
 *
 * Two writers, each one Lua script (loaded with SCRIPT LOAD when the
 * command connection is made, then EVALSHA):
 *
 * - every delivery attempt: XADD to eb:{BUS}:trace, the trace entry's
 *   "t:" token appended to the event's index value (at most
 *   EBD_INDEX_ATTEMPTS of them) and the attempt's counter, in the one
 *   command that was the trace XADD, so it costs no round trip;
 *
 * - the indexer (worker 0 of every ebd, like retention): pages of
 *   eb:{BUS}:events after the cursor (XRANGE), the event ids read here,
 *   then one script that applies the page ("e:" tokens, accepted and
 *   matched) only if the cursor is still what was read, and moves it.
 *   Several ebd processes index the same bus without a leader; each
 *   page is applied once, the others' scripts find the cursor moved and
 *   go on from where it is.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "ebd_core.h"
#include "ebd_log.h"


#define EBD_INDEX_PAGE      256         /* events entries per script */
#define EBD_INDEX_IDLE_MS   200         /* polling when nothing is new */
#define EBD_INDEX_ERROR_MS  1000


/* The attempts of a loop turn on one route, in one call. KEYS: trace,
 * index bucket, stats minute, stats hour; ARGV: MAXLEN, index TTL, most
 * t: tokens, then per attempt: event id ("": not indexed), counter
 * field ("": none), the number of trace fields, those fields. A
 * counter's bucket gets its TTL when the field is made (its time span is
 * fixed); the index bucket once per call. Redis' CPU per attempt is what
 * this script costs (docs/performance.md). */
static const char  ebd_attempt_script[] =
    "local maxlen, cap = ARGV[1], tonumber(ARGV[3])\n"
    "local counts, indexed, i = {}, false, 4\n"
    "while i <= #ARGV do\n"
    "  local ev, stat, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])\n"
    "  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*',"
    " unpack(ARGV, i + 3, i + 2 + n))\n"
    "  if ev ~= '' then\n"
    "    local v = redis.call('HGET', KEYS[2], ev)\n"
    "    if not v then\n"
    "      redis.call('HSET', KEYS[2], ev, 't:' .. id)\n"
    "    else\n"
    "      local _, c = string.gsub(v, 't:', '')\n"
    "      if c < cap then\n"
    "        redis.call('HSET', KEYS[2], ev, v .. ' t:' .. id)\n"
    "      end\n"
    "    end\n"
    "    indexed = true\n"
    "  end\n"
    "  if stat ~= '' then counts[stat] = (counts[stat] or 0) + 1 end\n"
    "  i = i + 3 + n\n"
    "end\n"
    "if indexed then redis.call('EXPIRE', KEYS[2], ARGV[2]) end\n"
    "for f, c in pairs(counts) do\n"
    "  if redis.call('HINCRBY', KEYS[3], f, c) == c then\n"
    "    redis.call('EXPIRE', KEYS[3], " EBD_STATS_M_TTL ")\n"
    "  end\n"
    "  if redis.call('HINCRBY', KEYS[4], f, c) == c then\n"
    "    redis.call('EXPIRE', KEYS[4], " EBD_STATS_H_TTL ")\n"
    "  end\n"
    "end\n"
    "return 1\n";


/* KEYS: the cursor; ARGV: the cursor read ("": none), the new one, the
 * key prefix "eb:{BUS}:", the index TTL, then (entry id, event id or "",
 * "1" if matched else "0") per entry. Returns {1, cursor} when applied,
 * {0, cursor} when someone else moved it first. */
static const char  ebd_page_script[] =
    "local cur = redis.call('GET', KEYS[1]) or ''\n"
    "if cur ~= ARGV[1] then return {0, cur} end\n"
    "local p, ttl = ARGV[3], ARGV[4]\n"
    "local idx, mins, hours = {}, {}, {}\n"
    "local function add(t, b, m)\n"
    "  local c = t[b] or {0, 0}\n"
    "  c[1] = c[1] + 1\n"
    "  if m == '1' then c[2] = c[2] + 1 end\n"
    "  t[b] = c\n"
    "end\n"
    "for i = 5, #ARGV - 2, 3 do\n"
    "  local e, ev = ARGV[i], ARGV[i + 1]\n"
    "  local ms = tonumber(string.match(e, '^%d+'))\n"
    "  local h = string.format('%d', math.floor(ms / 3600000))\n"
    "  if ev ~= '' then\n"
    "    local k, tok = p .. 'idx:' .. h, 'e:' .. e\n"
    "    local v = redis.call('HGET', k, ev)\n"
    "    if not v then\n"
    "      redis.call('HSET', k, ev, tok)\n"
    "    elseif not string.find(' ' .. v .. ' ', ' ' .. tok .. ' ', 1, true)"
    " then\n"
    "      redis.call('HSET', k, ev, tok .. ' ' .. v)\n"
    "    end\n"
    "    idx[k] = true\n"
    "  end\n"
    "  add(mins, string.format('%d', math.floor(ms / 60000)), ARGV[i + 2])\n"
    "  add(hours, h, ARGV[i + 2])\n"
    "end\n"
    "for k in pairs(idx) do redis.call('EXPIRE', k, ttl) end\n"
    "local function count(t, kind, ttl)\n"
    "  for b, c in pairs(t) do\n"
    "    local k = p .. 'stats:' .. kind .. ':' .. b\n"
    "    redis.call('HINCRBY', k, 'accepted', c[1])\n"
    "    if c[2] > 0 then redis.call('HINCRBY', k, 'matched', c[2]) end\n"
    "    redis.call('EXPIRE', k, ttl)\n"
    "  end\n"
    "end\n"
    "count(mins, 'm', " EBD_STATS_M_TTL ")\n"
    "count(hours, 'h', " EBD_STATS_H_TTL ")\n"
    "redis.call('SET', KEYS[1], ARGV[2])\n"
    "return {1, ARGV[2]}\n";


static char  ebd_attempt_sha[41];
static char  ebd_page_sha[41];


static void
ebd_index_sha1(const char *script, char *hex)
{
    unsigned       i, n;
    unsigned char  md[EVP_MAX_MD_SIZE];

    n = 0;
    (void) EVP_Digest(script, strlen(script), md, &n, EVP_sha1(), NULL);

    for (i = 0; i < n && i < 20; i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
}


/* The bus's command connection is (re)made: the scripts go first, so
 * every EVALSHA after them on this connection finds them (a new
 * primary after a failover, a node after MOVED, a restarted Redis). */
void
ebd_index_conn_ready(ebd_conn_t *c, void *data)
{
    const char  *a[] = { "SCRIPT", "LOAD", ebd_attempt_script };
    const char  *p[] = { "SCRIPT", "LOAD", ebd_page_script };
    ebd_bus_t   *b = data;

    (void) ebd_conn_command(c, NULL, NULL, 3, a, NULL);
    (void) ebd_conn_command(c, NULL, NULL, 3, p, NULL);

    /* the cursor is read again: another ebd may have moved it */
    if (b) {
        b->idx_known = 0;
    }
}


/* NOSCRIPT in the middle of a connection (SCRIPT FLUSH): load again;
 * what was sent meanwhile is lost (a trace entry, the attempt's token
 * and counter; a page is read again). */
static void
ebd_index_noscript(ebd_conn_t *c, redisReply *r)
{
    if (r && r->type == REDIS_REPLY_ERROR
        && strncmp(r->str, "NOSCRIPT", 8) == 0)
    {
        ebd_index_conn_ready(c, NULL);
    }
}


int
ebd_index_setup(ebd_disp_t *dp)
{
    size_t                  i, j;
    uint64_t                ttl;
    ebd_bus_t              *b;
    const eb_config_bus_t  *cb;

    if (ebd_attempt_sha[0] == '\0') {
        ebd_index_sha1(ebd_attempt_script, ebd_attempt_sha);
        ebd_index_sha1(ebd_page_script, ebd_page_sha);
    }

    for (i = 0; i < dp->nbuses; i++) {
        dp->buses[i]->indexing = 0;
    }

    for (i = 0; i < dp->cf->nbuses; i++) {
        cb = &dp->cf->buses[i];

        /* the events' retention (or a week), and an hour for the
         * bucket's own span */
        ttl = (cb->retention_age_ms ? cb->retention_age_ms / 1000
                                    : EBD_INDEX_DEFAULT_S) + 3600;

        for (j = 0; j < dp->nroutes; j++) {
            if (strcmp(dp->routes[j]->bus, cb->name) == 0) {
                dp->routes[j]->idx_ttl_s = ttl;
            }
        }

        if (dp->opts->worker != 0) {
            continue;
        }

        b = ebd_bus_get(dp, cb->name);
        if (b == NULL) {
            return -1;
        }

        b->indexing = 1;
        b->idx_ttl_s = ttl;
    }

    return 0;
}


/* ---- the attempts ------------------------------------------------ */

/* records per call, and bytes: a call is one Redis command */
#define EBD_INDEX_BATCH      256
#define EBD_INDEX_BATCH_MAX  (512 * 1024)


void
ebd_index_attempt(ebd_route_t *r, const char *event_id, uint64_t entered_ms,
    const char *stat, int nfields, const char **fields)
{
    int          i;
    char         n[24], field[160];
    size_t       len, tlen;
    uint64_t     hour = entered_ms / 3600000;
    ebd_disp_t  *dp = r->dp;

    /* a call holds one index bucket */
    if (r->tr_n && (r->tr_hour != hour || r->tr_n >= EBD_INDEX_BATCH
                    || r->tr.len >= EBD_INDEX_BATCH_MAX))
    {
        ebd_index_flush(r);
    }

    if (nfields > 32) {
        nfields = 32;
    }

    /* the record's arguments in the protocol's form at once: the flush
     * puts the command's head before them */
    r->tr_hour = hour;
    ebd_resp_arg(&r->tr, '$', event_id, strlen(event_id));
    len = stat != NULL ? strlen(stat) : 0;
    tlen = strlen(r->target->name);
    if (stat != NULL && len + 1 + tlen < sizeof(field)) {
        /* the counter's field: "delivered:TARGET" */
        memcpy(field, stat, len);
        field[len] = ':';
        memcpy(field + len + 1, r->target->name, tlen);
        ebd_resp_arg(&r->tr, '$', field, len + 1 + tlen);
    } else {
        ebd_resp_arg(&r->tr, '$', "", 0);
    }
    ebd_resp_arg(&r->tr, '$', n, ebd_u64_text(n, (uint64_t) nfields));
    for (i = 0; i < nfields; i++) {
        ebd_resp_arg(&r->tr, '$', fields[i], strlen(fields[i]));
    }
    r->tr_args += 3 + (size_t) nfields;
    r->tr_n++;

    if (!dp->flush_armed) {
        dp->flush_armed = 1;
        event_active(dp->flush, EV_TIMEOUT, 0);
    }
}


void
ebd_index_flush(ebd_route_t *r)
{
    size_t           i;
    char             maxlen[32], ttl[32], cap[16], idx[600], min[600],
                     hour[600];
    uint64_t         now;
    const char      *head[10];
    static eb_buf_t  cmd;

    if (r->tr.failed || r->cmd == NULL) {
        /* the trace is a record: its loss does not touch a delivery */
        ebd_log_debug("route %s: %u trace entries lost (out of memory or "
                      "no connection)", r->stream, r->tr_n);
        goto done;
    }

    now = ebd_now_ms();
    snprintf(maxlen, sizeof(maxlen), "%lld", r->dp->opts->trace_maxlen);
    snprintf(ttl, sizeof(ttl), "%" PRIu64,
             r->idx_ttl_s ? r->idx_ttl_s : EBD_INDEX_DEFAULT_S + 3600);
    snprintf(cap, sizeof(cap), "%d", EBD_INDEX_ATTEMPTS);
    snprintf(idx, sizeof(idx), "eb:{%s}:idx:%" PRIu64, r->bus, r->tr_hour);
    snprintf(min, sizeof(min), "eb:{%s}:stats:m:%" PRIu64, r->bus,
             now / 60000);
    snprintf(hour, sizeof(hour), "eb:{%s}:stats:h:%" PRIu64, r->bus,
             now / 3600000);

    head[0] = "EVALSHA";
    head[1] = ebd_attempt_sha;
    head[2] = "4";
    head[3] = r->trace;
    head[4] = idx;
    head[5] = min;
    head[6] = hour;
    head[7] = maxlen;
    head[8] = ttl;
    head[9] = cap;

    eb_buf_reset(&cmd);
    ebd_resp_arg(&cmd, '*', NULL, 10 + r->tr_args);
    for (i = 0; i < 10; i++) {
        ebd_resp_arg(&cmd, '$', head[i], strlen(head[i]));
    }
    eb_buf_append(&cmd, r->tr.data, r->tr.len);

    if (!cmd.failed) {
        (void) ebd_conn_formatted(r->cmd, ebd_index_attempt_reply, r->cmd,
                                  "EVALSHA", (const char *) cmd.data,
                                  cmd.len);
    }

    if (cmd.failed || cmd.cap > 4 * EBD_INDEX_BATCH_MAX) {
        eb_buf_free(&cmd);
    }

done:

    eb_buf_reset(&r->tr);
    r->tr_n = 0;
    r->tr_args = 0;
}


void
ebd_index_attempt_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    /* other errors are logged by the connection, once per kind; the
     * trace is a record, its loss does not touch the delivery */
    ebd_index_noscript(privdata, reply);
}


/* ---- the indexer ------------------------------------------------- */

static void ebd_index_read(ebd_bus_t *b);


static void
ebd_index_later(ebd_bus_t *b, uint64_t ms)
{
    b->idx_busy = 0;
    b->idx_more = 0;
    b->idx_next_ms = ebd_now_ms() + ms;
}


static void
ebd_index_applied(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply  *r = reply;
    ebd_bus_t   *b = privdata;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2
        || r->element[1]->type != REDIS_REPLY_STRING)
    {
        ebd_index_noscript(b->cmd, r);
        b->idx_known = 0;
        ebd_index_later(b, EBD_INDEX_ERROR_MS);
        return;
    }

    snprintf(b->idx_cursor, sizeof(b->idx_cursor), "%s", r->element[1]->str);
    b->idx_known = 1;
    b->idx_busy = 0;

    if (r->element[0]->integer == 0) {
        /* another ebd applied it first: on from where it got */
        ebd_log_debug("bus %s: index cursor moved by another ebd to %s",
                      b->name, b->idx_cursor);
        b->idx_more = 1;
    }

    if (b->idx_more) {
        /* a full page: the next one at once, not at the next tick */
        ebd_index_read(b);
    } else {
        b->idx_next_ms = ebd_now_ms() + EBD_INDEX_IDLE_MS;
    }
}


static void
ebd_index_page(redisAsyncContext *ac, void *reply, void *privdata)
{
    int                       argc;
    char                      err[128], prefix[600], cursor[600], ttl[32];
    size_t                    i, n;
    redisReply               *r = reply, *e, *ev, *rules;
    ebd_bus_t                *b = privdata;
    const char              **argv;
    eb_event_scan_t           s;
    const eb_event_member_t  *id;
    char                    **ids;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        b->idx_known = 0;
        ebd_index_later(b, EBD_INDEX_ERROR_MS);
        return;
    }

    n = r->elements;

    if (n == 0) {
        ebd_index_later(b, EBD_INDEX_IDLE_MS);
        return;
    }

    argv = calloc(8 + 3 * n, sizeof(char *));
    ids = calloc(n, sizeof(char *));

    if (argv == NULL || ids == NULL) {
        free(argv);
        free(ids);
        ebd_index_later(b, EBD_INDEX_ERROR_MS);
        return;
    }

    snprintf(cursor, sizeof(cursor), "eb:{%s}:idx:cursor", b->name);
    snprintf(prefix, sizeof(prefix), "eb:{%s}:", b->name);
    snprintf(ttl, sizeof(ttl), "%" PRIu64, b->idx_ttl_s);

    argc = 0;
    argv[argc++] = "EVALSHA";
    argv[argc++] = ebd_page_sha;
    argv[argc++] = "1";
    argv[argc++] = cursor;
    argv[argc++] = b->idx_cursor;
    argv[argc++] = r->element[n - 1]->element[0]->str;
    argv[argc++] = prefix;
    argv[argc++] = ttl;

    for (i = 0; i < n; i++) {
        e = r->element[i];
        ev = ebd_reply_field(e->element[1], "event");
        rules = ebd_reply_field(e->element[1], "rules");

        /* the event's id as a delivery reads it; an entry that is not
         * an event object is counted, not indexed */
        if (ev && ev->type == REDIS_REPLY_STRING
            && eb_event_scan((const unsigned char *) ev->str, ev->len, &s,
                             err, sizeof(err)) == 0)
        {
            id = eb_event_scan_get(&s, "id");
            if (id && id->kind == EB_EV_STRING
                && id->text_len == strlen(id->text))
            {
                ids[i] = strdup(id->text);
            }
            eb_event_scan_free(&s);
        }

        argv[argc++] = e->element[0]->str;
        argv[argc++] = ids[i] ? ids[i] : "";
        argv[argc++] = rules && rules->type == REDIS_REPLY_STRING
                       && rules->len ? "1" : "0";
    }

    b->idx_more = n == EBD_INDEX_PAGE;

    if (ebd_conn_command(b->cmd, ebd_index_applied, b, argc, argv, NULL)
        != 0)
    {
        b->idx_known = 0;
        ebd_index_later(b, EBD_INDEX_ERROR_MS);
    }

    for (i = 0; i < n; i++) {
        free(ids[i]);
    }
    free(ids);
    free(argv);
}


static void
ebd_index_read(ebd_bus_t *b)
{
    char         key[600], from[EBD_ID_MAX + 1], count[16];
    const char  *argv[6];

    snprintf(key, sizeof(key), "eb:{%s}:events", b->name);
    snprintf(from, sizeof(from), "(%s", b->idx_cursor);
    snprintf(count, sizeof(count), "%d", EBD_INDEX_PAGE);

    argv[0] = "XRANGE";
    argv[1] = key;
    argv[2] = b->idx_cursor[0] ? from : "-";
    argv[3] = "+";
    argv[4] = "COUNT";
    argv[5] = count;

    if (ebd_conn_command(b->cmd, ebd_index_page, b, 6, argv, NULL) == 0) {
        b->idx_busy = 1;
    }
}


static void
ebd_index_cursor(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply  *r = reply;
    ebd_bus_t   *b = privdata;

    if (r == NULL
        || (r->type != REDIS_REPLY_NIL && r->type != REDIS_REPLY_STRING))
    {
        ebd_index_later(b, EBD_INDEX_ERROR_MS);
        return;
    }

    /* none yet: a new bus starts at the first entry the stream holds */
    snprintf(b->idx_cursor, sizeof(b->idx_cursor), "%s",
             r->type == REDIS_REPLY_STRING ? r->str : "");
    b->idx_known = 1;
    b->idx_busy = 0;
    ebd_index_read(b);
}


void
ebd_index_tick(ebd_disp_t *dp, uint64_t now)
{
    size_t       i;
    char         key[600];
    ebd_bus_t   *b;
    const char  *argv[2];

    for (i = 0; i < dp->nbuses; i++) {
        b = dp->buses[i];

        if (!b->indexing || b->idx_busy
            || (!b->idx_more && now < b->idx_next_ms))
        {
            continue;
        }

        if (b->idx_known) {
            ebd_index_read(b);
            continue;
        }

        snprintf(key, sizeof(key), "eb:{%s}:idx:cursor", b->name);
        argv[0] = "GET";
        argv[1] = key;

        if (ebd_conn_command(b->cmd, ebd_index_cursor, b, 2, argv, NULL)
            == 0)
        {
            b->idx_busy = 1;
        }
    }
}
