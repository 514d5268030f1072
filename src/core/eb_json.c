#include <stdio.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "eb_json.h"
#include "eb_utf8.h"


typedef struct {
    unsigned  depth;
    unsigned  max_depth;
    int       too_deep;
} eb_json_depth_t;


static int
eb_json_open(void *ctx)
{
    eb_json_depth_t  *d = ctx;

    if (++d->depth > d->max_depth) {
        d->too_deep = 1;
        return 0;               /* cancels the parse */
    }

    return 1;
}


static int
eb_json_close(void *ctx)
{
    eb_json_depth_t  *d = ctx;

    d->depth--;
    return 1;
}


/* Only nesting is tracked: yajl skips the conversion of scalars whose
 * callbacks are NULL, which keeps validation cheap. */
static int
eb_json_start_map(void *ctx)
{
    return eb_json_open(ctx);
}


static const yajl_callbacks  eb_json_callbacks = {
    NULL,                       /* null */
    NULL,                       /* boolean */
    NULL,                       /* integer */
    NULL,                       /* double */
    NULL,                       /* number */
    NULL,                       /* string */
    eb_json_start_map,
    NULL,                       /* map key */
    eb_json_close,
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


/* Offset of the first \v or \f outside a string, or -1. */
static ssize_t
eb_json_bad_space_at(const unsigned char *p, size_t len)
{
    size_t  i;
    int     in_string, escaped;

    in_string = 0;
    escaped = 0;

    for (i = 0; i < len; i++) {
        if (in_string) {
            if (escaped) {
                escaped = 0;

            } else if (p[i] == '\\') {
                escaped = 1;

            } else if (p[i] == '"') {
                in_string = 0;
            }

            continue;
        }

        if (p[i] == '"') {
            in_string = 1;

        } else if (p[i] == '\v' || p[i] == '\f') {
            return (ssize_t) i;
        }
    }

    return -1;
}


eb_json_rc_t
eb_json_validate(const unsigned char *p, size_t len, unsigned max_depth,
    yajl_alloc_funcs *afs, char *err, size_t errlen)
{
    yajl_handle      h;
    int              at_end;
    ssize_t          bad;
    yajl_status      st;
    eb_json_depth_t  d;
    eb_json_rc_t     rc;

    d.depth = 0;
    d.max_depth = max_depth;
    d.too_deep = 0;

    h = yajl_alloc(&eb_json_callbacks, afs, &d);
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return EB_JSON_NOMEM;
    }

    at_end = 0;

    st = yajl_parse(h, p, len);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
        at_end = 1;
    }

    if (st == yajl_status_ok
        && (bad = eb_json_bad_space_at(p, len)) >= 0)
    {
        /* yajl's lexer also skips \v and \f: not JSON whitespace */
        snprintf(err, errlen, "invalid JSON at byte %zd: invalid "
                 "whitespace character", bad);
        rc = EB_JSON_SYNTAX;

    } else if (st == yajl_status_ok
               && (bad = eb_utf8_invalid_at(p, len)) >= 0)
    {
        /* yajl checks only the byte pattern of UTF-8 in strings: overlong
         * forms, surrogates and code points past U+10FFFF get through.
         * JSON is ASCII outside strings, so the whole text is checked. */
        snprintf(err, errlen, "invalid JSON at byte %zd: invalid UTF-8 in "
                 "a string", bad);
        rc = EB_JSON_SYNTAX;

    } else if (st == yajl_status_ok) {
        rc = EB_JSON_OK;
        err[0] = '\0';

    } else if (d.too_deep) {
        snprintf(err, errlen, "JSON nested deeper than %u levels", max_depth);
        rc = EB_JSON_TOO_DEEP;

    } else {
        eb_json_error(h, p, len, at_end, err, errlen);
        rc = EB_JSON_SYNTAX;
    }

    yajl_free(h);
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
