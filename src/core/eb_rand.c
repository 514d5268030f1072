#include <errno.h>
#include <sys/random.h>

#include "eb_rand.h"


static uint64_t
eb_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}


static uint64_t
eb_splitmix64(uint64_t *x)
{
    uint64_t  z;

    z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}


void
eb_rand_seed(eb_rand_t *r, uint64_t seed)
{
    int  i;

    for (i = 0; i < 4; i++) {
        r->s[i] = eb_splitmix64(&seed);
    }
}


int
eb_rand_seed_os(eb_rand_t *r)
{
    size_t   got;
    ssize_t  n;

    got = 0;

    while (got < sizeof(r->s)) {
        /* GRND_NONBLOCK: never wait for entropy in a worker. */
        n = getrandom((char *) r->s + got, sizeof(r->s) - got, GRND_NONBLOCK);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }

        got += (size_t) n;
    }

    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0) {
        r->s[0] = 1;
    }

    return 0;
}


uint64_t
eb_rand_next(eb_rand_t *r)
{
    uint64_t  result, t;

    result = eb_rotl(r->s[1] * 5, 7) * 9;
    t = r->s[1] << 17;

    r->s[2] ^= r->s[0];
    r->s[3] ^= r->s[1];
    r->s[1] ^= r->s[2];
    r->s[0] ^= r->s[3];
    r->s[2] ^= t;
    r->s[3] = eb_rotl(r->s[3], 45);

    return result;
}

