/*
 * Event patterns: from JSON text to the AST of a ruleset. The text is
 * checked with eb_json_validate(), read into a small tree with yajl's
 * parser (keeping string lengths and duplicate keys), and walked: each
 * leaf list becomes a conjunct, each "$or" multiplies the alternatives.
 * Every refusal names the JSON path inside the pattern.
 */

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "eb_json.h"
#include "eb_pattern_int.h"


#define EB_PM_JSON_DEPTH  (EB_PATTERN_MAX_DEPTH * 2 + 8)


/* the JSON tree */

typedef struct eb_pm_jnode_s  eb_pm_jnode_t;

struct eb_pm_jnode_s {
    uint8_t                type;        /* EB_PM_T_* */
    const unsigned char   *str;         /* string, number text (NUL-ended) */
    size_t                 len;
    const unsigned char   *key;         /* as a member of an object */
    size_t                 klen;
    eb_pm_jnode_t        **items;       /* members, elements */
    size_t                 n;
};


typedef struct eb_pm_block_s  eb_pm_block_t;

struct eb_pm_block_s {
    eb_pm_block_t  *next;
    size_t          used;
    size_t          size;
    /* data follows */
};


typedef struct {
    eb_pm_block_t  *blocks;
    eb_pm_vec_t     open;        /* eb_pm_jnode_t *: open containers */
    eb_pm_vec_t     first;       /* size_t: their first kid in kids */
    eb_pm_vec_t     kids;        /* eb_pm_jnode_t * */
    unsigned char  *key;
    size_t          klen;
    eb_pm_jnode_t  *root;
    int             nomem;
} eb_pm_dom_t;


/* the walk */

typedef struct {
    uint32_t  off;               /* conj ids in c->pool */
    uint32_t  n;
} eb_pm_alt_set_t;

typedef struct {
    eb_ruleset_t   *rs;
    char           *err;
    size_t          errlen;
    char            path[480];
    size_t          plen;
    int             depth;
    eb_pm_vec_t     pool;        /* uint32_t: conj ids of alternatives */
    eb_pm_vec_t     tmp;         /* uint32_t: for sorting */
    eb_pm_vec_t     cbuf;        /* unsigned char: canonical texts */
} eb_pm_parse_t;


static void *
eb_pm_dom_alloc(eb_pm_dom_t *d, size_t size)
{
    size_t          bsize;
    eb_pm_block_t  *b;
    void           *p;

    size = (size + 15) & ~(size_t) 15;
    b = d->blocks;

    if (b == NULL || b->size - b->used < size) {
        bsize = size > 8192 ? size : 8192;

        b = malloc(sizeof(eb_pm_block_t) + 16 + bsize);
        if (b == NULL) {
            d->nomem = 1;
            return NULL;
        }

        b->next = d->blocks;
        b->used = 0;
        b->size = bsize;
        d->blocks = b;
    }

    p = (unsigned char *) b + ((sizeof(eb_pm_block_t) + 15) & ~(size_t) 15)
        + b->used;
    b->used += size;

    return p;
}


static void
eb_pm_dom_free(eb_pm_dom_t *d)
{
    eb_pm_block_t  *b, *next;

    for (b = d->blocks; b; b = next) {
        next = b->next;
        free(b);
    }

    eb_pm_vec_free(&d->open);
    eb_pm_vec_free(&d->first);
    eb_pm_vec_free(&d->kids);
}


static unsigned char *
eb_pm_dom_copy(eb_pm_dom_t *d, const unsigned char *p, size_t len)
{
    unsigned char  *s;

    s = eb_pm_dom_alloc(d, len + 1);
    if (s == NULL) {
        return NULL;
    }

    if (len) {
        memcpy(s, p, len);
    }

    s[len] = '\0';

    return s;
}


static eb_pm_jnode_t *
eb_pm_dom_node(eb_pm_dom_t *d, uint8_t type)
{
    eb_pm_jnode_t   *n, **kid;

    n = eb_pm_dom_alloc(d, sizeof(eb_pm_jnode_t));
    if (n == NULL) {
        return NULL;
    }

    memset(n, 0, sizeof(eb_pm_jnode_t));
    n->type = type;

    if (d->open.n == 0) {
        d->root = n;
        return n;
    }

    if ((*eb_pm_vec_at(&d->open, eb_pm_jnode_t *, d->open.n - 1))->type
        == EB_PM_T_OBJECT)
    {
        n->key = d->key;
        n->klen = d->klen;
    }

    kid = eb_pm_vec_push(&d->kids, sizeof(eb_pm_jnode_t *), 1);
    if (kid == NULL) {
        d->nomem = 1;
        return NULL;
    }

    *kid = n;

    return n;
}


static int
eb_pm_dom_scalar(void *ctx, uint8_t type, const unsigned char *p,
    size_t len)
{
    eb_pm_dom_t    *d = ctx;
    eb_pm_jnode_t  *n;

    n = eb_pm_dom_node(d, type);
    if (n == NULL) {
        return 0;
    }

    if (type == EB_PM_T_STRING || type == EB_PM_T_NUMBER) {
        n->str = eb_pm_dom_copy(d, p, len);
        if (n->str == NULL) {
            return 0;
        }

        n->len = len;
    }

    return 1;
}


static int
eb_pm_dom_null(void *ctx)
{
    return eb_pm_dom_scalar(ctx, EB_PM_T_NULL, NULL, 0);
}


static int
eb_pm_dom_boolean(void *ctx, int b)
{
    return eb_pm_dom_scalar(ctx, b ? EB_PM_T_TRUE : EB_PM_T_FALSE, NULL, 0);
}


static int
eb_pm_dom_number(void *ctx, const char *p, size_t len)
{
    return eb_pm_dom_scalar(ctx, EB_PM_T_NUMBER, (const unsigned char *) p,
                            len);
}


static int
eb_pm_dom_string(void *ctx, const unsigned char *p, size_t len)
{
    return eb_pm_dom_scalar(ctx, EB_PM_T_STRING, p, len);
}


static int
eb_pm_dom_open(eb_pm_dom_t *d, uint8_t type)
{
    eb_pm_jnode_t   *n, **o;
    size_t          *f;

    n = eb_pm_dom_node(d, type);
    if (n == NULL) {
        return 0;
    }

    o = eb_pm_vec_push(&d->open, sizeof(eb_pm_jnode_t *), 1);
    f = eb_pm_vec_push(&d->first, sizeof(size_t), 1);
    if (o == NULL || f == NULL) {
        d->nomem = 1;
        return 0;
    }

    *o = n;
    *f = d->kids.n;

    return 1;
}


static int
eb_pm_dom_start_map(void *ctx)
{
    return eb_pm_dom_open(ctx, EB_PM_T_OBJECT);
}


static int
eb_pm_dom_start_array(void *ctx)
{
    return eb_pm_dom_open(ctx, EB_PM_T_ARRAY);
}


static int
eb_pm_dom_key(void *ctx, const unsigned char *p, size_t len)
{
    eb_pm_dom_t  *d = ctx;

    d->key = eb_pm_dom_copy(d, p, len);
    d->klen = len;

    return d->key != NULL;
}


static int
eb_pm_dom_close(void *ctx)
{
    eb_pm_dom_t    *d = ctx;
    size_t          first, n;
    eb_pm_jnode_t  *node;

    node = *eb_pm_vec_at(&d->open, eb_pm_jnode_t *, d->open.n - 1);
    first = *eb_pm_vec_at(&d->first, size_t, d->first.n - 1);
    d->open.n--;
    d->first.n--;

    n = d->kids.n - first;

    if (n) {
        node->items = eb_pm_dom_alloc(d, n * sizeof(eb_pm_jnode_t *));
        if (node->items == NULL) {
            return 0;
        }

        memcpy(node->items, eb_pm_vec_at(&d->kids, eb_pm_jnode_t *, first),
               n * sizeof(eb_pm_jnode_t *));
    }

    node->n = n;
    d->kids.n = first;

    return 1;
}


static const yajl_callbacks  eb_pm_dom_callbacks = {
    eb_pm_dom_null,
    eb_pm_dom_boolean,
    NULL,                       /* integer: number gets the text */
    NULL,                       /* double */
    eb_pm_dom_number,
    eb_pm_dom_string,
    eb_pm_dom_start_map,
    eb_pm_dom_key,
    eb_pm_dom_close,
    eb_pm_dom_start_array,
    eb_pm_dom_close
};


/* errors and paths */

static int
eb_pm_fail(eb_pm_parse_t *c, const char *fmt, ...)
{
    int      n;
    va_list  ap;

    if (c->errlen == 0) {
        return -1;
    }

    n = snprintf(c->err, c->errlen, "%s: ", c->plen ? c->path : "pattern");

    if (n >= 0 && (size_t) n < c->errlen) {
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - (size_t) n, fmt, ap);
        va_end(ap);
    }

    return -1;
}


static int
eb_pm_nomem(eb_pm_parse_t *c)
{
    if (c->errlen) {
        snprintf(c->err, c->errlen, "out of memory");
    }

    return -1;
}


/* Appends ".key" (or "key" at the root) or "[i]" to the path; returns
 * the old length for eb_pm_pop(). Control bytes are shown as '?'; a path
 * too long ends with "...". */
static size_t
eb_pm_push_key(eb_pm_parse_t *c, const unsigned char *key, size_t klen)
{
    size_t  old, i, room;

    old = c->plen;
    room = sizeof(c->path) - 4;         /* "..." and the NUL */

    if (c->plen >= room) {
        /* already cut short, and ended with "..." */
        return old;
    }

    if (c->plen) {
        c->path[c->plen++] = '.';
    }

    for (i = 0; i < klen && c->plen < room; i++) {
        c->path[c->plen++] = key[i] < 0x20 ? '?' : (char) key[i];
    }

    if (i < klen) {
        memcpy(c->path + c->plen, "...", 3);
        c->plen += 3;
    }

    c->path[c->plen] = '\0';

    return old;
}


static size_t
eb_pm_push_str(eb_pm_parse_t *c, const char *key)
{
    return eb_pm_push_key(c, (const unsigned char *) key, strlen(key));
}


static size_t
eb_pm_push_index(eb_pm_parse_t *c, size_t i)
{
    int     n;
    size_t  old;

    old = c->plen;

    if (c->plen < sizeof(c->path) - 24) {
        n = snprintf(c->path + c->plen, sizeof(c->path) - c->plen, "[%zu]",
                     i);
        if (n > 0) {
            c->plen += (size_t) n;
        }
    }

    return old;
}


static void
eb_pm_pop(eb_pm_parse_t *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}


static const char *
eb_pm_type_name(const eb_pm_jnode_t *n)
{
    switch (n->type) {
    case EB_PM_T_STRING:
        return "a string";
    case EB_PM_T_NUMBER:
        return "a number";
    case EB_PM_T_TRUE:
    case EB_PM_T_FALSE:
        return "a boolean";
    case EB_PM_T_NULL:
        return "null";
    case EB_PM_T_OBJECT:
        return "an object";
    }

    return "an array";
}


static int
eb_pm_is(const eb_pm_jnode_t *n, const char *s)
{
    size_t  len;

    len = strlen(s);

    return n->klen == len && memcmp(n->key, s, len) == 0;
}


/* the AST */

static uint32_t
eb_pm_bytes(eb_pm_parse_t *c, const unsigned char *p, size_t len)
{
    unsigned char  *b;

    b = eb_pm_vec_push(&c->rs->bytes, 1, len);
    if (b == NULL && len) {
        return EB_PM_NONE;
    }

    if (len) {
        memcpy(b, p, len);
    }

    return (uint32_t) (c->rs->bytes.n - len);
}


static eb_pm_pred_t *
eb_pm_pred(eb_pm_parse_t *c, uint8_t op, uint32_t *id)
{
    eb_pm_pred_t  *p;

    p = eb_pm_vec_push(&c->rs->preds, sizeof(eb_pm_pred_t), 1);
    if (p == NULL) {
        return NULL;
    }

    p->op = op;
    p->list_off = EB_PM_NONE;
    p->re = EB_PM_NONE;
    *id = (uint32_t) (c->rs->preds.n - 1);

    return p;
}


static int
eb_pm_number_of(eb_pm_parse_t *c, const eb_pm_jnode_t *n, eb_pm_num_t *d)
{
    *d = eb_pm_number(n->str, n->len);

    if (!isfinite(*d)) {
        return eb_pm_fail(c, "number %s is not finite", (const char *) n->str);
    }

    return 0;
}


/* A string operand as a pred: op on the bytes (folded for _CI ops). */
static int
eb_pm_string_pred(eb_pm_parse_t *c, uint8_t op, const eb_pm_jnode_t *n,
    uint32_t *id)
{
    uint32_t       off;
    eb_pm_pred_t  *p;

    off = eb_pm_bytes(c, n->str, n->len);
    if (off == EB_PM_NONE) {
        return eb_pm_nomem(c);
    }

    if (op == EB_PM_OP_EQ_CI || op == EB_PM_OP_PREFIX_CI
        || op == EB_PM_OP_SUFFIX_CI)
    {
        eb_pm_fold((unsigned char *) c->rs->bytes.data + off,
                   (unsigned char *) c->rs->bytes.data + off, n->len);
    }

    p = eb_pm_pred(c, op, id);
    if (p == NULL) {
        return eb_pm_nomem(c);
    }

    p->v.type = EB_PM_T_STRING;
    p->v.off = off;
    p->v.len = (uint32_t) n->len;

    return 0;
}


static int
eb_pm_scalar_pred(eb_pm_parse_t *c, const eb_pm_jnode_t *n, uint32_t *id)
{
    eb_pm_num_t    d;
    eb_pm_pred_t  *p;

    if (n->type == EB_PM_T_STRING) {
        return eb_pm_string_pred(c, EB_PM_OP_EXACT, n, id);
    }

    d = 0;

    if (n->type == EB_PM_T_NUMBER && eb_pm_number_of(c, n, &d) != 0) {
        return -1;
    }

    p = eb_pm_pred(c, EB_PM_OP_EXACT, id);
    if (p == NULL) {
        return eb_pm_nomem(c);
    }

    p->v.type = n->type;
    p->v.num = d;

    return 0;
}


/* {"prefix": "s"} or {"prefix": {"equals-ignore-case": "s"}} */
static int
eb_pm_affix(eb_pm_parse_t *c, const eb_pm_jnode_t *n, uint8_t op,
    uint8_t op_ci, uint32_t *id)
{
    if (n->type == EB_PM_T_STRING) {
        return eb_pm_string_pred(c, op, n, id);
    }

    if (n->type == EB_PM_T_OBJECT && n->n == 1
        && eb_pm_is(n->items[0], "equals-ignore-case")
        && n->items[0]->type == EB_PM_T_STRING)
    {
        return eb_pm_string_pred(c, op_ci, n->items[0], id);
    }

    return eb_pm_fail(c, "expected a string or {\"equals-ignore-case\": "
                      "string}, got %s", eb_pm_type_name(n));
}


/* A wildcard: its pieces, or a simpler pred when it is one. */
static int
eb_pm_wildcard_pred(eb_pm_parse_t *c, const eb_pm_jnode_t *n, uint32_t *id)
{
    size_t          i, stars, npieces;
    uint32_t       *ids, off, start;
    eb_pm_pred_t   *p;
    unsigned char  *lit, ch;
    eb_pm_jnode_t   piece;
    int             prev_star, rc;

    if (n->type != EB_PM_T_STRING) {
        return eb_pm_fail(c, "expected a string, got %s", eb_pm_type_name(n));
    }

    lit = malloc(n->len + 1);
    ids = malloc((EB_PATTERN_MAX_WILDCARDS + 1) * 2 * sizeof(uint32_t));
    if (lit == NULL || ids == NULL) {
        free(lit);
        free(ids);
        return eb_pm_nomem(c);
    }

    /* unescape into pieces */

    stars = 0;
    npieces = 0;
    prev_star = 0;
    start = 0;
    off = 0;

    for (i = 0; i <= n->len; i++) {
        ch = i < n->len ? n->str[i] : '\0';

        if (i < n->len && ch == '\\') {
            if (i + 1 == n->len
                || (n->str[i + 1] != '*' && n->str[i + 1] != '\\'))
            {
                free(lit);
                free(ids);
                return eb_pm_fail(c, "invalid escape in wildcard at byte "
                                  "%zu (only \\* and \\\\)", i);
            }

            lit[off++] = n->str[++i];
            prev_star = 0;
            continue;
        }

        if (i < n->len && ch != '*') {
            lit[off++] = ch;
            prev_star = 0;
            continue;
        }

        /* a star, or the end: a piece ends */

        if (i < n->len) {
            if (prev_star) {
                free(lit);
                free(ids);
                return eb_pm_fail(c, "consecutive wildcards (\"**\") are "
                                  "not allowed");
            }

            if (++stars > EB_PATTERN_MAX_WILDCARDS) {
                free(lit);
                free(ids);
                return eb_pm_fail(c, "more than %d wildcards",
                                  EB_PATTERN_MAX_WILDCARDS);
            }

            prev_star = 1;
        }

        ids[2 * npieces] = start;
        ids[2 * npieces + 1] = off - start;
        npieces++;
        start = off;
    }

    /* "s", "s*", "*s", "*", "*s*": plain preds */

    memset(&piece, 0, sizeof(piece));
    piece.type = EB_PM_T_STRING;

    if (npieces <= 3
        && (npieces == 1
            || (npieces == 2 && (ids[1] == 0 || ids[3] == 0))
            || (npieces == 3 && ids[1] == 0 && ids[5] == 0)))
    {
        uint8_t  op;

        if (npieces == 1) {
            op = EB_PM_OP_EXACT;
            piece.str = lit;
            piece.len = ids[1];

        } else if (npieces == 2 && ids[3] == 0) {
            op = EB_PM_OP_PREFIX;            /* "s*", and "*" */
            piece.str = lit;
            piece.len = ids[1];

        } else if (npieces == 2) {
            op = EB_PM_OP_SUFFIX;            /* "*s" */
            piece.str = lit + ids[2];
            piece.len = ids[3];

        } else {
            op = EB_PM_OP_CONTAINS;          /* "*s*" */
            piece.str = lit + ids[2];
            piece.len = ids[3];
        }

        rc = eb_pm_string_pred(c, op, &piece, id);
        free(lit);
        free(ids);
        return rc;
    }

    off = eb_pm_bytes(c, lit, off);
    free(lit);

    if (off == EB_PM_NONE) {
        free(ids);
        return eb_pm_nomem(c);
    }

    for (i = 0; i < npieces; i++) {
        ids[2 * i] += off;
    }

    start = (uint32_t) c->rs->ids.n;

    if (eb_pm_vec_push(&c->rs->ids, sizeof(uint32_t), 2 * npieces) == NULL) {
        free(ids);
        return eb_pm_nomem(c);
    }

    memcpy(eb_pm_vec_at(&c->rs->ids, uint32_t, start), ids,
           2 * npieces * sizeof(uint32_t));
    free(ids);

    p = eb_pm_pred(c, EB_PM_OP_WILDCARD, id);
    if (p == NULL) {
        return eb_pm_nomem(c);
    }

    p->list_off = start;
    p->list_n = (uint32_t) npieces;

    return 0;
}


static int
eb_pm_numeric(eb_pm_parse_t *c, const eb_pm_jnode_t *n, uint32_t *id)
{
    size_t                i, old;
    eb_pm_num_t           d, lo, hi;
    int                   has_lo, has_hi, eq, lo_incl, hi_incl;
    eb_pm_pred_t         *p;
    const eb_pm_jnode_t  *op, *num;

    if (n->type != EB_PM_T_ARRAY || n->n == 0 || n->n % 2) {
        return eb_pm_fail(c, "expected [\"op\", number, ...] with op one of "
                          "=, <, <=, >, >=");
    }

    has_lo = 0;
    has_hi = 0;
    eq = 0;
    lo = -HUGE_VALL;
    hi = HUGE_VALL;
    lo_incl = 0;
    hi_incl = 0;

    for (i = 0; i < n->n; i += 2) {
        op = n->items[i];
        num = n->items[i + 1];

        old = eb_pm_push_index(c, i);

        if (op->type != EB_PM_T_STRING) {
            return eb_pm_fail(c, "expected a comparison operator, got %s",
                              eb_pm_type_name(op));
        }

        if (!((op->len == 1
               && (op->str[0] == '=' || op->str[0] == '<'
                   || op->str[0] == '>'))
              || (op->len == 2 && (op->str[0] == '<' || op->str[0] == '>')
                  && op->str[1] == '=')))
        {
            return eb_pm_fail(c, "unknown comparison \"%s\"",
                              (const char *) op->str);
        }

        eb_pm_pop(c, old);
        old = eb_pm_push_index(c, i + 1);

        if (num->type != EB_PM_T_NUMBER) {
            return eb_pm_fail(c, "expected a number, got %s",
                              eb_pm_type_name(num));
        }

        if (eb_pm_number_of(c, num, &d) != 0) {
            return -1;
        }

        eb_pm_pop(c, old);

        switch (op->str[0]) {
        case '=':
            eq = 1;
            lo = d;
            break;

        case '>':
            if (has_lo) {
                return eb_pm_fail(c, "more than one lower bound");
            }

            has_lo = 1;
            lo = d;
            lo_incl = (op->len == 2);
            break;

        default:
            if (has_hi) {
                return eb_pm_fail(c, "more than one upper bound");
            }

            has_hi = 1;
            hi = d;
            hi_incl = (op->len == 2);
            break;
        }
    }

    if (eq) {
        if (n->n != 2) {
            return eb_pm_fail(c, "\"=\" cannot be combined with other "
                              "comparisons");
        }

        p = eb_pm_pred(c, EB_PM_OP_EXACT, id);
        if (p == NULL) {
            return eb_pm_nomem(c);
        }

        p->v.type = EB_PM_T_NUMBER;
        p->v.num = lo;

        return 0;
    }

    if (lo > hi || (lo == hi && !(lo_incl && hi_incl))) {
        return eb_pm_fail(c, "empty range: no number is above the lower "
                          "bound and below the upper one");
    }

    p = eb_pm_pred(c, EB_PM_OP_NUMERIC, id);
    if (p == NULL) {
        return eb_pm_nomem(c);
    }

    p->lo = lo;
    p->hi = hi;
    p->lo_incl = (uint8_t) lo_incl;
    p->hi_incl = (uint8_t) hi_incl;

    return 0;
}


static int
eb_pm_regex(eb_pm_parse_t *c, const eb_pm_jnode_t *n, uint32_t *id)
{
    int                     rc;
    uint32_t                jit;
    PCRE2_SIZE              at;
    pcre2_code             *re, **slot;
    pcre2_compile_context  *cc;
    unsigned char           msg[160];

    if (n->type != EB_PM_T_STRING) {
        return eb_pm_fail(c, "expected a string, got %s", eb_pm_type_name(n));
    }

    if (n->len > EB_PATTERN_MAX_REGEX) {
        return eb_pm_fail(c, "longer than %d bytes", EB_PATTERN_MAX_REGEX);
    }

    if (pcre2_config(PCRE2_CONFIG_JIT, &jit) < 0 || !jit) {
        return eb_pm_fail(c, "PCRE2 was built without JIT support");
    }

    cc = pcre2_compile_context_create(NULL);
    if (cc == NULL) {
        return eb_pm_nomem(c);
    }

    pcre2_set_parens_nest_limit(cc, 64);

    re = pcre2_compile(n->str, n->len,
                       PCRE2_UTF | PCRE2_MATCH_INVALID_UTF
                       | PCRE2_NEVER_BACKSLASH_C,
                       &rc, &at, cc);
    pcre2_compile_context_free(cc);

    if (re == NULL) {
        pcre2_get_error_message(rc, msg, sizeof(msg));
        return eb_pm_fail(c, "invalid regular expression at offset %zu: %s",
                          (size_t) at, (const char *) msg);
    }

    rc = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    if (rc != 0) {
        pcre2_code_free(re);
        pcre2_get_error_message(rc, msg, sizeof(msg));
        return eb_pm_fail(c, "JIT compilation failed: %s",
                          (const char *) msg);
    }

    slot = eb_pm_vec_push(&c->rs->regex, sizeof(pcre2_code *), 1);
    if (slot == NULL) {
        pcre2_code_free(re);
        return eb_pm_nomem(c);
    }

    *slot = re;

    if (eb_pm_string_pred(c, EB_PM_OP_REGEX, n, id) != 0) {
        return -1;
    }

    eb_pm_vec_at(&c->rs->preds, eb_pm_pred_t, *id)->re =
        (uint32_t) (c->rs->regex.n - 1);

    return 0;
}


static int
eb_pm_is_scalar(const eb_pm_jnode_t *n)
{
    return n->type != EB_PM_T_OBJECT && n->type != EB_PM_T_ARRAY;
}


/* anything-but: a scalar, a list of scalars, or {"prefix" | "suffix" |
 * "wildcard" | "equals-ignore-case": s or [s, ...]} */
static int
eb_pm_anything_but(eb_pm_parse_t *c, const eb_pm_jnode_t *n, uint32_t *id)
{
    int                   rc;
    size_t                i, old, cnt;
    uint8_t               op, strings;
    uint32_t              off, sub;
    eb_pm_pred_t         *p;
    const eb_pm_jnode_t  *list, *one;

    strings = 0;
    op = EB_PM_OP_EXACT;
    list = n;

    if (n->type == EB_PM_T_OBJECT) {
        if (n->n != 1) {
            return eb_pm_fail(c, "expected one of \"prefix\", \"suffix\", "
                              "\"wildcard\" or \"equals-ignore-case\"");
        }

        one = n->items[0];
        list = one;
        strings = 1;

        if (eb_pm_is(one, "prefix")) {
            op = EB_PM_OP_PREFIX;

        } else if (eb_pm_is(one, "suffix")) {
            op = EB_PM_OP_SUFFIX;

        } else if (eb_pm_is(one, "wildcard")) {
            op = EB_PM_OP_WILDCARD;

        } else if (eb_pm_is(one, "equals-ignore-case")) {
            op = EB_PM_OP_EQ_CI;

        } else {
            return eb_pm_fail(c, "unknown operator \"%.*s\" (expected "
                              "\"prefix\", \"suffix\", \"wildcard\" or "
                              "\"equals-ignore-case\")",
                              (int) one->klen, (const char *) one->key);
        }

        eb_pm_push_key(c, one->key, one->klen);
    }

    cnt = list->type == EB_PM_T_ARRAY ? list->n : 1;

    if (cnt == 0) {
        return eb_pm_fail(c, "empty list");
    }

    off = (uint32_t) c->rs->ids.n;

    if (eb_pm_vec_push(&c->rs->ids, sizeof(uint32_t), cnt) == NULL) {
        return eb_pm_nomem(c);
    }

    for (i = 0; i < cnt; i++) {
        one = list->type == EB_PM_T_ARRAY ? list->items[i] : list;
        old = list->type == EB_PM_T_ARRAY ? eb_pm_push_index(c, i) : c->plen;

        if (strings && one->type != EB_PM_T_STRING) {
            return eb_pm_fail(c, "expected a string, got %s",
                              eb_pm_type_name(one));
        }

        if (!eb_pm_is_scalar(one)) {
            return eb_pm_fail(c, "expected a string, number, boolean or "
                              "null, got %s", eb_pm_type_name(one));
        }

        switch (op) {
        case EB_PM_OP_EXACT:
            rc = eb_pm_scalar_pred(c, one, &sub);
            break;
        case EB_PM_OP_WILDCARD:
            rc = eb_pm_wildcard_pred(c, one, &sub);
            break;
        default:
            rc = eb_pm_string_pred(c, op, one, &sub);
            break;
        }

        if (rc != 0) {
            return -1;
        }

        *eb_pm_vec_at(&c->rs->ids, uint32_t, off + i) = sub;
        eb_pm_pop(c, old);
    }

    p = eb_pm_pred(c, EB_PM_OP_NOT, id);
    if (p == NULL) {
        return eb_pm_nomem(c);
    }

    p->strings = strings;
    p->list_off = off;
    p->list_n = (uint32_t) cnt;

    return 0;
}


/* One operator of a condition object. */
static int
eb_pm_operator(eb_pm_parse_t *c, const eb_pm_jnode_t *m, uint32_t *id)
{
    size_t         old;
    int            rc;
    unsigned       bits;
    eb_pm_pred_t  *p;
    uint8_t        ip[16];

    if (eb_pm_is(m, "prefix")) {
        old = eb_pm_push_str(c, "prefix");
        rc = eb_pm_affix(c, m, EB_PM_OP_PREFIX, EB_PM_OP_PREFIX_CI, id);

    } else if (eb_pm_is(m, "suffix")) {
        old = eb_pm_push_str(c, "suffix");
        rc = eb_pm_affix(c, m, EB_PM_OP_SUFFIX, EB_PM_OP_SUFFIX_CI, id);

    } else if (eb_pm_is(m, "equals-ignore-case")
               || eb_pm_is(m, "contains"))
    {
        old = eb_pm_push_key(c, m->key, m->klen);

        if (m->type != EB_PM_T_STRING) {
            return eb_pm_fail(c, "expected a string, got %s",
                              eb_pm_type_name(m));
        }

        rc = eb_pm_string_pred(c, m->key[0] == 'c' ? EB_PM_OP_CONTAINS
                                                   : EB_PM_OP_EQ_CI, m, id);

    } else if (eb_pm_is(m, "wildcard")) {
        old = eb_pm_push_str(c, "wildcard");
        rc = eb_pm_wildcard_pred(c, m, id);

    } else if (eb_pm_is(m, "numeric")) {
        old = eb_pm_push_str(c, "numeric");
        rc = eb_pm_numeric(c, m, id);

    } else if (eb_pm_is(m, "regex")) {
        old = eb_pm_push_str(c, "regex");
        rc = eb_pm_regex(c, m, id);

    } else if (eb_pm_is(m, "anything-but")) {
        old = eb_pm_push_str(c, "anything-but");
        rc = eb_pm_anything_but(c, m, id);

    } else if (eb_pm_is(m, "exists")) {
        old = eb_pm_push_str(c, "exists");

        if (m->type != EB_PM_T_TRUE && m->type != EB_PM_T_FALSE) {
            return eb_pm_fail(c, "expected true or false, got %s",
                              eb_pm_type_name(m));
        }

        rc = eb_pm_pred(c, m->type == EB_PM_T_TRUE ? EB_PM_OP_EXISTS
                                                   : EB_PM_OP_ABSENT, id)
             ? 0 : eb_pm_nomem(c);

    } else if (eb_pm_is(m, "cidr")) {
        old = eb_pm_push_str(c, "cidr");

        if (m->type != EB_PM_T_STRING) {
            return eb_pm_fail(c, "expected a string, got %s",
                              eb_pm_type_name(m));
        }

        rc = eb_pm_cidr(m->str, m->len, ip, &bits);
        if (rc == 0) {
            return eb_pm_fail(c, "invalid CIDR block \"%s\" (expected "
                              "address/prefix-length)",
                              (const char *) m->str);
        }

        p = eb_pm_pred(c, EB_PM_OP_CIDR, id);
        if (p == NULL) {
            return eb_pm_nomem(c);
        }

        p->family = (uint8_t) rc;
        p->bits = (uint8_t) bits;
        memcpy(p->ip, ip, 16);
        rc = 0;

    } else {
        return eb_pm_fail(c, "unknown operator \"%.*s\"", (int) m->klen,
                          (const char *) m->key);
    }

    if (rc == 0) {
        eb_pm_pop(c, old);
    }

    return rc;
}


/* canonical texts: equal texts, equal meaning (numbers by value, case
 * folded operands folded) */

static int
eb_pm_canon_put(eb_pm_vec_t *b, const void *p, size_t len)
{
    unsigned char  *d;

    d = eb_pm_vec_push(b, 1, len);
    if (d == NULL && len) {
        return -1;
    }

    if (len) {
        memcpy(d, p, len);
    }

    return 0;
}


static int
eb_pm_canon_pred(eb_ruleset_t *rs, uint32_t id, eb_pm_vec_t *b)
{
    uint32_t             i, n32;
    const uint32_t      *ids;
    const eb_pm_pred_t  *p;

    p = eb_pm_vec_at(&rs->preds, eb_pm_pred_t, id);

    if (eb_pm_canon_put(b, &p->op, 1) != 0) {
        return -1;
    }

    switch (p->op) {

    case EB_PM_OP_EXACT:
    case EB_PM_OP_PREFIX:
    case EB_PM_OP_SUFFIX:
    case EB_PM_OP_CONTAINS:
    case EB_PM_OP_EQ_CI:
    case EB_PM_OP_PREFIX_CI:
    case EB_PM_OP_SUFFIX_CI:
    case EB_PM_OP_REGEX:
        n32 = p->v.len;

        if (eb_pm_canon_put(b, &p->v.type, 1) != 0
            || eb_pm_canon_put(b, &p->v.num, EB_PM_NUM_KEY) != 0
            || eb_pm_canon_put(b, &n32, 4) != 0
            || (p->v.len
                && eb_pm_canon_put(b, (unsigned char *) rs->bytes.data
                                      + p->v.off, p->v.len) != 0))
        {
            return -1;
        }

        return 0;

    case EB_PM_OP_WILDCARD:
        ids = eb_pm_vec_at(&rs->ids, uint32_t, p->list_off);

        for (i = 0; i < p->list_n; i++) {
            n32 = ids[2 * i + 1];

            if (eb_pm_canon_put(b, &n32, 4) != 0
                || eb_pm_canon_put(b, (unsigned char *) rs->bytes.data
                                      + ids[2 * i], n32) != 0)
            {
                return -1;
            }
        }

        return 0;

    case EB_PM_OP_NUMERIC:
        if (eb_pm_canon_put(b, &p->lo, EB_PM_NUM_KEY) != 0
            || eb_pm_canon_put(b, &p->hi, EB_PM_NUM_KEY) != 0
            || eb_pm_canon_put(b, &p->lo_incl, 1) != 0
            || eb_pm_canon_put(b, &p->hi_incl, 1) != 0)
        {
            return -1;
        }

        return 0;

    case EB_PM_OP_CIDR:
        if (eb_pm_canon_put(b, &p->family, 1) != 0
            || eb_pm_canon_put(b, &p->bits, 1) != 0
            || eb_pm_canon_put(b, p->ip, 16) != 0)
        {
            return -1;
        }

        return 0;

    case EB_PM_OP_NOT:
        if (eb_pm_canon_put(b, &p->strings, 1) != 0) {
            return -1;
        }

        for (i = 0; i < p->list_n; i++) {
            if (eb_pm_canon_put(b, "(", 1) != 0
                || eb_pm_canon_pred(rs, *eb_pm_vec_at(&rs->ids, uint32_t,
                                                      p->list_off + i), b)
                   != 0
                || eb_pm_canon_put(b, ")", 1) != 0)
            {
                return -1;
            }
        }

        return 0;
    }

    return 0;                   /* EXISTS, ABSENT: the op says it all */
}


/* sorting canonical texts: items are (offset, length) pairs in c->cbuf,
 * sorted through their indexes */

typedef struct {
    eb_pm_parse_t  *c;
    const uint32_t *items;
} eb_pm_canon_sort_t;


static int
eb_pm_canon_cmp(void *ctx, uint32_t a, uint32_t b)
{
    int                        r;
    uint32_t                   la, lb;
    const unsigned char       *base;
    const eb_pm_canon_sort_t  *s = ctx;

    base = s->c->cbuf.data;
    la = s->items[2 * a + 1];
    lb = s->items[2 * b + 1];

    r = memcmp(base + s->items[2 * a], base + s->items[2 * b],
               la < lb ? la : lb);

    return r ? r : (la > lb) - (la < lb);
}


/* Sorts n items (pairs in items) and writes them, length-prefixed and
 * without duplicates, to out. keep, when not NULL, gets the indexes
 * kept; returns how many. */
static long
eb_pm_canon_join(eb_pm_parse_t *c, const uint32_t *items, uint32_t n,
    eb_pm_vec_t *out, uint32_t *keep)
{
    uint32_t             i, j, *order, *tmp, len;
    long                 kept;
    eb_pm_canon_sort_t   s;

    order = malloc(2 * (n + 1) * sizeof(uint32_t));
    if (order == NULL) {
        return -1;
    }

    tmp = order + n + 1;

    for (i = 0; i < n; i++) {
        order[i] = i;
    }

    s.c = c;
    s.items = items;
    eb_pm_sort(order, n, eb_pm_canon_cmp, &s, tmp);

    kept = 0;

    for (i = 0; i < n; i++) {
        j = order[i];

        if (i > 0 && eb_pm_canon_cmp(&s, order[i - 1], j) == 0) {
            continue;
        }

        len = items[2 * j + 1];

        if (eb_pm_canon_put(out, &len, 4) != 0
            || eb_pm_canon_put(out, (unsigned char *) c->cbuf.data
                                    + items[2 * j], len) != 0)
        {
            free(order);
            return -1;
        }

        if (keep) {
            keep[kept] = j;
        }

        kept++;
    }

    free(order);

    return kept;
}


static int
eb_pm_pred_rank(const eb_ruleset_t *rs, uint32_t id)
{
    const eb_pm_pred_t  *p;

    p = eb_pm_vec_at(&rs->preds, eb_pm_pred_t, id);

    switch (p->op) {
    case EB_PM_OP_EXACT:
    case EB_PM_OP_EQ_CI:
        return 0;
    case EB_PM_OP_PREFIX:
    case EB_PM_OP_SUFFIX:
    case EB_PM_OP_CONTAINS:
    case EB_PM_OP_PREFIX_CI:
    case EB_PM_OP_SUFFIX_CI:
        return p->v.len ? 1 : 3;
    case EB_PM_OP_WILDCARD:
    case EB_PM_OP_NUMERIC:
    case EB_PM_OP_CIDR:
        return 1;
    case EB_PM_OP_ABSENT:
        return 2;
    }

    return 3;                   /* EXISTS, NOT, REGEX */
}


/* One element of a leaf list: a condition. Returns its cond id. */
static int
eb_pm_condition(eb_pm_parse_t *c, const eb_pm_jnode_t *n, uint32_t *cond,
    int *absent, int *rank)
{
    size_t         i, k;
    uint32_t       off, id, *ids;
    int            r, has_absent;
    eb_pm_cond_t  *cd;

    off = (uint32_t) c->rs->ids.n;
    has_absent = 0;

    if (n->type == EB_PM_T_ARRAY) {
        return eb_pm_fail(c, "nested arrays are not allowed (a leaf is one "
                          "list of conditions)");
    }

    if (n->type != EB_PM_T_OBJECT) {
        if (eb_pm_scalar_pred(c, n, &id) != 0) {
            return -1;
        }

        ids = eb_pm_vec_push(&c->rs->ids, sizeof(uint32_t), 1);
        if (ids == NULL) {
            return eb_pm_nomem(c);
        }

        *ids = id;
        k = 1;

    } else {
        if (n->n == 0) {
            return eb_pm_fail(c, "empty condition object");
        }

        for (i = 0; i < n->n; i++) {
            for (k = 0; k < i; k++) {
                if (n->items[k]->klen == n->items[i]->klen
                    && memcmp(n->items[k]->key, n->items[i]->key,
                              n->items[i]->klen) == 0)
                {
                    return eb_pm_fail(c, "duplicate operator \"%.*s\"",
                                      (int) n->items[i]->klen,
                                      (const char *) n->items[i]->key);
                }
            }
        }

        /* the operators' preds first (their sub-preds take ids too),
         * then the list of them */

        ids = malloc(n->n * sizeof(uint32_t));
        if (ids == NULL) {
            return eb_pm_nomem(c);
        }

        for (i = 0; i < n->n; i++) {
            if (eb_pm_operator(c, n->items[i], &ids[i]) != 0) {
                free(ids);
                return -1;
            }
        }

        off = (uint32_t) c->rs->ids.n;
        k = 0;

        for (i = 0; i < n->n; i++) {
            r = eb_pm_vec_at(&c->rs->preds, eb_pm_pred_t, ids[i])->op;

            if (r == EB_PM_OP_ABSENT) {
                has_absent = 1;
            }

            /* exists:true beside other operators adds nothing */
            if (r == EB_PM_OP_EXISTS && n->n > 1) {
                continue;
            }

            ids[k++] = ids[i];
        }

        if (has_absent && n->n > 1) {
            free(ids);
            return eb_pm_fail(c, "\"exists\": false cannot be combined "
                              "with other operators in one condition");
        }

        if (eb_pm_vec_push(&c->rs->ids, sizeof(uint32_t), k) == NULL) {
            free(ids);
            return eb_pm_nomem(c);
        }

        memcpy(eb_pm_vec_at(&c->rs->ids, uint32_t, off), ids,
               k * sizeof(uint32_t));
        free(ids);
    }

    /* a condition is as selective as its most selective operator */

    ids = eb_pm_vec_at(&c->rs->ids, uint32_t, off);

    for (*rank = 3, i = 0; i < k; i++) {
        r = eb_pm_pred_rank(c->rs, ids[i]);
        *rank = r < *rank ? r : *rank;
    }

    cd = eb_pm_vec_push(&c->rs->conds, sizeof(eb_pm_cond_t), 1);
    if (cd == NULL) {
        return eb_pm_nomem(c);
    }

    cd->pred_off = off;
    cd->pred_n = (uint32_t) k;
    *cond = (uint32_t) (c->rs->conds.n - 1);
    *absent = has_absent;

    return 0;
}


/* The canonical text of a condition: its preds' texts sorted. */
static int
eb_pm_canon_cond(eb_pm_parse_t *c, uint32_t cond, eb_pm_vec_t *out)
{
    long                 rc;
    uint32_t             i, *items, start;
    const eb_pm_cond_t  *cd;

    cd = eb_pm_vec_at(&c->rs->conds, eb_pm_cond_t, cond);

    items = malloc(2 * cd->pred_n * sizeof(uint32_t) + 1);
    if (items == NULL) {
        return -1;
    }

    for (i = 0; i < cd->pred_n; i++) {
        start = (uint32_t) c->cbuf.n;

        if (eb_pm_canon_pred(c->rs, *eb_pm_vec_at(&c->rs->ids, uint32_t,
                                                  cd->pred_off + i),
                             &c->cbuf) != 0)
        {
            free(items);
            return -1;
        }

        items[2 * i] = start;
        items[2 * i + 1] = (uint32_t) c->cbuf.n - start;
    }

    rc = eb_pm_canon_join(c, items, cd->pred_n, out, NULL);
    free(items);

    return rc < 0 ? -1 : 0;
}


/* A leaf: a non-empty list of conditions, one conjunct. */
static int
eb_pm_leaf(eb_pm_parse_t *c, const eb_pm_jnode_t *list, uint32_t node,
    uint32_t *conj)
{
    long           kept;
    size_t         i, old;
    uint32_t      *conds, *items, *keep, start;
    int            absent, any_absent, rank, list_rank;
    eb_pm_vec_t    ctext;
    eb_pm_conj_t  *cj;

    if (list->n == 0) {
        return eb_pm_fail(c, "empty list of conditions");
    }

    conds = malloc(list->n * 4 * sizeof(uint32_t));
    if (conds == NULL) {
        return eb_pm_nomem(c);
    }

    items = conds + list->n;
    keep = items + 2 * list->n;

    any_absent = 0;
    list_rank = 0;
    absent = 0;
    rank = 0;
    c->cbuf.n = 0;
    memset(&ctext, 0, sizeof(ctext));

    for (i = 0; i < list->n; i++) {
        old = eb_pm_push_index(c, i);

        if (eb_pm_condition(c, list->items[i], &conds[i], &absent, &rank)
            != 0)
        {
            eb_pm_vec_free(&ctext);
            free(conds);
            return -1;
        }

        eb_pm_pop(c, old);

        any_absent |= absent;
        list_rank = rank > list_rank ? rank : list_rank;

        ctext.n = 0;

        if (eb_pm_canon_cond(c, conds[i], &ctext) != 0) {
            eb_pm_vec_free(&ctext);
            free(conds);
            return eb_pm_nomem(c);
        }

        start = (uint32_t) c->cbuf.n;

        if (eb_pm_canon_put(&c->cbuf, ctext.data, ctext.n) != 0) {
            eb_pm_vec_free(&ctext);
            free(conds);
            return eb_pm_nomem(c);
        }

        items[2 * i] = start;
        items[2 * i + 1] = (uint32_t) ctext.n;
    }

    eb_pm_vec_free(&ctext);

    /* the list's text: its conditions' texts sorted, duplicates dropped */

    start = (uint32_t) c->rs->canon.n;
    kept = eb_pm_canon_join(c, items, (uint32_t) list->n, &c->rs->canon,
                            keep);
    if (kept < 0) {
        free(conds);
        return eb_pm_nomem(c);
    }

    cj = eb_pm_vec_push(&c->rs->conjs, sizeof(eb_pm_conj_t), 1);
    if (cj == NULL
        || eb_pm_vec_reserve(&c->rs->ids, sizeof(uint32_t),
                             c->rs->ids.n + (size_t) kept) != 0)
    {
        free(conds);
        return eb_pm_nomem(c);
    }

    cj->node = node;
    cj->cond_off = (uint32_t) c->rs->ids.n;
    cj->cond_n = (uint32_t) kept;
    cj->absent = (uint8_t) any_absent;
    cj->rank = (uint8_t) (any_absent && list_rank < 2 ? 2 : list_rank);
    cj->canon_off = start;
    cj->canon_len = (uint32_t) (c->rs->canon.n - start);
    cj->field = EB_PM_NONE;

    for (i = 0; i < (size_t) kept; i++) {
        *(uint32_t *) eb_pm_vec_push(&c->rs->ids, sizeof(uint32_t), 1) =
            conds[keep[i]];
    }

    *conj = (uint32_t) (c->rs->conjs.n - 1);
    free(conds);

    return 0;
}


/* sets of alternatives: each a run of conj ids in c->pool; a set is a
 * vector of eb_pm_alt_set_t */

static int
eb_pm_alts_one(eb_pm_vec_t *set)
{
    return eb_pm_vec_push(set, sizeof(eb_pm_alt_set_t), 1) ? 0 : -1;
}


/* a := a x b (every alternative of a joined with every one of b) */
static int
eb_pm_alts_cross(eb_pm_parse_t *c, eb_pm_vec_t *a, const eb_pm_vec_t *b)
{
    size_t            i, j, n;
    uint32_t         *dst, off;
    eb_pm_vec_t       out;
    eb_pm_alt_set_t  *x, *y, *z;

    if (a->n * b->n > EB_PATTERN_MAX_ALTERNATIVES) {
        return eb_pm_fail(c, "\"$or\" expands to more than %d alternatives",
                          EB_PATTERN_MAX_ALTERNATIVES);
    }

    memset(&out, 0, sizeof(out));

    for (i = 0; i < a->n; i++) {
        for (j = 0; j < b->n; j++) {
            x = eb_pm_vec_at(a, eb_pm_alt_set_t, i);
            y = eb_pm_vec_at(b, eb_pm_alt_set_t, j);
            n = (size_t) x->n + y->n;

            if (n > EB_PATTERN_MAX_CONJUNCTS) {
                eb_pm_vec_free(&out);
                return eb_pm_fail(c, "more than %d fields in one "
                                  "alternative", EB_PATTERN_MAX_CONJUNCTS);
            }

            off = (uint32_t) c->pool.n;
            dst = eb_pm_vec_push(&c->pool, sizeof(uint32_t), n);
            z = eb_pm_vec_push(&out, sizeof(eb_pm_alt_set_t), 1);

            if ((dst == NULL && n) || z == NULL) {
                eb_pm_vec_free(&out);
                return eb_pm_nomem(c);
            }

            /* the pool may have moved */
            x = eb_pm_vec_at(a, eb_pm_alt_set_t, i);
            y = eb_pm_vec_at(b, eb_pm_alt_set_t, j);

            if (x->n) {
                memcpy(eb_pm_vec_at(&c->pool, uint32_t, off),
                       eb_pm_vec_at(&c->pool, uint32_t, x->off),
                       x->n * sizeof(uint32_t));
            }

            if (y->n) {
                memcpy(eb_pm_vec_at(&c->pool, uint32_t, off + x->n),
                       eb_pm_vec_at(&c->pool, uint32_t, y->off),
                       y->n * sizeof(uint32_t));
            }

            z->off = off;
            z->n = (uint32_t) n;
        }
    }

    eb_pm_vec_free(a);
    *a = out;

    return 0;
}


static int eb_pm_object(eb_pm_parse_t *c, const eb_pm_jnode_t *obj,
    uint32_t node, eb_pm_vec_t *alts);


static int
eb_pm_or(eb_pm_parse_t *c, const eb_pm_jnode_t *m, uint32_t node,
    eb_pm_vec_t *alts)
{
    int          rc;
    size_t       i, old;
    eb_pm_vec_t  all, one;

    if (m->type != EB_PM_T_ARRAY || m->n == 0) {
        return eb_pm_fail(c, "expected a non-empty array of patterns, got "
                          "%s", m->type == EB_PM_T_ARRAY ? "an empty array"
                                                         : eb_pm_type_name(m));
    }

    memset(&all, 0, sizeof(all));

    for (i = 0; i < m->n; i++) {
        old = eb_pm_push_index(c, i);

        if (m->items[i]->type != EB_PM_T_OBJECT) {
            eb_pm_vec_free(&all);
            return eb_pm_fail(c, "expected a pattern object, got %s",
                              eb_pm_type_name(m->items[i]));
        }

        memset(&one, 0, sizeof(one));

        rc = eb_pm_object(c, m->items[i], node, &one);

        if (rc == 0 && all.n + one.n > EB_PATTERN_MAX_ALTERNATIVES) {
            rc = eb_pm_fail(c, "\"$or\" expands to more than %d "
                            "alternatives", EB_PATTERN_MAX_ALTERNATIVES);
        }

        if (rc == 0 && one.n
            && eb_pm_vec_push(&all, sizeof(eb_pm_alt_set_t), one.n) == NULL)
        {
            rc = eb_pm_nomem(c);
        }

        if (rc != 0) {
            eb_pm_vec_free(&one);
            eb_pm_vec_free(&all);
            return -1;
        }

        if (one.n) {
            memcpy(eb_pm_vec_at(&all, eb_pm_alt_set_t, all.n - one.n),
                   one.data, one.n * sizeof(eb_pm_alt_set_t));
        }

        eb_pm_vec_free(&one);
        eb_pm_pop(c, old);
    }

    rc = eb_pm_alts_cross(c, alts, &all);
    eb_pm_vec_free(&all);

    return rc;
}


static int
eb_pm_child(eb_pm_parse_t *c, uint32_t node, const eb_pm_jnode_t *m,
    uint32_t *child)
{
    int             rc;
    uint32_t        id, off;
    eb_pm_pnode_t  *pn;

    id = (uint32_t) c->rs->pnodes.n;

    rc = eb_pm_map_put(&c->rs->children, node, m->key, m->klen, &id);
    if (rc < 0) {
        return eb_pm_nomem(c);
    }

    if (rc == 1) {
        off = eb_pm_bytes(c, m->key, m->klen);
        pn = eb_pm_vec_push(&c->rs->pnodes, sizeof(eb_pm_pnode_t), 1);

        if (off == EB_PM_NONE || pn == NULL) {
            /* the map holds an id without its node: no more adds */
            c->rs->broken = 1;
            return eb_pm_nomem(c);
        }

        pn->parent = node;
        pn->seg_off = off;
        pn->seg_len = (uint32_t) m->klen;
        pn->field = EB_PM_NONE;
    }

    *child = id;

    return 0;
}


/* The alternatives of a pattern object at a path trie node. */
static int
eb_pm_object(eb_pm_parse_t *c, const eb_pm_jnode_t *obj, uint32_t node,
    eb_pm_vec_t *alts)
{
    int                   rc;
    size_t                i, j, old;
    uint32_t              child, conj, *d;
    eb_pm_vec_t           sub;
    eb_pm_alt_set_t      *a;
    const eb_pm_jnode_t  *m;

    if (obj->n == 0) {
        return eb_pm_fail(c, c->plen ? "empty object" : "empty pattern");
    }

    conj = 0;

    if (++c->depth > EB_PATTERN_MAX_DEPTH) {
        return eb_pm_fail(c, "nested deeper than %d levels",
                          EB_PATTERN_MAX_DEPTH);
    }

    for (i = 0; i < obj->n; i++) {
        for (j = 0; j < i; j++) {
            if (obj->items[j]->klen == obj->items[i]->klen
                && memcmp(obj->items[j]->key, obj->items[i]->key,
                          obj->items[i]->klen) == 0)
            {
                old = eb_pm_push_key(c, obj->items[i]->key,
                                     obj->items[i]->klen);
                return eb_pm_fail(c, "duplicate key");
            }
        }
    }

    if (eb_pm_alts_one(alts) != 0) {
        return eb_pm_nomem(c);
    }

    for (i = 0; i < obj->n; i++) {
        m = obj->items[i];
        old = eb_pm_push_key(c, m->key, m->klen);

        if (eb_pm_is(m, "$or")) {
            if (eb_pm_or(c, m, node, alts) != 0) {
                return -1;
            }

        } else if (m->type == EB_PM_T_OBJECT) {
            if (eb_pm_child(c, node, m, &child) != 0) {
                return -1;
            }

            memset(&sub, 0, sizeof(sub));

            rc = eb_pm_object(c, m, child, &sub);
            if (rc == 0) {
                rc = eb_pm_alts_cross(c, alts, &sub);
            }

            eb_pm_vec_free(&sub);

            if (rc != 0) {
                return -1;
            }

        } else if (m->type == EB_PM_T_ARRAY) {
            if (eb_pm_child(c, node, m, &child) != 0
                || eb_pm_leaf(c, m, child, &conj) != 0)
            {
                return -1;
            }

            /* conj joins every alternative: a copy of each, conj added */

            for (j = 0; j < alts->n; j++) {
                a = eb_pm_vec_at(alts, eb_pm_alt_set_t, j);

                if (a->n + 1 > EB_PATTERN_MAX_CONJUNCTS) {
                    return eb_pm_fail(c, "more than %d fields in one "
                                      "alternative",
                                      EB_PATTERN_MAX_CONJUNCTS);
                }

                d = eb_pm_vec_push(&c->pool, sizeof(uint32_t), a->n + 1);
                if (d == NULL) {
                    return eb_pm_nomem(c);
                }

                a = eb_pm_vec_at(alts, eb_pm_alt_set_t, j);
                if (a->n) {
                    memmove(d, eb_pm_vec_at(&c->pool, uint32_t, a->off),
                            a->n * sizeof(uint32_t));
                }

                d[a->n] = conj;
                a->off = (uint32_t) (c->pool.n - a->n - 1);
                a->n++;
            }

        } else {
            return eb_pm_fail(c, "expected an array of conditions or an "
                              "object, got %s", eb_pm_type_name(m));
        }

        eb_pm_pop(c, old);
    }

    c->depth--;

    return 0;
}


int
eb_pm_parse(eb_ruleset_t *rs, uint32_t rule_id, const unsigned char *p,
    size_t len, char *err, size_t errlen)
{
    int               rc;
    size_t            i;
    char              jerr[200];
    uint32_t          *d;
    yajl_handle       h;
    yajl_status       st;
    eb_pm_dom_t       dom;
    eb_pm_alt_t      *alt;
    eb_pm_vec_t       alts;
    eb_pm_parse_t     c;
    eb_pm_alt_set_t  *a;

    memset(&c, 0, sizeof(c));
    c.rs = rs;
    c.err = err;
    c.errlen = errlen;

    /* repeated keys are refused below, with their path */
    if (eb_json_validate_keys(p, len, EB_PM_JSON_DEPTH, EB_JSON_DUP_ANY,
                              NULL, jerr, sizeof(jerr))
        != EB_JSON_OK)
    {
        return eb_pm_fail(&c, "%s", jerr);
    }

    memset(&dom, 0, sizeof(dom));

    h = yajl_alloc(&eb_pm_dom_callbacks, NULL, &dom);
    if (h == NULL) {
        return eb_pm_nomem(&c);
    }

    st = yajl_parse(h, p, len);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    yajl_free(h);

    if (st != yajl_status_ok || dom.root == NULL) {
        rc = dom.nomem ? eb_pm_nomem(&c)
                       : eb_pm_fail(&c, "not valid JSON");
        eb_pm_dom_free(&dom);
        return rc;
    }

    if (dom.root->type != EB_PM_T_OBJECT) {
        rc = eb_pm_fail(&c, "expected a JSON object, got %s",
                        eb_pm_type_name(dom.root));
        eb_pm_dom_free(&dom);
        return rc;
    }

    memset(&alts, 0, sizeof(alts));

    rc = eb_pm_object(&c, dom.root, 0, &alts);

    for (i = 0; rc == 0 && i < alts.n; i++) {
        a = eb_pm_vec_at(&alts, eb_pm_alt_set_t, i);

        alt = eb_pm_vec_push(&rs->alts, sizeof(eb_pm_alt_t), 1);
        d = eb_pm_vec_push(&rs->ids, sizeof(uint32_t), a->n);

        if (alt == NULL || (d == NULL && a->n)) {
            rc = eb_pm_nomem(&c);
            break;
        }

        if (a->n) {
            memcpy(d, eb_pm_vec_at(&c.pool, uint32_t, a->off),
                   a->n * sizeof(uint32_t));
        }

        alt->rule_id = rule_id;
        alt->conj_off = (uint32_t) (rs->ids.n - a->n);
        alt->conj_n = a->n;
    }

    eb_pm_vec_free(&alts);
    eb_pm_vec_free(&c.pool);
    eb_pm_vec_free(&c.tmp);
    eb_pm_vec_free(&c.cbuf);
    eb_pm_dom_free(&dom);

    return rc;
}
