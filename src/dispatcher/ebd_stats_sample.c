/*
 * The console's backlog and dead letters over time: every 15 s, for
 * each bus it indexes, ebd samples each target's backlog (the ebd
 * group's lag + pending: entries not delivered yet) and its dead-letter
 * length into the bus's stats buckets (ebd_index.c) as backlog:TARGET
 * and dlq:TARGET of eb:{B}:stats:m:M and eb:{B}:stats:h:H (a target in
 * order per key: the sum over its stream and its partitions), so the
 * overview can plot them over the last hour (a sample a minute) and the
 * last day (the hour's last sample). One script a bus: the keys share
 * the bus's slot. A gauge, not a counter: several ebd processes write
 * the same value; the last one stands.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebd_core.h"


#define EBD_SAMPLE_MS        15000
/* streams per script (a target in order per key has one per partition,
 * summed); more: not sampled */
#define EBD_SAMPLE_TARGETS   1024

/* KEYS[1] minute bucket, KEYS[2] hour bucket, then stream, dlq per
 * target; ARGV[1] group, ARGV[2] / ARGV[3] the buckets' TTLs, ARGV[4..]
 * the targets' names */
static const char  ebd_sample_script[] =
    "local sum, dlqs, names = {}, {}, {}\n"
    "for i = 4, #ARGV do\n"
    "  local s, d = KEYS[3 + (i - 4) * 2], KEYS[4 + (i - 4) * 2]\n"
    "  local backlog = 0\n"
    "  if redis.call('EXISTS', s) == 1 then\n"
    "    for _, g in ipairs(redis.call('XINFO', 'GROUPS', s)) do\n"
    "      local name, lag, pending\n"
    "      for j = 1, #g, 2 do\n"
    "        if g[j] == 'name' then name = g[j + 1]\n"
    "        elseif g[j] == 'lag' then lag = g[j + 1]\n"
    "        elseif g[j] == 'pending' then pending = g[j + 1] end\n"
    "      end\n"
    "      if name == ARGV[1] then\n"
    "        if type(lag) ~= 'number' then lag = redis.call('XLEN', s) end\n"
    "        backlog = lag + (pending or 0)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if sum[ARGV[i]] == nil then\n"
    "    names[#names + 1] = ARGV[i]\n"
    "    sum[ARGV[i]] = 0\n"
    "    dlqs[ARGV[i]] = redis.call('XLEN', d)\n"
    "  end\n"
    "  sum[ARGV[i]] = sum[ARGV[i]] + backlog\n"
    "end\n"
    "for _, t in ipairs(names) do\n"
    "  for k = 1, 2 do\n"
    "    redis.call('HSET', KEYS[k], 'backlog:' .. t, sum[t],\n"
    "               'dlq:' .. t, dlqs[t])\n"
    "  end\n"
    "end\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[2])\n"
    "redis.call('EXPIRE', KEYS[2], ARGV[3])\n"
    "return 0\n";


static void
ebd_stats_sample_bus(ebd_disp_t *dp, ebd_bus_t *b, uint64_t now)
{
    int           argc;
    char          mkey[300], hkey[300], nkeys[16];
    size_t        i, n;
    ebd_route_t  *r;
    const char   *argv[7 + 3 * EBD_SAMPLE_TARGETS];
    const char   *names[EBD_SAMPLE_TARGETS];

    snprintf(mkey, sizeof(mkey), "eb:{%s}:stats:m:%llu", b->name,
             (unsigned long long) (now / 60000));
    snprintf(hkey, sizeof(hkey), "eb:{%s}:stats:h:%llu", b->name,
             (unsigned long long) (now / 3600000));

    argc = 3;                   /* EVAL script numkeys: below */
    argv[argc++] = mkey;
    argv[argc++] = hkey;

    n = 0;
    for (i = 0; i < dp->nroutes && n < EBD_SAMPLE_TARGETS; i++) {
        r = dp->routes[i];
        if (strcmp(r->bus, b->name) == 0) {
            argv[argc++] = r->stream;
            argv[argc++] = r->dlq;
            names[n++] = r->target->name;
        }
    }

    if (n == 0) {
        return;
    }

    snprintf(nkeys, sizeof(nkeys), "%zu", 2 + 2 * n);
    argv[0] = "EVAL";
    argv[1] = ebd_sample_script;
    argv[2] = nkeys;
    argv[argc++] = EBD_GROUP;
    argv[argc++] = EBD_STATS_M_TTL;
    argv[argc++] = EBD_STATS_H_TTL;

    for (i = 0; i < n; i++) {
        argv[argc++] = names[i];
    }

    (void) ebd_conn_command(b->cmd, NULL, NULL, argc, argv, NULL);
}


void
ebd_stats_sample_tick(ebd_disp_t *dp, uint64_t now)
{
    size_t  i;

    if (now - dp->last_sample_ms < EBD_SAMPLE_MS) {
        return;
    }

    dp->last_sample_ms = now;

    for (i = 0; i < dp->nbuses; i++) {
        if (dp->buses[i]->indexing && dp->buses[i]->cmd != NULL) {
            ebd_stats_sample_bus(dp, dp->buses[i], now);
        }
    }
}
