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


void
eb_uuid_v4(eb_rand_t *r, char *out)
{
    static const char  hex[] = "0123456789abcdef";
    unsigned char      b[16];
    uint64_t           hi, lo;
    int                i, j;

    hi = eb_rand_next(r);
    lo = eb_rand_next(r);

    for (i = 0; i < 8; i++) {
        b[i] = (unsigned char) (hi >> (56 - 8 * i));
        b[8 + i] = (unsigned char) (lo >> (56 - 8 * i));
    }

    b[6] = (unsigned char) ((b[6] & 0x0f) | 0x40);     /* version 4 */
    b[8] = (unsigned char) ((b[8] & 0x3f) | 0x80);     /* variant 10 */

    for (i = 0, j = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[j++] = '-';
        }
        out[j++] = hex[b[i] >> 4];
        out[j++] = hex[b[i] & 0x0f];
    }
}
