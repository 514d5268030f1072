/*
 * The pure parts of the Redis topology client (src/core/eb_redis_slot.c,
 * eb_redis_topology.c), fed with replies as hiredis's own reader builds
 * them from RESP bytes.
 */

#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "tap.h"
#include "eb_redis_slot.h"
#include "eb_redis_topology.h"


static redisReply *
resp(const char *s)
{
    void         *r = NULL;
    redisReader  *rd = redisReaderCreate();

    redisReaderFeed(rd, s, strlen(s));
    if (redisReaderGetReply(rd, &r) != REDIS_OK) {
        r = NULL;
    }
    redisReaderFree(rd);
    return r;
}


static const char *
node(eb_redis_map_t *m, unsigned slot, char *buf)
{
    const eb_redis_addr_t  *a = eb_redis_map_node(m, slot);

    if (a == NULL) {
        return "none";
    }
    sprintf(buf, "%s:%d", a->host, a->port);
    return buf;
}


#define SLOTS3                                                                \
    "*3\r\n"                                                                  \
    "*4\r\n:0\r\n:5460\r\n"                                                   \
        "*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n"                      \
        "*3\r\n$9\r\n127.0.0.1\r\n:7004\r\n$2\r\nid\r\n"                      \
    "*3\r\n:5461\r\n:10922\r\n"                                               \
        "*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nid\r\n"                      \
        "*2\r\n$8\r\nhostname\r\n$4\r\nnode\r\n"                              \
    "*3\r\n:10923\r\n:16383\r\n"                                              \
        "*3\r\n$0\r\n\r\n:7002\r\n$2\r\nid\r\n"


int
main(void)
{
    char              err[256], buf[128];
    unsigned          slot;
    redisReply       *r;
    eb_redis_map_t    m;
    eb_redis_addr_t   a;

    /* CRC-16/XMODEM check value, and slots as CLUSTER KEYSLOT says */
    is_int(eb_redis_crc16((const unsigned char *) "123456789", 9), 0x31c3,
           "crc16 check value");
    is_int(eb_redis_key_slot("foo", 3), 12182, "slot of foo");
    is_int(eb_redis_key_slot("{user1000}.following", 20),
           eb_redis_key_slot("user1000", 8), "hash tag");
    is_int(eb_redis_key_slot("eb:{hr}:events", 14),
           eb_redis_key_slot("eb:{hr}:target:db", 17),
           "every key of a bus on one slot");
    is_int(eb_redis_key_slot("foo{}{bar}", 10),
           eb_redis_crc16((const unsigned char *) "foo{}{bar}", 10) & 16383,
           "empty tag hashes the whole key");
    is_int(eb_redis_key_slot("foo{{bar}}zap", 13),
           eb_redis_key_slot("{bar", 4), "tag is up to the first }");
    is_int(eb_redis_key_slot("foo{bar", 7),
           eb_redis_crc16((const unsigned char *) "foo{bar", 7) & 16383,
           "no closing brace: whole key");
    is_int(eb_redis_key_slot("", 0), 0, "empty key");
    /* as a live redis-server answered CLUSTER KEYSLOT */
    is_int(eb_redis_key_slot("eb:{hr}:events", 14), 7254, "eb:{hr}:events");
    is_int(eb_redis_key_slot("foo{}{bar}", 10), 8363, "foo{}{bar}");
    is_int(eb_redis_key_slot("foo{{bar}}zap", 13), 4015, "foo{{bar}}zap");
    is_int(eb_redis_key_slot("{user1000}.following", 20), 3443,
           "{user1000}.following");

    /* CLUSTER SLOTS, with Redis 7's metadata and an unknown endpoint */
    memset(&m, 0, sizeof(m));
    r = resp(SLOTS3);
    ok(r != NULL, "reply built");
    is_int(eb_redis_map_parse(&m, r, "127.0.0.9", err, sizeof(err)), 0,
           "CLUSTER SLOTS parsed");
    freeReplyObject(r);
    is_int(m.nnodes, 3, "three primaries");
    is_str(node(&m, 0, buf), "127.0.0.1:7000", "slot 0");
    is_str(node(&m, 5460, buf), "127.0.0.1:7000", "slot 5460");
    is_str(node(&m, 5461, buf), "127.0.0.1:7001", "slot 5461");
    is_str(node(&m, 16383, buf), "127.0.0.9:7002",
           "empty endpoint: the node asked");
    is_str(node(&m, 16384, buf), "none", "slot out of range");

    /* MOVED: one slot to a new node, and to a known one */
    eb_redis_addr_parse("127.0.0.1:7005", 14, &a);
    is_int(eb_redis_map_set(&m, 100, &a), 0, "map set");
    is_str(node(&m, 100, buf), "127.0.0.1:7005", "slot moved");
    is_str(node(&m, 101, buf), "127.0.0.1:7000", "neighbour kept");
    is_int(m.nnodes, 4, "node added");
    eb_redis_addr_parse("127.0.0.1:7001", 14, &a);
    eb_redis_map_set(&m, 101, &a);
    is_int(m.nnodes, 4, "known node not added twice");

    /* a partial map: slots nobody serves */
    r = resp("*1\r\n*3\r\n:0\r\n:10\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n");
    is_int(eb_redis_map_parse(&m, r, "127.0.0.1", err, sizeof(err)), 0,
           "partial map parsed");
    freeReplyObject(r);
    is_str(node(&m, 10, buf), "127.0.0.1:7000", "served slot");
    is_str(node(&m, 11, buf), "none", "unserved slot");
    is_str(node(&m, 100, buf), "none", "old map replaced");

    /* malformed replies: refused, map emptied, never a crash */
    {
        static const char  *bad[] = {
            "$3\r\nfoo\r\n",
            "-ERR This instance has cluster support disabled\r\n",
            "*1\r\n:1\r\n",
            "*1\r\n*2\r\n:0\r\n:1\r\n",
            "*1\r\n*3\r\n:5\r\n:1\r\n*2\r\n$9\r\n127.0.0.1\r\n:1\r\n",
            "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$9\r\n127.0.0.1\r\n:1\r\n",
            "*1\r\n*3\r\n:-1\r\n:1\r\n*2\r\n$9\r\n127.0.0.1\r\n:1\r\n",
            "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$9\r\n127.0.0.1\r\n:0\r\n",
            "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$9\r\n127.0.0.1\r\n:70000\r\n",
            "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$9\r\n127.0.0.1\r\n$4\r\n7000\r\n",
            "*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$9\r\n127.0.0.1\r\n",
            "*1\r\n*3\r\n:0\r\n:1\r\n$9\r\n127.0.0.1\r\n",
            "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$11\r\nredis.local\r\n:1\r\n",
            "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:5\r\n:1\r\n",
            NULL
        };
        int  i, all = 1;

        for (i = 0; bad[i]; i++) {
            r = resp(bad[i]);
            if (eb_redis_map_parse(&m, r, "127.0.0.1", err, sizeof(err))
                != -1 || m.nnodes != 0 || eb_redis_map_node(&m, 0))
            {
                all = 0;
                printf("# accepted: case %d\n", i);
            }
            freeReplyObject(r);
        }
        ok(all, "malformed CLUSTER SLOTS replies refused");
        ok(eb_redis_map_parse(&m, NULL, "", err, sizeof(err)) == -1,
           "no reply refused");
    }

    r = resp("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$11\r\nredis.local\r\n:1\r\n");
    eb_redis_map_parse(&m, r, "127.0.0.1", err, sizeof(err));
    freeReplyObject(r);
    ok(strstr(err, "not numeric") != NULL, "host names refused: %s", err);

    /* IPv6 */
    r = resp("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$3\r\n::1\r\n:7000\r\n");
    is_int(eb_redis_map_parse(&m, r, "127.0.0.1", err, sizeof(err)), 0,
           "IPv6 map");
    freeReplyObject(r);
    is_str(node(&m, 5, buf), "::1:7000", "IPv6 node");
    eb_redis_map_free(&m);
    is_str(node(&m, 5, buf), "none", "freed map serves nothing");

    /* too many primaries */
    {
        size_t  i;
        char   *s = malloc(80 * 2000 + 16), *p = s;

        p += sprintf(p, "*%d\r\n", 1100);
        for (i = 0; i < 1100; i++) {
            p += sprintf(p, "*3\r\n:%zu\r\n:%zu\r\n*2\r\n$9\r\n127.0.0.1\r\n"
                         ":%zu\r\n", i, i, 1000 + i);
        }
        r = resp(s);
        ok(eb_redis_map_parse(&m, r, "127.0.0.1", err, sizeof(err)) == -1
           && strstr(err, "too many"), "more primaries than the limit");
        freeReplyObject(r);
        free(s);
    }

    /* SENTINEL get-master-addr-by-name */
    r = resp("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n");
    is_int(eb_redis_sentinel_parse(r, &a, err, sizeof(err)), 1, "sentinel");
    is_str(a.host, "127.0.0.1", "sentinel host");
    is_int(a.port, 6380, "sentinel port");
    freeReplyObject(r);
    r = resp("*-1\r\n");
    is_int(eb_redis_sentinel_parse(r, &a, err, sizeof(err)), 0,
           "unknown master: nil array");
    freeReplyObject(r);
    r = resp("$-1\r\n");
    is_int(eb_redis_sentinel_parse(r, &a, err, sizeof(err)), 0,
           "unknown master: nil");
    freeReplyObject(r);
    {
        static const char  *bad[] = {
            "-IDONTKNOW I have not enough information\r\n",
            "*1\r\n$9\r\n127.0.0.1\r\n",
            "*2\r\n$9\r\n127.0.0.1\r\n:6380\r\n",
            "*2\r\n$9\r\n127.0.0.1\r\n$5\r\n65536\r\n",
            "*2\r\n$9\r\n127.0.0.1\r\n$6\r\n123456\r\n",
            "*2\r\n$9\r\n127.0.0.1\r\n$0\r\n\r\n",
            "*2\r\n$9\r\n127.0.0.1\r\n$2\r\n8x\r\n",
            "*2\r\n$4\r\nhost\r\n$4\r\n6380\r\n",
            "*2\r\n$0\r\n\r\n$4\r\n6380\r\n",
            "+OK\r\n",
            NULL
        };
        int  i, all = 1;

        for (i = 0; bad[i]; i++) {
            r = resp(bad[i]);
            if (eb_redis_sentinel_parse(r, &a, err, sizeof(err)) != -1) {
                all = 0;
                printf("# accepted: case %d\n", i);
            }
            freeReplyObject(r);
        }
        ok(all, "malformed sentinel replies refused");
    }

    /* ROLE */
    r = resp("*3\r\n$6\r\nmaster\r\n:10\r\n*0\r\n");
    is_int(eb_redis_role_is_primary(r), 1, "ROLE master");
    freeReplyObject(r);
    r = resp("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6379\r\n"
             "$9\r\nconnected\r\n:10\r\n");
    is_int(eb_redis_role_is_primary(r), 0, "ROLE replica");
    freeReplyObject(r);
    r = resp("$6\r\nmaster\r\n");
    is_int(eb_redis_role_is_primary(r), -1, "not a ROLE reply");
    freeReplyObject(r);
    r = resp("*0\r\n");
    is_int(eb_redis_role_is_primary(r), -1, "empty ROLE reply");
    freeReplyObject(r);

    /* errors */
#define ERR(s)  s, sizeof(s) - 1, &slot, &a
    is_int(eb_redis_error_parse(ERR("MOVED 3999 127.0.0.1:6381")),
           EB_REDIS_ERROR_MOVED, "MOVED");
    is_int(slot, 3999, "MOVED slot");
    is_str(a.host, "127.0.0.1", "MOVED host");
    is_int(a.port, 6381, "MOVED port");
    is_int(eb_redis_error_parse(ERR("ASK 16383 ::1:7002")),
           EB_REDIS_ERROR_ASK, "ASK to IPv6");
    is_str(a.host, "::1", "ASK IPv6 host");
    is_int(slot, 16383, "ASK slot");
    is_int(eb_redis_error_parse(ERR("MOVED 3999 redis-1:6381")),
           EB_REDIS_ERROR_REFRESH, "MOVED to a host name: refresh");
    is_int(eb_redis_error_parse(ERR("MOVED 3999 :6381")),
           EB_REDIS_ERROR_REFRESH, "MOVED to no host: refresh");
    is_int(eb_redis_error_parse(ERR("MOVED 16384 127.0.0.1:6381")),
           EB_REDIS_ERROR_REFRESH, "MOVED slot out of range");
    is_int(eb_redis_error_parse(ERR("MOVED 3999")),
           EB_REDIS_ERROR_REFRESH, "MOVED without address");
    is_int(eb_redis_error_parse(ERR("MOVED x 127.0.0.1:1")),
           EB_REDIS_ERROR_REFRESH, "MOVED bad slot");
    is_int(eb_redis_error_parse(ERR("MOVED 1 127.0.0.1:1 extra")),
           EB_REDIS_ERROR_REFRESH, "MOVED trailing words");
    is_int(eb_redis_error_parse(ERR("MOVED 1 127.0.0.1:99999")),
           EB_REDIS_ERROR_REFRESH, "MOVED bad port");
    is_int(eb_redis_error_parse(ERR("MOVED")), EB_REDIS_ERROR_REFRESH,
           "bare MOVED: refresh");
    is_int(eb_redis_error_parse(ERR("ASK ")), EB_REDIS_ERROR_REFRESH,
           "ASK with nothing after it: refresh");
    is_int(eb_redis_error_parse(ERR("TRYAGAIN Multiple keys request during "
                                    "rehashing of slot")),
           EB_REDIS_ERROR_TRYAGAIN, "TRYAGAIN");
    is_int(eb_redis_error_parse(ERR("READONLY You can't write against a "
                                    "read only replica.")),
           EB_REDIS_ERROR_REFRESH, "READONLY");
    is_int(eb_redis_error_parse(ERR("LOADING Redis is loading the dataset "
                                    "in memory")),
           EB_REDIS_ERROR_REFRESH, "LOADING");
    is_int(eb_redis_error_parse(ERR("CLUSTERDOWN The cluster is down")),
           EB_REDIS_ERROR_REFRESH, "CLUSTERDOWN");
    is_int(eb_redis_error_parse(ERR("MASTERDOWN Link with MASTER is down")),
           EB_REDIS_ERROR_REFRESH, "MASTERDOWN");
    is_int(eb_redis_error_parse(ERR("OOM command not allowed")),
           EB_REDIS_ERROR_RETRY, "OOM");
    is_int(eb_redis_error_parse(ERR("BUSY Redis is busy running a script")),
           EB_REDIS_ERROR_RETRY, "BUSY");
    is_int(eb_redis_error_parse(ERR("BUSYGROUP Consumer Group name already "
                                    "exists")),
           EB_REDIS_ERROR_FATAL, "BUSYGROUP is not BUSY");
    is_int(eb_redis_error_parse(ERR("NOGROUP No such key")),
           EB_REDIS_ERROR_FATAL, "NOGROUP: the caller's");
    is_int(eb_redis_error_parse(ERR("ERR wrong number of arguments")),
           EB_REDIS_ERROR_FATAL, "ERR");
    is_int(eb_redis_error_parse("", 0, &slot, &a), EB_REDIS_ERROR_FATAL,
           "empty error");

    /* addresses */
    is_int(eb_redis_addr_parse("[::1]:6379", 10, &a), 0, "bracketed IPv6");
    is_str(a.host, "::1", "bracketed IPv6 host");
    is_int(eb_redis_addr_parse("localhost:6379", 14, &a), -1,
           "host name refused");
    is_int(eb_redis_addr_parse("127.0.0.1", 9, &a), -1, "no port");
    is_int(eb_redis_addr_parse("127.0.0.1:", 10, &a), -1, "empty port");
    is_int(eb_redis_addr_parse(":6379", 5, &a), -1, "empty host");
    is_int(eb_redis_addr_parse("127.0.0.1:0", 11, &a), -1, "port 0");

    return tap_done();
}
