#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "eb_uuid.h"


void
eb_uuid_gen_init(eb_uuid_gen_t *g)
{
    g->pos = sizeof(g->buf);
}


int
eb_uuid_random(eb_uuid_gen_t *g, unsigned char *dst, size_t len)
{
    size_t   got;
    ssize_t  n;

    if (sizeof(g->buf) - g->pos < len) {
        got = 0;

        while (got < sizeof(g->buf)) {
            /* GRND_NONBLOCK: never wait for entropy in a worker; the
             * pool is only ever read after boot has seeded the kernel */
            n = getrandom(g->buf + got, sizeof(g->buf) - got, GRND_NONBLOCK);

            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return -1;
            }

            got += (size_t) n;
        }

        g->pos = 0;
    }

    memcpy(dst, g->buf + g->pos, len);

    /* bytes handed out are not kept in memory */
    memset(g->buf + g->pos, 0, len);
    g->pos += len;

    return 0;
}


int
eb_uuid(eb_uuid_gen_t *g, eb_uuid_version_t version, uint64_t unix_ms,
    char *out)
{
    int            i;
    unsigned char  b[16];

    if (version == EB_UUID_V7) {
        /* 48 bits of milliseconds, big-endian, then 74 random bits */
        for (i = 0; i < 6; i++) {
            b[i] = (unsigned char) (unix_ms >> (40 - 8 * i));
        }

        if (eb_uuid_random(g, b + 6, 10) != 0) {
            return -1;
        }

    } else if (eb_uuid_random(g, b, 16) != 0) {
        return -1;
    }

    b[6] = (unsigned char) ((b[6] & 0x0f) | (version << 4));
    b[8] = (unsigned char) ((b[8] & 0x3f) | 0x80);          /* variant 10 */

    eb_uuid_format(b, out);

    return 0;
}


void
eb_uuid_format(const unsigned char b[16], char *out)
{
    static const char  hex[] = "0123456789abcdef";
    int                i, j;

    for (i = 0, j = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[j++] = '-';
        }
        out[j++] = hex[b[i] >> 4];
        out[j++] = hex[b[i] & 0x0f];
    }
}
