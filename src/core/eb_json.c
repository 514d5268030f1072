#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "eb_json.h"
#include "eb_json_string.h"
#include "eb_utf8.h"


/* a key of an object still open: its bytes in keys, where it ended */
typedef struct {
    const unsigned char  *key;          /* set only while sorting */
    size_t                off;
    size_t                len;
    size_t                at;
} eb_json_key_t;


typedef struct {
    yajl_handle           h;
    yajl_alloc_funcs     *afs;

    unsigned              depth;
    unsigned              max_depth;
    unsigned              dup_level;    /* objects whose keys may repeat */
    int                   too_deep;
    int                   nomem;

    /* keys of the open objects, each object's after its parent's */
    eb_json_key_t        *key;
    size_t                nkeys;
    size_t                keys_cap;
    unsigned char        *keys;
    size_t                keys_len;
    size_t                keys_size;
    size_t               *obj;          /* an open object's first key */
    size_t                nobjs;
    size_t                objs_cap;

    const eb_json_key_t  *dup;          /* a key met twice: the later */
    size_t                nul_key;      /* where a key with U+0000 ends */
} eb_json_check_t;


static void *
eb_json_grow(eb_json_check_t *d, void *p, size_t *cap, size_t need,
    size_t size)
{
    size_t  n;

    if (need <= *cap) {
        return p;
    }

    n = *cap ? *cap : 16;

    while (n < need) {
        n *= 2;
    }

    p = d->afs->realloc(d->afs->ctx, p, n * size);
    if (p == NULL) {
        d->nomem = 1;
        return NULL;
    }

    *cap = n;

    return p;
}


static int
eb_json_open(void *ctx)
{
    eb_json_check_t  *d = ctx;

    if (++d->depth > d->max_depth) {
        d->too_deep = 1;
        return 0;               /* cancels the parse */
    }

    return 1;
}


static int
eb_json_close(void *ctx)
{
    eb_json_check_t  *d = ctx;

    d->depth--;
    return 1;
}


static int
eb_json_start_map(void *ctx)
{
    size_t           *obj;
    eb_json_check_t  *d = ctx;

    if (!eb_json_open(ctx)) {
        return 0;
    }

    obj = eb_json_grow(d, d->obj, &d->objs_cap, d->nobjs + 1,
                       sizeof(size_t));
    if (obj == NULL) {
        return 0;
    }

    d->obj = obj;
    d->obj[d->nobjs++] = d->nkeys;

    return 1;
}


/* yajl hands over keys with escapes decoded, in a buffer it reuses */
static int
eb_json_map_key(void *ctx, const unsigned char *key, size_t len)
{
    void             *p;
    eb_json_key_t    *k;
    eb_json_check_t  *d = ctx;

    if (len && memchr(key, '\0', len) != NULL) {
        /* yajl's tree cuts such a key at the NUL, the matcher drops the
         * NUL: "a\u0000" would be "a" to one and not to the other */
        d->nul_key = yajl_get_bytes_consumed(d->h);
        return 0;
    }

    if (d->depth == d->dup_level || d->dup_level == EB_JSON_DUP_ANY) {
        return 1;
    }

    p = eb_json_grow(d, d->key, &d->keys_cap, d->nkeys + 1,
                     sizeof(eb_json_key_t));
    if (p == NULL) {
        return 0;
    }

    d->key = p;

    p = eb_json_grow(d, d->keys, &d->keys_size, d->keys_len + len + 1, 1);
    if (p == NULL) {
        return 0;
    }

    d->keys = p;

    k = &d->key[d->nkeys++];
    k->off = d->keys_len;
    k->len = len;
    k->at = yajl_get_bytes_consumed(d->h);

    if (len) {
        memcpy(d->keys + d->keys_len, key, len);
        d->keys_len += len;
    }

    return 1;
}


static int
eb_json_key_cmp(const void *one, const void *two)
{
    int                   rc;
    const eb_json_key_t  *a = one, *b = two;

    if (a->len != b->len) {
        return a->len < b->len ? -1 : 1;
    }

    rc = a->len ? memcmp(a->key, b->key, a->len) : 0;

    if (rc == 0) {
        /* the later of equal keys last: it is the one reported */
        rc = (a->at > b->at) - (a->at < b->at);
    }

    return rc;
}


/* Whether key a equals key b */
static int
eb_json_key_eq(const eb_json_check_t *d, const eb_json_key_t *a,
    const eb_json_key_t *b)
{
    return a->len == b->len
           && (a->len == 0
               || memcmp(d->keys + a->off, d->keys + b->off, a->len) == 0);
}


/*
 * A small object's keys are compared pair by pair, which costs less than
 * sorting them. It reports the key sorting would: of the keys given
 * twice, the least (shorter first, then by bytes), at its second place.
 */
static int
eb_json_small_dup(eb_json_check_t *d, eb_json_key_t *k, size_t n)
{
    size_t          i, j;
    eb_json_key_t  *dup;

    dup = NULL;

    for (j = 1; j < n; j++) {
        for (i = 0; i < j; i++) {
            if (!eb_json_key_eq(d, &k[i], &k[j])) {
                continue;
            }

            /* keys come in the order of the text: the first j of a key
             * is its second place */
            if (dup == NULL || k[j].len < dup->len
                || (k[j].len == dup->len && k[j].len
                    && memcmp(d->keys + k[j].off, d->keys + dup->off,
                              k[j].len) < 0))
            {
                dup = &k[j];
            }

            break;
        }
    }

    if (dup) {
        dup->key = d->keys + dup->off;
        d->dup = dup;
        return 1;
    }

    return 0;
}


/* Sorting the keys when the object closes bounds the cost by n log n
 * whatever the keys, which a hash would not against chosen keys; objects
 * of up to EB_JSON_SMALL_OBJECT keys are compared pair by pair. */
#define EB_JSON_SMALL_OBJECT  16

static int
eb_json_end_map(void *ctx)
{
    size_t            i, first, n;
    eb_json_key_t    *k;
    eb_json_check_t  *d = ctx;

    first = d->obj[--d->nobjs];
    n = d->nkeys - first;

    if (n > 1 && n <= EB_JSON_SMALL_OBJECT) {
        if (eb_json_small_dup(d, d->key + first, n)) {
            return 0;
        }

    } else if (n > 1) {
        k = d->key + first;

        for (i = 0; i < n; i++) {
            k[i].key = d->keys + k[i].off;
        }

        qsort(k, n, sizeof(eb_json_key_t), eb_json_key_cmp);

        for (i = 1; i < n; i++) {
            if (k[i].len == k[i - 1].len
                && (k[i].len == 0
                    || memcmp(k[i].key, k[i - 1].key, k[i].len) == 0))
            {
                d->dup = &k[i];
                return 0;
            }
        }
    }

    if (n) {
        d->keys_len = d->key[first].off;
        d->nkeys = first;
    }

    return eb_json_close(ctx);
}


/* Scalars are skipped: yajl does not convert those whose callbacks are
 * NULL, which keeps validation cheap. */
static const yajl_callbacks  eb_json_callbacks = {
    NULL,                       /* null */
    NULL,                       /* boolean */
    NULL,                       /* integer */
    NULL,                       /* double */
    NULL,                       /* number */
    NULL,                       /* string */
    eb_json_start_map,
    eb_json_map_key,
    eb_json_end_map,
    eb_json_open,
    eb_json_close
};


/* Reduces yajl's verbose message ("parse error: ... \n  (right here) ...")
 * to its first line. */
static void
eb_json_error(yajl_handle h, const unsigned char *p, size_t len, int at_end,
    char *err, size_t errlen)
{
    unsigned char  *msg, *nl;
    size_t          at;

    msg = yajl_get_error(h, 0, p, len);

    /* a text that ends too early fails in yajl_complete_parse() */
    at = at_end ? len : yajl_get_bytes_consumed(h);

    if (msg == NULL) {
        snprintf(err, errlen, "invalid JSON at byte %zu", at);
        return;
    }

    nl = (unsigned char *) strchr((char *) msg, '\n');
    if (nl) {
        *nl = '\0';
    }

    snprintf(err, errlen, "invalid JSON at byte %zu: %s", at, (char *) msg);
    yajl_free_error(h, msg);
}


/*
 * One pass over a text yajl parsed, for what yajl lets through: \v and \f
 * between tokens, unpaired surrogate escapes (it decodes them to bytes
 * that are not UTF-8), a string left open after the value, which it
 * takes for input still to come, and UTF-8 that only has the byte pattern
 * right (overlong forms, surrogates, code points past U+10FFFF). Returns
 * the offset of the first fault of the first three kinds, or -1 and in
 * *bad_utf8 that of the first invalid UTF-8 (-1: none): the order in
 * which they are reported.
 *
 * With out, it also copies the text there without the whitespace between
 * tokens, as eb_json_minify() does (out may be p); *outlen is the length.
 */
static ssize_t
eb_json_scan(const unsigned char *p, size_t len, const char **why,
    ssize_t *bad_utf8, unsigned char *out, size_t *outlen)
{
    size_t          i, k, n, b;
    ssize_t         utf8;
    uint32_t        cp;
    unsigned char   c;

    utf8 = -1;
    n = 0;
    i = 0;

    while (i < len) {
        c = p[i];

        if (c != '"') {
            /* between tokens: ASCII, since yajl parsed it */
            if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
                i++;
                continue;
            }

            if (c == '\v' || c == '\f') {
                *why = "invalid whitespace character";
                return (ssize_t) i;
            }

            if (c >= 0x80) {
                b = eb_utf8_valid_len(p + i, len - i);
                if (b == 0) {
                    if (utf8 < 0) {
                        utf8 = (ssize_t) i;
                    }
                    b = 1;
                }

            } else {
                b = 1;
            }

            if (out) {
                /* out + n <= p + i: a forward copy is safe in place */
                while (b--) {
                    out[n++] = p[i++];
                }

            } else {
                i += b;
            }

            continue;
        }

        /* a string, from its opening quote */
        k = i++;

        for ( ;; ) {
            while (i < len && p[i] != '"' && p[i] != '\\' && p[i] < 0x80) {
                i++;
            }

            if (i == len) {
                *why = "a string left open after the value";
                return (ssize_t) len;
            }

            c = p[i];

            if (c == '"') {
                i++;
                break;
            }

            if (c == '\\') {
                b = eb_json_escape(p + i, len - i, &cp, why);
                if (b == 0) {
                    return (ssize_t) i;
                }

                i += b;
                continue;
            }

            b = eb_utf8_valid_len(p + i, len - i);
            if (b == 0) {
                if (utf8 < 0) {
                    utf8 = (ssize_t) i;
                }
                b = 1;
            }

            i += b;
        }

        if (out) {
            memmove(out + n, p + k, i - k);
            n += i - k;
        }
    }

    *bad_utf8 = utf8;

    if (outlen) {
        *outlen = n;
    }

    return -1;
}


/* quoted keys in a message: printable ASCII only */
static void
eb_json_printable(char *s)
{
    for ( /* void */ ; *s; s++) {
        if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f) {
            *s = '?';
        }
    }
}


static void *
eb_json_malloc(void *ctx, size_t size)
{
    return malloc(size);
}


static void *
eb_json_realloc(void *ctx, void *p, size_t size)
{
    return realloc(p, size);
}


static void
eb_json_free(void *ctx, void *p)
{
    free(p);
}


static eb_json_rc_t eb_json_check(const unsigned char *p, size_t len,
    unsigned max_depth, unsigned dup_level, yajl_alloc_funcs *afs,
    unsigned char *out, size_t *outlen, char *err, size_t errlen);


eb_json_rc_t
eb_json_validate(const unsigned char *p, size_t len, unsigned max_depth,
    yajl_alloc_funcs *afs, char *err, size_t errlen)
{
    return eb_json_check(p, len, max_depth, 0, afs, NULL, NULL, err, errlen);
}


eb_json_rc_t
eb_json_validate_keys(const unsigned char *p, size_t len, unsigned max_depth,
    unsigned dup_level, yajl_alloc_funcs *afs, char *err, size_t errlen)
{
    return eb_json_check(p, len, max_depth, dup_level, afs, NULL, NULL, err,
                         errlen);
}


eb_json_rc_t
eb_json_validate_minify(const unsigned char *p, size_t len,
    unsigned max_depth, yajl_alloc_funcs *afs, unsigned char *out,
    size_t *outlen, char *err, size_t errlen)
{
    return eb_json_check(p, len, max_depth, 0, afs, out, outlen, err,
                         errlen);
}


static eb_json_rc_t
eb_json_check(const unsigned char *p, size_t len, unsigned max_depth,
    unsigned dup_level, yajl_alloc_funcs *afs, unsigned char *out,
    size_t *outlen, char *err, size_t errlen)
{
    int               at_end;
    ssize_t           bad, bad_utf8;
    const char       *why;
    yajl_status       st;
    eb_json_rc_t      rc;
    eb_json_check_t   d;
    yajl_alloc_funcs  std = {
        eb_json_malloc, eb_json_realloc, eb_json_free, NULL
    };

    memset(&d, 0, sizeof(eb_json_check_t));
    d.afs = afs ? afs : &std;
    d.max_depth = max_depth;
    d.dup_level = dup_level;

    d.h = yajl_alloc(&eb_json_callbacks, afs, &d);
    if (d.h == NULL) {
        snprintf(err, errlen, "out of memory");
        return EB_JSON_NOMEM;
    }

    at_end = 0;

    st = yajl_parse(d.h, p, len);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(d.h);
        at_end = 1;
    }

    bad_utf8 = -1;

    if (st == yajl_status_ok
        && (bad = eb_json_scan(p, len, &why, &bad_utf8, out, outlen)) >= 0)
    {
        snprintf(err, errlen, "invalid JSON at byte %zd: %s", bad, why);
        rc = EB_JSON_SYNTAX;

    } else if (st == yajl_status_ok && bad_utf8 >= 0) {
        /* yajl checks only the byte pattern of UTF-8 in strings: overlong
         * forms, surrogates and code points past U+10FFFF get through.
         * JSON is ASCII outside strings, so the whole text is checked. */
        snprintf(err, errlen, "invalid JSON at byte %zd: invalid UTF-8 in "
                 "a string", bad_utf8);
        rc = EB_JSON_SYNTAX;

    } else if (st == yajl_status_ok) {
        rc = EB_JSON_OK;
        err[0] = '\0';

    } else if (d.too_deep) {
        snprintf(err, errlen, "JSON nested deeper than %u levels", max_depth);
        rc = EB_JSON_TOO_DEEP;

    } else if (d.nomem) {
        snprintf(err, errlen, "out of memory");
        rc = EB_JSON_NOMEM;

    } else if (d.nul_key) {
        snprintf(err, errlen, "invalid JSON at byte %zu: \\u0000 in a key",
                 d.nul_key);
        rc = EB_JSON_SYNTAX;

    } else if (d.dup) {
        /* a member twice: readers would disagree on which one counts */
        snprintf(err, errlen, "invalid JSON at byte %zu: duplicate key "
                 "\"%.*s%s\"", d.dup->at,
                 (int) (d.dup->len > 40 ? 40 : d.dup->len),
                 (const char *) d.dup->key, d.dup->len > 40 ? "..." : "");
        eb_json_printable(err);
        rc = EB_JSON_SYNTAX;

    } else {
        eb_json_error(d.h, p, len, at_end, err, errlen);
        rc = EB_JSON_SYNTAX;
    }

    yajl_free(d.h);

    d.afs->free(d.afs->ctx, d.key);
    d.afs->free(d.afs->ctx, d.keys);
    d.afs->free(d.afs->ctx, d.obj);

    return rc;
}


int
eb_json_content_type(const unsigned char *p, size_t len)
{
    size_t  n, i;

    /* the media type ends at ';' or whitespace */
    for (n = 0; n < len; n++) {
        if (p[n] == ';' || p[n] == ' ' || p[n] == '\t') {
            break;
        }
    }

    for (i = 0; i < n; i++) {
        if (p[i] == '/') {
            break;
        }
    }

    if (i == n || i == 0) {
        return 0;
    }

    if (n < 5) {
        return 0;
    }

    if (strncasecmp((const char *) p + n - 4, "json", 4) != 0) {
        return 0;
    }

    /* ".../json" or "...+json" */
    return p[n - 5] == '/' || p[n - 5] == '+';
}


size_t
eb_json_minify(unsigned char *p, size_t len)
{
    size_t         i, n;
    unsigned char  c;
    int            in_string, escaped;

    in_string = 0;
    escaped = 0;

    for (i = 0, n = 0; i < len; i++) {
        c = p[i];

        if (in_string) {
            if (escaped) {
                escaped = 0;

            } else if (c == '\\') {
                escaped = 1;

            } else if (c == '"') {
                in_string = 0;
            }

            p[n++] = c;
            continue;
        }

        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            continue;
        }

        if (c == '"') {
            in_string = 1;
        }

        p[n++] = c;
    }

    return n;
}
