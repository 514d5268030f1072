/*
 * libFuzzer harness: whatever bytes a Redis node or a Sentinel could send
 * are read by hiredis's own reader, and every reply goes through each
 * topology parser (src/core/eb_redis_topology.c); the raw bytes are also
 * taken as an error text, an address and a key.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "eb_redis_slot.h"
#include "eb_redis_topology.h"


static eb_redis_map_t  map;


/*
 * hiredis 0.14's reader allocates an array's element pointers as soon as
 * it reads the header ("*1092210923" is an 8 GB calloc; reader limits came
 * with hiredis 1.0): that is the library's, not what is fuzzed here, and
 * only the servers we connect to can send it. Such inputs are skipped.
 */
static int
eb_fuzz_huge_count(const uint8_t *data, size_t size)
{
    size_t    i;
    uint64_t  n;

    for (i = 0; i < size; i++) {
        if (data[i] != '*') {
            continue;
        }

        for (n = 0; i + 1 < size && data[i + 1] >= '0' && data[i + 1] <= '9';
             i++)
        {
            n = n * 10 + (data[i + 1] - '0');
            if (n > 100000) {
                return 1;
            }
        }
    }

    return 0;
}


static void
eb_fuzz_reply(const redisReply *r)
{
    char              err[128];
    unsigned          slot;
    eb_redis_addr_t   a;

    if (eb_redis_map_parse(&map, r, "127.0.0.1", err, sizeof(err)) == 0) {
        for (slot = 0; slot < EB_REDIS_SLOTS; slot += 1021) {
            (void) eb_redis_map_node(&map, slot);
        }
    }

    (void) eb_redis_sentinel_parse(r, &a, err, sizeof(err));
    (void) eb_redis_role_is_primary(r);

    if ((r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STATUS
         || r->type == REDIS_REPLY_STRING)
        && eb_redis_error_parse(r->str, r->len, &slot, &a)
           == EB_REDIS_ERROR_MOVED)
    {
        (void) eb_redis_map_set(&map, slot, &a);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void             *r;
    unsigned          slot;
    redisReader      *rd;
    eb_redis_addr_t   a;

    (void) eb_redis_key_slot((const char *) data, size);
    (void) eb_redis_addr_parse((const char *) data, size, &a);
    (void) eb_redis_error_parse((const char *) data, size, &slot, &a);

    if (eb_fuzz_huge_count(data, size)) {
        return 0;
    }

    rd = redisReaderCreate();
    if (rd == NULL) {
        return 0;
    }

    /* several replies may follow each other, as on a pipeline */
    if (redisReaderFeed(rd, (const char *) data, size) == REDIS_OK) {
        while (redisReaderGetReply(rd, &r) == REDIS_OK && r != NULL) {
            eb_fuzz_reply(r);
            freeReplyObject(r);
        }
    }

    redisReaderFree(rd);

    return 0;
}
