/*
 * Event patterns: the ruleset, and compiling all of its rules into one
 * machine (the design is described in eb_pattern.h).
 *
 * Compile, step by step:
 *
 * 1. Fields. The path trie holds every key path of every rule; its nodes
 *    are numbered depth-first with children in byte order, and each node
 *    that ends a path some conjunct names gets the next field id. So the
 *    fields below a node have consecutive ids [lo, hi]: whether a future
 *    conjunct can look inside an array is one range test.
 *
 * 2. States. Every alternative (a rule after "$or" expansion) has its
 *    conjuncts sorted by (rank, field, canonical text): exact values
 *    first, broad conditions last, so that a rule that cannot match
 *    drops out on its most selective field. Walking the conjuncts from
 *    the start state, each (state, conjunct) gets a child state, shared
 *    by all alternatives with the same prefix; the alternative's rule id
 *    is listed at the last state. Each (state, field) pair gets one
 *    matcher, which indexes the conditions of every conjunct leaving the
 *    state on that field, each condition leading to its conjunct's child.
 *
 * 3. Indexes. A condition is indexed by its most selective operator (its
 *    "primary") and, when it has several operators or the primary only
 *    approximates it (the head of a wildcard), the whole condition is
 *    verified on a hit. Exact values, case-folded values, prefixes,
 *    suffixes and CIDR blocks go to one hash map keyed by (matcher, kind,
 *    bytes), prefixes/suffixes/blocks with the list of their distinct
 *    lengths; numeric ranges to a segment tree per matcher; contains
 *    needles (and the middle literal of "*a*b*" wildcards) to an
 *    Aho-Corasick automaton per matcher; exists, anything-but and regex to
 *    a list checked for each value; exists:false to a list followed when
 *    the field is missing.
 *
 * 4. Trails. For every state, the sorted list of the fields used below
 *    it: the matcher drops the array positions no later conjunct can
 *    look at, which bounds the work on arrays of objects.
 *
 * The whole machine lives in a few flat arrays of the ruleset, read-only
 * once compiled.
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eb_pattern_int.h"


typedef struct {
    uint32_t   state;
    uint32_t   field;
} eb_pm_mdef_t;

typedef struct {
    uint32_t   matcher;
    uint32_t   target;
    uint32_t   conj;
} eb_pm_mtuple_t;

typedef struct {
    uint32_t   state;
    uint32_t   rule;
} eb_pm_accept_t;

typedef struct {
    uint32_t   bucket;
    uint32_t   target;
    uint32_t   cond;
} eb_pm_bitem_t;

typedef struct {
    eb_pm_num_t   lo;
    eb_pm_num_t   hi;
    uint8_t       lo_incl;
    uint8_t       hi_incl;
    uint32_t      target;
    uint32_t      cond;
} eb_pm_interval_t;

typedef struct {
    uint32_t   off;           /* needle in rs->bytes */
    uint32_t   len;
    uint32_t   target;
    uint32_t   cond;
} eb_pm_needle_t;

typedef struct {
    eb_ruleset_t   *rs;
    eb_pm_vec_t     mdefs;        /* eb_pm_mdef_t, by matcher id */
    eb_pm_vec_t     tuples;       /* eb_pm_mtuple_t */
    eb_pm_vec_t     accepts;      /* eb_pm_accept_t */
    eb_pm_vec_t     parent;       /* uint32_t per state */
    eb_pm_map_t     share;        /* (state, field + canon) -> child */
    eb_pm_map_t     mmap;         /* (state, field) -> matcher */
    uint32_t        nstates;

    /* per matcher, while indexing it */
    eb_pm_vec_t     bitems;       /* eb_pm_bitem_t */
    eb_pm_vec_t     lens[EB_PM_NLENS];   /* uint32_t */
    eb_pm_vec_t     intervals;    /* eb_pm_interval_t */
    eb_pm_vec_t     needles;      /* eb_pm_needle_t */
    eb_pm_vec_t     linear;       /* eb_pm_entry_t */
    eb_pm_vec_t     absent;       /* uint32_t */
    eb_pm_vec_t     tmp;          /* uint32_t */
    eb_pm_vec_t     tmp2;         /* uint32_t */
    eb_pm_vec_t     key;          /* unsigned char */
} eb_pm_compile_t;


#define eb_pm_ids(rs)     ((uint32_t *) (rs)->ids.data)
#define eb_pm_preds(rs)   ((eb_pm_pred_t *) (rs)->preds.data)
#define eb_pm_conds(rs)   ((eb_pm_cond_t *) (rs)->conds.data)
#define eb_pm_conjs(rs)   ((eb_pm_conj_t *) (rs)->conjs.data)
#define eb_pm_pnodes(rs)  ((eb_pm_pnode_t *) (rs)->pnodes.data)


eb_ruleset_t *
eb_ruleset_new(void)
{
    eb_ruleset_t   *rs;
    eb_pm_pnode_t  *root;

    rs = calloc(1, sizeof(eb_ruleset_t));
    if (rs == NULL) {
        return NULL;
    }

    root = eb_pm_vec_push(&rs->pnodes, sizeof(eb_pm_pnode_t), 1);
    if (root == NULL) {
        free(rs);
        return NULL;
    }

    root->parent = EB_PM_NONE;
    root->field = EB_PM_NONE;

    return rs;
}


void
eb_ruleset_free(eb_ruleset_t *rs)
{
    size_t  i;

    if (rs == NULL) {
        return;
    }

    for (i = 0; i < rs->regex.n; i++) {
        pcre2_code_free(*eb_pm_vec_at(&rs->regex, pcre2_code *, i));
    }

    eb_pm_vec_free(&rs->bytes);
    eb_pm_vec_free(&rs->canon);
    eb_pm_vec_free(&rs->ids);
    eb_pm_vec_free(&rs->preds);
    eb_pm_vec_free(&rs->conds);
    eb_pm_vec_free(&rs->conjs);
    eb_pm_vec_free(&rs->alts);
    eb_pm_vec_free(&rs->regex);
    eb_pm_vec_free(&rs->pnodes);
    eb_pm_map_free(&rs->children);
    eb_pm_vec_free(&rs->states);
    eb_pm_vec_free(&rs->trans);
    eb_pm_vec_free(&rs->matchers);
    eb_pm_vec_free(&rs->entries);
    eb_pm_vec_free(&rs->buckets);
    eb_pm_map_free(&rs->index);
    eb_pm_vec_free(&rs->lens);
    eb_pm_vec_free(&rs->nums);
    eb_pm_vec_free(&rs->tree);
    eb_pm_vec_free(&rs->acnodes);
    eb_pm_vec_free(&rs->acedges);

    free(rs);
}


int
eb_ruleset_add(eb_ruleset_t *rs, uint32_t rule_id,
    const unsigned char *pattern_json, size_t len, char *err, size_t errlen)
{
    size_t          i, n_canon, n_ids, n_preds, n_conds, n_conjs, n_alts,
                    n_regex;
    uint32_t        node;
    eb_pm_pnode_t  *pn;

    if (rs->compiled || rs->broken || rule_id > EB_PATTERN_MAX_RULE_ID) {
        if (errlen) {
            snprintf(err, errlen, "%s",
                     rs->compiled ? "rule: the ruleset is already compiled"
                     : rs->broken ? "out of memory"
                     : "rule: id above EB_PATTERN_MAX_RULE_ID");
        }

        return -1;
    }

    n_canon = rs->canon.n;
    n_ids = rs->ids.n;
    n_preds = rs->preds.n;
    n_conds = rs->conds.n;
    n_conjs = rs->conjs.n;
    n_alts = rs->alts.n;
    n_regex = rs->regex.n;

    if (eb_pm_parse(rs, rule_id, pattern_json, len, err, errlen) != 0) {
        /* undo the partial rule; new path trie nodes stay unmarked */

        for (i = n_regex; i < rs->regex.n; i++) {
            pcre2_code_free(*eb_pm_vec_at(&rs->regex, pcre2_code *, i));
        }

        /* rs->bytes stays: new path trie nodes name their segments there */
        rs->regex.n = n_regex;
        rs->canon.n = n_canon;
        rs->ids.n = n_ids;
        rs->preds.n = n_preds;
        rs->conds.n = n_conds;
        rs->conjs.n = n_conjs;
        rs->alts.n = n_alts;

        return -1;
    }

    /* the rule's paths: leaves, and every node above them inner */

    for (i = n_conjs; i < rs->conjs.n; i++) {
        node = eb_pm_conjs(rs)[i].node;
        pn = &eb_pm_pnodes(rs)[node];
        pn->leaf = 1;

        while (pn->parent != EB_PM_NONE) {
            pn = &eb_pm_pnodes(rs)[pn->parent];

            if (pn->inner) {
                break;
            }

            pn->inner = 1;
        }
    }

    if (rule_id > rs->max_rule_id) {
        rs->max_rule_id = rule_id;
    }

    return 0;
}


int
eb_pattern_check(const unsigned char *pattern_json, size_t len, char *err,
    size_t errlen)
{
    int            rc;
    eb_ruleset_t  *rs;

    rs = eb_ruleset_new();
    if (rs == NULL) {
        if (errlen) {
            snprintf(err, errlen, "out of memory");
        }

        return -1;
    }

    rc = eb_ruleset_add(rs, 0, pattern_json, len, err, errlen);
    eb_ruleset_free(rs);

    return rc;
}


/* 1. fields */

static int
eb_pm_seg_cmp(void *ctx, uint32_t a, uint32_t b)
{
    int                   r;
    eb_ruleset_t         *rs = ctx;
    const eb_pm_pnode_t  *x, *y;
    const unsigned char  *base;

    x = &eb_pm_pnodes(rs)[a];
    y = &eb_pm_pnodes(rs)[b];
    base = rs->bytes.data;

    r = memcmp(base + x->seg_off, base + y->seg_off,
               x->seg_len < y->seg_len ? x->seg_len : y->seg_len);

    return r ? r : (x->seg_len > y->seg_len) - (x->seg_len < y->seg_len);
}


static int
eb_pm_fields(eb_pm_compile_t *c)
{
    size_t          i, n, top;
    uint32_t       *first, *kids, *order, *stack, *tmp, u, k;
    eb_ruleset_t   *rs;
    eb_pm_pnode_t  *pn;

    rs = c->rs;
    n = rs->pnodes.n;
    pn = eb_pm_pnodes(rs);

    first = calloc(n + 1, sizeof(uint32_t));
    kids = malloc((n + 1) * sizeof(uint32_t));
    order = malloc((n + 1) * sizeof(uint32_t));
    stack = malloc((n + 1) * sizeof(uint32_t));
    tmp = malloc((n + 1) * sizeof(uint32_t));

    if (first == NULL || kids == NULL || order == NULL || stack == NULL
        || tmp == NULL)
    {
        free(first);
        free(kids);
        free(order);
        free(stack);
        free(tmp);
        return -1;
    }

    /* children grouped by parent (counting sort), each group in byte
     * order */

    for (i = 1; i < n; i++) {
        first[pn[i].parent + 1]++;
    }

    for (i = 1; i <= n; i++) {
        first[i] += first[i - 1];
    }

    memset(tmp, 0, (n + 1) * sizeof(uint32_t));

    for (i = 1; i < n; i++) {
        u = pn[i].parent;
        kids[first[u] + tmp[u]++] = (uint32_t) i;
    }

    for (i = 0; i < n; i++) {
        eb_pm_sort(kids + first[i], first[i + 1] - first[i], eb_pm_seg_cmp,
                   rs, order);
    }

    /* depth-first, children in order: field ids in preorder */

    top = 0;
    stack[top++] = 0;
    rs->nfields = 0;
    k = 0;

    while (top) {
        u = stack[--top];
        order[k++] = u;

        pn[u].field = EB_PM_NONE;
        pn[u].lo = EB_PM_NONE;
        pn[u].hi = 0;

        if (pn[u].leaf) {
            pn[u].field = rs->nfields++;
            pn[u].lo = pn[u].field;
            pn[u].hi = pn[u].field;
        }

        for (i = first[u + 1]; i > first[u]; i--) {
            stack[top++] = kids[i - 1];
        }
    }

    /* [lo, hi] of each subtree, children before parents */

    while (k > 1) {
        u = order[--k];

        if (pn[u].lo < pn[pn[u].parent].lo) {
            pn[pn[u].parent].lo = pn[u].lo;
        }

        if (pn[u].lo != EB_PM_NONE && pn[u].hi > pn[pn[u].parent].hi) {
            pn[pn[u].parent].hi = pn[u].hi;
        }
    }

    for (i = 0; i < rs->conjs.n; i++) {
        eb_pm_conjs(rs)[i].field = pn[eb_pm_conjs(rs)[i].node].field;
    }

    free(first);
    free(kids);
    free(order);
    free(stack);
    free(tmp);

    return 0;
}


/* 2. states */

static int
eb_pm_conj_cmp(void *ctx, uint32_t a, uint32_t b)
{
    int                  r;
    eb_ruleset_t        *rs = ctx;
    const eb_pm_conj_t  *x, *y;
    const unsigned char *base;

    x = &eb_pm_conjs(rs)[a];
    y = &eb_pm_conjs(rs)[b];

    if (x->rank != y->rank) {
        return x->rank < y->rank ? -1 : 1;
    }

    if (x->field != y->field) {
        return x->field < y->field ? -1 : 1;
    }

    base = rs->canon.data;

    r = memcmp(base + x->canon_off, base + y->canon_off,
               x->canon_len < y->canon_len ? x->canon_len : y->canon_len);

    return r ? r : (x->canon_len > y->canon_len)
                   - (x->canon_len < y->canon_len);
}


static uint32_t
eb_pm_new_state(eb_pm_compile_t *c, uint32_t parent)
{
    uint32_t  *p;

    p = eb_pm_vec_push(&c->parent, sizeof(uint32_t), 1);
    if (p == NULL) {
        return EB_PM_NONE;
    }

    *p = parent;

    return c->nstates++;
}


static int
eb_pm_states(eb_pm_compile_t *c)
{
    int               rc;
    size_t            i, j, n;
    uint32_t          s, child, m, *conj, *tmp, k;
    eb_ruleset_t     *rs;
    eb_pm_alt_t      *alt;
    eb_pm_conj_t     *cj;
    eb_pm_mdef_t     *md;
    eb_pm_mtuple_t   *t;
    eb_pm_accept_t   *acc;
    unsigned char    *key;

    rs = c->rs;

    if (eb_pm_new_state(c, EB_PM_NONE) == EB_PM_NONE) {
        return -1;
    }

    tmp = malloc((EB_PATTERN_MAX_CONJUNCTS + 1) * 2 * sizeof(uint32_t));
    if (tmp == NULL) {
        return -1;
    }

    conj = tmp + EB_PATTERN_MAX_CONJUNCTS + 1;

    for (i = 0; i < rs->alts.n; i++) {
        alt = eb_pm_vec_at(&rs->alts, eb_pm_alt_t, i);
        n = alt->conj_n;

        memcpy(conj, eb_pm_ids(rs) + alt->conj_off, n * sizeof(uint32_t));
        eb_pm_sort(conj, n, eb_pm_conj_cmp, rs, tmp);

        s = 0;

        for (j = 0; j < n; j++) {
            if (j > 0 && eb_pm_conj_cmp(rs, conj[j - 1], conj[j]) == 0) {
                continue;       /* the same conjunct twice */
            }

            cj = &eb_pm_conjs(rs)[conj[j]];

            /* the child of s for this conjunct */

            c->key.n = 0;
            key = eb_pm_vec_push(&c->key, 1, 4 + cj->canon_len);
            if (key == NULL) {
                free(tmp);
                return -1;
            }

            memcpy(key, &cj->field, 4);
            memcpy(key + 4, (unsigned char *) rs->canon.data + cj->canon_off,
                   cj->canon_len);

            child = c->nstates;

            rc = eb_pm_map_put(&c->share, s, key, c->key.n, &child);
            if (rc < 0) {
                free(tmp);
                return -1;
            }

            if (rc == 1) {
                if (eb_pm_new_state(c, s) == EB_PM_NONE) {
                    free(tmp);
                    return -1;
                }

                /* the matcher of (s, field) */

                m = (uint32_t) c->mdefs.n;

                if (eb_pm_map_put(&c->mmap, s, (unsigned char *) &cj->field,
                                  4, &m) < 0)
                {
                    free(tmp);
                    return -1;
                }

                if (m == c->mdefs.n) {
                    md = eb_pm_vec_push(&c->mdefs, sizeof(eb_pm_mdef_t), 1);
                    if (md == NULL) {
                        free(tmp);
                        return -1;
                    }

                    md->state = s;
                    md->field = cj->field;
                }

                t = eb_pm_vec_push(&c->tuples, sizeof(eb_pm_mtuple_t), 1);
                if (t == NULL) {
                    free(tmp);
                    return -1;
                }

                t->matcher = m;
                t->target = child;
                t->conj = conj[j];
            }

            s = child;
        }

        acc = eb_pm_vec_push(&c->accepts, sizeof(eb_pm_accept_t), 1);
        if (acc == NULL) {
            free(tmp);
            return -1;
        }

        acc->state = s;
        acc->rule = alt->rule_id;
    }

    free(tmp);

    /* tuples by matcher: they were made in order of creation, which is
     * not by matcher; a counting sort groups them */

    n = c->tuples.n;

    if (n) {
        eb_pm_mtuple_t  *src, *dst;
        uint32_t        *cnt;

        cnt = calloc(c->mdefs.n + 1, sizeof(uint32_t));
        dst = malloc(n * sizeof(eb_pm_mtuple_t));
        if (cnt == NULL || dst == NULL) {
            free(cnt);
            free(dst);
            return -1;
        }

        src = c->tuples.data;

        for (i = 0; i < n; i++) {
            cnt[src[i].matcher + 1]++;
        }

        for (i = 1; i <= c->mdefs.n; i++) {
            cnt[i] += cnt[i - 1];
        }

        for (i = 0; i < n; i++) {
            k = cnt[src[i].matcher]++;
            dst[k] = src[i];
        }

        free(cnt);
        free(c->tuples.data);
        c->tuples.data = dst;
        c->tuples.cap = n;
    }

    return 0;
}


/* 3. indexes */

static int
eb_pm_primary_rank(const eb_pm_pred_t *p)
{
    switch (p->op) {
    case EB_PM_OP_EXACT:
        return 0;
    case EB_PM_OP_EQ_CI:
        return 1;
    case EB_PM_OP_CIDR:
        return 2;
    case EB_PM_OP_PREFIX:
    case EB_PM_OP_SUFFIX:
    case EB_PM_OP_PREFIX_CI:
    case EB_PM_OP_SUFFIX_CI:
        return p->v.len ? 3 : 7;
    case EB_PM_OP_WILDCARD:
        return 4;
    case EB_PM_OP_NUMERIC:
        return 5;
    case EB_PM_OP_CONTAINS:
        return p->v.len ? 6 : 7;
    case EB_PM_OP_EXISTS:
        return 8;
    }

    return 9;                   /* REGEX, NOT: checked for every value */
}


static int
eb_pm_bucket(eb_pm_compile_t *c, uint32_t matcher, unsigned kind,
    const unsigned char *key, size_t len, uint32_t target, uint32_t cond)
{
    uint32_t        b;
    eb_pm_bitem_t  *it;
    eb_pm_range_t  *r;

    b = (uint32_t) c->rs->buckets.n;

    if (eb_pm_map_put(&c->rs->index, matcher * EB_PM_K_N + kind, key, len,
                      &b) < 0)
    {
        return -1;
    }

    if (b == c->rs->buckets.n) {
        r = eb_pm_vec_push(&c->rs->buckets, sizeof(eb_pm_range_t), 1);
        if (r == NULL) {
            return -1;
        }
    }

    it = eb_pm_vec_push(&c->bitems, sizeof(eb_pm_bitem_t), 1);
    if (it == NULL) {
        return -1;
    }

    it->bucket = b;
    it->target = target;
    it->cond = cond;

    return 0;
}


static int
eb_pm_len(eb_pm_compile_t *c, unsigned kind, uint32_t len)
{
    uint32_t  *l;

    l = eb_pm_vec_push(&c->lens[kind - EB_PM_K_LENS], sizeof(uint32_t), 1);
    if (l == NULL) {
        return -1;
    }

    *l = len;

    return 0;
}


static int
eb_pm_index_cond(eb_pm_compile_t *c, uint32_t matcher,
    eb_pm_matcher_t *mt, uint32_t cond, uint32_t target)
{
    size_t               i, best;
    unsigned             kind;
    uint32_t             verify, key32, *pieces, pid;
    const eb_pm_cond_t  *cd;
    const eb_pm_pred_t  *p, *q;
    eb_ruleset_t        *rs;
    eb_pm_entry_t       *e;
    eb_pm_interval_t    *iv;
    eb_pm_needle_t      *nd;
    unsigned char        key[17];
    uint8_t              lit;
    const unsigned char *base;

    rs = c->rs;
    cd = &eb_pm_conds(rs)[cond];
    base = rs->bytes.data;

    /* the primary: the most selective operator */

    pid = eb_pm_ids(rs)[cd->pred_off];
    p = &eb_pm_preds(rs)[pid];

    for (i = 1; i < cd->pred_n; i++) {
        q = &eb_pm_preds(rs)[eb_pm_ids(rs)[cd->pred_off + i]];

        if (eb_pm_primary_rank(q) < eb_pm_primary_rank(p)) {
            p = q;
        }
    }

    if (p->op == EB_PM_OP_ABSENT) {
        uint32_t  *a;

        a = eb_pm_vec_push(&c->absent, sizeof(uint32_t), 1);
        if (a == NULL) {
            return -1;
        }

        *a = target;
        return 0;
    }

    verify = (cd->pred_n > 1 || p->op == EB_PM_OP_WILDCARD) ? cond
                                                             : EB_PM_NONE;

    switch (p->op) {

    case EB_PM_OP_EXACT:
        switch (p->v.type) {
        case EB_PM_T_STRING:
            mt->kinds |= 1u << EB_PM_K_STR;
            return eb_pm_bucket(c, matcher, EB_PM_K_STR, base + p->v.off,
                                p->v.len, target, verify);

        case EB_PM_T_NUMBER:
            mt->kinds |= 1u << EB_PM_K_NUM;
            return eb_pm_bucket(c, matcher, EB_PM_K_NUM,
                                (const unsigned char *) &p->v.num,
                                EB_PM_NUM_KEY, target, verify);
        }

        mt->kinds |= 1u << EB_PM_K_LIT;
        lit = p->v.type;
        return eb_pm_bucket(c, matcher, EB_PM_K_LIT, &lit, 1, target,
                            verify);

    case EB_PM_OP_EQ_CI:
        mt->kinds |= 1u << EB_PM_K_STR_CI;
        return eb_pm_bucket(c, matcher, EB_PM_K_STR_CI, base + p->v.off,
                            p->v.len, target, verify);

    case EB_PM_OP_PREFIX:
    case EB_PM_OP_SUFFIX:
    case EB_PM_OP_PREFIX_CI:
    case EB_PM_OP_SUFFIX_CI:
        kind = p->op == EB_PM_OP_PREFIX ? EB_PM_K_PREFIX
               : p->op == EB_PM_OP_SUFFIX ? EB_PM_K_SUFFIX
               : p->op == EB_PM_OP_PREFIX_CI ? EB_PM_K_PREFIX_CI
               : EB_PM_K_SUFFIX_CI;

        if (eb_pm_len(c, kind, p->v.len) != 0) {
            return -1;
        }

        return eb_pm_bucket(c, matcher, kind, base + p->v.off, p->v.len,
                            target, verify);

    case EB_PM_OP_CIDR:
        kind = p->family == 4 ? EB_PM_K_CIDR4 : EB_PM_K_CIDR6;
        i = p->family == 4 ? 4 : 16;
        memcpy(key, p->ip, i);
        key[i] = p->bits;

        if (eb_pm_len(c, kind, p->bits) != 0) {
            return -1;
        }

        return eb_pm_bucket(c, matcher, kind, key, i + 1, target, verify);

    case EB_PM_OP_WILDCARD:
        pieces = eb_pm_ids(rs) + p->list_off;

        if (pieces[1]) {
            if (eb_pm_len(c, EB_PM_K_PREFIX, pieces[1]) != 0) {
                return -1;
            }

            return eb_pm_bucket(c, matcher, EB_PM_K_PREFIX, base + pieces[0],
                                pieces[1], target, verify);
        }

        i = p->list_n - 1;

        if (pieces[2 * i + 1]) {
            if (eb_pm_len(c, EB_PM_K_SUFFIX, pieces[2 * i + 1]) != 0) {
                return -1;
            }

            return eb_pm_bucket(c, matcher, EB_PM_K_SUFFIX,
                                base + pieces[2 * i], pieces[2 * i + 1],
                                target, verify);
        }

        /* "*a*b*": the longest middle piece as a needle */

        for (best = 1, i = 2; i + 1 < p->list_n; i++) {
            if (pieces[2 * i + 1] > pieces[2 * best + 1]) {
                best = i;
            }
        }

        nd = eb_pm_vec_push(&c->needles, sizeof(eb_pm_needle_t), 1);
        if (nd == NULL) {
            return -1;
        }

        nd->off = pieces[2 * best];
        nd->len = pieces[2 * best + 1];
        nd->target = target;
        nd->cond = verify;

        return 0;

    case EB_PM_OP_CONTAINS:
        if (p->v.len == 0) {
            key32 = 0;

            if (eb_pm_len(c, EB_PM_K_PREFIX, 0) != 0) {
                return -1;
            }

            return eb_pm_bucket(c, matcher, EB_PM_K_PREFIX,
                                (unsigned char *) &key32, 0, target, verify);
        }

        nd = eb_pm_vec_push(&c->needles, sizeof(eb_pm_needle_t), 1);
        if (nd == NULL) {
            return -1;
        }

        nd->off = p->v.off;
        nd->len = p->v.len;
        nd->target = target;
        nd->cond = verify;

        return 0;

    case EB_PM_OP_NUMERIC:
        iv = eb_pm_vec_push(&c->intervals, sizeof(eb_pm_interval_t), 1);
        if (iv == NULL) {
            return -1;
        }

        iv->lo = p->lo;
        iv->hi = p->hi;
        iv->lo_incl = p->lo_incl;
        iv->hi_incl = p->hi_incl;
        iv->target = target;
        iv->cond = verify;

        return 0;
    }

    /* EXISTS (alone), REGEX, NOT: for every value */

    e = eb_pm_vec_push(&c->linear, sizeof(eb_pm_entry_t), 1);
    if (e == NULL) {
        return -1;
    }

    e->target = target;
    e->cond = (p->op == EB_PM_OP_EXISTS) ? verify : cond;

    return 0;
}


static int
eb_pm_u32_cmp(void *ctx, uint32_t a, uint32_t b)
{
    (void) ctx;

    return (a > b) - (a < b);
}


/* Sorts and dedups n u32s in place; returns the new count. */
static size_t
eb_pm_uniq(uint32_t *a, size_t n, uint32_t *tmp)
{
    size_t  i, k;

    eb_pm_sort(a, n, eb_pm_u32_cmp, NULL, tmp);

    for (k = 0, i = 0; i < n; i++) {
        if (k == 0 || a[k - 1] != a[i]) {
            a[k++] = a[i];
        }
    }

    return k;
}


static int
eb_pm_bitem_cmp(void *ctx, uint32_t a, uint32_t b)
{
    const eb_pm_bitem_t  *it = ctx;

    return (it[a].bucket > it[b].bucket) - (it[a].bucket < it[b].bucket);
}


/* The entries of the matcher's hash buckets, contiguous per bucket. */
static int
eb_pm_flush_buckets(eb_pm_compile_t *c)
{
    size_t           i, n;
    uint32_t        *order, *tmp;
    eb_pm_bitem_t   *it;
    eb_pm_entry_t   *e;
    eb_pm_range_t   *r;

    n = c->bitems.n;
    if (n == 0) {
        return 0;
    }

    c->tmp.n = 0;
    c->tmp2.n = 0;
    order = eb_pm_vec_push(&c->tmp, sizeof(uint32_t), n);
    tmp = eb_pm_vec_push(&c->tmp2, sizeof(uint32_t), n);
    e = eb_pm_vec_push(&c->rs->entries, sizeof(eb_pm_entry_t), n);

    if (order == NULL || tmp == NULL || e == NULL) {
        return -1;
    }

    it = c->bitems.data;

    for (i = 0; i < n; i++) {
        order[i] = (uint32_t) i;
    }

    eb_pm_sort(order, n, eb_pm_bitem_cmp, it, tmp);

    for (i = 0; i < n; i++) {
        r = eb_pm_vec_at(&c->rs->buckets, eb_pm_range_t, it[order[i]].bucket);

        if (r->n == 0) {
            r->off = (uint32_t) (c->rs->entries.n - n + i);
        }

        r->n++;
        e[i].target = it[order[i]].target;
        e[i].cond = it[order[i]].cond;
    }

    c->bitems.n = 0;

    return 0;
}


static int
eb_pm_flush_lens(eb_pm_compile_t *c, eb_pm_matcher_t *mt)
{
    size_t     k, n;
    uint32_t  *l, *src, *tmp;

    for (k = 0; k < EB_PM_NLENS; k++) {
        n = c->lens[k].n;
        mt->lens_n[k] = 0;

        if (n == 0) {
            continue;
        }

        c->tmp.n = 0;
        tmp = eb_pm_vec_push(&c->tmp, sizeof(uint32_t), n);
        if (tmp == NULL) {
            return -1;
        }

        src = c->lens[k].data;
        n = eb_pm_uniq(src, n, tmp);

        mt->lens_off[k] = (uint32_t) c->rs->lens.n;
        mt->lens_n[k] = (uint32_t) n;

        l = eb_pm_vec_push(&c->rs->lens, sizeof(uint32_t), n);
        if (l == NULL) {
            return -1;
        }

        memcpy(l, src, n * sizeof(uint32_t));

        c->lens[k].n = 0;
    }

    return 0;
}


static int
eb_pm_num_cmp(const void *a, const void *b)
{
    eb_pm_num_t  x = *(const eb_pm_num_t *) a, y = *(const eb_pm_num_t *) b;

    return (x > y) - (x < y);
}


static uint32_t
eb_pm_point(const eb_pm_num_t *e, uint32_t m, eb_pm_num_t x)
{
    uint32_t  lo, hi, mid;

    lo = 0;
    hi = m;

    while (lo < hi) {
        mid = (lo + hi) / 2;

        if (e[mid] < x) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    return lo;
}


typedef struct {
    uint32_t   node;
    uint32_t   iv;
} eb_pm_tnode_t;


static int
eb_pm_tnode_cmp(void *ctx, uint32_t a, uint32_t b)
{
    const eb_pm_tnode_t  *t = ctx;

    return (t[a].node > t[b].node) - (t[a].node < t[b].node);
}


/* The numeric ranges of a matcher: the distinct finite end points e[0..m)
 * cut the line into 2m + 1 slots (below e0, e0, between e0 and e1, ...,
 * above e[m-1]); each range covers a run of slots and is stored in the
 * O(log) nodes of a segment tree over the slots that cover the run. */
static int
eb_pm_flush_numeric(eb_pm_compile_t *c, eb_pm_matcher_t *mt)
{
    size_t              i, n, k;
    eb_pm_num_t        *e;
    uint32_t            m, leaves, lo, hi, l, r, j, *order, *tmp;
    eb_pm_vec_t         tn;
    eb_pm_tnode_t      *t;
    eb_pm_range_t      *tree;
    eb_pm_entry_t      *ent;
    eb_pm_interval_t   *iv;

    n = c->intervals.n;
    if (n == 0) {
        return 0;
    }

    iv = c->intervals.data;

    /* the end points */

    e = eb_pm_vec_push(&c->rs->nums, sizeof(eb_pm_num_t), 2 * n);
    if (e == NULL) {
        return -1;
    }

    for (k = 0, i = 0; i < n; i++) {
        if (isfinite(iv[i].lo)) {
            e[k++] = iv[i].lo;
        }

        if (isfinite(iv[i].hi)) {
            e[k++] = iv[i].hi;
        }
    }

    qsort(e, k, sizeof(eb_pm_num_t), eb_pm_num_cmp);

    for (m = 0, i = 0; i < k; i++) {
        if (m == 0 || e[m - 1] != e[i]) {
            e[m++] = e[i];
        }
    }

    c->rs->nums.n -= 2 * n - m;
    mt->num_off = (uint32_t) (c->rs->nums.n - m);
    mt->num_n = m;

    for (leaves = 1; leaves < 2 * m + 1; leaves *= 2) {
        /* void */
    }

    /* each range into the tree nodes covering its slots */

    memset(&tn, 0, sizeof(tn));

    for (i = 0; i < n; i++) {
        if (isfinite(iv[i].lo)) {
            j = eb_pm_point(e, m, iv[i].lo);
            lo = iv[i].lo_incl ? 2 * j + 1 : 2 * j + 2;

        } else {
            lo = 0;
        }

        if (isfinite(iv[i].hi)) {
            j = eb_pm_point(e, m, iv[i].hi);
            hi = iv[i].hi_incl ? 2 * j + 1 : 2 * j;

        } else {
            hi = 2 * m;
        }

        if (lo > hi) {
            continue;
        }

        for (l = lo + leaves, r = hi + leaves + 1; l < r; l /= 2, r /= 2) {
            if (l & 1) {
                t = eb_pm_vec_push(&tn, sizeof(eb_pm_tnode_t), 1);
                if (t == NULL) {
                    eb_pm_vec_free(&tn);
                    return -1;
                }

                t->node = l++;
                t->iv = (uint32_t) i;
            }

            if (r & 1) {
                t = eb_pm_vec_push(&tn, sizeof(eb_pm_tnode_t), 1);
                if (t == NULL) {
                    eb_pm_vec_free(&tn);
                    return -1;
                }

                t->node = --r;
                t->iv = (uint32_t) i;
            }
        }
    }

    /* the nodes' entry lists */

    c->tmp.n = 0;
    c->tmp2.n = 0;
    order = eb_pm_vec_push(&c->tmp, sizeof(uint32_t), tn.n + 1);
    tmp = eb_pm_vec_push(&c->tmp2, sizeof(uint32_t), tn.n + 1);
    tree = eb_pm_vec_push(&c->rs->tree, sizeof(eb_pm_range_t), 2 * leaves);
    ent = eb_pm_vec_push(&c->rs->entries, sizeof(eb_pm_entry_t), tn.n);

    if (order == NULL || tmp == NULL || tree == NULL
        || (ent == NULL && tn.n))
    {
        eb_pm_vec_free(&tn);
        return -1;
    }

    mt->tree_off = (uint32_t) (c->rs->tree.n - 2 * leaves);
    mt->tree_leaves = leaves;

    t = tn.data;

    for (i = 0; i < tn.n; i++) {
        order[i] = (uint32_t) i;
    }

    eb_pm_sort(order, tn.n, eb_pm_tnode_cmp, t, tmp);

    for (i = 0; i < tn.n; i++) {
        eb_pm_range_t  *rg = &tree[t[order[i]].node];

        if (rg->n == 0) {
            rg->off = (uint32_t) (c->rs->entries.n - tn.n + i);
        }

        rg->n++;
        ent[i].target = iv[t[order[i]].iv].target;
        ent[i].cond = iv[t[order[i]].iv].cond;
    }

    eb_pm_vec_free(&tn);
    c->intervals.n = 0;

    return 0;
}


typedef struct {
    uint32_t   node;
    uint8_t    byte;
    uint32_t   next;
} eb_pm_acbuild_t;


static int
eb_pm_acb_cmp(void *ctx, uint32_t a, uint32_t b)
{
    const eb_pm_acbuild_t  *x, *y;

    x = (const eb_pm_acbuild_t *) ctx + a;
    y = (const eb_pm_acbuild_t *) ctx + b;

    if (x->node != y->node) {
        return x->node < y->node ? -1 : 1;
    }

    return (x->byte > y->byte) - (x->byte < y->byte);
}


/* The contains needles of a matcher: an Aho-Corasick automaton. Nodes are
 * built with a map (node, byte) -> child; then the edges are laid out
 * sorted per node, the fail links found breadth first, and each node's
 * "dict" link points to the nearest node with output on its fail chain. */
static int
eb_pm_flush_needles(eb_pm_compile_t *c, eb_pm_matcher_t *mt)
{
    int                 rc;
    size_t              i, j, n, head, tail;
    uint32_t            nn, u, v, f, child, base, *queue, *order, *tmp,
                        *onode;
    eb_pm_map_t         goto_;
    eb_pm_vec_t         edges, outs;
    eb_pm_needle_t     *nd;
    eb_pm_acnode_t     *an;
    eb_pm_acedge_t     *ae;
    eb_pm_acbuild_t    *eb;
    eb_pm_entry_t      *ent;
    const unsigned char *bytes;
    uint8_t             ch;

    n = c->needles.n;
    if (n == 0) {
        return 0;
    }

    memset(&goto_, 0, sizeof(goto_));
    memset(&edges, 0, sizeof(edges));
    memset(&outs, 0, sizeof(outs));

    nd = c->needles.data;
    bytes = c->rs->bytes.data;
    nn = 1;
    rc = -1;

    /* the trie, and each needle's last node */

    for (i = 0; i < n; i++) {
        u = 0;

        for (j = 0; j < nd[i].len; j++) {
            ch = bytes[nd[i].off + j];
            child = nn;

            if (eb_pm_map_put(&goto_, u, &ch, 1, &child) < 0) {
                goto done;
            }

            if (child == nn) {
                eb = eb_pm_vec_push(&edges, sizeof(eb_pm_acbuild_t), 1);
                if (eb == NULL) {
                    goto done;
                }

                eb->node = u;
                eb->byte = ch;
                eb->next = nn++;
            }

            u = child;
        }

        onode = eb_pm_vec_push(&outs, sizeof(uint32_t), 1);
        if (onode == NULL) {
            goto done;
        }

        *onode = u;
    }

    /* the nodes, their sorted edges and their outputs */

    base = (uint32_t) c->rs->acnodes.n;

    c->tmp.n = 0;
    c->tmp2.n = 0;
    order = eb_pm_vec_push(&c->tmp, sizeof(uint32_t), edges.n + n + nn + 1);
    tmp = eb_pm_vec_push(&c->tmp2, sizeof(uint32_t), edges.n + n + nn + 1);
    an = eb_pm_vec_push(&c->rs->acnodes, sizeof(eb_pm_acnode_t), nn);
    ae = eb_pm_vec_push(&c->rs->acedges, sizeof(eb_pm_acedge_t), edges.n);
    ent = eb_pm_vec_push(&c->rs->entries, sizeof(eb_pm_entry_t), n);

    if (order == NULL || tmp == NULL || an == NULL
        || (ae == NULL && edges.n) || ent == NULL)
    {
        goto done;
    }

    eb = edges.data;

    for (i = 0; i < edges.n; i++) {
        order[i] = (uint32_t) i;
    }

    eb_pm_sort(order, edges.n, eb_pm_acb_cmp, eb, tmp);

    for (i = 0; i < nn; i++) {
        an[i].edges_off = (uint32_t) (c->rs->acedges.n - edges.n);
        an[i].fail = base;
        an[i].dict = EB_PM_NONE;
    }

    for (i = 0; i < edges.n; i++) {
        u = eb[order[i]].node;

        if (an[u].edges_n == 0) {
            an[u].edges_off = (uint32_t) (c->rs->acedges.n - edges.n + i);
        }

        an[u].edges_n++;
        ae[i].byte = eb[order[i]].byte;
        ae[i].next = base + eb[order[i]].next;
    }

    /* outputs grouped by node (counting sort) */

    onode = outs.data;
    memset(tmp, 0, (nn + 1) * sizeof(uint32_t));

    for (i = 0; i < n; i++) {
        tmp[onode[i] + 1]++;
    }

    for (i = 1; i <= nn; i++) {
        tmp[i] += tmp[i - 1];
    }

    for (i = 0; i < nn; i++) {
        an[i].out_off = (uint32_t) (c->rs->entries.n - n + tmp[i]);
        an[i].out_n = tmp[i + 1] - tmp[i];
    }

    for (i = 0; i < n; i++) {
        j = tmp[onode[i]]++;
        ent[j].target = nd[i].target;
        ent[j].cond = nd[i].cond;
    }

    /* fail and dict links, breadth first */

    queue = order;
    head = 0;
    tail = 0;
    queue[tail++] = 0;

    while (head < tail) {
        u = queue[head++];

        for (i = 0; i < an[u].edges_n; i++) {
            ae = eb_pm_vec_at(&c->rs->acedges, eb_pm_acedge_t,
                              an[u].edges_off + i);
            v = ae->next - base;
            ch = ae->byte;

            if (u == 0) {
                f = 0;

            } else {
                f = an[u].fail - base;

                for ( ;; ) {
                    child = eb_pm_map_get(&goto_, eb_pm_hash(f, &ch, 1), f,
                                          &ch, 1);

                    if (child != EB_PM_NONE || f == 0) {
                        break;
                    }

                    f = an[f].fail - base;
                }

                f = child != EB_PM_NONE ? child : 0;
            }

            an[v].fail = base + f;
            an[v].dict = an[f].out_n ? base + f : an[f].dict;
            queue[tail++] = v;
        }
    }

    mt->ac = base;
    c->needles.n = 0;
    rc = 0;

done:

    eb_pm_map_free(&goto_);
    eb_pm_vec_free(&edges);
    eb_pm_vec_free(&outs);

    return rc;
}


static int
eb_pm_matchers(eb_pm_compile_t *c)
{
    size_t             i, j, t, nt;
    uint32_t          *ids, *a;
    eb_ruleset_t      *rs;
    eb_pm_mdef_t      *md;
    eb_pm_matcher_t   *mt;
    eb_pm_mtuple_t    *tu;
    eb_pm_conj_t      *cj;
    eb_pm_entry_t     *e;

    rs = c->rs;

    if (eb_pm_vec_push(&rs->matchers, sizeof(eb_pm_matcher_t), c->mdefs.n)
        == NULL && c->mdefs.n)
    {
        return -1;
    }

    tu = c->tuples.data;
    nt = c->tuples.n;
    t = 0;

    for (i = 0; i < c->mdefs.n; i++) {
        md = eb_pm_vec_at(&c->mdefs, eb_pm_mdef_t, i);
        mt = eb_pm_vec_at(&rs->matchers, eb_pm_matcher_t, i);
        mt->field = md->field;
        mt->ac = EB_PM_NONE;

        for ( /* void */ ; t < nt && tu[t].matcher == i; t++) {
            cj = &eb_pm_conjs(rs)[tu[t].conj];

            for (j = 0; j < cj->cond_n; j++) {
                if (eb_pm_index_cond(c, (uint32_t) i, mt,
                                     eb_pm_ids(rs)[cj->cond_off + j],
                                     tu[t].target)
                    != 0)
                {
                    return -1;
                }
            }
        }

        /* pointers into rs->matchers stay valid: it was sized above */

        if (eb_pm_flush_buckets(c) != 0
            || eb_pm_flush_lens(c, mt) != 0
            || eb_pm_flush_numeric(c, mt) != 0
            || eb_pm_flush_needles(c, mt) != 0)
        {
            return -1;
        }

        if (c->linear.n) {
            e = eb_pm_vec_push(&rs->entries, sizeof(eb_pm_entry_t),
                               c->linear.n);
            if (e == NULL) {
                return -1;
            }

            memcpy(e, c->linear.data, c->linear.n * sizeof(eb_pm_entry_t));
            mt->lin_off = (uint32_t) (rs->entries.n - c->linear.n);
            mt->lin_n = (uint32_t) c->linear.n;
            c->linear.n = 0;
        }

        if (c->absent.n) {
            a = eb_pm_vec_push(&rs->ids, sizeof(uint32_t), c->absent.n);
            if (a == NULL) {
                return -1;
            }

            ids = c->absent.data;
            memcpy(a, ids, c->absent.n * sizeof(uint32_t));
            mt->abs_off = (uint32_t) (rs->ids.n - c->absent.n);
            mt->abs_n = (uint32_t) c->absent.n;
            c->absent.n = 0;
        }
    }

    return 0;
}


/* the runtime states */

static int
eb_pm_mdef_cmp(void *ctx, uint32_t a, uint32_t b)
{
    const eb_pm_mdef_t  *x, *y;

    x = (const eb_pm_mdef_t *) ctx + a;
    y = (const eb_pm_mdef_t *) ctx + b;

    if (x->state != y->state) {
        return x->state < y->state ? -1 : 1;
    }

    return (x->field > y->field) - (x->field < y->field);
}


static int
eb_pm_accept_cmp(void *ctx, uint32_t a, uint32_t b)
{
    const eb_pm_accept_t  *x, *y;

    x = (const eb_pm_accept_t *) ctx + a;
    y = (const eb_pm_accept_t *) ctx + b;

    if (x->state != y->state) {
        return x->state < y->state ? -1 : 1;
    }

    return (x->rule > y->rule) - (x->rule < y->rule);
}


static int
eb_pm_build_states(eb_pm_compile_t *c)
{
    size_t            i, j, k, n, nm, na, nk;
    uint32_t         *order, *tmp, *kidf, *kids, *ids, *list, u, s;
    eb_ruleset_t     *rs;
    eb_pm_state_t    *st;
    eb_pm_trans_t    *tr;
    eb_pm_mdef_t     *md;
    eb_pm_accept_t   *ac;
    eb_pm_matcher_t  *mt;

    rs = c->rs;
    n = c->nstates;
    nm = c->mdefs.n;
    na = c->accepts.n;
    nk = nm > na ? nm : na;
    nk = nk > n ? nk : n;

    st = eb_pm_vec_push(&rs->states, sizeof(eb_pm_state_t), n);
    order = malloc((nk + 1) * sizeof(uint32_t));
    tmp = malloc((nk + 1) * sizeof(uint32_t));
    kidf = calloc(n + 1, sizeof(uint32_t));
    kids = malloc((n + 1) * sizeof(uint32_t));

    if (st == NULL || order == NULL || tmp == NULL || kidf == NULL
        || kids == NULL)
    {
        goto failed;
    }

    /* transitions: matchers by (state, field) */

    md = c->mdefs.data;

    for (i = 0; i < nm; i++) {
        order[i] = (uint32_t) i;
    }

    eb_pm_sort(order, nm, eb_pm_mdef_cmp, md, tmp);

    tr = eb_pm_vec_push(&rs->trans, sizeof(eb_pm_trans_t), nm);
    if (tr == NULL && nm) {
        goto failed;
    }

    for (i = 0; i < nm; i++) {
        s = md[order[i]].state;

        if (st[s].trans_n == 0) {
            st[s].trans_off = (uint32_t) i;
        }

        st[s].trans_n++;
        tr[i].field = md[order[i]].field;
        tr[i].matcher = order[i];
    }

    /* exists:false matchers per state */

    for (s = 0; s < n; s++) {
        for (j = 0; j < st[s].trans_n; j++) {
            u = eb_pm_vec_at(&rs->trans, eb_pm_trans_t,
                             st[s].trans_off + j)->matcher;
            mt = eb_pm_vec_at(&rs->matchers, eb_pm_matcher_t, u);

            if (mt->abs_n == 0) {
                continue;
            }

            ids = eb_pm_vec_push(&rs->ids, sizeof(uint32_t), 1);
            if (ids == NULL) {
                goto failed;
            }

            *ids = u;

            if (st[s].absent_n++ == 0) {
                st[s].absent_off = (uint32_t) (rs->ids.n - 1);
            }
        }
    }

    /* rule ids per state, ascending, once */

    ac = c->accepts.data;

    for (i = 0; i < na; i++) {
        order[i] = (uint32_t) i;
    }

    eb_pm_sort(order, na, eb_pm_accept_cmp, ac, tmp);

    for (i = 0; i < na; i++) {
        s = ac[order[i]].state;

        if (i > 0 && ac[order[i - 1]].state == s
            && ac[order[i - 1]].rule == ac[order[i]].rule)
        {
            continue;
        }

        ids = eb_pm_vec_push(&rs->ids, sizeof(uint32_t), 1);
        if (ids == NULL) {
            goto failed;
        }

        *ids = ac[order[i]].rule;

        if (st[s].rules_n++ == 0) {
            st[s].rules_off = (uint32_t) (rs->ids.n - 1);
        }
    }

    /* the fields used below each state: children have higher ids than
     * their parent, so one pass from the last state up */

    for (s = 1; s < n; s++) {
        kidf[*eb_pm_vec_at(&c->parent, uint32_t, s) + 1]++;
    }

    for (s = 1; s <= n; s++) {
        kidf[s] += kidf[s - 1];
    }

    memset(tmp, 0, (nk + 1) * sizeof(uint32_t));

    for (s = 1; s < n; s++) {
        u = *eb_pm_vec_at(&c->parent, uint32_t, s);
        kids[kidf[u] + tmp[u]++] = s;
    }

    for (s = (uint32_t) n; s-- > 0; /* void */ ) {
        c->tmp.n = 0;

        for (j = 0; j < st[s].trans_n; j++) {
            list = eb_pm_vec_push(&c->tmp, sizeof(uint32_t), 1);
            if (list == NULL) {
                goto failed;
            }

            *list = eb_pm_vec_at(&rs->trans, eb_pm_trans_t,
                                 st[s].trans_off + j)->field;
        }

        for (j = kidf[s]; j < kidf[s + 1]; j++) {
            u = kids[j];

            if (st[u].fut_n == 0) {
                continue;
            }

            list = eb_pm_vec_push(&c->tmp, sizeof(uint32_t), st[u].fut_n);
            if (list == NULL) {
                goto failed;
            }

            memcpy(list, eb_pm_ids(rs) + st[u].fut_off,
                   st[u].fut_n * sizeof(uint32_t));
        }

        if (c->tmp.n == 0) {
            continue;
        }

        c->tmp2.n = 0;

        if (eb_pm_vec_push(&c->tmp2, sizeof(uint32_t), c->tmp.n) == NULL) {
            goto failed;
        }

        k = eb_pm_uniq(c->tmp.data, c->tmp.n, c->tmp2.data);

        ids = eb_pm_vec_push(&rs->ids, sizeof(uint32_t), k);
        if (ids == NULL) {
            goto failed;
        }

        memcpy(ids, c->tmp.data, k * sizeof(uint32_t));
        st[s].fut_off = (uint32_t) (rs->ids.n - k);
        st[s].fut_n = (uint32_t) k;
    }

    free(order);
    free(tmp);
    free(kidf);
    free(kids);

    return 0;

failed:

    free(order);
    free(tmp);
    free(kidf);
    free(kids);

    return -1;
}


static void
eb_pm_compile_free(eb_pm_compile_t *c)
{
    size_t  k;

    eb_pm_vec_free(&c->mdefs);
    eb_pm_vec_free(&c->tuples);
    eb_pm_vec_free(&c->accepts);
    eb_pm_vec_free(&c->parent);
    eb_pm_map_free(&c->share);
    eb_pm_map_free(&c->mmap);
    eb_pm_vec_free(&c->bitems);

    for (k = 0; k < EB_PM_NLENS; k++) {
        eb_pm_vec_free(&c->lens[k]);
    }

    eb_pm_vec_free(&c->intervals);
    eb_pm_vec_free(&c->needles);
    eb_pm_vec_free(&c->linear);
    eb_pm_vec_free(&c->absent);
    eb_pm_vec_free(&c->tmp);
    eb_pm_vec_free(&c->tmp2);
    eb_pm_vec_free(&c->key);
}


int
eb_ruleset_compile(eb_ruleset_t *rs, char *err, size_t errlen)
{
    int              rc;
    size_t           i, n;
    uint32_t        *r, *tmp;
    eb_pm_compile_t  c;

    if (rs->compiled || rs->broken) {
        if (errlen) {
            snprintf(err, errlen, "%s", rs->compiled ? "already compiled"
                                                     : "out of memory");
        }

        return -1;
    }

    memset(&c, 0, sizeof(c));
    c.rs = rs;

    /* a byte past the strings, so that rs->bytes.data is never NULL (empty
     * operands point into it, while compiling and matching) */
    rc = (eb_pm_vec_push(&rs->bytes, 1, 1) != NULL
          && eb_pm_fields(&c) == 0
          && eb_pm_states(&c) == 0
          && eb_pm_matchers(&c) == 0
          && eb_pm_build_states(&c) == 0) ? 0 : -1;

    eb_pm_compile_free(&c);

    if (rc != 0) {
        rs->broken = 1;

        if (errlen) {
            snprintf(err, errlen, "out of memory");
        }

        return -1;
    }

    /* distinct rule ids, for the statistics */

    n = rs->alts.n;
    r = malloc((2 * n + 1) * sizeof(uint32_t));

    if (r) {
        tmp = r + n;

        for (i = 0; i < n; i++) {
            r[i] = eb_pm_vec_at(&rs->alts, eb_pm_alt_t, i)->rule_id;
        }

        rs->nrules = eb_pm_uniq(r, n, tmp);
        free(r);
    }

    /* what matching does not read goes; the rest is trimmed to size */

    rs->nalts = rs->alts.n;

    eb_pm_vec_free(&rs->canon);
    eb_pm_vec_free(&rs->conjs);
    eb_pm_vec_free(&rs->alts);

    eb_pm_vec_shrink(&rs->bytes, 1);
    eb_pm_vec_shrink(&rs->ids, sizeof(uint32_t));
    eb_pm_vec_shrink(&rs->preds, sizeof(eb_pm_pred_t));
    eb_pm_vec_shrink(&rs->conds, sizeof(eb_pm_cond_t));
    eb_pm_vec_shrink(&rs->pnodes, sizeof(eb_pm_pnode_t));
    eb_pm_vec_shrink(&rs->states, sizeof(eb_pm_state_t));
    eb_pm_vec_shrink(&rs->trans, sizeof(eb_pm_trans_t));
    eb_pm_vec_shrink(&rs->matchers, sizeof(eb_pm_matcher_t));
    eb_pm_vec_shrink(&rs->entries, sizeof(eb_pm_entry_t));
    eb_pm_vec_shrink(&rs->buckets, sizeof(eb_pm_range_t));
    eb_pm_vec_shrink(&rs->lens, sizeof(uint32_t));
    eb_pm_vec_shrink(&rs->nums, sizeof(eb_pm_num_t));
    eb_pm_vec_shrink(&rs->tree, sizeof(eb_pm_range_t));
    eb_pm_vec_shrink(&rs->acnodes, sizeof(eb_pm_acnode_t));
    eb_pm_vec_shrink(&rs->acedges, sizeof(eb_pm_acedge_t));

    rs->compiled = 1;

    return 0;
}


void
eb_ruleset_stats(const eb_ruleset_t *rs, eb_ruleset_stats_t *st)
{
    st->rules = rs->nrules;
    st->alternatives = rs->compiled ? rs->nalts : rs->alts.n;
    st->fields = rs->nfields;
    st->states = rs->states.n;
    st->matchers = rs->matchers.n;

    st->memory = sizeof(eb_ruleset_t)
        + rs->bytes.cap + rs->canon.cap
        + rs->ids.cap * sizeof(uint32_t)
        + rs->preds.cap * sizeof(eb_pm_pred_t)
        + rs->conds.cap * sizeof(eb_pm_cond_t)
        + rs->conjs.cap * sizeof(eb_pm_conj_t)
        + rs->alts.cap * sizeof(eb_pm_alt_t)
        + rs->regex.cap * sizeof(pcre2_code *)
        + rs->pnodes.cap * sizeof(eb_pm_pnode_t)
        + (rs->children.slots ? (rs->children.mask + 1) : 0)
          * sizeof(eb_pm_slot_t) + rs->children.keys.cap
        + rs->states.cap * sizeof(eb_pm_state_t)
        + rs->trans.cap * sizeof(eb_pm_trans_t)
        + rs->matchers.cap * sizeof(eb_pm_matcher_t)
        + rs->entries.cap * sizeof(eb_pm_entry_t)
        + rs->buckets.cap * sizeof(eb_pm_range_t)
        + (rs->index.slots ? (rs->index.mask + 1) : 0)
          * sizeof(eb_pm_slot_t) + rs->index.keys.cap
        + rs->lens.cap * sizeof(uint32_t)
        + rs->nums.cap * sizeof(eb_pm_num_t)
        + rs->tree.cap * sizeof(eb_pm_range_t)
        + rs->acnodes.cap * sizeof(eb_pm_acnode_t)
        + rs->acedges.cap * sizeof(eb_pm_acedge_t);
}
