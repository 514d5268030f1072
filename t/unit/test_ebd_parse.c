/*
 * ebd's pure parts: retry policies (ebd_retry.c) and the parsing of
 * Redis addresses and command-line times (ebd_parse.c).
 */

#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "tap.h"
#include "ebd.h"
#include "ebd_retry.h"


static yajl_val
parse(const char *s)
{
    char  err[256];
    return yajl_tree_parse(s, err, sizeof(err));
}


int
main(void)
{
    char         err[256];
    uint64_t     ms, d;
    unsigned     i;
    yajl_val     v;
    ebd_addr_t   a;
    ebd_retry_t  r;

    /* defaults: the seed's two strategies */
    ebd_retry_from_config(&r, NULL);
    is_int(r.strategy, EBD_RETRY_BACKOFF, "default strategy: backoff");
    is_int(r.attempts, 3, "backoff: 3 retries");
    is_int(ebd_retry_delay(&r, 1, 0.0), 10000, "backoff: 10 s at the least");
    is_int(ebd_retry_delay(&r, 2, 0.999999), 19999, "backoff: under 20 s");
    is_int(r.max_age_ms, 0, "backoff: no maximum age");

    v = parse("{\"strategy\":\"exponential\"}");
    ebd_retry_from_config(&r, v);
    is_int(r.attempts, 176, "exponential: 176 retries");
    is_int(r.max_age_ms, 86400000, "exponential: a day at most");
    is_int(ebd_retry_delay(&r, 1, 0.0), 1000, "exponential: 1 s first");
    is_int(ebd_retry_delay(&r, 2, 0.0), 2000, "exponential: then 2 s");
    is_int(ebd_retry_delay(&r, 10, 0.0), 512000, "exponential: 512 s at retry 10");
    is_int(ebd_retry_delay(&r, 176, 0.0), 512000, "exponential: capped at 512 s");
    is_int(ebd_retry_delay(&r, 1000000, 0.0), 512000, "exponential: no overflow");
    d = ebd_retry_delay(&r, 3, 0.999);
    ok(d < 4000 && d >= 3600, "exponential: jitter up to 10 %% (%llu)",
       (unsigned long long) d);
    {
        /* the seed: 176 retries over about a day */
        uint64_t  total = 0;
        for (i = 1; i <= r.attempts; i++) {
            total += ebd_retry_delay(&r, i, 0.0);
        }
        ok(total > 80000000 && total < 90000000,
           "exponential: 176 retries take about a day (%llu ms)",
           (unsigned long long) total);
    }
    yajl_tree_free(v);

    v = parse("{\"strategy\":\"backoff\",\"attempts\":7,\"interval\":\"50ms\","
              "\"max_interval\":\"100ms\",\"max_age\":\"1m\"}");
    ebd_retry_from_config(&r, v);
    is_int(r.attempts, 7, "attempts from the file");
    is_int(ebd_retry_delay(&r, 1, 0.0), 50, "interval from the file");
    is_int(ebd_retry_delay(&r, 1, 0.5), 75, "between interval and max_interval");
    is_int(r.max_age_ms, 60000, "max_age from the file");
    yajl_tree_free(v);

    v = parse("{\"interval\":\"30s\"}");
    ebd_retry_from_config(&r, v);
    is_int(r.max_interval_ms, 30000, "max_interval is at least interval");
    yajl_tree_free(v);

    /* addresses */
    ok(ebd_addr_parse("127.0.0.1:6380", &a, err, sizeof(err)) == 0
       && strcmp(a.host, "127.0.0.1") == 0 && a.port == 6380, "host:port");
    ok(ebd_addr_parse("localhost", &a, err, sizeof(err)) == 0
       && a.port == 6379, "host alone: port 6379");
    ok(ebd_addr_parse("[::1]:7000", &a, err, sizeof(err)) == 0
       && strcmp(a.host, "::1") == 0 && a.port == 7000, "[IPv6]:port");
    ok(ebd_addr_parse("unix:/run/redis.sock", &a, err, sizeof(err)) == 0
       && strcmp(a.path, "/run/redis.sock") == 0, "unix:path");
    ok(ebd_addr_parse("/run/redis.sock", &a, err, sizeof(err)) == 0
       && strcmp(a.path, "/run/redis.sock") == 0, "a path");
    ok(ebd_addr_parse("h:0", &a, err, sizeof(err)) != 0, "port 0 refused");
    ok(ebd_addr_parse("h:99999", &a, err, sizeof(err)) != 0, "port too big");
    ok(ebd_addr_parse("h:x", &a, err, sizeof(err)) != 0
       && strstr(err, "invalid port"), "bad port: %s", err);
    ok(ebd_addr_parse(":6379", &a, err, sizeof(err)) != 0, "no host");

    /* --metrics ADDR */
    ok(ebd_listen_parse("127.0.0.1:9464", &a, err, sizeof(err)) == 0
       && strcmp(a.host, "127.0.0.1") == 0 && a.port == 9464,
       "listen: host:port");
    ok(ebd_listen_parse("[::1]:9464", &a, err, sizeof(err)) == 0
       && strcmp(a.host, "::1") == 0 && a.port == 9464, "listen: [IPv6]:port");
    ok(ebd_listen_parse(":9464", &a, err, sizeof(err)) == 0
       && a.host[0] == '\0' && a.port == 9464, "listen: :port, every address");
    ok(ebd_listen_parse("localhost:1", &a, err, sizeof(err)) == 0
       && strcmp(a.host, "localhost") == 0 && a.port == 1, "listen: a name");
    ok(ebd_listen_parse("127.0.0.1", &a, err, sizeof(err)) != 0
       && strstr(err, "HOST:PORT"), "listen: a port is required: %s", err);
    ok(ebd_listen_parse("h:", &a, err, sizeof(err)) != 0
       && strstr(err, "invalid port"), "listen: empty port: %s", err);
    ok(ebd_listen_parse("h:0", &a, err, sizeof(err)) != 0, "listen: port 0");
    ok(ebd_listen_parse("h:65536", &a, err, sizeof(err)) != 0,
       "listen: port too big");
    ok(ebd_listen_parse("h:+80", &a, err, sizeof(err)) != 0,
       "listen: a sign refused");
    ok(ebd_listen_parse("::1:9464", &a, err, sizeof(err)) != 0
       && strstr(err, "invalid host"), "listen: IPv6 without brackets: %s",
       err);
    ok(ebd_listen_parse("[]:9464", &a, err, sizeof(err)) != 0,
       "listen: empty brackets");
    ok(ebd_listen_parse("[::1:9464", &a, err, sizeof(err)) != 0,
       "listen: an open bracket");

    /* lists of addresses: a cluster's seeds, the sentinels */
    {
        size_t       n;
        ebd_addr_t  *l;

        ok(ebd_addr_list("10.0.0.1:7000,[::1]:7001,node-c", &l, &n, err,
                         sizeof(err)) == 0 && n == 3
           && strcmp(l[0].host, "10.0.0.1") == 0 && l[0].port == 7000
           && strcmp(l[1].host, "::1") == 0 && l[1].port == 7001
           && strcmp(l[2].host, "node-c") == 0 && l[2].port == 6379,
           "list of three");
        free(l);
        ok(ebd_addr_list("/run/redis.sock", &l, &n, err, sizeof(err)) == 0
           && n == 1 && strcmp(l[0].path, "/run/redis.sock") == 0,
           "list of one path");
        free(l);
        ok(ebd_addr_list("a:1,,b:2", &l, &n, err, sizeof(err)) != 0
           && l == NULL && n == 0 && strstr(err, "empty address"),
           "an empty member refused: %s", err);
        ok(ebd_addr_list("a:1,", &l, &n, err, sizeof(err)) != 0,
           "a trailing comma refused");
        ok(ebd_addr_list("", &l, &n, err, sizeof(err)) != 0,
           "nothing refused");
        ok(ebd_addr_list("a:1,b:70000", &l, &n, err, sizeof(err)) != 0
           && strstr(err, "invalid port"), "a bad member refused: %s", err);
    }

    /* times */
    ok(ebd_parse_time("1700000000000", 0, &ms) == 0 && ms == 1700000000000ULL,
       "ms since the epoch");
    ok(ebd_parse_time("2026-11-23T10:00:00Z", 0, &ms) == 0
       && ms == 1795428000000ULL, "RFC 3339, Z");
    ok(ebd_parse_time("2026-11-23T11:00:00.250+01:00", 0, &ms) == 0
       && ms == 1795428000250ULL, "RFC 3339, offset and fraction");
    ok(ebd_parse_time("1970-01-01T00:00:00Z", 0, &ms) == 0 && ms == 0,
       "the epoch");
    ok(ebd_parse_time("2000-02-29T00:00:00Z", 0, &ms) == 0
       && ms == 951782400000ULL, "a leap day");
    ok(ebd_parse_time("-10m", 1000000, &ms) == 0 && ms == 400000,
       "relative: -10m");
    ok(ebd_parse_time("-2h", 10000000, &ms) == 0 && ms == 2800000,
       "relative: -2h");
    ok(ebd_parse_time("now", 1234, &ms) == 0 && ms == 1234, "now");
    ok(ebd_parse_time("-5x", 1000000, &ms) != 0, "bad unit refused");
    ok(ebd_parse_time("yesterday", 0, &ms) != 0, "words refused");
    ok(ebd_parse_time("2026-13-01T00:00:00Z", 0, &ms) != 0, "month 13 refused");
    ok(ebd_parse_time("2026-11-23T10:00:00Zjunk", 0, &ms) != 0,
       "trailing text refused");
    ok(ebd_parse_time("-100d", 1000, &ms) != 0, "before the epoch refused");

    return tap_done();
}
