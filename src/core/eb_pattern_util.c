/*
 * Event patterns: growable arrays, the byte-string map, and the value
 * helpers that compile and match share (numbers, case folding, IP
 * addresses, wildcards).
 */

/* memmem() */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eb_pattern_int.h"


int
eb_pm_vec_reserve(eb_pm_vec_t *v, size_t size, size_t count)
{
    size_t   cap;
    void    *p;

    if (count <= v->cap) {
        return 0;
    }

    cap = v->cap ? v->cap : 8;

    while (cap < count) {
        cap *= 2;
    }

    p = realloc(v->data, cap * size);
    if (p == NULL) {
        return -1;
    }

    v->data = p;
    v->cap = cap;

    return 0;
}


void *
eb_pm_vec_push(eb_pm_vec_t *v, size_t size, size_t count)
{
    unsigned char  *p;

    if (count == 0) {
        /* a valid pointer, never written through */
        return v->data ? (unsigned char *) v->data + v->n * size
                       : (void *) v;
    }

    if (v->cap - v->n < count
        && eb_pm_vec_reserve(v, size, v->n + count) != 0)
    {
        return NULL;
    }

    p = (unsigned char *) v->data + v->n * size;
    memset(p, 0, count * size);
    v->n += count;

    return p;
}


void
eb_pm_zero(eb_pm_vec_t *v, size_t size)
{
    if (v->n) {
        memset(v->data, 0, v->n * size);
    }
}


void
eb_pm_vec_shrink(eb_pm_vec_t *v, size_t size)
{
    void  *p;

    if (v->n == v->cap) {
        return;
    }

    if (v->n == 0) {
        eb_pm_vec_free(v);
        return;
    }

    p = realloc(v->data, v->n * size);
    if (p) {
        v->data = p;
        v->cap = v->n;
    }
}


void
eb_pm_vec_free(eb_pm_vec_t *v)
{
    free(v->data);
    v->data = NULL;
    v->n = 0;
    v->cap = 0;
}


/* A multiply-xorshift hash over 8-byte words. The maps are filled at
 * compile time only, so event data can probe them but never fill them. */
uint64_t
eb_pm_hash(uint32_t ns, const unsigned char *p, size_t len)
{
    uint64_t  h, w;

    h = 0x9e3779b97f4a7c15ULL ^ ((uint64_t) ns << 20)
        ^ ((uint64_t) len * 0xff51afd7ed558ccdULL);

    while (len >= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }

    if (len) {
        w = 0;
        memcpy(&w, p, len);
        h = (h ^ w) * 0x94d049bb133111ebULL;
        h ^= h >> 31;
    }

    h ^= (uint64_t) ns;
    h *= 0xd6e8feb86659fd93ULL;
    h ^= h >> 32;

    return h;
}


static int
eb_pm_map_grow(eb_pm_map_t *m)
{
    size_t         i, j, size, mask;
    eb_pm_slot_t  *slots;

    size = m->slots ? (m->mask + 1) * 2 : 64;
    mask = size - 1;

    slots = malloc(size * sizeof(eb_pm_slot_t));
    if (slots == NULL) {
        return -1;
    }

    for (i = 0; i < size; i++) {
        slots[i].value = EB_PM_NONE;
    }

    if (m->slots) {
        for (i = 0; i <= m->mask; i++) {
            if (m->slots[i].value == EB_PM_NONE) {
                continue;
            }

            for (j = m->slots[i].hash & mask;
                 slots[j].value != EB_PM_NONE;
                 j = (j + 1) & mask)
            {
                /* void */
            }

            slots[j] = m->slots[i];
        }

        free(m->slots);
    }

    m->slots = slots;
    m->mask = mask;

    return 0;
}


int
eb_pm_map_put(eb_pm_map_t *m, uint32_t ns, const unsigned char *p,
    size_t len, uint32_t *value)
{
    size_t          i;
    uint64_t        h;
    eb_pm_slot_t   *s;
    unsigned char  *k;

    if ((m->count + 1) * 2 > (m->slots ? m->mask + 1 : 0)
        && eb_pm_map_grow(m) != 0)
    {
        return -1;
    }

    h = eb_pm_hash(ns, p, len);

    for (i = h & m->mask; ; i = (i + 1) & m->mask) {
        s = &m->slots[i];

        if (s->value == EB_PM_NONE) {
            break;
        }

        if (s->hash == h && s->ns == ns && s->key_len == len
            && (len == 0
                || memcmp((unsigned char *) m->keys.data + s->key_off, p,
                          len) == 0))
        {
            *value = s->value;
            return 0;
        }
    }

    k = eb_pm_vec_push(&m->keys, 1, len);
    if (k == NULL && len) {
        return -1;
    }

    if (len) {
        memcpy(k, p, len);
    }

    s->hash = h;
    s->ns = ns;
    s->key_off = (uint32_t) (m->keys.n - len);
    s->key_len = (uint32_t) len;
    s->value = *value;
    m->count++;

    return 1;
}


uint32_t
eb_pm_map_get(const eb_pm_map_t *m, uint64_t h, uint32_t ns,
    const unsigned char *p, size_t len)
{
    size_t               i;
    const eb_pm_slot_t  *s;

    if (m->slots == NULL) {
        return EB_PM_NONE;
    }

    for (i = h & m->mask; ; i = (i + 1) & m->mask) {
        s = &m->slots[i];

        if (s->value == EB_PM_NONE) {
            return EB_PM_NONE;
        }

        if (s->hash == h && s->ns == ns && s->key_len == len
            && (len == 0
                || memcmp((unsigned char *) m->keys.data + s->key_off, p,
                          len) == 0))
        {
            return s->value;
        }
    }
}


void
eb_pm_map_free(eb_pm_map_t *m)
{
    free(m->slots);
    m->slots = NULL;
    m->mask = 0;
    m->count = 0;
    eb_pm_vec_free(&m->keys);
}


/* Powers of ten exact in an eb_pm_num_t: 10^k = 5^k 2^k, exact while 5^k
 * fits the significand (k <= 27 for 64 bits, k <= 22 for a double's 53). */
#if (LDBL_MANT_DIG >= 64)
#define EB_PM_EXACT_POW10  27
#else
#define EB_PM_EXACT_POW10  22
#endif

static const eb_pm_num_t  eb_pm_pow10[] = {
    1e0L, 1e1L, 1e2L, 1e3L, 1e4L, 1e5L, 1e6L, 1e7L, 1e8L, 1e9L, 1e10L,
    1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L, 1e20L,
    1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L
};


/* The common numbers (a significand that fits in 64 bits, so every
 * integer up to 2^64 - 1, and a decimal exponent within +-27) are exact
 * products or quotients of two exact values, so one rounding gives the
 * correctly rounded result; the rest go to strtold(), also correctly
 * rounded (its decimal point is the C locale's: nginx and the dispatcher
 * never call setlocale()). */
eb_pm_num_t
eb_pm_number(const unsigned char *p, size_t len)
{
    int                   neg, eneg;
    long                  e10, ex;
    unsigned              dig;
    uint64_t              m;
    eb_pm_num_t           d;
    char                  buf[64];
    const unsigned char  *q, *end;

    q = p;
    end = p + len;
    neg = 0;
    m = 0;
    e10 = 0;

    if (q < end && *q == '-') {
        neg = 1;
        q++;
    }

    for ( /* void */ ; q < end && *q >= '0' && *q <= '9'; q++) {
        dig = (unsigned) (*q - '0');

        if (m > (UINT64_MAX - dig) / 10) {
            goto slow;
        }

        m = m * 10 + dig;
    }

    if (q < end && *q == '.') {
        for (q++; q < end && *q >= '0' && *q <= '9'; q++) {
            dig = (unsigned) (*q - '0');

            if (m > (UINT64_MAX - dig) / 10) {
                goto slow;
            }

            m = m * 10 + dig;
            e10--;
        }
    }

    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        eneg = 0;

        if (q < end && (*q == '+' || *q == '-')) {
            eneg = (*q == '-');
            q++;
        }

        for (ex = 0; q < end && *q >= '0' && *q <= '9'; q++) {
            if (ex < 100000) {
                ex = ex * 10 + (*q - '0');
            }
        }

        e10 += eneg ? -ex : ex;
    }

    if (m == 0) {
        return 0;
    }

#if (LDBL_MANT_DIG < 64)
    if (m > (1ULL << LDBL_MANT_DIG)) {
        goto slow;
    }
#endif

    if (e10 < -EB_PM_EXACT_POW10 || e10 > EB_PM_EXACT_POW10) {
        goto slow;
    }

    d = (eb_pm_num_t) m;
    d = e10 < 0 ? d / eb_pm_pow10[-e10] : d * eb_pm_pow10[e10];

    return neg ? -d : d;

slow:

    if (len < sizeof(buf)) {
        memcpy(buf, p, len);
        buf[len] = '\0';
        d = strtold(buf, NULL);

    } else {
        /* validated JSON: a delimiter follows the number */
        d = strtold((const char *) p, NULL);
    }

    return d == 0 ? 0 : d;
}


static uint32_t
eb_pm_fold_cp(uint32_t c)
{
    if (c < 0x80) {
        return (c >= 'A' && c <= 'Z') ? c + 0x20 : c;
    }

    if (c < 0x100) {
        return (c >= 0xc0 && c <= 0xde && c != 0xd7) ? c + 0x20 : c;
    }

    if (c < 0x180) {
        if ((c >= 0x100 && c <= 0x12f) || (c >= 0x132 && c <= 0x137)
            || (c >= 0x14a && c <= 0x177))
        {
            return c | 1;
        }

        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) {
            return (c & 1) ? c + 1 : c;
        }

        return c == 0x178 ? 0xff : c;
    }

    if (c >= 0x386 && c <= 0x3ab) {
        if (c >= 0x391 && c != 0x3a2) {
            return c + 0x20;
        }

        switch (c) {
        case 0x386:
            return 0x3ac;
        case 0x388:
        case 0x389:
        case 0x38a:
            return c + 0x25;
        case 0x38c:
            return 0x3cc;
        case 0x38e:
        case 0x38f:
            return c + 0x3f;
        }

        return c;
    }

    if (c == 0x3c2) {
        return 0x3c3;           /* final sigma */
    }

    if (c >= 0x400 && c <= 0x4bf) {
        if (c <= 0x40f) {
            return c + 0x50;
        }

        if (c <= 0x42f) {
            return c + 0x20;
        }

        if ((c >= 0x460 && c <= 0x481) || c >= 0x48a) {
            return c | 1;
        }

        return c;
    }

    if (c >= 0xff21 && c <= 0xff3a) {
        return c + 0x20;
    }

    return c;
}


void
eb_pm_fold(unsigned char *dst, const unsigned char *src, size_t len)
{
    size_t    i;
    uint32_t  c, f;

    for (i = 0; i < len; /* void */ ) {
        c = src[i];

        if (c < 0x80) {
            dst[i] = (unsigned char) ((c >= 'A' && c <= 'Z') ? c + 0x20 : c);
            i++;
            continue;
        }

        if ((c & 0xe0) == 0xc0 && i + 1 < len
            && (src[i + 1] & 0xc0) == 0x80)
        {
            c = ((c & 0x1f) << 6) | (src[i + 1] & 0x3f);
            f = eb_pm_fold_cp(c);

            if (f != c && f >= 0x80 && f < 0x800) {
                dst[i] = (unsigned char) (0xc0 | (f >> 6));
                dst[i + 1] = (unsigned char) (0x80 | (f & 0x3f));

            } else {
                dst[i] = src[i];
                dst[i + 1] = src[i + 1];
            }

            i += 2;
            continue;
        }

        if ((c & 0xf0) == 0xe0 && i + 2 < len
            && (src[i + 1] & 0xc0) == 0x80 && (src[i + 2] & 0xc0) == 0x80)
        {
            c = ((c & 0x0f) << 12) | ((uint32_t) (src[i + 1] & 0x3f) << 6)
                | (src[i + 2] & 0x3f);
            f = eb_pm_fold_cp(c);

            if (f != c && f >= 0x800 && f < 0x10000) {
                dst[i] = (unsigned char) (0xe0 | (f >> 12));
                dst[i + 1] = (unsigned char) (0x80 | ((f >> 6) & 0x3f));
                dst[i + 2] = (unsigned char) (0x80 | (f & 0x3f));

            } else {
                memcpy(dst + i, src + i, 3);
            }

            i += 3;
            continue;
        }

        dst[i] = src[i];
        i++;
    }
}


int
eb_pm_ip(const unsigned char *p, size_t len, uint8_t ip[16])
{
    char  buf[48];

    if (len == 0 || len >= sizeof(buf) || memchr(p, '\0', len)) {
        return 0;
    }

    memcpy(buf, p, len);
    buf[len] = '\0';

    memset(ip, 0, 16);

    if (memchr(p, ':', len) == NULL) {
        return inet_pton(AF_INET, buf, ip) == 1 ? 4 : 0;
    }

    return inet_pton(AF_INET6, buf, ip) == 1 ? 6 : 0;
}


void
eb_pm_mask(uint8_t *ip, unsigned nbytes, unsigned bits)
{
    unsigned  i;

    for (i = 0; i < nbytes; i++) {
        if (bits >= 8) {
            bits -= 8;

        } else {
            ip[i] &= (uint8_t) (0xff00 >> bits);
            bits = 0;
        }
    }
}


int
eb_pm_cidr(const unsigned char *p, size_t len, uint8_t ip[16],
    unsigned *bits)
{
    int                   family;
    size_t                n;
    unsigned              b;
    const unsigned char  *slash;

    slash = memchr(p, '/', len);
    if (slash == NULL) {
        return 0;
    }

    family = eb_pm_ip(p, (size_t) (slash - p), ip);
    if (family == 0) {
        return 0;
    }

    slash++;
    n = (size_t) (p + len - slash);

    if (n == 0 || n > 3 || (n > 1 && slash[0] == '0')) {
        return 0;
    }

    for (b = 0; n; n--, slash++) {
        if (*slash < '0' || *slash > '9') {
            return 0;
        }

        b = b * 10 + (unsigned) (*slash - '0');
    }

    if (b > (family == 4 ? 32u : 128u)) {
        return 0;
    }

    eb_pm_mask(ip, family == 4 ? 4 : 16, b);
    *bits = b;

    return family;
}


int
eb_pm_wildcard(const uint32_t *pieces, size_t n,
    const unsigned char *base, const unsigned char *s, size_t len)
{
    size_t                i, need, hlen, tlen;
    const unsigned char  *at, *end;

    if (n == 1) {
        return pieces[1] == len && memcmp(base + pieces[0], s, len) == 0;
    }

    for (need = 0, i = 0; i < n; i++) {
        need += pieces[2 * i + 1];
    }

    if (need > len) {
        return 0;
    }

    /* the head and the tail are anchored */

    hlen = pieces[1];
    tlen = pieces[2 * n - 1];

    if (memcmp(base + pieces[0], s, hlen) != 0
        || memcmp(base + pieces[2 * n - 2], s + len - tlen, tlen) != 0)
    {
        return 0;
    }

    /* the middle pieces, leftmost first, in between */

    at = s + hlen;
    end = s + len - tlen;

    for (i = 1; i < n - 1; i++) {
        at = memmem(at, (size_t) (end - at), base + pieces[2 * i],
                    pieces[2 * i + 1]);
        if (at == NULL) {
            return 0;
        }

        at += pieces[2 * i + 1];
    }

    return 1;
}


void
eb_pm_sort(uint32_t *a, size_t n, eb_pm_cmp_pt cmp, void *ctx,
    uint32_t *tmp)
{
    size_t    i, j, k, w, lo, mid, hi;
    uint32_t  x;

    if (n <= 16) {
        for (i = 1; i < n; i++) {
            x = a[i];

            for (j = i; j > 0 && cmp(ctx, a[j - 1], x) > 0; j--) {
                a[j] = a[j - 1];
            }

            a[j] = x;
        }

        return;
    }

    for (w = 1; w < n; w *= 2) {
        for (lo = 0; lo < n; lo += 2 * w) {
            mid = lo + w < n ? lo + w : n;
            hi = lo + 2 * w < n ? lo + 2 * w : n;

            for (i = lo, j = mid, k = lo; k < hi; k++) {
                if (i < mid && (j >= hi || cmp(ctx, a[i], a[j]) <= 0)) {
                    tmp[k] = a[i++];

                } else {
                    tmp[k] = a[j++];
                }
            }
        }

        memcpy(a, tmp, n * sizeof(uint32_t));
    }
}
