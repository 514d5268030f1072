/*
 * eb_rand: splitmix64 seeding and the xoshiro256** sequence against an
 * independent reference.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "eb_rand.h"


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
test_seed_os(void)
{
    eb_rand_t  a, b;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));

    is_int(eb_rand_seed_os(&a), 0, "eb_rand_seed_os succeeds");
    is_int(eb_rand_seed_os(&b), 0, "eb_rand_seed_os succeeds again");

    ok(a.s[0] | a.s[1] | a.s[2] | a.s[3], "os seed: non-zero state");
    ok(memcmp(&a, &b, sizeof(a)) != 0, "two os seeds differ");
}


int
main(void)
{
    test_seed();
    test_next();
    test_seed_os();

    return tap_done();
}
