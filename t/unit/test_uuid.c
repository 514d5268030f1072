/*
 * eb_uuid: the canonical text, the version and variant bits, v7's
 * timestamp and order, uniqueness over many ids and across pool refills,
 * and that two processes' pools share nothing.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "tap.h"
#include "eb_uuid.h"


#define NUUIDS  100000


/* NULL when u is a well-formed UUID of version v, else what is wrong */
static const char *
uuid_problem(const char *u, int v)
{
    int  i;

    for (i = 0; i < EB_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (u[i] != '-') {
                return "dash missing at 8/13/18/23";
            }
            continue;
        }

        if (!((u[i] >= '0' && u[i] <= '9') || (u[i] >= 'a' && u[i] <= 'f'))) {
            return "not lower-case hex";
        }
    }

    if (u[14] != '0' + v) {
        return "wrong version nibble";
    }

    if (strchr("89ab", u[19]) == NULL) {
        return "variant nibble is not 8-b";
    }

    return NULL;
}


static int
hex_value(char c)
{
    return c <= '9' ? c - '0' : c - 'a' + 10;
}


static int
cmp_uuid(const void *a, const void *b)
{
    return memcmp(a, b, EB_UUID_LEN);
}


static void
test_format(void)
{
    unsigned char  b[16];
    char           out[EB_UUID_LEN + 1];

    memset(b, 0, sizeof(b));
    memset(out, '#', sizeof(out));
    eb_uuid_format(b, out);
    ok(out[EB_UUID_LEN] == '#', "format writes exactly %d bytes", EB_UUID_LEN);
    out[EB_UUID_LEN] = '\0';
    is_str(out, "00000000-0000-0000-0000-000000000000", "zero bytes");

    memcpy(b, "\x01\x23\x45\x67\x89\xab\xcd\xef\xfe\xdc\xba\x98\x76\x54\x32"
              "\x10", 16);
    eb_uuid_format(b, out);
    is_str(out, "01234567-89ab-cdef-fedc-ba9876543210", "byte order kept");
}


static void
test_many(int version)
{
    eb_uuid_gen_t  g;
    char          *all, *u;
    const char    *why;
    int            i, k, bad, dups, missing, seen[EB_UUID_LEN][16];

    all = malloc((size_t) NUUIDS * EB_UUID_LEN);
    if (all == NULL) {
        ok(0, "malloc for %d uuids", NUUIDS);
        return;
    }

    memset(seen, 0, sizeof(seen));
    eb_uuid_gen_init(&g);

    /* 100,000 ids draw 1.6 MB: the 4 KiB pool is refilled ~400 times */
    for (i = 0, bad = 0; i < NUUIDS; i++) {
        u = all + (size_t) i * EB_UUID_LEN;

        if (eb_uuid(&g, version, 1700000000000ULL, u) != 0) {
            bad++;
            continue;
        }

        why = uuid_problem(u, version);
        if (why) {
            if (bad++ == 0) {
                printf("# uuid #%d: %.36s: %s\n", i, u, why);
            }
            continue;
        }

        for (k = 0; k < EB_UUID_LEN; k++) {
            if (u[k] != '-') {
                seen[k][hex_value(u[k])]++;
            }
        }
    }

    is_int(bad, 0, "v%d: %d uuids, all well formed", version, NUUIDS);

    /* every random nibble takes all 16 values, the variant all of 8-b;
     * v7's first 12 nibbles are the (fixed) time */
    for (k = (version == 7) ? 15 : 0, missing = 0; k < EB_UUID_LEN; k++) {
        if (k == 8 || k == 13 || k == 18 || k == 23 || k == 14) {
            continue;
        }

        for (i = (k == 19) ? 8 : 0; i < ((k == 19) ? 12 : 16); i++) {
            if (seen[k][i] == 0) {
                missing++;
            }
        }
    }

    is_int(missing, 0, "v%d: every random nibble takes every value",
           version);

    qsort(all, NUUIDS, EB_UUID_LEN, cmp_uuid);

    for (i = 1, dups = 0; i < NUUIDS; i++) {
        if (memcmp(all + (size_t) (i - 1) * EB_UUID_LEN,
                   all + (size_t) i * EB_UUID_LEN, EB_UUID_LEN) == 0)
        {
            dups++;
        }
    }

    is_int(dups, 0, "v%d: no duplicates", version);

    free(all);
}


static void
test_v7(void)
{
    eb_uuid_gen_t  g;
    char           a[EB_UUID_LEN + 1], b[EB_UUID_LEN + 1];
    uint64_t       ms;
    int            i, order;

    eb_uuid_gen_init(&g);
    a[EB_UUID_LEN] = b[EB_UUID_LEN] = '\0';

    /* RFC 9562's example instant: 2022-02-22 19:22:22 UTC */
    is_int(eb_uuid(&g, EB_UUID_V7, 0x017F22E279B0ULL, a), 0, "v7 made");
    ok(strncmp(a, "017f22e2-79b0-7", 15) == 0,
       "v7 starts with the 48-bit milliseconds and version 7 (%s)", a);

    /* later milliseconds sort later, whatever the random part */
    for (i = 0, order = 0, ms = 1700000000000ULL; i < 1000; i++, ms++) {
        eb_uuid(&g, EB_UUID_V7, ms, a);
        eb_uuid(&g, EB_UUID_V7, ms + 1, b);
        order += memcmp(a, b, EB_UUID_LEN) < 0;
    }

    is_int(order, 1000, "v7 ids of later milliseconds sort later");

    eb_uuid(&g, EB_UUID_V7, 0xffffffffffffULL, a);
    ok(strncmp(a, "ffffffff-ffff-7", 15) == 0, "v7 at the last millisecond");
}


/* A child process with its own empty pool draws other bytes. */
static void
test_fork(void)
{
    int            fd[2], st;
    char           mine[EB_UUID_LEN], theirs[EB_UUID_LEN];
    pid_t          pid;
    eb_uuid_gen_t  g;

    eb_uuid_gen_init(&g);
    eb_uuid(&g, EB_UUID_V4, 0, mine);

    if (pipe(fd) != 0) {
        ok(0, "pipe");
        return;
    }

    pid = fork();

    if (pid == 0) {
        eb_uuid_gen_init(&g);
        eb_uuid(&g, EB_UUID_V4, 0, theirs);
        _exit(write(fd[1], theirs, EB_UUID_LEN) != EB_UUID_LEN);
    }

    eb_uuid(&g, EB_UUID_V4, 0, mine);
    ok(read(fd[0], theirs, EB_UUID_LEN) == EB_UUID_LEN, "child's id read");
    waitpid(pid, &st, 0);
    close(fd[0]);
    close(fd[1]);

    ok(memcmp(mine, theirs, EB_UUID_LEN) != 0,
       "a forked process's next id differs from the parent's next");
}


int
main(void)
{
    test_format();
    test_many(EB_UUID_V4);
    test_many(EB_UUID_V7);
    test_v7();
    test_fork();

    return tap_done();
}
