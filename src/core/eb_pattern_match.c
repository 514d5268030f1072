/*
 * Event patterns: matching a flattened event against a compiled ruleset.
 *
 * A depth-first walk of the state trie from the start state. At a state,
 * the fields it has matchers for are joined with the fields the event
 * has (whichever list is shorter drives); for each value of such a field
 * the matcher's indexes give the child states to visit, and the value's
 * array trail is taken along: a later value must not come from another
 * element of an array an earlier one came from.
 *
 * A state is visited once per distinct "relevant" trail: the elements of
 * the trail that lie in arrays on the path of some field used further
 * down (the state's sorted list of future fields answers that with one
 * binary search per element). Without arrays of objects that is once
 * per state, tracked with a generation stamp.
 *
 * All memory is the scratch's, grown on first use and kept.
 */

/* memmem() */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdlib.h>
#include <string.h>

#include "eb_pattern_int.h"


typedef struct {
    uint32_t   gen;
    uint32_t   state;
    uint32_t   key_off;       /* in seen_keys */
    uint32_t   key_n;
    uint64_t   hash;
} eb_pm_seen_t;


struct eb_match_scratch_s {
    eb_pattern_event_t      ev;
    uint32_t                gen;
    uint32_t                serial;
    eb_pm_vec_t             sstamp;     /* uint32_t per state: visited */
    eb_pm_vec_t             tstamp;     /* uint32_t per state: collected */
    eb_pm_vec_t             rstamp;     /* uint32_t per rule id: matched */
    eb_pm_vec_t             out;        /* uint32_t: matched rule ids */
    eb_pm_vec_t             targets;    /* uint32_t: a stack */
    eb_pm_vec_t             chosen;     /* uint32_t per array: elem + 1 */
    eb_pm_vec_t             acc;        /* uint32_t: elems chosen */
    eb_pm_vec_t             seen;       /* eb_pm_seen_t, power of two */
    size_t                  seen_used;
    eb_pm_vec_t             seen_keys;  /* uint32_t */
    eb_pm_vec_t             rel;        /* uint32_t: relevant elems */
    eb_pm_vec_t             fold;       /* unsigned char */
    const eb_pm_value_t    *fold_of;
    uint32_t                fold_gen;
    const eb_pm_value_t    *ip_of;
    uint32_t                ip_gen;
    int                     ip_family;
    uint8_t                 ip[16];
    pcre2_match_data       *md;
    pcre2_match_context    *mc;
    pcre2_jit_stack        *js;
    uint64_t                regex_limits;
};


typedef struct {
    const eb_ruleset_t        *rs;
    eb_match_scratch_t        *s;
    const eb_pattern_event_t  *ev;
    const eb_pm_state_t       *states;
    const eb_pm_trans_t       *trans;
    const eb_pm_matcher_t     *matchers;
    const eb_pm_entry_t       *entries;
    const eb_pm_range_t       *buckets;
    const eb_pm_pred_t        *preds;
    const eb_pm_cond_t        *conds;
    const eb_pm_pnode_t       *pn;
    const uint32_t            *ids;
    const unsigned char       *bytes;
    const eb_pm_value_t       *vals;
    const eb_pm_elem_t        *elems;
    const uint32_t            *trails;
    const eb_pm_fieldref_t    *fields;
    uint32_t                  *sstamp;
    uint32_t                  *tstamp;
    uint32_t                  *rstamp;
    uint32_t                  *chosen;
    int                        nomem;
} eb_pm_match_t;


eb_match_scratch_t *
eb_match_scratch_new(void)
{
    eb_match_scratch_t  *s;

    s = calloc(1, sizeof(eb_match_scratch_t));
    if (s == NULL) {
        return NULL;
    }

    s->md = pcre2_match_data_create(1, NULL);
    s->mc = pcre2_match_context_create(NULL);
    s->js = pcre2_jit_stack_create(32 * 1024, 512 * 1024, NULL);

    if (s->md == NULL || s->mc == NULL || s->js == NULL) {
        eb_match_scratch_free(s);
        return NULL;
    }

    pcre2_set_match_limit(s->mc, EB_PATTERN_REGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(s->mc, EB_PATTERN_REGEX_DEPTH_LIMIT);
    pcre2_set_heap_limit(s->mc, 16 * 1024);
    pcre2_jit_stack_assign(s->mc, NULL, s->js);

    return s;
}


void
eb_match_scratch_free(eb_match_scratch_t *s)
{
    eb_pattern_event_t  *ev;

    if (s == NULL) {
        return;
    }

    ev = &s->ev;
    eb_pm_vec_free(&ev->vals);
    eb_pm_vec_free(&ev->tmp);
    eb_pm_vec_free(&ev->elems);
    eb_pm_vec_free(&ev->trails);
    eb_pm_vec_free(&ev->stack);
    eb_pm_vec_free(&ev->strs);
    eb_pm_vec_free(&ev->fields);
    eb_pm_vec_free(&ev->present);

    eb_pm_vec_free(&s->sstamp);
    eb_pm_vec_free(&s->tstamp);
    eb_pm_vec_free(&s->rstamp);
    eb_pm_vec_free(&s->out);
    eb_pm_vec_free(&s->targets);
    eb_pm_vec_free(&s->chosen);
    eb_pm_vec_free(&s->acc);
    eb_pm_vec_free(&s->seen);
    eb_pm_vec_free(&s->seen_keys);
    eb_pm_vec_free(&s->rel);
    eb_pm_vec_free(&s->fold);

    if (s->md) {
        pcre2_match_data_free(s->md);
    }

    if (s->mc) {
        pcre2_match_context_free(s->mc);
    }

    if (s->js) {
        pcre2_jit_stack_free(s->js);
    }

    free(s);
}


uint64_t
eb_match_scratch_regex_limits(const eb_match_scratch_t *s)
{
    return s->regex_limits;
}


/* value tests */

static const unsigned char *
eb_pm_folded(eb_pm_match_t *m, const eb_pm_value_t *v)
{
    eb_match_scratch_t  *s = m->s;

    if (s->fold_of == v && s->fold_gen == s->gen) {
        return s->fold.data;
    }

    if (eb_pm_vec_reserve(&s->fold, 1, v->len + 1) != 0) {
        m->nomem = 1;
        return NULL;
    }

    eb_pm_fold(s->fold.data, v->str, v->len);
    s->fold_of = v;
    s->fold_gen = s->gen;

    return s->fold.data;
}


static int
eb_pm_address(eb_pm_match_t *m, const eb_pm_value_t *v)
{
    eb_match_scratch_t  *s = m->s;

    if (s->ip_of != v || s->ip_gen != s->gen) {
        s->ip_family = eb_pm_ip(v->str, v->len, s->ip);
        s->ip_of = v;
        s->ip_gen = s->gen;
    }

    return s->ip_family;
}


static int eb_pm_test_cond(eb_pm_match_t *m, uint32_t cond,
    const eb_pm_value_t *v);


static int
eb_pm_test_pred(eb_pm_match_t *m, const eb_pm_pred_t *p,
    const eb_pm_value_t *v)
{
    int                   rc;
    uint32_t              i;
    uint8_t               ip[16];
    const unsigned char  *f, *op;

    if (p->op == EB_PM_OP_EXACT) {
        if (v->type != p->v.type) {
            return 0;
        }

        if (v->type == EB_PM_T_STRING) {
            return v->len == p->v.len
                   && memcmp(v->str, m->bytes + p->v.off, v->len) == 0;
        }

        return v->type != EB_PM_T_NUMBER || v->num == p->v.num;
    }

    switch (p->op) {
    case EB_PM_OP_EXISTS:
        return 1;

    case EB_PM_OP_ABSENT:
        return 0;

    case EB_PM_OP_NUMERIC:
        if (v->type != EB_PM_T_NUMBER) {
            return 0;
        }

        return (p->lo_incl ? v->num >= p->lo : v->num > p->lo)
               && (p->hi_incl ? v->num <= p->hi : v->num < p->hi);

    case EB_PM_OP_NOT:
        if (p->strings && v->type != EB_PM_T_STRING) {
            return 0;
        }

        for (i = 0; i < p->list_n; i++) {
            if (eb_pm_test_pred(m, &m->preds[m->ids[p->list_off + i]], v)) {
                return 0;
            }
        }

        return 1;
    }

    /* string operators */

    if (v->type != EB_PM_T_STRING) {
        return 0;
    }

    op = m->bytes + p->v.off;

    switch (p->op) {
    case EB_PM_OP_PREFIX:
        return v->len >= p->v.len && memcmp(v->str, op, p->v.len) == 0;

    case EB_PM_OP_SUFFIX:
        return v->len >= p->v.len
               && memcmp(v->str + v->len - p->v.len, op, p->v.len) == 0;

    case EB_PM_OP_CONTAINS:
        return p->v.len == 0
               || memmem(v->str, v->len, op, p->v.len) != NULL;

    case EB_PM_OP_EQ_CI:
    case EB_PM_OP_PREFIX_CI:
    case EB_PM_OP_SUFFIX_CI:
        if (v->len < p->v.len || (p->op == EB_PM_OP_EQ_CI
                                  && v->len != p->v.len))
        {
            return 0;
        }

        f = eb_pm_folded(m, v);
        if (f == NULL) {
            return 0;
        }

        if (p->op == EB_PM_OP_SUFFIX_CI) {
            f += v->len - p->v.len;
        }

        return memcmp(f, op, p->v.len) == 0;

    case EB_PM_OP_WILDCARD:
        return eb_pm_wildcard(m->ids + p->list_off, p->list_n, m->bytes,
                              v->str, v->len);

    case EB_PM_OP_CIDR:
        if (eb_pm_address(m, v) != p->family) {
            return 0;
        }

        memcpy(ip, m->s->ip, 16);
        eb_pm_mask(ip, p->family == 4 ? 4 : 16, p->bits);

        return memcmp(ip, p->ip, 16) == 0;

    case EB_PM_OP_REGEX:
        rc = pcre2_match(*eb_pm_vec_at(&m->rs->regex, pcre2_code *, p->re),
                         v->len ? v->str : (const unsigned char *) "",
                         v->len, 0, 0, m->s->md, m->s->mc);

        if (rc >= 0) {
            return 1;
        }

        if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT
            || rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT)
        {
            m->s->regex_limits++;
        }

        return 0;
    }

    return 0;
}


static int
eb_pm_test_cond(eb_pm_match_t *m, uint32_t cond, const eb_pm_value_t *v)
{
    uint32_t             i;
    const eb_pm_cond_t  *c;

    c = &m->conds[cond];

    for (i = 0; i < c->pred_n; i++) {
        if (!eb_pm_test_pred(m, &m->preds[m->ids[c->pred_off + i]], v)) {
            return 0;
        }
    }

    return 1;
}


/* collecting the child states a value leads to */

static void
eb_pm_collect(eb_pm_match_t *m, uint32_t off, uint32_t n,
    const eb_pm_value_t *v)
{
    uint32_t             i, *t;
    eb_match_scratch_t  *s;
    const eb_pm_entry_t *e;

    s = m->s;

    for (i = 0; i < n; i++) {
        e = &m->entries[off + i];

        if (m->tstamp[e->target] == s->serial) {
            continue;
        }

        if (e->cond != EB_PM_NONE && !eb_pm_test_cond(m, e->cond, v)) {
            continue;
        }

        t = eb_pm_vec_push(&s->targets, sizeof(uint32_t), 1);
        if (t == NULL) {
            m->nomem = 1;
            return;
        }

        m->tstamp[e->target] = s->serial;
        *t = e->target;
    }
}


static void
eb_pm_probe(eb_pm_match_t *m, uint32_t matcher, unsigned kind,
    const unsigned char *key, size_t len, const eb_pm_value_t *v)
{
    uint32_t  ns, b;

    ns = matcher * EB_PM_K_N + kind;
    b = eb_pm_map_get(&m->rs->index, eb_pm_hash(ns, key, len), ns, key, len);

    if (b != EB_PM_NONE) {
        eb_pm_collect(m, m->buckets[b].off, m->buckets[b].n, v);
    }
}


/* probes of key's prefixes (or suffixes) of the matcher's lengths */
static void
eb_pm_probe_lens(eb_pm_match_t *m, uint32_t matcher,
    const eb_pm_matcher_t *mt, unsigned kind, const unsigned char *key,
    size_t len, int suffix, const eb_pm_value_t *v)
{
    uint32_t         i, n;
    const uint32_t  *lens;

    n = mt->lens_n[kind - EB_PM_K_LENS];
    if (n == 0) {
        return;                 /* lens.data may be NULL */
    }

    lens = (const uint32_t *) m->rs->lens.data
           + mt->lens_off[kind - EB_PM_K_LENS];

    for (i = 0; i < n && lens[i] <= len; i++) {
        eb_pm_probe(m, matcher, kind, suffix ? key + len - lens[i] : key,
                    lens[i], v);
    }
}


static void
eb_pm_numeric_hits(eb_pm_match_t *m, const eb_pm_matcher_t *mt,
    const eb_pm_value_t *v)
{
    uint32_t              lo, hi, mid, node;
    const eb_pm_num_t    *e;
    const eb_pm_range_t  *tree;

    e = (const eb_pm_num_t *) m->rs->nums.data + mt->num_off;
    lo = 0;
    hi = mt->num_n;

    while (lo < hi) {
        mid = (lo + hi) / 2;

        if (e[mid] < v->num) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    node = (lo < mt->num_n && e[lo] == v->num) ? 2 * lo + 1 : 2 * lo;
    node += mt->tree_leaves;
    tree = (const eb_pm_range_t *) m->rs->tree.data + mt->tree_off;

    for ( /* void */ ; node; node /= 2) {
        if (tree[node].n) {
            eb_pm_collect(m, tree[node].off, tree[node].n, v);
        }
    }
}


static void
eb_pm_contains_hits(eb_pm_match_t *m, const eb_pm_matcher_t *mt,
    const eb_pm_value_t *v)
{
    size_t                 i;
    uint32_t               node, root, o, lo, hi, mid;
    const eb_pm_acnode_t  *an, *x;
    const eb_pm_acedge_t  *ed, *edges;
    unsigned char          ch;

    an = m->rs->acnodes.data;
    edges = m->rs->acedges.data;
    root = mt->ac;
    node = root;

    for (i = 0; i < v->len; i++) {
        ch = v->str[i];

        for ( ;; ) {
            x = &an[node];
            ed = NULL;

            /* edges are sorted by byte */
            lo = 0;
            hi = x->edges_n;

            while (lo < hi) {
                mid = (lo + hi) / 2;

                if (edges[x->edges_off + mid].byte < ch) {
                    lo = mid + 1;

                } else {
                    hi = mid;
                }
            }

            if (lo < x->edges_n && edges[x->edges_off + lo].byte == ch) {
                ed = &edges[x->edges_off + lo];
            }

            if (ed) {
                node = ed->next;
                break;
            }

            if (node == root) {
                break;
            }

            node = x->fail;
        }

        for (o = an[node].out_n ? node : an[node].dict;
             o != EB_PM_NONE;
             o = an[o].dict)
        {
            eb_pm_collect(m, an[o].out_off, an[o].out_n, v);
        }
    }
}


static void
eb_pm_lookup(eb_pm_match_t *m, uint32_t matcher, const eb_pm_value_t *v)
{
    int                     family;
    size_t                  n, i;
    uint8_t                 lit, key[17];
    const uint32_t         *bits;
    const unsigned char    *f;
    eb_match_scratch_t     *s;
    const eb_pm_matcher_t  *mt;

    s = m->s;
    mt = &m->matchers[matcher];

    if (++s->serial == 0) {
        eb_pm_zero(&s->tstamp, sizeof(uint32_t));
        s->serial = 1;
    }

    switch (v->type) {

    case EB_PM_T_STRING:
        if (mt->kinds & (1u << EB_PM_K_STR)) {
            eb_pm_probe(m, matcher, EB_PM_K_STR, v->str, v->len, v);
        }

        if (mt->lens_n[EB_PM_K_PREFIX - EB_PM_K_LENS]) {
            eb_pm_probe_lens(m, matcher, mt, EB_PM_K_PREFIX, v->str, v->len,
                             0, v);
        }

        if (mt->lens_n[EB_PM_K_SUFFIX - EB_PM_K_LENS]) {
            eb_pm_probe_lens(m, matcher, mt, EB_PM_K_SUFFIX, v->str, v->len,
                             1, v);
        }

        if ((mt->kinds & (1u << EB_PM_K_STR_CI))
            || mt->lens_n[EB_PM_K_PREFIX_CI - EB_PM_K_LENS]
            || mt->lens_n[EB_PM_K_SUFFIX_CI - EB_PM_K_LENS])
        {
            f = eb_pm_folded(m, v);
            if (f == NULL) {
                return;
            }

            if (mt->kinds & (1u << EB_PM_K_STR_CI)) {
                eb_pm_probe(m, matcher, EB_PM_K_STR_CI, f, v->len, v);
            }

            eb_pm_probe_lens(m, matcher, mt, EB_PM_K_PREFIX_CI, f, v->len,
                             0, v);
            eb_pm_probe_lens(m, matcher, mt, EB_PM_K_SUFFIX_CI, f, v->len,
                             1, v);
        }

        for (family = 4; family <= 6; family += 2) {
            i = family == 4 ? EB_PM_K_CIDR4 : EB_PM_K_CIDR6;
            n = mt->lens_n[i - EB_PM_K_LENS];

            if (n == 0 || eb_pm_address(m, v) != family) {
                continue;
            }

            bits = (const uint32_t *) m->rs->lens.data
                   + mt->lens_off[i - EB_PM_K_LENS];

            for ( /* void */ ; n; n--, bits++) {
                memcpy(key, s->ip, 16);
                eb_pm_mask(key, family == 4 ? 4 : 16, *bits);
                key[family == 4 ? 4 : 16] = (uint8_t) *bits;
                eb_pm_probe(m, matcher, (unsigned) i, key,
                            family == 4 ? 5 : 17, v);
            }
        }

        if (mt->ac != EB_PM_NONE) {
            eb_pm_contains_hits(m, mt, v);
        }

        break;

    case EB_PM_T_NUMBER:
        if (mt->kinds & (1u << EB_PM_K_NUM)) {
            eb_pm_probe(m, matcher, EB_PM_K_NUM,
                        (const unsigned char *) &v->num, EB_PM_NUM_KEY, v);
        }

        if (mt->tree_leaves) {
            eb_pm_numeric_hits(m, mt, v);
        }

        break;

    default:
        if (mt->kinds & (1u << EB_PM_K_LIT)) {
            lit = v->type;
            eb_pm_probe(m, matcher, EB_PM_K_LIT, &lit, 1, v);
        }

        break;
    }

    if (mt->lin_n) {
        eb_pm_collect(m, mt->lin_off, mt->lin_n, v);
    }
}


/* trails */

static int
eb_pm_consistent(eb_pm_match_t *m, const eb_pm_value_t *v)
{
    uint32_t             i, e, c;
    const uint32_t      *t;

    t = m->trails + v->trail_off;

    for (i = 0; i < v->trail_n; i++) {
        e = t[i];
        c = m->chosen[m->elems[e].array];

        if (c && c != e + 1) {
            return 0;
        }
    }

    return 1;
}


/* Whether a state uses, below it, a field under the array node. */
static int
eb_pm_relevant(eb_pm_match_t *m, const eb_pm_state_t *st, uint32_t node)
{
    uint32_t         lo, hi, mid, n;
    const uint32_t  *fut;

    fut = m->ids + st->fut_off;
    n = st->fut_n;
    lo = 0;
    hi = n;

    while (lo < hi) {
        mid = (lo + hi) / 2;

        if (fut[mid] < m->pn[node].lo) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    return lo < n && fut[lo] <= m->pn[node].hi;
}


/* Whether the state was visited with the same relevant trail; marks it. */
static int
eb_pm_seen(eb_pm_match_t *m, uint32_t sid)
{
    size_t               i, j, k, cap, mask;
    uint32_t            *acc, *rel, *key, e;
    uint64_t             h;
    eb_pm_seen_t        *slots, *sl, *old;
    eb_match_scratch_t  *s;
    const eb_pm_state_t *st;

    s = m->s;
    st = &m->states[sid];
    acc = s->acc.data;

    s->rel.n = 0;

    for (i = 0; i < s->acc.n; i++) {
        e = acc[i];

        if (eb_pm_relevant(m, st, m->elems[e].node)) {
            rel = eb_pm_vec_push(&s->rel, sizeof(uint32_t), 1);
            if (rel == NULL) {
                m->nomem = 1;
                return 1;
            }

            *rel = e;
        }
    }

    if (s->rel.n == 0) {
        if (m->sstamp[sid] == s->gen) {
            return 1;
        }

        m->sstamp[sid] = s->gen;
        return 0;
    }

    rel = s->rel.data;
    h = eb_pm_hash(sid, (const unsigned char *) rel,
                   s->rel.n * sizeof(uint32_t));

    /* grow (and rehash this match's entries) at half load */

    cap = s->seen.n;

    if ((s->seen_used + 1) * 2 > cap) {
        old = s->seen.data;
        k = cap;
        cap = cap ? cap * 2 : 64;

        slots = calloc(cap, sizeof(eb_pm_seen_t));
        if (slots == NULL) {
            m->nomem = 1;
            return 1;
        }

        for (i = 0; i < k; i++) {
            if (old[i].gen != s->gen) {
                continue;
            }

            for (j = old[i].hash & (cap - 1); slots[j].gen == s->gen;
                 j = (j + 1) & (cap - 1))
            {
                /* void */
            }

            slots[j] = old[i];
        }

        free(s->seen.data);
        s->seen.data = slots;
        s->seen.n = cap;
        s->seen.cap = cap;
    }

    slots = s->seen.data;
    mask = cap - 1;

    for (j = h & mask; slots[j].gen == s->gen; j = (j + 1) & mask) {
        sl = &slots[j];

        if (sl->hash == h && sl->state == sid && sl->key_n == s->rel.n
            && memcmp(eb_pm_vec_at(&s->seen_keys, uint32_t, sl->key_off),
                      rel, s->rel.n * sizeof(uint32_t)) == 0)
        {
            return 1;
        }
    }

    key = eb_pm_vec_push(&s->seen_keys, sizeof(uint32_t), s->rel.n);
    if (key == NULL) {
        m->nomem = 1;
        return 1;
    }

    memcpy(key, s->rel.data, s->rel.n * sizeof(uint32_t));

    sl = &slots[j];
    sl->gen = s->gen;
    sl->state = sid;
    sl->key_off = (uint32_t) (s->seen_keys.n - s->rel.n);
    sl->key_n = (uint32_t) s->rel.n;
    sl->hash = h;
    s->seen_used++;

    return 0;
}


static void eb_pm_visit(eb_pm_match_t *m, uint32_t sid);


/* The values of a field that a state's matcher looks at, and the states
 * they lead to. */
static void
eb_pm_step(eb_pm_match_t *m, uint32_t field, uint32_t matcher)
{
    size_t                   i, base, pushed, k;
    uint32_t                 first, end, lo, hi, mid, best, e, a, *acc;
    uint32_t                *t;
    eb_match_scratch_t      *s;
    const eb_pm_value_t     *v;
    const eb_pm_elem_t      *el;
    const eb_pm_fieldref_t  *fr;

    s = m->s;
    fr = &m->fields[field];
    first = fr->first;
    end = first + fr->n;

    /* Inside an element chosen already, only its values can do: the
     * deepest such element bounds them (values are in document order).
     * Only arrays strictly above the field's path: an array at the
     * field's own path may hold its values directly, outside any
     * element that is a container. */

    if (s->acc.n) {
        acc = s->acc.data;
        best = EB_PM_NONE;

        for (i = 0; i < s->acc.n; i++) {
            el = &m->elems[acc[i]];

            if (m->pn[el->node].lo <= field && field <= m->pn[el->node].hi
                && m->pn[el->node].field != field
                && (best == EB_PM_NONE || el->level > m->elems[best].level))
            {
                best = acc[i];
            }
        }

        if (best != EB_PM_NONE) {
            el = &m->elems[best];

            for (lo = first, hi = end; lo < hi; /* void */ ) {
                mid = (lo + hi) / 2;

                if (m->vals[mid].ord < el->lo) {
                    lo = mid + 1;

                } else {
                    hi = mid;
                }
            }

            first = lo;

            for (hi = end; lo < hi; /* void */ ) {
                mid = (lo + hi) / 2;

                if (m->vals[mid].ord < el->hi) {
                    lo = mid + 1;

                } else {
                    hi = mid;
                }
            }

            end = lo;
        }
    }

    for (i = first; i < end; i++) {
        v = &m->vals[i];

        if (v->trail_n && !eb_pm_consistent(m, v)) {
            continue;
        }

        base = s->targets.n;
        eb_pm_lookup(m, matcher, v);

        if (s->targets.n == base || m->nomem) {
            continue;
        }

        /* take the value's trail along */

        pushed = 0;

        for (k = 0; k < v->trail_n; k++) {
            e = m->trails[v->trail_off + k];
            a = m->elems[e].array;

            if (m->chosen[a] == 0) {
                t = eb_pm_vec_push(&s->acc, sizeof(uint32_t), 1);
                if (t == NULL) {
                    m->nomem = 1;
                    break;
                }

                m->chosen[a] = e + 1;
                *t = e;
                pushed++;
            }
        }

        for (k = base; k < s->targets.n && !m->nomem; k++) {
            eb_pm_visit(m, *eb_pm_vec_at(&s->targets, uint32_t, k));
        }

        for ( /* void */ ; pushed; pushed--) {
            e = *eb_pm_vec_at(&s->acc, uint32_t, --s->acc.n);
            m->chosen[m->elems[e].array] = 0;
        }

        s->targets.n = base;
    }
}


static void
eb_pm_visit(eb_pm_match_t *m, uint32_t sid)
{
    size_t                   i, j, n;
    uint32_t                 lo, hi, mid, r, *o, f;
    eb_match_scratch_t      *s;
    const eb_pm_state_t     *st;
    const eb_pm_trans_t     *tr;
    const eb_pm_matcher_t   *mt;
    const uint32_t          *present;

    s = m->s;
    st = &m->states[sid];

    if (s->acc.n == 0) {
        if (m->sstamp[sid] == s->gen) {
            return;
        }

        m->sstamp[sid] = s->gen;

    } else if (eb_pm_seen(m, sid)) {
        return;
    }

    for (i = 0; i < st->rules_n; i++) {
        r = m->ids[st->rules_off + i];

        if (m->rstamp[r] != s->gen) {
            m->rstamp[r] = s->gen;

            o = eb_pm_vec_push(&s->out, sizeof(uint32_t), 1);
            if (o == NULL) {
                m->nomem = 1;
                return;
            }

            *o = r;
        }
    }

    /* the fields both the state and the event have */

    tr = m->trans + st->trans_off;
    n = m->ev->present.n;

    if (st->trans_n <= n) {
        for (i = 0; i < st->trans_n && !m->nomem; i++) {
            if (m->fields[tr[i].field].gen == m->ev->gen) {
                eb_pm_step(m, tr[i].field, tr[i].matcher);
            }
        }

    } else {
        present = m->ev->present.data;

        for (j = 0; j < n && !m->nomem; j++) {
            f = present[j];

            for (lo = 0, hi = st->trans_n; lo < hi; /* void */ ) {
                mid = (lo + hi) / 2;

                if (tr[mid].field < f) {
                    lo = mid + 1;

                } else {
                    hi = mid;
                }
            }

            if (lo < st->trans_n && tr[lo].field == f) {
                eb_pm_step(m, f, tr[lo].matcher);
            }
        }
    }

    /* exists:false: fields the event lacks */

    for (i = 0; i < st->absent_n && !m->nomem; i++) {
        mt = &m->matchers[m->ids[st->absent_off + i]];

        if (m->fields[mt->field].gen == m->ev->gen) {
            continue;
        }

        for (j = 0; j < mt->abs_n; j++) {
            eb_pm_visit(m, m->ids[mt->abs_off + j]);
        }
    }
}


static int
eb_pm_id_cmp(const void *a, const void *b)
{
    uint32_t  x = *(const uint32_t *) a, y = *(const uint32_t *) b;

    return (x > y) - (x < y);
}


/* Grows a stamp array to n entries (new ones zero). */
static int
eb_pm_stamps(eb_pm_vec_t *v, size_t n)
{
    if (v->n >= n) {
        return 0;
    }

    return eb_pm_vec_push(v, sizeof(uint32_t), n - v->n) ? 0 : -1;
}


int
eb_ruleset_match_event(const eb_ruleset_t *rs, eb_match_scratch_t *s,
    const eb_pattern_event_t *ev, uint32_t *ids, size_t max_ids)
{
    size_t          i, j, n;
    uint32_t        x, *out;
    eb_pm_match_t   m;

    if (!rs->compiled || ev->rs != rs) {
        return EB_PATTERN_MISUSE;
    }

    if (eb_pm_stamps(&s->sstamp, rs->states.n) != 0
        || eb_pm_stamps(&s->tstamp, rs->states.n) != 0
        || eb_pm_stamps(&s->rstamp, (size_t) rs->max_rule_id + 1) != 0
        || eb_pm_stamps(&s->chosen, ev->narrays) != 0)
    {
        return EB_PATTERN_NOMEM;
    }

    if (++s->gen == 0) {
        eb_pm_zero(&s->sstamp, sizeof(uint32_t));
        eb_pm_zero(&s->rstamp, sizeof(uint32_t));
        eb_pm_zero(&s->seen, sizeof(eb_pm_seen_t));
        s->gen = 1;
    }

    s->out.n = 0;
    s->targets.n = 0;
    s->acc.n = 0;
    s->seen_used = 0;
    s->seen_keys.n = 0;

    m.rs = rs;
    m.s = s;
    m.ev = ev;
    m.states = rs->states.data;
    m.trans = rs->trans.data;
    m.matchers = rs->matchers.data;
    m.entries = rs->entries.data;
    m.buckets = rs->buckets.data;
    m.preds = rs->preds.data;
    m.conds = rs->conds.data;
    m.pn = rs->pnodes.data;
    m.ids = rs->ids.data;
    m.bytes = rs->bytes.data;
    m.vals = ev->vals.data;
    m.elems = ev->elems.data;
    m.trails = ev->trails.data;
    m.fields = ev->fields.data;
    m.sstamp = s->sstamp.data;
    m.tstamp = s->tstamp.data;
    m.rstamp = s->rstamp.data;
    m.chosen = s->chosen.data;
    m.nomem = 0;

    if (ev->present.n || rs->states.n > 1) {
        eb_pm_visit(&m, 0);
    }

    /* a visit ended early leaves chosen arrays marked */
    if (m.nomem) {
        eb_pm_zero(&s->chosen, sizeof(uint32_t));
        return EB_PATTERN_NOMEM;
    }

    out = s->out.data;
    n = s->out.n;

    if (n > 32) {
        qsort(out, n, sizeof(uint32_t), eb_pm_id_cmp);

    } else {
        for (i = 1; i < n; i++) {
            x = out[i];

            for (j = i; j > 0 && out[j - 1] > x; j--) {
                out[j] = out[j - 1];
            }

            out[j] = x;
        }
    }

    for (i = 0; i < n && i < max_ids; i++) {
        ids[i] = out[i];
    }

    return (int) n;
}


int
eb_ruleset_match_json(const eb_ruleset_t *rs, eb_match_scratch_t *s,
    const unsigned char *json, size_t len, uint32_t *ids, size_t max_ids)
{
    int  rc;

    rc = eb_pattern_event_parse(&s->ev, rs, json, len);
    if (rc != 0) {
        return rc;
    }

    return eb_ruleset_match_event(rs, s, &s->ev, ids, max_ids);
}
