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
#include "eb_jsonpath.h"
#include "eb_utf8.h"


#define EB_EVENT_SCAN_MEMBERS  16


/* A path's progress: the open containers (below the event itself) that
 * are its first `matched` steps; whether the key just read is its next. */
typedef struct {
    const eb_jsonpath_t   *path;
    size_t                 steps;
    size_t                 matched;
    int                    hit;
} eb_event_path_t;


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

    /* eb_event_scan_paths() */
    eb_event_path_t       *paths;
    size_t                 npaths;
    size_t                 last;       /* just past the last token read */
    /* the containers open at depth 1, 2, ...: arrays, their next index */
    unsigned char          array[EB_JSONPATH_STEPS_MAX + 2];
    size_t                 index[EB_JSONPATH_STEPS_MAX + 2];
    unsigned char         *kbuf;       /* an escaped key, decoded */
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


/* The inside of a string p[0..end), which yajl found valid, into d:
 * escapes decoded, an unpaired surrogate as U+FFFD; NUL-terminated.
 * Returns the length (never more than end - p). */
static size_t
eb_event_scan_unescape(const unsigned char *p, const unsigned char *end,
    unsigned char *d)
{
    size_t          k;
    uint32_t        cp;
    const char     *why;
    unsigned char  *start = d;

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
    return d - start;
}


/* The string at event[m->start..m->end), quotes included. */
static void
eb_event_scan_decode(eb_event_scan_ctx_t *c, eb_event_member_t *m)
{
    m->text = c->s->buf + c->used;
    m->text_len = eb_event_scan_unescape(c->event + m->start + 1,
                                         c->event + m->end - 1,
                                         (unsigned char *) m->text);
    c->used += m->text_len + 1;
}


/* ---- the values at paths (eb_event_scan_paths()) ---------------------- */

/* Where the value whose token this callback read starts: past what came
 * after the last token (white space as yajl's lexer skips it, ':', ','). */
static size_t
eb_event_scan_start(eb_event_scan_ctx_t *c)
{
    size_t  i;

    for (i = c->last; i < c->len; i++) {
        switch (c->event[i]) {
        case ' ': case '\t': case '\n': case '\r': case '\v': case '\f':
        case ':': case ',':
            continue;
        }

        break;
    }

    return i;
}


/* A value at depth c->depth (1: a member of the event) is the next step
 * of each path that reached its container and names it (the key just
 * read, or its index): found, if it is the last step; else its members
 * are checked against the next one. Of a repeated name the last wins, as
 * in a tree: a match forgets what an earlier one found. len: a scalar's
 * text as yajl gave it. */
static void
eb_event_scan_path_value(eb_event_scan_ctx_t *c, eb_event_kind_t kind,
    size_t len)
{
    int                 ok;
    size_t              i, d, at, index, nlen;
    const char         *name;
    eb_event_path_t    *p;
    eb_event_member_t  *f;

    d = c->depth;
    if (d == 0 || d > EB_JSONPATH_STEPS_MAX) {
        return;
    }

    at = c->array[d] ? c->index[d]++ : 0;

    for (i = 0; i < c->npaths; i++) {
        p = &c->paths[i];

        if (p->matched != d - 1 || d > p->steps) {
            continue;
        }

        if (c->array[d]) {
            ok = eb_jsonpath_step(p->path, d - 1, &name, &nlen, &index) == 0
                 && index == at;
        } else {
            ok = p->hit;
        }

        p->hit = 0;

        if (!ok) {
            continue;
        }

        f = &c->s->found[i];
        memset(f, 0, sizeof(eb_event_member_t));

        if (kind == EB_EV_OBJECT || kind == EB_EV_ARRAY) {
            p->matched = d;         /* its end is set when it closes */
        }

        if (d < p->steps) {
            continue;
        }

        f->kind = kind;
        f->start = eb_event_scan_start(c);

        switch (kind) {
        case EB_EV_STRING:
            f->end = yajl_get_bytes_consumed(c->h);
            break;
        case EB_EV_NULL:
            f->end = f->start + 4;
            break;
        case EB_EV_OBJECT:
        case EB_EV_ARRAY:
            break;
        default:
            f->end = f->start + len;
        }
    }
}


/* A key in an object open at depth c->depth: the paths that reached it
 * and name it take the value that follows. An escaped key is decoded
 * from the text, as the tree's are (yajl reads unpaired surrogates its
 * own way). */
static void
eb_event_scan_path_key(eb_event_scan_ctx_t *c, const unsigned char *key,
    size_t klen)
{
    int                   raw;
    size_t                i, d, nlen, index, from, end;
    const char           *name;
    eb_event_path_t      *p;

    d = c->depth;
    if (d == 0 || d > EB_JSONPATH_STEPS_MAX) {
        return;
    }

    raw = 0;

    for (i = 0; i < c->npaths; i++) {
        p = &c->paths[i];
        p->hit = 0;

        if (p->matched != d - 1 || d > p->steps
            || !eb_jsonpath_step(p->path, d - 1, &name, &nlen, &index))
        {
            continue;
        }

        if (!raw) {
            raw = 1;
            end = yajl_get_bytes_consumed(c->h);

            for (from = c->last; from < end && c->event[from] != '"'; from++)
            {
                /* the key's opening quote */
            }

            if (from + 2 <= end
                && memchr(c->event + from + 1, '\\', end - from - 2))
            {
                if (c->kbuf == NULL) {
                    c->kbuf = malloc(c->len + 1);
                    if (c->kbuf == NULL) {
                        c->nomem = 1;
                        return;
                    }
                }

                klen = eb_event_scan_unescape(c->event + from + 1,
                                              c->event + end - 1, c->kbuf);
                key = c->kbuf;
            }

            /* a tree's keys are C strings: a name ends at a NUL */
            klen = strnlen((const char *) key, klen);
        }

        p->hit = nlen == klen && memcmp(name, key, klen) == 0;
    }
}


/* A container at depth c->depth closed: the paths it matched step back. */
static void
eb_event_scan_path_close(eb_event_scan_ctx_t *c)
{
    size_t            i, d = c->depth;
    eb_event_path_t  *p;

    if (d == 0) {
        return;
    }

    for (i = 0; i < c->npaths; i++) {
        p = &c->paths[i];

        if (p->matched == d) {
            p->matched = d - 1;

            if (d == p->steps) {
                c->s->found[i].end = yajl_get_bytes_consumed(c->h);
            }
        }
    }
}


/* After the parse: the texts of what was found, in one block. */
static int
eb_event_scan_texts(eb_event_scan_ctx_t *c)
{
    size_t              i, size, used;
    char               *t;
    eb_event_member_t  *f;
    eb_event_scan_t    *s = c->s;

    size = 1;
    for (i = 0; i < s->nfound; i++) {
        f = &s->found[i];
        if (f->end && f->kind != EB_EV_OBJECT && f->kind != EB_EV_ARRAY) {
            size += f->end - f->start + 1;
        }
    }

    s->fbuf = malloc(size);
    if (s->fbuf == NULL) {
        return -1;
    }

    used = 0;

    for (i = 0; i < s->nfound; i++) {
        f = &s->found[i];
        t = s->fbuf + used;

        switch (f->end ? f->kind : EB_EV_NULL) {
        case EB_EV_STRING:
            f->text = t;
            f->text_len = eb_event_scan_unescape(c->event + f->start + 1,
                                                 c->event + f->end - 1,
                                                 (unsigned char *) t);
            break;
        case EB_EV_NUMBER:
        case EB_EV_TRUE:
        case EB_EV_FALSE:
            f->text = t;
            f->text_len = f->end - f->start;
            memcpy(t, c->event + f->start, f->text_len);
            t[f->text_len] = '\0';
            break;
        default:
            continue;
        }

        used += f->text_len + 1;
    }

    return 0;
}


/* ---- the top-level members ---------------------------------------------- */

/* a scalar, or the start of an object or array */
static int
eb_event_scan_member(eb_event_scan_ctx_t *c, eb_event_kind_t kind,
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
eb_event_scan_value(eb_event_scan_ctx_t *c, eb_event_kind_t kind,
    const unsigned char *text, size_t len)
{
    int  rc;

    if (c->npaths) {
        eb_event_scan_path_value(c, kind, len);
    }

    rc = eb_event_scan_member(c, kind, text, len);

    if (c->npaths) {
        c->last = yajl_get_bytes_consumed(c->h);
    }

    return rc;
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

    if (c->depth <= EB_JSONPATH_STEPS_MAX + 1) {
        c->array[c->depth] = kind == EB_EV_ARRAY;
        c->index[c->depth] = 0;
    }

    return 1;
}


static int
eb_event_scan_close(void *ctx)
{
    eb_event_scan_ctx_t  *c = ctx;

    if (--c->depth == 1) {
        c->s->members[c->s->n - 1].end = yajl_get_bytes_consumed(c->h);
    }

    if (c->npaths) {
        eb_event_scan_path_close(c);
        c->last = yajl_get_bytes_consumed(c->h);
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

    if (c->npaths) {
        eb_event_scan_path_key(c, p, len);
        c->last = yajl_get_bytes_consumed(c->h);
    }

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
    return eb_event_scan_paths(event, len, s, NULL, 0, err, errlen);
}


#define EB_EVENT_SCAN_PATHS  16     /* followed without an allocation */

int
eb_event_scan_paths(const unsigned char *event, size_t len,
    eb_event_scan_t *s, const eb_jsonpath_t *const *paths, size_t npaths,
    char *err, size_t errlen)
{
    size_t                i;
    yajl_status           st;
    unsigned char        *msg;
    eb_event_path_t       local[EB_EVENT_SCAN_PATHS];
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

    if (npaths) {
        c.paths = npaths <= EB_EVENT_SCAN_PATHS
                  ? local : malloc(npaths * sizeof(eb_event_path_t));
        s->found = calloc(npaths, sizeof(eb_event_member_t));

        if (c.paths == NULL || s->found == NULL) {
            snprintf(err, errlen, "out of memory");
            goto failed;
        }

        for (i = 0; i < npaths; i++) {
            c.paths[i].path = paths[i];
            c.paths[i].steps = eb_jsonpath_steps(paths[i]);
            c.paths[i].matched = 0;
            c.paths[i].hit = 0;
        }

        c.npaths = npaths;
        s->nfound = npaths;
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

    if (npaths && eb_event_scan_texts(&c) != 0) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    yajl_free(c.h);
    free(c.kbuf);
    if (c.paths != local) {
        free(c.paths);
    }
    return 0;

failed:

    if (c.h) {
        yajl_free(c.h);
    }
    free(c.kbuf);
    if (c.paths != local) {
        free(c.paths);
    }
    eb_event_scan_free(s);
    return -1;
}


const eb_event_member_t *
eb_event_scan_found(const eb_event_scan_t *s, size_t i)
{
    return i < s->nfound && s->found[i].end ? &s->found[i] : NULL;
}


eb_jsonpath_rc_t
eb_event_scan_text(const eb_event_scan_t *s, size_t i, eb_buf_t *b)
{
    const eb_event_member_t  *m = eb_event_scan_found(s, i);

    if (m == NULL) {
        return EB_JSONPATH_MISSING;
    }

    switch (m->kind) {
    case EB_EV_NULL:
        return eb_buf_append(b, "null", 4) == 0 ? EB_JSONPATH_NULL
                                                : EB_JSONPATH_ERROR;
    case EB_EV_OBJECT:
    case EB_EV_ARRAY:
        return EB_JSONPATH_ERROR;
    default:
        return eb_buf_append_str(b, m->text) == 0 ? EB_JSONPATH_FOUND
                                                  : EB_JSONPATH_ERROR;
    }
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
    free(s->found);
    free(s->fbuf);
    memset(s, 0, sizeof(eb_event_scan_t));
}
