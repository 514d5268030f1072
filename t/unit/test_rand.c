/*
 * eb_rand: splitmix64 seeding, the xoshiro256** sequence against an
 * independent reference, and the shape and uniqueness of v4 UUIDs.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "eb_rand.h"


#define NUUIDS  100000


/* Reference xoshiro256** (Blackman & Vigna), written independently of
 * src/core so that the two are compared, not one with itself. */
static uint64_t
ref_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}


static uint64_t
ref_next(uint64_t s[4])
{
    uint64_t  result, t;

    result = ref_rotl(s[1] * 5, 7) * 9;
    t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ref_rotl(s[3], 45);

    return result;
}


/* Canonical text of the UUID made from the 128 bits hi:lo, with the
 * version and variant bits forced. */
static void
ref_uuid(uint64_t hi, uint64_t lo, char *out)
{
    static const char  hex[] = "0123456789abcdef";
    unsigned char      b[16];
    int                i, j;

    for (i = 0; i < 8; i++) {
        b[i] = (unsigned char) (hi >> (56 - 8 * i));
        b[8 + i] = (unsigned char) (lo >> (56 - 8 * i));
    }

    b[6] = (unsigned char) ((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char) ((b[8] & 0x3f) | 0x80);

    for (i = 0, j = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[j++] = '-';
        }
        out[j++] = hex[b[i] >> 4];
        out[j++] = hex[b[i] & 0x0f];
    }

    out[j] = '\0';
}


/* Returns NULL when u is a well-formed v4 UUID, else what is wrong. */
static const char *
uuid_problem(const char *u)
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

    if (u[14] != '4') {
        return "version nibble is not 4";
    }

    if (strchr("89ab", u[19]) == NULL) {
        return "variant nibble is not 8-b";
    }

    return NULL;
}


static int
cmp_uuid(const void *a, const void *b)
{
    return memcmp(a, b, EB_UUID_LEN);
}


static int
hex_value(char c)
{
    return c <= '9' ? c - '0' : c - 'a' + 10;
}


static void
test_seed(void)
{
    eb_rand_t  a, b;
    int        i, same;

    /* splitmix64 from 0: the published first four outputs */
    eb_rand_seed(&a, 0);
    ok(a.s[0] == 0xe220a8397b1dcdafULL, "seed 0: s[0] is splitmix64 #1");
    ok(a.s[1] == 0x6e789e6aa1b965f4ULL, "seed 0: s[1] is splitmix64 #2");
    ok(a.s[2] == 0x06c45d188009454fULL, "seed 0: s[2] is splitmix64 #3");
    ok(a.s[3] == 0xf88bb8a8724c81ecULL, "seed 0: s[3] is splitmix64 #4");

    eb_rand_seed(&a, 12345);
    eb_rand_seed(&b, 12345);
    ok(memcmp(&a, &b, sizeof(a)) == 0, "same seed, same state");

    for (i = 0, same = 1; i < 10000; i++) {
        if (eb_rand_next(&a) != eb_rand_next(&b)) {
            same = 0;
        }
    }

    ok(same, "same seed, same 10000 outputs");

    eb_rand_seed(&a, 12345);
    eb_rand_seed(&b, 12346);
    ok(memcmp(&a, &b, sizeof(a)) != 0, "neighbouring seeds, other state");

    for (i = 0, same = 0; i < 1000; i++) {
        if (eb_rand_next(&a) == eb_rand_next(&b)) {
            same++;
        }
    }

    is_int(same, 0, "neighbouring seeds share no output in 1000");

    eb_rand_seed(&a, 0);
    ok(a.s[0] | a.s[1] | a.s[2] | a.s[3], "seed 0 gives a non-zero state");

    eb_rand_seed(&a, UINT64_MAX);
    ok(a.s[0] | a.s[1] | a.s[2] | a.s[3], "seed 2^64-1: non-zero state");
}


static void
test_next(void)
{
    eb_rand_t  r;
    uint64_t   ref[4], v;
    int        i, bad, ones;

    /* the reference sequence of xoshiro256** from the state {1, 2, 3, 4} */
    r.s[0] = 1;
    r.s[1] = 2;
    r.s[2] = 3;
    r.s[3] = 4;

    ok(eb_rand_next(&r) == 11520ULL, "{1,2,3,4}: output #1 is 11520");
    ok(eb_rand_next(&r) == 0ULL, "{1,2,3,4}: output #2 is 0");
    ok(eb_rand_next(&r) == 1509978240ULL,
       "{1,2,3,4}: output #3 is 1509978240");
    ok(eb_rand_next(&r) == 1215971899390074240ULL,
       "{1,2,3,4}: output #4 is 1215971899390074240");

    eb_rand_seed(&r, 0xdeadbeefULL);
    memcpy(ref, r.s, sizeof(ref));

    for (i = 0, bad = 0; i < 100000; i++) {
        if (eb_rand_next(&r) != ref_next(ref)) {
            bad++;
        }
    }

    is_int(bad, 0, "100000 outputs equal the reference xoshiro256**");
    ok(memcmp(ref, r.s, sizeof(ref)) == 0, "and leave the same state");

    /* a crude sanity check of the bits: 10000 x 64 bits, half set */
    eb_rand_seed(&r, 42);

    for (i = 0, ones = 0; i < 10000; i++) {
        v = eb_rand_next(&r);

        while (v) {
            ones += (int) (v & 1);
            v >>= 1;
        }
    }

    ok(ones > 320000 - 3200 && ones < 320000 + 3200,
       "about half of 640000 output bits are set (%d)", ones);
}


static void
test_uuid_format(void)
{
    eb_rand_t    r, r2;
    uint64_t     ref[4], hi, lo;
    char         buf[EB_UUID_LEN + 8], want[EB_UUID_LEN + 1];
    const char  *why;

    eb_rand_seed(&r, 7);
    memset(buf, '#', sizeof(buf));
    eb_uuid_v4(&r, buf);

    why = uuid_problem(buf);
    ok(why == NULL, "uuid is well formed%s%s", why ? ": " : "",
       why ? why : "");
    ok(buf[EB_UUID_LEN] == '#', "uuid writes exactly %d bytes (no NUL)",
       EB_UUID_LEN);
    ok(memchr(buf, '\0', EB_UUID_LEN) == NULL, "uuid has no NUL inside");

    buf[EB_UUID_LEN] = '\0';
    is_int(strlen(buf), 36, "uuid is 36 characters");

    /* the uuid is the next two outputs, big-endian, with 6 bits forced */
    eb_rand_seed(&r, 99);
    memcpy(ref, r.s, sizeof(ref));
    hi = ref_next(ref);
    lo = ref_next(ref);
    ref_uuid(hi, lo, want);

    eb_uuid_v4(&r, buf);
    buf[EB_UUID_LEN] = '\0';
    is_str(buf, want, "uuid is made of the next two outputs");
    ok(memcmp(ref, r.s, sizeof(ref)) == 0, "uuid consumes two outputs");

    /* deterministic */
    eb_rand_seed(&r, 2024);
    eb_rand_seed(&r2, 2024);
    eb_uuid_v4(&r, buf);
    eb_uuid_v4(&r2, want);
    ok(memcmp(buf, want, EB_UUID_LEN) == 0, "same seed, same uuid");
    eb_uuid_v4(&r, buf);
    ok(memcmp(buf, want, EB_UUID_LEN) != 0, "the next uuid differs");

    /* all-ones and all-zero outputs still give version 4, variant 10 */
    ref_uuid(0, 0, want);
    is_str(want, "00000000-0000-4000-8000-000000000000",
           "reference: zero bits");
    ref_uuid(UINT64_MAX, UINT64_MAX, want);
    is_str(want, "ffffffff-ffff-4fff-bfff-ffffffffffff",
           "reference: one bits");

    r.s[0] = 0;
    r.s[1] = 0;
    r.s[2] = 0;
    r.s[3] = 0;
    eb_uuid_v4(&r, buf);
    buf[EB_UUID_LEN] = '\0';
    is_str(buf, "00000000-0000-4000-8000-000000000000",
           "uuid of an all-zero state");
}


static void
test_uuid_many(void)
{
    eb_rand_t    r;
    char        *all, *u;
    const char  *why;
    int          i, k, bad, dups, seen[EB_UUID_LEN][16], missing;

    all = malloc((size_t) NUUIDS * EB_UUID_LEN);
    if (all == NULL) {
        ok(0, "malloc for %d uuids", NUUIDS);
        return;
    }

    memset(seen, 0, sizeof(seen));
    eb_rand_seed(&r, 0x5eed);

    for (i = 0, bad = 0; i < NUUIDS; i++) {
        u = all + (size_t) i * EB_UUID_LEN;
        eb_uuid_v4(&r, u);

        why = uuid_problem(u);
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

    is_int(bad, 0, "%d uuids are all well formed", NUUIDS);

    /* every free nibble takes all 16 values, the variant all of 8-b */
    for (k = 0, missing = 0; k < EB_UUID_LEN; k++) {
        if (k == 8 || k == 13 || k == 18 || k == 23 || k == 14) {
            continue;
        }

        for (i = (k == 19) ? 8 : 0; i < ((k == 19) ? 12 : 16); i++) {
            if (seen[k][i] == 0) {
                missing++;
            }
        }
    }

    is_int(missing, 0, "every random nibble position takes every value");
    ok(seen[14][4] == NUUIDS, "version nibble always 4");

    qsort(all, NUUIDS, EB_UUID_LEN, cmp_uuid);

    for (i = 1, dups = 0; i < NUUIDS; i++) {
        if (memcmp(all + (size_t) (i - 1) * EB_UUID_LEN,
                   all + (size_t) i * EB_UUID_LEN, EB_UUID_LEN) == 0)
        {
            dups++;
        }
    }

    is_int(dups, 0, "%d uuids from one seed have no duplicates", NUUIDS);

    free(all);
}


static void
test_seed_os(void)
{
    eb_rand_t    a, b;
    char         ua[EB_UUID_LEN], ub[EB_UUID_LEN + 1];
    const char  *why;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));

    is_int(eb_rand_seed_os(&a), 0, "eb_rand_seed_os succeeds");
    is_int(eb_rand_seed_os(&b), 0, "eb_rand_seed_os succeeds again");

    ok(a.s[0] | a.s[1] | a.s[2] | a.s[3], "os seed: non-zero state");
    ok(memcmp(&a, &b, sizeof(a)) != 0, "two os seeds differ");

    eb_uuid_v4(&a, ua);
    eb_uuid_v4(&b, ub);
    ok(memcmp(ua, ub, EB_UUID_LEN) != 0, "their uuids differ");

    ub[EB_UUID_LEN] = '\0';
    why = uuid_problem(ub);
    ok(why == NULL, "os-seeded uuid is well formed (%s)", ub);
}


int
main(void)
{
    test_seed();
    test_next();
    test_uuid_format();
    test_uuid_many();
    test_seed_os();

    return tap_done();
}
