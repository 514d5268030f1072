/*
 * eb_event_scan(): the top-level members of an event, one pass of yajl's
 * streaming parser. yajl_get_bytes_consumed() inside a callback is the
 * offset just past the token that made it: a value ends there, and
 * starts after the ':' that follows its key.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "eb_event_scan.h"
#include "eb_json_string.h"
#include "eb_utf8.h"


#define EB_EVENT_SCAN_MEMBERS  16


typedef struct {
    yajl_handle            h;
    const unsigned char   *event;
    size_t                 len;
    eb_event_scan_t       *s;
    size_t                 cap;
    size_t                 used;       /* of s->buf */
    size_t                 key_end;    /* just past the current key */
    unsigned               depth;
    int                    not_object;
    int                    nomem;
} eb_event_scan_ctx_t;


static char *
eb_event_scan_copy(eb_event_scan_ctx_t *c, const unsigned char *p,
    size_t len)
{
    char  *d = c->s->buf + c->used;

    /* cannot overflow: names and values take no more room than the text
     * they came from (see eb_event_scan()) */
    memcpy(d, p, len);
    d[len] = '\0';
    c->used += len + 1;
    return d;
}


/* The string at event[m->start..m->end), quotes included, which yajl
 * found valid: escapes decoded, an unpaired surrogate as U+FFFD. */
static void
eb_event_scan_decode(eb_event_scan_ctx_t *c, eb_event_member_t *m)
{
    size_t                k;
    uint32_t              cp;
    const char           *why;
    unsigned char        *d;
    const unsigned char  *p = c->event + m->start + 1,
                         *end = c->event + m->end - 1;

    d = (unsigned char *) c->s->buf + c->used;
    m->text = (char *) d;

    while (p < end) {
        if (*p != '\\') {
            *d++ = *p++;
            continue;
        }

        k = eb_json_escape(p, end - p, &cp, &why);
        if (k == 0) {
            /* only an unpaired surrogate: yajl checked the rest */
            cp = 0xfffd;
            k = 6;
        }

        d += eb_utf8_encode(d, cp);
        p += k;
    }

    *d = '\0';
    m->text_len = d - (unsigned char *) m->text;
    c->used += m->text_len + 1;
}


/* a scalar, or the start of an object or array */
static int
eb_event_scan_value(eb_event_scan_ctx_t *c, eb_event_kind_t kind,
    const unsigned char *text, size_t len)
{
    size_t              i;
    eb_event_member_t  *m;

    if (c->depth == 0) {
        /* the event itself: an object, nothing else */
        if (kind != EB_EV_OBJECT) {
            c->not_object = 1;
            return 0;
        }
        return 1;
    }

    if (c->depth > 1) {
        return 1;
    }

    m = &c->s->members[c->s->n - 1];
    m->kind = kind;

    for (i = c->key_end; i < c->len; i++) {
        if (c->event[i] == ':') {
            break;
        }
    }
    /* what yajl's lexer skips: JSON's four, and \v and \f */
    for (i++; i < c->len; i++) {
        if (c->event[i] != ' ' && c->event[i] != '\t' && c->event[i] != '\n'
            && c->event[i] != '\r' && c->event[i] != '\v'
            && c->event[i] != '\f')
        {
            break;
        }
    }

    m->start = i;
    m->end = yajl_get_bytes_consumed(c->h);

    if (text == NULL) {
        return 1;
    }

    if (kind == EB_EV_STRING
        && memchr(c->event + m->start + 1, '\\', m->end - m->start - 2))
    {
        /* escapes: decoded by the one decoder of the tree, not yajl's
         * (which reads an unpaired surrogate as '?', not U+FFFD) */
        eb_event_scan_decode(c, m);
        return 1;
    }

    m->text = eb_event_scan_copy(c, text, len);
    m->text_len = len;
    return 1;
}


static int
eb_event_scan_null(void *ctx)
{
    return eb_event_scan_value(ctx, EB_EV_NULL, NULL, 0);
}


static int
eb_event_scan_bool(void *ctx, int v)
{
    return v ? eb_event_scan_value(ctx, EB_EV_TRUE,
                                   (const unsigned char *) "true", 4)
             : eb_event_scan_value(ctx, EB_EV_FALSE,
                                   (const unsigned char *) "false", 5);
}


static int
eb_event_scan_number(void *ctx, const char *p, size_t len)
{
    return eb_event_scan_value(ctx, EB_EV_NUMBER, (const unsigned char *) p,
                               len);
}


static int
eb_event_scan_string(void *ctx, const unsigned char *p, size_t len)
{
    return eb_event_scan_value(ctx, EB_EV_STRING, p, len);
}


static int
eb_event_scan_open(void *ctx, eb_event_kind_t kind)
{
    eb_event_scan_ctx_t  *c = ctx;

    if (!eb_event_scan_value(c, kind, NULL, 0)) {
        return 0;
    }

    c->depth++;
    return 1;
}


static int
eb_event_scan_close(void *ctx)
{
    eb_event_scan_ctx_t  *c = ctx;

    if (--c->depth == 1) {
        c->s->members[c->s->n - 1].end = yajl_get_bytes_consumed(c->h);
    }

    return 1;
}


static int
eb_event_scan_start_map(void *ctx)
{
    return eb_event_scan_open(ctx, EB_EV_OBJECT);
}


static int
eb_event_scan_start_array(void *ctx)
{
    return eb_event_scan_open(ctx, EB_EV_ARRAY);
}


static int
eb_event_scan_key(void *ctx, const unsigned char *p, size_t len)
{
    size_t                cap;
    eb_event_member_t    *m;
    eb_event_scan_ctx_t  *c = ctx;
    eb_event_scan_t      *s = c->s;

    if (c->depth != 1) {
        return 1;
    }

    if (s->n == c->cap) {
        cap = c->cap * 2;
        m = realloc(s->members, cap * sizeof(eb_event_member_t));
        if (m == NULL) {
            c->nomem = 1;
            return 0;
        }
        s->members = m;
        c->cap = cap;
    }

    m = &s->members[s->n++];
    memset(m, 0, sizeof(eb_event_member_t));
    m->name = eb_event_scan_copy(c, p, len);
    m->name_len = len;
    c->key_end = yajl_get_bytes_consumed(c->h);
    return 1;
}


static const yajl_callbacks  eb_event_scan_callbacks = {
    eb_event_scan_null,
    eb_event_scan_bool,
    NULL,
    NULL,
    eb_event_scan_number,
    eb_event_scan_string,
    eb_event_scan_start_map,
    eb_event_scan_key,
    eb_event_scan_close,
    eb_event_scan_start_array,
    eb_event_scan_close
};


int
eb_event_scan(const unsigned char *event, size_t len, eb_event_scan_t *s,
    char *err, size_t errlen)
{
    yajl_status           st;
    unsigned char        *msg;
    eb_event_scan_ctx_t   c;

    memset(s, 0, sizeof(eb_event_scan_t));
    memset(&c, 0, sizeof(c));

    c.event = event;
    c.len = len;
    c.s = s;
    c.cap = EB_EVENT_SCAN_MEMBERS;

    /* every member "k":v takes at least as many bytes of text as its
     * copies: the name loses its quotes (one byte for the NUL), a string
     * its quotes, a number or literal gains one NUL but its key lost two
     * quotes; decoding escapes only shrinks */
    s->buf = malloc(len + 2);
    s->members = malloc(c.cap * sizeof(eb_event_member_t));
    c.h = yajl_alloc(&eb_event_scan_callbacks, NULL, &c);

    if (s->buf == NULL || s->members == NULL || c.h == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    st = yajl_parse(c.h, event, len);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(c.h);
    }

    if (c.not_object) {
        snprintf(err, errlen, "the event is not a JSON object");
        goto failed;
    }

    if (c.nomem) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    if (st != yajl_status_ok) {
        msg = yajl_get_error(c.h, 0, event, len);
        snprintf(err, errlen, "the event is not JSON: %.*s",
                 msg ? (int) strcspn((char *) msg, "\n") : 11,
                 msg ? (char *) msg : "parse error");
        if (msg) {
            yajl_free_error(c.h, msg);
        }
        goto failed;
    }

    yajl_free(c.h);
    return 0;

failed:

    if (c.h) {
        yajl_free(c.h);
    }
    eb_event_scan_free(s);
    return -1;
}


const eb_event_member_t *
eb_event_scan_get(const eb_event_scan_t *s, const char *name)
{
    size_t  i, len = strlen(name);

    for (i = s->n; i-- > 0; /* void */) {
        if (s->members[i].name_len == len
            && memcmp(s->members[i].name, name, len) == 0)
        {
            return &s->members[i];
        }
    }

    return NULL;
}


void
eb_event_scan_free(eb_event_scan_t *s)
{
    free(s->members);
    free(s->buf);
    memset(s, 0, sizeof(eb_event_scan_t));
}
