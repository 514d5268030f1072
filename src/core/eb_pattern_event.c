/*
 * Event patterns: the event side. A strict JSON scanner (RFC 8259
 * grammar; strings are not checked for UTF-8) that walks the event once,
 * follows the ruleset's path trie, and keeps only the values at paths
 * some rule names, each with its array trail: the elements of arrays of
 * objects (or of arrays) it sits in. Subtrees no rule looks into are
 * only checked for syntax. The values end sorted by field; a per-field
 * table (stamped with a generation, so never cleared) finds them.
 */

#include <stdlib.h>
#include <string.h>

#include "eb_json_string.h"
#include "eb_pattern_int.h"
#include "eb_utf8.h"


typedef struct {
    const unsigned char   *p;
    const unsigned char   *end;
    eb_pattern_event_t    *ev;
    const eb_ruleset_t    *rs;
    const eb_pm_pnode_t   *pn;
    unsigned               depth;
    uint32_t               level;
    int                    rc;
} eb_pm_scan_t;


/* bytes that may stand in a string as they are */
static const unsigned char  eb_pm_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,     /* '"' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,     /* '\\' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
};


static void
eb_pm_skip_ws(eb_pm_scan_t *s)
{
    while (s->p < s->end
           && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r'
               || *s->p == '\t'))
    {
        s->p++;
    }
}


/* A string at s->p (on its quote): sets its raw bytes and whether they
 * hold escapes; leaves s->p after the closing quote. */
static int
eb_pm_scan_string(eb_pm_scan_t *s, const unsigned char **start,
    size_t *len, int *esc)
{
    size_t                k;
    uint32_t              cp;
    const char           *why;
    const unsigned char  *p, *end;

    p = s->p + 1;
    end = s->end;
    *start = p;
    *esc = 0;

    for ( ;; ) {
        while (end - p >= 4 && eb_pm_plain[p[0]] && eb_pm_plain[p[1]]
               && eb_pm_plain[p[2]] && eb_pm_plain[p[3]])
        {
            p += 4;
        }

        while (p < end && eb_pm_plain[*p]) {
            p++;
        }

        if (p >= end) {
            return -1;
        }

        if (*p == '"') {
            break;
        }

        if (*p != '\\' || ++p >= end) {
            return -1;          /* a control character, or a cut escape */
        }

        *esc = 1;

        /* the shared decoder: also refuses unpaired surrogates */
        k = eb_json_escape(p - 1, (size_t) (end - p + 1), &cp, &why);
        if (k == 0) {
            return -1;
        }

        p += k - 1;
    }

    *len = (size_t) (p - *start);
    s->p = p + 1;

    return 0;
}


/* Decodes a validated string body into dst (never longer than the raw
 * text) with the shared escape decoder; a \u0000 stays a NUL byte, as in
 * the patterns (read with their lengths): "a\u0000dmin" is not "admin". */
static size_t
eb_pm_unescape(unsigned char *dst, const unsigned char *p, size_t len)
{
    size_t                k;
    uint32_t              cp;
    unsigned char        *d;
    const char           *why;
    const unsigned char  *end;

    d = dst;
    end = p + len;

    while (p < end) {
        if (*p != '\\') {
            *d++ = *p++;
            continue;
        }

        k = eb_json_escape(p, (size_t) (end - p), &cp, &why);
        if (k == 0) {
            break;              /* eb_pm_scan_string() let none through */
        }

        p += k;
        d += eb_utf8_encode(d, cp);
    }

    return (size_t) (d - dst);
}


static int
eb_pm_emit(eb_pm_scan_t *s, uint32_t node, uint8_t type,
    const unsigned char *str, size_t len, eb_pm_num_t num)
{
    eb_pm_value_t       *v;
    eb_pattern_event_t  *ev;
    uint32_t            *t;

    ev = s->ev;

    v = eb_pm_vec_push(&ev->vals, sizeof(eb_pm_value_t), 1);
    if (v == NULL) {
        return -2;
    }

    v->field = s->pn[node].field;
    v->ord = (uint32_t) (ev->vals.n - 1);
    v->type = type;
    v->str = str;
    v->len = (uint32_t) len;
    v->num = num;

    if (ev->stack.n) {
        t = eb_pm_vec_push(&ev->trails, sizeof(uint32_t), ev->stack.n);
        if (t == NULL) {
            return -2;
        }

        memcpy(t, ev->stack.data, ev->stack.n * sizeof(uint32_t));
        v->trail_off = (uint32_t) (ev->trails.n - ev->stack.n);
        v->trail_n = (uint32_t) ev->stack.n;
    }

    return 0;
}


static int eb_pm_scan_value(eb_pm_scan_t *s, uint32_t node);


static int
eb_pm_scan_object(eb_pm_scan_t *s, uint32_t node)
{
    int                   rc, esc;
    size_t                klen;
    uint32_t              child;
    unsigned char        *kbuf;
    const unsigned char  *key;
    const eb_pm_pnode_t  *pn;

    s->p++;
    eb_pm_skip_ws(s);

    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }

    for ( ;; ) {
        if (s->p >= s->end || *s->p != '"') {
            return -1;
        }

        if (eb_pm_scan_string(s, &key, &klen, &esc) != 0) {
            return -1;
        }

        child = EB_PM_NONE;

        if (node != EB_PM_NONE) {
            if (esc) {
                /* room: the pool holds as many bytes as the text */
                kbuf = (unsigned char *) s->ev->strs.data + s->ev->strs.n;
                klen = eb_pm_unescape(kbuf, key, klen);
                key = kbuf;
            }

            child = eb_pm_map_get(&s->rs->children,
                                  eb_pm_hash(node, key, klen), node, key,
                                  klen);

            if (child != EB_PM_NONE) {
                pn = &s->pn[child];

                if (!pn->leaf && !pn->inner) {
                    child = EB_PM_NONE;     /* left by a refused rule */
                }
            }
        }

        eb_pm_skip_ws(s);

        if (s->p >= s->end || *s->p != ':') {
            return -1;
        }

        s->p++;

        rc = eb_pm_scan_value(s, child);
        if (rc != 0) {
            return rc;
        }

        eb_pm_skip_ws(s);

        if (s->p >= s->end) {
            return -1;
        }

        if (*s->p == '}') {
            s->p++;
            return 0;
        }

        if (*s->p != ',') {
            return -1;
        }

        s->p++;
        eb_pm_skip_ws(s);
    }
}


static int
eb_pm_scan_array(eb_pm_scan_t *s, uint32_t node)
{
    int                  rc;
    uint32_t             id, array, *top;
    eb_pm_elem_t        *el;
    eb_pattern_event_t  *ev;

    ev = s->ev;
    s->p++;
    eb_pm_skip_ws(s);

    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }

    array = EB_PM_NONE;

    if (node != EB_PM_NONE) {
        array = ev->narrays++;
        s->level++;
    }

    for ( ;; ) {
        eb_pm_skip_ws(s);

        if (s->p >= s->end) {
            return -1;
        }

        if (array != EB_PM_NONE && (*s->p == '{' || *s->p == '[')) {
            /* an element that is a container: values inside it carry it
             * in their trails */

            el = eb_pm_vec_push(&ev->elems, sizeof(eb_pm_elem_t), 1);
            top = eb_pm_vec_push(&ev->stack, sizeof(uint32_t), 1);
            if (el == NULL || top == NULL) {
                return -2;
            }

            id = (uint32_t) (ev->elems.n - 1);
            el->array = array;
            el->node = node;
            el->level = s->level;
            el->lo = (uint32_t) ev->vals.n;
            *top = id;

            rc = eb_pm_scan_value(s, node);

            ev->stack.n--;
            eb_pm_vec_at(&ev->elems, eb_pm_elem_t, id)->hi =
                (uint32_t) ev->vals.n;

        } else {
            rc = eb_pm_scan_value(s, node);
        }

        if (rc != 0) {
            return rc;
        }

        eb_pm_skip_ws(s);

        if (s->p >= s->end) {
            return -1;
        }

        if (*s->p == ']') {
            s->p++;
            break;
        }

        if (*s->p != ',') {
            return -1;
        }

        s->p++;
    }

    if (array != EB_PM_NONE) {
        s->level--;
    }

    return 0;
}


static int
eb_pm_scan_number(eb_pm_scan_t *s, uint32_t node)
{
    const unsigned char  *p, *end, *start;

    p = s->p;
    end = s->end;
    start = p;

    if (*p == '-') {
        p++;
    }

    if (p >= end) {
        return -1;
    }

    if (*p == '0') {
        p++;

    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }

    } else {
        return -1;
    }

    if (p < end && *p == '.') {
        if (++p >= end || *p < '0' || *p > '9') {
            return -1;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p >= end || *p < '0' || *p > '9') {
            return -1;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    s->p = p;

    if (node == EB_PM_NONE || !s->pn[node].leaf) {
        return 0;
    }

    /* the number is inside an object, so a delimiter follows it */
    return eb_pm_emit(s, node, EB_PM_T_NUMBER, start, (size_t) (p - start),
                      eb_pm_number(start, (size_t) (p - start)));
}


static int
eb_pm_scan_literal(eb_pm_scan_t *s, uint32_t node, const char *word,
    size_t len, uint8_t type)
{
    if ((size_t) (s->end - s->p) < len || memcmp(s->p, word, len) != 0) {
        return -1;
    }

    s->p += len;

    if (node == EB_PM_NONE || !s->pn[node].leaf) {
        return 0;
    }

    return eb_pm_emit(s, node, type, (const unsigned char *) word, len, 0);
}


static int
eb_pm_scan_value(eb_pm_scan_t *s, uint32_t node)
{
    int                   rc, esc;
    size_t                len;
    unsigned char        *dst;
    const unsigned char  *str;

    eb_pm_skip_ws(s);

    if (s->p >= s->end) {
        return -1;
    }

    switch (*s->p) {

    case '{':
    case '[':
        if (++s->depth > EB_PATTERN_EVENT_MAX_DEPTH) {
            return -1;
        }

        if (node != EB_PM_NONE && !s->pn[node].inner
            && (*s->p == '{' || !s->pn[node].leaf))
        {
            node = EB_PM_NONE;
        }

        rc = (*s->p == '{') ? eb_pm_scan_object(s, node)
                            : eb_pm_scan_array(s, node);
        s->depth--;

        return rc;

    case '"':
        if (eb_pm_scan_string(s, &str, &len, &esc) != 0) {
            return -1;
        }

        if (node == EB_PM_NONE || !s->pn[node].leaf) {
            return 0;
        }

        if (esc) {
            dst = (unsigned char *) s->ev->strs.data + s->ev->strs.n;
            len = eb_pm_unescape(dst, str, len);
            s->ev->strs.n += len;
            str = dst;
        }

        return eb_pm_emit(s, node, EB_PM_T_STRING, str, len, 0);

    case 't':
        return eb_pm_scan_literal(s, node, "true", 4, EB_PM_T_TRUE);

    case 'f':
        return eb_pm_scan_literal(s, node, "false", 5, EB_PM_T_FALSE);

    case 'n':
        return eb_pm_scan_literal(s, node, "null", 4, EB_PM_T_NULL);
    }

    return eb_pm_scan_number(s, node);
}


eb_pattern_event_t *
eb_pattern_event_new(void)
{
    return calloc(1, sizeof(eb_pattern_event_t));
}


void
eb_pattern_event_free(eb_pattern_event_t *ev)
{
    if (ev == NULL) {
        return;
    }

    eb_pm_vec_free(&ev->vals);
    eb_pm_vec_free(&ev->tmp);
    eb_pm_vec_free(&ev->elems);
    eb_pm_vec_free(&ev->trails);
    eb_pm_vec_free(&ev->stack);
    eb_pm_vec_free(&ev->strs);
    eb_pm_vec_free(&ev->fields);
    eb_pm_vec_free(&ev->present);
    free(ev);
}


static int
eb_pm_key_cmp(const void *a, const void *b)
{
    uint64_t  x = *(const uint64_t *) a, y = *(const uint64_t *) b;

    return (x > y) - (x < y);
}


/* Sorts the values by field, keeping document order within a field. */
static int
eb_pm_sort_values(eb_pattern_event_t *ev)
{
    size_t          i, j, n;
    uint64_t       *keys, k;
    eb_pm_value_t  *v, *t;

    n = ev->vals.n;
    v = ev->vals.data;

    for (i = 1; i < n && v[i - 1].field <= v[i].field; i++) {
        /* void */
    }

    if (i >= n) {
        return 0;               /* already in order */
    }

    /* keys (field, ord) sorted, then the values moved by ord; tmp holds
     * both the keys and the values */

    ev->tmp.n = 0;
    t = eb_pm_vec_push(&ev->tmp, sizeof(eb_pm_value_t), 2 * n);
    if (t == NULL) {
        return -2;
    }

    keys = (uint64_t *) (t + n);

    for (i = 0; i < n; i++) {
        keys[i] = (uint64_t) v[i].field << 32 | v[i].ord;
    }

    if (n > 32) {
        qsort(keys, n, sizeof(uint64_t), eb_pm_key_cmp);

    } else {
        for (i = 1; i < n; i++) {
            k = keys[i];

            for (j = i; j > 0 && keys[j - 1] > k; j--) {
                keys[j] = keys[j - 1];
            }

            keys[j] = k;
        }
    }

    for (i = 0; i < n; i++) {
        t[i] = v[keys[i] & 0xffffffff];
    }

    memcpy(v, t, n * sizeof(eb_pm_value_t));

    return 0;
}


int
eb_pattern_event_parse(eb_pattern_event_t *ev, const eb_ruleset_t *rs,
    const unsigned char *json, size_t len)
{
    int                rc;
    size_t             i, n;
    uint32_t          *pr;
    eb_pm_scan_t       s;
    eb_pm_value_t     *v;
    eb_pm_fieldref_t  *fr;

    ev->rs = NULL;

    if (!rs->compiled) {
        return EB_PATTERN_MISUSE;
    }

    ev->vals.n = 0;
    ev->elems.n = 0;
    ev->trails.n = 0;
    ev->stack.n = 0;
    ev->strs.n = 0;
    ev->present.n = 0;
    ev->narrays = 0;

    if (len == 0) {
        return EB_PATTERN_BAD_EVENT;        /* json may be NULL */
    }

    if (eb_pm_vec_reserve(&ev->strs, 1, len + 1) != 0) {
        return EB_PATTERN_NOMEM;
    }

    s.p = json;
    s.end = json + len;
    s.ev = ev;
    s.rs = rs;
    s.pn = rs->pnodes.data;
    s.depth = 0;
    s.level = 0;

    eb_pm_skip_ws(&s);

    if (s.p >= s.end || *s.p != '{') {
        return EB_PATTERN_BAD_EVENT;
    }

    rc = eb_pm_scan_value(&s, s.pn[0].inner ? 0 : EB_PM_NONE);

    if (rc == 0) {
        eb_pm_skip_ws(&s);

        if (s.p != s.end) {
            rc = -1;
        }
    }

    if (rc == 0) {
        rc = eb_pm_sort_values(ev);
    }

    if (rc != 0) {
        return rc == -2 ? EB_PATTERN_NOMEM : EB_PATTERN_BAD_EVENT;
    }

    /* the per-field table */

    if (ev->fields.n < rs->nfields
        && eb_pm_vec_push(&ev->fields, sizeof(eb_pm_fieldref_t),
                          rs->nfields - ev->fields.n) == NULL)
    {
        return EB_PATTERN_NOMEM;
    }

    if (++ev->gen == 0) {
        eb_pm_zero(&ev->fields, sizeof(eb_pm_fieldref_t));
        ev->gen = 1;
    }

    v = ev->vals.data;
    n = ev->vals.n;

    for (i = 0; i < n; i++) {
        if (i > 0 && v[i - 1].field == v[i].field) {
            continue;
        }

        fr = eb_pm_vec_at(&ev->fields, eb_pm_fieldref_t, v[i].field);
        fr->gen = ev->gen;
        fr->first = (uint32_t) i;
        fr->n = 0;

        pr = eb_pm_vec_push(&ev->present, sizeof(uint32_t), 1);
        if (pr == NULL) {
            return EB_PATTERN_NOMEM;
        }

        *pr = v[i].field;
    }

    for (i = 0; i < n; i++) {
        eb_pm_vec_at(&ev->fields, eb_pm_fieldref_t, v[i].field)->n++;
    }

    ev->rs = rs;

    return 0;
}
