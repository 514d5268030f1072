#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eb_json_string.h"
#include "eb_jsonpath.h"
#include "eb_utf8.h"


typedef enum {
    EB_JP_NAME,
    EB_JP_INDEX,
    EB_JP_ALL
} eb_jp_kind_t;


typedef struct {
    eb_jp_kind_t   kind;
    size_t         len;          /* NAME: its length in bytes */
    size_t         off;          /* NAME: its offset in the name pool */
    const char    *name;         /* NAME: set when compiling is done */
    long long      index;        /* INDEX */
} eb_jp_sel_t;


typedef struct {
    size_t         first;        /* the segment's selectors: sels[first..] */
    size_t         n;
    int            descendant;
} eb_jp_seg_t;


/* One allocation: this header, then segs[], sels[], the names, expr. */
struct eb_jsonpath_s {
    eb_jp_seg_t  *segs;
    size_t        nsegs;
    eb_jp_sel_t  *sels;
    size_t        nsels;
    const char   *expr;
    int           definite;
};


typedef struct {
    const unsigned char  *s;
    size_t                len;
    size_t                i;
    eb_buf_t              segs;
    eb_buf_t              sels;
    eb_buf_t              names;
    char                 *err;
    size_t                errlen;
} eb_jp_parser_t;


static void
eb_jp_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  ap;

    if (err == NULL || errlen == 0) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}


/* Describes the character at offset at for a message: "end of path",
 * "'x'", or a whole UTF-8 character in quotes. */
static const char *
eb_jp_found(eb_jp_parser_t *jp, size_t at, char *buf, size_t size)
{
    unsigned char  c;
    size_t         n;

    if (at >= jp->len) {
        return "the end of the path";
    }

    c = jp->s[at];

    if (c >= 0x80) {
        n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;

        if (n > jp->len - at) {
            n = jp->len - at;
        }

        snprintf(buf, size, "\"%.*s\"", (int) n, (const char *) jp->s + at);

    } else if (c < 0x20 || c == 0x7f) {
        snprintf(buf, size, "byte 0x%02x", c);

    } else {
        snprintf(buf, size, "\"%c\"", c);
    }

    return buf;
}


static int
eb_jp_fail(eb_jp_parser_t *jp, size_t at, const char *what)
{
    eb_jp_set_err(jp->err, jp->errlen, "invalid JSONPath at offset %zu: %s",
                  at, what);
    return -1;
}


/* "expected X, found Y" at offset at */
static int
eb_jp_expected(eb_jp_parser_t *jp, size_t at, const char *what)
{
    char  buf[16], msg[160];

    snprintf(msg, sizeof(msg), "expected %s, found %s", what,
             eb_jp_found(jp, at, buf, sizeof(buf)));

    return eb_jp_fail(jp, at, msg);
}


static int
eb_jp_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c >= 0x80
           || c == '_' || c == '-' || c == '$' || c == '@' || c == ':'
           || c == '/';
}


static int
eb_jp_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}


static void
eb_jp_skip_space(eb_jp_parser_t *jp)
{
    while (jp->i < jp->len && (jp->s[jp->i] == ' ' || jp->s[jp->i] == '\t'))
    {
        jp->i++;
    }
}


static int
eb_jp_add_sel(eb_jp_parser_t *jp, eb_jp_kind_t kind, size_t off, size_t len,
    long long index)
{
    eb_jp_sel_t  sel;

    memset(&sel, 0, sizeof(sel));
    sel.kind = kind;
    sel.off = off;
    sel.len = len;
    sel.index = index;

    if (eb_buf_append(&jp->sels, &sel, sizeof(sel)) != 0) {
        eb_jp_set_err(jp->err, jp->errlen, "out of memory");
        return -1;
    }

    return 0;
}


/* Adds a segment made of the selectors added since first. */
static int
eb_jp_add_seg(eb_jp_parser_t *jp, size_t first, int descendant)
{
    eb_jp_seg_t  seg;

    seg.first = first;
    seg.n = jp->sels.len / sizeof(eb_jp_sel_t) - first;
    seg.descendant = descendant;

    if (eb_buf_append(&jp->segs, &seg, sizeof(seg)) != 0) {
        eb_jp_set_err(jp->err, jp->errlen, "out of memory");
        return -1;
    }

    return 0;
}


static size_t
eb_jp_nsels(eb_jp_parser_t *jp)
{
    return jp->sels.len / sizeof(eb_jp_sel_t);
}


/* a dot name: at least one name character (the caller checked one) */
static int
eb_jp_parse_name(eb_jp_parser_t *jp)
{
    size_t  start;

    start = jp->i;

    while (jp->i < jp->len && eb_jp_name_char(jp->s[jp->i])) {
        jp->i++;
    }

    if (eb_jp_add_sel(jp, EB_JP_NAME, jp->names.len, jp->i - start, 0) != 0)
    {
        return -1;
    }

    if (eb_buf_append(&jp->names, jp->s + start, jp->i - start) != 0) {
        eb_jp_set_err(jp->err, jp->errlen, "out of memory");
        return -1;
    }

    return 0;
}


/* \uXXXX (or a surrogate pair) at jp->i, which is at the backslash;
 * appends the character as UTF-8 */
static int
eb_jp_parse_u(eb_jp_parser_t *jp)
{
    size_t          k, n;
    uint32_t        cp;
    const char     *why;
    unsigned char   u[4];

    k = eb_json_escape(jp->s + jp->i, jp->len - jp->i, &cp, &why);
    if (k == 0) {
        return eb_jp_fail(jp, jp->i, why);
    }

    jp->i += k;
    n = eb_utf8_encode(u, cp);

    if (eb_buf_append(&jp->names, u, n) != 0) {
        eb_jp_set_err(jp->err, jp->errlen, "out of memory");
        return -1;
    }

    return 0;
}


/* a quoted name at jp->i, which is at the opening quote */
static int
eb_jp_parse_quoted(eb_jp_parser_t *jp)
{
    size_t         start, off;
    unsigned char  q, c, e;
    char           buf[16], msg[64];

    start = jp->i;
    q = jp->s[jp->i++];
    off = jp->names.len;

    for ( ;; ) {
        if (jp->i >= jp->len) {
            return eb_jp_fail(jp, start, q == '\'' ? "unterminated 'string'"
                                                   : "unterminated \"string\"");
        }

        c = jp->s[jp->i];

        if (c == q) {
            jp->i++;
            break;
        }

        if (c < 0x20) {
            snprintf(msg, sizeof(msg), "%s in a quoted name (escape it)",
                     eb_jp_found(jp, jp->i, buf, sizeof(buf)));
            return eb_jp_fail(jp, jp->i, msg);
        }

        if (c != '\\') {
            if (eb_buf_append(&jp->names, &c, 1) != 0) {
                goto nomem;
            }

            jp->i++;
            continue;
        }

        if (jp->i + 1 >= jp->len) {
            return eb_jp_fail(jp, start, q == '\'' ? "unterminated 'string'"
                                                   : "unterminated \"string\"");
        }

        e = jp->s[jp->i + 1];

        switch (e) {
        case '\'':
        case '"':
        case '\\':
        case '/':
            c = e;
            break;
        case 'b':
            c = '\b';
            break;
        case 'f':
            c = '\f';
            break;
        case 'n':
            c = '\n';
            break;
        case 'r':
            c = '\r';
            break;
        case 't':
            c = '\t';
            break;

        case 'u':
            if (eb_jp_parse_u(jp) != 0) {
                return -1;
            }

            continue;

        default:
            if (e >= 0x20 && e < 0x7f) {
                snprintf(msg, sizeof(msg), "invalid escape \"\\%c\"", e);

            } else {
                snprintf(msg, sizeof(msg), "invalid escape");
            }

            return eb_jp_fail(jp, jp->i, msg);
        }

        if (eb_buf_append(&jp->names, &c, 1) != 0) {
            goto nomem;
        }

        jp->i += 2;
    }

    return eb_jp_add_sel(jp, EB_JP_NAME, off, jp->names.len - off, 0);

nomem:

    eb_jp_set_err(jp->err, jp->errlen, "out of memory");
    return -1;
}


static int
eb_jp_parse_index(eb_jp_parser_t *jp)
{
    size_t     start;
    int        neg;
    unsigned   d;
    long long  v;

    start = jp->i;
    neg = 0;

    if (jp->s[jp->i] == '-') {
        neg = 1;
        jp->i++;
    }

    if (jp->i >= jp->len || !eb_jp_digit(jp->s[jp->i])) {
        return eb_jp_expected(jp, jp->i, "a digit");
    }

    if (jp->s[jp->i] == '0') {
        if (neg) {
            return eb_jp_fail(jp, start, "-0 is not an index");
        }

        if (jp->i + 1 < jp->len && eb_jp_digit(jp->s[jp->i + 1])) {
            return eb_jp_fail(jp, start, "an index has no leading zeros");
        }
    }

    v = 0;

    while (jp->i < jp->len && eb_jp_digit(jp->s[jp->i])) {
        d = jp->s[jp->i] - '0';

        if (v > (LLONG_MAX - d) / 10) {
            return eb_jp_fail(jp, start, "index out of range");
        }

        v = v * 10 + d;
        jp->i++;
    }

    return eb_jp_add_sel(jp, EB_JP_INDEX, 0, 0, neg ? -v : v);
}


/* [selector, ...] at jp->i, which is at the "[" */
static int
eb_jp_parse_bracket(eb_jp_parser_t *jp, int descendant)
{
    size_t         start, first;
    unsigned char  c;

    start = jp->i++;
    first = eb_jp_nsels(jp);

    for ( ;; ) {
        eb_jp_skip_space(jp);

        if (jp->i >= jp->len) {
            return eb_jp_fail(jp, start, "unterminated \"[\"");
        }

        c = jp->s[jp->i];

        if (c == '\'' || c == '"') {
            if (eb_jp_parse_quoted(jp) != 0) {
                return -1;
            }

        } else if (c == '*') {
            jp->i++;

            if (eb_jp_add_sel(jp, EB_JP_ALL, 0, 0, 0) != 0) {
                return -1;
            }

        } else if (c == '-' || eb_jp_digit(c)) {
            if (eb_jp_parse_index(jp) != 0) {
                return -1;
            }

        } else if (c == '?') {
            return eb_jp_fail(jp, jp->i, "filters are not supported");

        } else if (c == ':') {
            return eb_jp_fail(jp, jp->i, "slices are not supported");

        } else {
            return eb_jp_expected(jp, jp->i,
                                  "a quoted name, an index or \"*\"");
        }

        eb_jp_skip_space(jp);

        if (jp->i >= jp->len) {
            return eb_jp_fail(jp, start, "unterminated \"[\"");
        }

        c = jp->s[jp->i];

        if (c == ']') {
            jp->i++;
            break;
        }

        if (c == ',') {
            jp->i++;
            continue;
        }

        if (c == ':') {
            return eb_jp_fail(jp, jp->i, "slices are not supported");
        }

        return eb_jp_expected(jp, jp->i, "\",\" or \"]\"");
    }

    return eb_jp_add_seg(jp, first, descendant);
}


/* what follows "." or "..": a name, "*", or (after "..") a bracket */
static int
eb_jp_parse_dot(eb_jp_parser_t *jp, int descendant)
{
    size_t         first;
    unsigned char  c;

    first = eb_jp_nsels(jp);

    if (jp->i < jp->len) {
        c = jp->s[jp->i];

        if (c == '*') {
            jp->i++;

            if (eb_jp_add_sel(jp, EB_JP_ALL, 0, 0, 0) != 0) {
                return -1;
            }

            return eb_jp_add_seg(jp, first, descendant);
        }

        if (c == '[' && descendant) {
            return eb_jp_parse_bracket(jp, 1);
        }

        if (eb_jp_name_char(c)) {
            if (eb_jp_parse_name(jp) != 0) {
                return -1;
            }

            return eb_jp_add_seg(jp, first, descendant);
        }
    }

    return eb_jp_expected(jp, jp->i, descendant
                          ? "a name, \"*\" or \"[\" after \"..\""
                          : "a name or \"*\" after \".\"");
}


static int
eb_jp_parse(eb_jp_parser_t *jp)
{
    ssize_t        bad;
    unsigned char  c;

    bad = eb_utf8_invalid_at(jp->s, jp->len);
    if (bad >= 0) {
        return eb_jp_fail(jp, (size_t) bad, "invalid UTF-8");
    }

    if (jp->len == 0 || jp->s[0] != '$') {
        return eb_jp_expected(jp, 0, "\"$\" at the start");
    }

    jp->i = 1;

    while (jp->i < jp->len) {
        c = jp->s[jp->i];

        if (c == '[') {
            if (eb_jp_parse_bracket(jp, 0) != 0) {
                return -1;
            }

        } else if (c == '.') {
            if (jp->i + 1 < jp->len && jp->s[jp->i + 1] == '.') {
                jp->i += 2;

                if (eb_jp_parse_dot(jp, 1) != 0) {
                    return -1;
                }

            } else {
                jp->i++;

                if (eb_jp_parse_dot(jp, 0) != 0) {
                    return -1;
                }
            }

        } else {
            return eb_jp_expected(jp, jp->i, "\".\", \"..\" or \"[\"");
        }
    }

    return 0;
}


eb_jsonpath_t *
eb_jsonpath_compile(const char *expr, size_t len, char *err, size_t errlen)
{
    size_t          i, j, size;
    char           *names, *text;
    eb_jsonpath_t  *p;
    eb_jp_parser_t  jp;
    eb_jp_seg_t    *seg;

    jp.s = (const unsigned char *) expr;
    jp.len = len;
    jp.i = 0;
    jp.err = err;
    jp.errlen = errlen;
    eb_buf_init(&jp.segs);
    eb_buf_init(&jp.sels);
    eb_buf_init(&jp.names);

    if (expr == NULL && len) {
        eb_jp_set_err(err, errlen, "invalid JSONPath: no text");
        return NULL;
    }

    p = NULL;

    if (eb_jp_parse(&jp) != 0) {
        goto done;
    }

    /* the sizes of segs[] and sels[] keep the alignment of what follows */
    size = sizeof(eb_jsonpath_t) + jp.segs.len + jp.sels.len + jp.names.len
           + len + 1;

    p = malloc(size);
    if (p == NULL) {
        eb_jp_set_err(err, errlen, "out of memory");
        goto done;
    }

    p->segs = (eb_jp_seg_t *) (p + 1);
    p->nsegs = jp.segs.len / sizeof(eb_jp_seg_t);
    p->sels = (eb_jp_sel_t *) ((char *) p->segs + jp.segs.len);
    p->nsels = jp.sels.len / sizeof(eb_jp_sel_t);
    names = (char *) p->sels + jp.sels.len;
    text = names + jp.names.len;

    if (jp.segs.len) {
        memcpy(p->segs, jp.segs.data, jp.segs.len);
    }

    if (jp.sels.len) {
        memcpy(p->sels, jp.sels.data, jp.sels.len);
    }

    if (jp.names.len) {
        memcpy(names, jp.names.data, jp.names.len);
    }

    if (len) {
        memcpy(text, expr, len);
    }

    text[len] = '\0';
    p->expr = text;
    p->definite = 1;

    for (i = 0; i < p->nsels; i++) {
        p->sels[i].name = names + p->sels[i].off;
    }

    for (i = 0; i < p->nsegs; i++) {
        seg = &p->segs[i];

        if (seg->descendant || seg->n != 1) {
            p->definite = 0;
        }

        for (j = 0; j < seg->n; j++) {
            if (p->sels[seg->first + j].kind == EB_JP_ALL) {
                p->definite = 0;
            }
        }
    }

done:

    eb_buf_free(&jp.segs);
    eb_buf_free(&jp.sels);
    eb_buf_free(&jp.names);

    return p;
}


void
eb_jsonpath_free(eb_jsonpath_t *p)
{
    free(p);
}


const char *
eb_jsonpath_expr(const eb_jsonpath_t *p)
{
    return p->expr;
}


int
eb_jsonpath_is_definite(const eb_jsonpath_t *p)
{
    return p->definite;
}


int
eb_jsonpath_is_simple(const eb_jsonpath_t *p)
{
    size_t              i;
    const eb_jp_seg_t  *seg;
    const eb_jp_sel_t  *sel;

    if (!p->definite || p->nsegs == 0 || p->nsegs > EB_JSONPATH_STEPS_MAX) {
        return 0;
    }

    for (i = 0; i < p->nsegs; i++) {
        seg = &p->segs[i];
        sel = &p->sels[seg->first];

        if (seg->descendant || seg->n != 1
            || (sel->kind != EB_JP_NAME
                && (sel->kind != EB_JP_INDEX || sel->index < 0)))
        {
            return 0;
        }
    }

    return 1;
}


size_t
eb_jsonpath_steps(const eb_jsonpath_t *p)
{
    return p->nsegs;
}


int
eb_jsonpath_step(const eb_jsonpath_t *p, size_t i, const char **name,
    size_t *len, size_t *index)
{
    const eb_jp_sel_t  *sel = &p->sels[p->segs[i].first];

    if (sel->kind == EB_JP_NAME) {
        *name = sel->name;
        *len = sel->len;
        return 1;
    }

    *index = (size_t) sel->index;
    return 0;
}


/* evaluation: a depth-first walk that yields the matches in the order of
 * RFC 9535's segment-by-segment node lists */

typedef struct {
    const eb_jsonpath_t  *p;
    eb_jsonpath_cb_pt     cb;
    void                 *ctx;
} eb_jp_walk_t;


static int eb_jp_step(eb_jp_walk_t *w, size_t k, yajl_val node);


/* the object member named by sel: the last one with that key */
static yajl_val
eb_jp_member(yajl_val obj, const eb_jp_sel_t *sel)
{
    size_t       i;
    const char  *key;

    for (i = obj->u.object.len; i > 0; i--) {
        key = obj->u.object.keys[i - 1];

        if (strlen(key) == sel->len && memcmp(key, sel->name, sel->len) == 0)
        {
            return obj->u.object.values[i - 1];
        }
    }

    return NULL;
}


/* applies the selectors of segment k to node, and the rest of the path to
 * what they select */
static int
eb_jp_select(eb_jp_walk_t *w, size_t k, yajl_val node)
{
    int                 rc;
    size_t              i, j, n;
    yajl_val            v;
    const eb_jp_seg_t  *seg;
    const eb_jp_sel_t  *sel;

    seg = &w->p->segs[k];

    for (i = 0; i < seg->n; i++) {
        sel = &w->p->sels[seg->first + i];

        switch (sel->kind) {

        case EB_JP_NAME:
            if (!YAJL_IS_OBJECT(node)) {
                break;
            }

            v = eb_jp_member(node, sel);

            if (v) {
                rc = eb_jp_step(w, k + 1, v);
                if (rc) {
                    return rc;
                }
            }

            break;

        case EB_JP_INDEX:
            if (!YAJL_IS_ARRAY(node)) {
                break;
            }

            n = node->u.array.len;

            if (sel->index >= 0) {
                if ((unsigned long long) sel->index >= n) {
                    break;
                }

                j = (size_t) sel->index;

            } else {
                if ((unsigned long long) -sel->index > n) {
                    break;
                }

                j = n - (size_t) -sel->index;
            }

            rc = eb_jp_step(w, k + 1, node->u.array.values[j]);
            if (rc) {
                return rc;
            }

            break;

        case EB_JP_ALL:
            if (YAJL_IS_OBJECT(node)) {
                for (j = 0; j < node->u.object.len; j++) {
                    rc = eb_jp_step(w, k + 1, node->u.object.values[j]);
                    if (rc) {
                        return rc;
                    }
                }

            } else if (YAJL_IS_ARRAY(node)) {
                for (j = 0; j < node->u.array.len; j++) {
                    rc = eb_jp_step(w, k + 1, node->u.array.values[j]);
                    if (rc) {
                        return rc;
                    }
                }
            }

            break;
        }
    }

    return 0;
}


/* a descendant segment: node itself, then its children's subtrees */
static int
eb_jp_descend(eb_jp_walk_t *w, size_t k, yajl_val node)
{
    int        rc;
    size_t     j, n;
    yajl_val  *kids;

    rc = eb_jp_select(w, k, node);
    if (rc) {
        return rc;
    }

    if (YAJL_IS_OBJECT(node)) {
        kids = node->u.object.values;
        n = node->u.object.len;

    } else if (YAJL_IS_ARRAY(node)) {
        kids = node->u.array.values;
        n = node->u.array.len;

    } else {
        return 0;
    }

    for (j = 0; j < n; j++) {
        rc = eb_jp_descend(w, k, kids[j]);
        if (rc) {
            return rc;
        }
    }

    return 0;
}


static int
eb_jp_step(eb_jp_walk_t *w, size_t k, yajl_val node)
{
    if (node == NULL) {
        return 0;
    }

    if (k == w->p->nsegs) {
        return w->cb(w->ctx, node);
    }

    if (w->p->segs[k].descendant) {
        return eb_jp_descend(w, k, node);
    }

    return eb_jp_select(w, k, node);
}


int
eb_jsonpath_walk(const eb_jsonpath_t *p, yajl_val root, eb_jsonpath_cb_pt cb,
    void *ctx)
{
    eb_jp_walk_t  w;

    w.p = p;
    w.cb = cb;
    w.ctx = ctx;

    return eb_jp_step(&w, 0, root);
}


typedef struct {
    yajl_val  *out;
    size_t     max;
    size_t     n;
} eb_jp_collect_t;


static int
eb_jp_collect(void *ctx, yajl_val v)
{
    eb_jp_collect_t  *c = ctx;

    if (c->n < c->max) {
        c->out[c->n] = v;
    }

    c->n++;

    return 0;
}


size_t
eb_jsonpath_eval(const eb_jsonpath_t *p, yajl_val root, yajl_val *out,
    size_t max)
{
    eb_jp_collect_t  c;

    c.out = out;
    c.max = max;
    c.n = 0;

    (void) eb_jsonpath_walk(p, root, eb_jp_collect, &c);

    return c.n;
}


static int
eb_jp_first(void *ctx, yajl_val v)
{
    *(yajl_val *) ctx = v;

    return 1;
}


yajl_val
eb_jsonpath_first(const eb_jsonpath_t *p, yajl_val root)
{
    yajl_val  v;

    v = NULL;
    (void) eb_jsonpath_walk(p, root, eb_jp_first, &v);

    return v;
}


/* values as text */

int
eb_jsonpath_write_escaped(eb_buf_t *b, const unsigned char *p, size_t len)
{
    static const char  hex[] = "0123456789abcdef";

    size_t          i, run, elen;
    unsigned char   c;
    char            esc[6];
    const char     *e;

    if (len == 0) {
        /* p may be NULL: no pointer arithmetic on it */
        return b->failed ? -1 : 0;
    }

    run = 0;

    for (i = 0; i < len; i++) {
        c = p[i];

        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }

        if (eb_buf_append(b, p + run, i - run) != 0) {
            return -1;
        }

        run = i + 1;
        elen = 2;

        switch (c) {
        case '"':
            e = "\\\"";
            break;
        case '\\':
            e = "\\\\";
            break;
        case '\b':
            e = "\\b";
            break;
        case '\f':
            e = "\\f";
            break;
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case '\t':
            e = "\\t";
            break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            e = esc;
            elen = 6;
        }

        if (eb_buf_append(b, e, elen) != 0) {
            return -1;
        }
    }

    return eb_buf_append(b, p + run, len - run);
}


static int
eb_jp_write_string(eb_buf_t *b, const char *s)
{
    if (eb_buf_append(b, "\"", 1) != 0
        || eb_jsonpath_write_escaped(b, (const unsigned char *) s, strlen(s))
           != 0
        || eb_buf_append(b, "\"", 1) != 0)
    {
        return -1;
    }

    return 0;
}


int
eb_jsonpath_write_json(eb_buf_t *b, yajl_val v)
{
    size_t  i;

    if (v == NULL) {
        return eb_buf_append(b, "null", 4);
    }

    switch (v->type) {

    case yajl_t_string:
        return eb_jp_write_string(b, v->u.string);

    case yajl_t_number:
        return eb_buf_append_str(b, v->u.number.r);

    case yajl_t_object:
        if (eb_buf_append(b, "{", 1) != 0) {
            return -1;
        }

        for (i = 0; i < v->u.object.len; i++) {
            if ((i && eb_buf_append(b, ",", 1) != 0)
                || eb_jp_write_string(b, v->u.object.keys[i]) != 0
                || eb_buf_append(b, ":", 1) != 0
                || eb_jsonpath_write_json(b, v->u.object.values[i]) != 0)
            {
                return -1;
            }
        }

        return eb_buf_append(b, "}", 1);

    case yajl_t_array:
        if (eb_buf_append(b, "[", 1) != 0) {
            return -1;
        }

        for (i = 0; i < v->u.array.len; i++) {
            if ((i && eb_buf_append(b, ",", 1) != 0)
                || eb_jsonpath_write_json(b, v->u.array.values[i]) != 0)
            {
                return -1;
            }
        }

        return eb_buf_append(b, "]", 1);

    case yajl_t_true:
        return eb_buf_append(b, "true", 4);

    case yajl_t_false:
        return eb_buf_append(b, "false", 5);

    default:
        return eb_buf_append(b, "null", 4);
    }
}


int
eb_jsonpath_write_text(eb_buf_t *b, yajl_val v)
{
    if (v && YAJL_IS_STRING(v)) {
        return eb_buf_append_str(b, v->u.string);
    }

    return eb_jsonpath_write_json(b, v);
}


typedef struct {
    eb_buf_t  *b;
    size_t     n;
} eb_jp_array_t;


static int
eb_jp_array_item(void *ctx, yajl_val v)
{
    eb_jp_array_t  *a = ctx;

    if ((a->n++ && eb_buf_append(a->b, ",", 1) != 0)
        || eb_jsonpath_write_json(a->b, v) != 0)
    {
        return -1;
    }

    return 0;
}


eb_jsonpath_rc_t
eb_jsonpath_text(const eb_jsonpath_t *p, yajl_val root, eb_buf_t *b)
{
    yajl_val       v;
    eb_jp_array_t  a;

    if (p->definite) {
        v = eb_jsonpath_first(p, root);

        if (v == NULL) {
            return EB_JSONPATH_MISSING;
        }

        if (eb_jsonpath_write_text(b, v) != 0) {
            return EB_JSONPATH_ERROR;
        }

        return YAJL_IS_NULL(v) ? EB_JSONPATH_NULL : EB_JSONPATH_FOUND;
    }

    a.b = b;
    a.n = 0;

    if (eb_buf_append(b, "[", 1) != 0
        || eb_jsonpath_walk(p, root, eb_jp_array_item, &a) != 0
        || eb_buf_append(b, "]", 1) != 0)
    {
        return EB_JSONPATH_ERROR;
    }

    return EB_JSONPATH_FOUND;
}
