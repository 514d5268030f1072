#include <stdlib.h>
#include <string.h>

#include "eb_buf.h"


void
eb_buf_init(eb_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = 0;
}


void
eb_buf_free(eb_buf_t *b)
{
    free(b->data);
    eb_buf_init(b);
}


void
eb_buf_reset(eb_buf_t *b)
{
    b->len = 0;
    b->failed = 0;
}


int
eb_buf_reserve(eb_buf_t *b, size_t len)
{
    size_t          cap;
    unsigned char  *n;

    if (b->failed) {
        return -1;
    }

    if (b->cap - b->len < len) {
        cap = b->cap ? b->cap * 2 : 256;

        while (cap - b->len < len) {
            cap *= 2;
        }

        n = realloc(b->data, cap);
        if (n == NULL) {
            b->failed = 1;
            return -1;
        }

        b->data = n;
        b->cap = cap;
    }

    return 0;
}


int
eb_buf_append(eb_buf_t *b, const void *p, size_t len)
{
    if (len == 0) {
        return b->failed ? -1 : 0;
    }

    if (eb_buf_reserve(b, len) != 0) {
        return -1;
    }

    memcpy(b->data + b->len, p, len);
    b->len += len;

    return 0;
}


int
eb_buf_append_str(eb_buf_t *b, const char *s)
{
    return eb_buf_append(b, s, strlen(s));
}


void
eb_buf_yajl_print(void *ctx, const char *s, size_t len)
{
    (void) eb_buf_append(ctx, s, len);
}
