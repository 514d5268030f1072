/*
 * A reference matcher for event patterns, for the tests: one rule, one
 * event, by brute force, written from the specification in eb_pattern.h
 * and sharing no code with the engine except case folding (a table, not
 * an algorithm): yajl_tree for both documents, the event flattened into
 * (path, value, array trail) triples, "$or" expanded, and every
 * alternative tried by backtracking over the event's values.
 */

#ifndef TEST_PATTERN_REF_H
#define TEST_PATTERN_REF_H

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#define PCRE2_CODE_UNIT_WIDTH  8
#include <pcre2.h>

#include "eb_pattern_int.h"


#define REF_MAX_TRAIL  64
#define REF_SEP        '\x1f'      /* joins path segments */


typedef struct {
    char        *path;
    yajl_val     v;
    int          ntrail;
    int          trail[REF_MAX_TRAIL][2];  /* array id, element index */
} ref_field_t;

typedef struct {
    yajl_val      root;
    ref_field_t  *f;
    int           n;
    int           cap;
    int           narrays;
} ref_event_t;

typedef struct {
    char        *path;
    yajl_val     list;        /* the array of conditions */
} ref_conj_t;

typedef struct {
    ref_conj_t  *c;
    int          n;
} ref_alt_t;

typedef struct {
    yajl_val     root;
    ref_alt_t   *alt;
    int          n;
} ref_rule_t;


static yajl_val
ref_parse(const char *json, size_t len)
{
    char      *copy;
    yajl_val   v;

    copy = malloc(len + 1);
    memcpy(copy, json, len);
    copy[len] = '\0';
    v = yajl_tree_parse(copy, NULL, 0);
    free(copy);

    return v;
}


static char *
ref_join(const char *path, const char *key)
{
    size_t  a, b;
    char   *p;

    a = path ? strlen(path) : 0;
    b = strlen(key);
    p = malloc(a + b + 2);

    if (a) {
        memcpy(p, path, a);
        p[a++] = REF_SEP;
    }

    memcpy(p + a, key, b + 1);

    return p;
}


/* the event */

static void
ref_flatten(ref_event_t *ev, yajl_val v, const char *path,
    int trail[][2], int ntrail)
{
    size_t        i;
    int           id;
    char         *p;
    ref_field_t  *f;

    if (YAJL_IS_OBJECT(v)) {
        for (i = 0; i < v->u.object.len; i++) {
            p = ref_join(path, v->u.object.keys[i]);
            ref_flatten(ev, v->u.object.values[i], p, trail, ntrail);
            free(p);
        }

        return;
    }

    if (YAJL_IS_ARRAY(v)) {
        id = ev->narrays++;

        for (i = 0; i < v->u.array.len; i++) {
            yajl_val  e = v->u.array.values[i];

            if ((YAJL_IS_OBJECT(e) || YAJL_IS_ARRAY(e))
                && ntrail < REF_MAX_TRAIL)
            {
                trail[ntrail][0] = id;
                trail[ntrail][1] = (int) i;
                ref_flatten(ev, e, path, trail, ntrail + 1);

            } else {
                ref_flatten(ev, e, path, trail, ntrail);
            }
        }

        return;
    }

    if (path == NULL) {
        return;
    }

    if (ev->n == ev->cap) {
        ev->cap = ev->cap ? ev->cap * 2 : 16;
        ev->f = realloc(ev->f, ev->cap * sizeof(ref_field_t));
    }

    f = &ev->f[ev->n++];
    f->path = strdup(path);
    f->v = v;
    f->ntrail = ntrail;
    memcpy(f->trail, trail, ntrail * sizeof(trail[0]));
}


/* Returns 0, or -1 when the event is not a JSON object. */
static int
ref_event_init(ref_event_t *ev, const char *json, size_t len)
{
    int  trail[REF_MAX_TRAIL][2];

    memset(ev, 0, sizeof(*ev));

    ev->root = ref_parse(json, len);
    if (ev->root == NULL || !YAJL_IS_OBJECT(ev->root)) {
        return -1;
    }

    ref_flatten(ev, ev->root, NULL, trail, 0);

    return 0;
}


static void
ref_event_free(ref_event_t *ev)
{
    int  i;

    for (i = 0; i < ev->n; i++) {
        free(ev->f[i].path);
    }

    free(ev->f);
    yajl_tree_free(ev->root);
}


/* the rule: "$or" expanded, every alternative a list of conjuncts */

static ref_alt_t *
ref_expand(yajl_val obj, const char *path, int *nalt)
{
    size_t      i, j, k, m;
    int         n, sn, on;
    char       *p;
    ref_alt_t  *alts, *sub, *out, *or_alts;

    alts = calloc(1, sizeof(ref_alt_t));
    n = 1;

    for (i = 0; i < obj->u.object.len; i++) {
        const char  *key = obj->u.object.keys[i];
        yajl_val     val = obj->u.object.values[i];

        if (strcmp(key, "$or") == 0) {
            or_alts = NULL;
            on = 0;

            for (j = 0; j < val->u.array.len; j++) {
                sub = ref_expand(val->u.array.values[j], path, &sn);
                or_alts = realloc(or_alts, (on + sn) * sizeof(ref_alt_t));
                memcpy(or_alts + on, sub, sn * sizeof(ref_alt_t));
                on += sn;
                free(sub);
            }

            sub = or_alts;
            sn = on;

        } else if (YAJL_IS_OBJECT(val)) {
            p = ref_join(path, key);
            sub = ref_expand(val, p, &sn);
            free(p);

        } else {
            sub = calloc(1, sizeof(ref_alt_t));
            sub->c = malloc(sizeof(ref_conj_t));
            sub->c->path = ref_join(path, key);
            sub->c->list = val;
            sub->n = 1;
            sn = 1;
        }

        /* alts x sub */

        out = calloc((size_t) n * sn, sizeof(ref_alt_t));

        for (j = 0; j < (size_t) n; j++) {
            for (k = 0; k < (size_t) sn; k++) {
                ref_alt_t  *o = &out[j * sn + k];

                o->n = alts[j].n + sub[k].n;
                o->c = malloc((o->n + 1) * sizeof(ref_conj_t));

                for (m = 0; m < (size_t) alts[j].n; m++) {
                    o->c[m] = alts[j].c[m];
                    o->c[m].path = strdup(alts[j].c[m].path);
                }

                for (m = 0; m < (size_t) sub[k].n; m++) {
                    o->c[alts[j].n + m] = sub[k].c[m];
                    o->c[alts[j].n + m].path = strdup(sub[k].c[m].path);
                }
            }
        }

        for (j = 0; j < (size_t) n; j++) {
            for (m = 0; m < (size_t) alts[j].n; m++) {
                free(alts[j].c[m].path);
            }

            free(alts[j].c);
        }

        for (k = 0; k < (size_t) sn; k++) {
            for (m = 0; m < (size_t) sub[k].n; m++) {
                free(sub[k].c[m].path);
            }

            free(sub[k].c);
        }

        free(alts);
        free(sub);
        alts = out;
        n *= sn;
    }

    *nalt = n;

    return alts;
}


/* Returns 0, or -1 when the pattern is not a JSON object. Only for valid
 * patterns: the reference does not check them. */
static int
ref_rule_init(ref_rule_t *r, const char *json, size_t len)
{
    memset(r, 0, sizeof(*r));

    r->root = ref_parse(json, len);
    if (r->root == NULL || !YAJL_IS_OBJECT(r->root)) {
        return -1;
    }

    r->alt = ref_expand(r->root, NULL, &r->n);

    return 0;
}


static void
ref_rule_free(ref_rule_t *r)
{
    int  i, j;

    for (i = 0; i < r->n; i++) {
        for (j = 0; j < r->alt[i].n; j++) {
            free(r->alt[i].c[j].path);
        }

        free(r->alt[i].c);
    }

    free(r->alt);
    yajl_tree_free(r->root);
}


/* conditions on one value */

static yajl_val
ref_get(yajl_val obj, const char *key)
{
    size_t  i;

    for (i = 0; i < obj->u.object.len; i++) {
        if (strcmp(obj->u.object.keys[i], key) == 0) {
            return obj->u.object.values[i];
        }
    }

    return NULL;
}


/* as the engine: numbers are long doubles (exact integers up to 2^64) */
static long double
ref_num(yajl_val v)
{
    return strtold(v->u.number.r, NULL);
}


static int
ref_scalar_eq(yajl_val p, yajl_val v)
{
    if (YAJL_IS_STRING(p)) {
        return YAJL_IS_STRING(v) && strcmp(p->u.string, v->u.string) == 0;
    }

    if (YAJL_IS_NUMBER(p)) {
        return YAJL_IS_NUMBER(v) && ref_num(p) == ref_num(v);
    }

    return p->type == v->type;
}


static char *
ref_fold(const char *s)
{
    size_t  n;
    char   *f;

    n = strlen(s);
    f = malloc(n + 1);
    eb_pm_fold((unsigned char *) f, (const unsigned char *) s, n);
    f[n] = '\0';

    return f;
}


static int
ref_affix(const char *s, const char *a, int suffix)
{
    size_t  n, m;

    n = strlen(s);
    m = strlen(a);

    return n >= m && memcmp(suffix ? s + n - m : s, a, m) == 0;
}


/* a wildcard by plain backtracking: * any run, \* a star, \\ a
 * backslash */
static int
ref_glob(const char *p, const char *s)
{
    for ( ;; ) {
        if (*p == '\0') {
            return *s == '\0';
        }

        if (*p == '*') {
            for ( ;; ) {
                if (ref_glob(p + 1, s)) {
                    return 1;
                }

                if (*s++ == '\0') {
                    return 0;
                }
            }
        }

        if (*p == '\\') {
            p++;
        }

        if (*s != *p) {
            return 0;
        }

        p++;
        s++;
    }
}


static int
ref_cidr(const char *block, const char *addr)
{
    char           a[64];
    const char    *slash;
    int            fam, bits, i;
    unsigned char  x[16], y[16];

    slash = strchr(block, '/');
    memcpy(a, block, (size_t) (slash - block));
    a[slash - block] = '\0';
    bits = atoi(slash + 1);
    fam = strchr(a, ':') ? AF_INET6 : AF_INET;

    memset(x, 0, 16);
    memset(y, 0, 16);

    if (inet_pton(fam, a, x) != 1) {
        return 0;
    }

    if ((strchr(addr, ':') ? AF_INET6 : AF_INET) != fam
        || strlen(addr) > 45 || inet_pton(fam, addr, y) != 1)
    {
        return 0;
    }

    for (i = 0; i < (fam == AF_INET ? 32 : 128); i++) {
        int  bx = (x[i / 8] >> (7 - i % 8)) & 1;
        int  by = (y[i / 8] >> (7 - i % 8)) & 1;

        if (i < bits && bx != by) {
            return 0;
        }
    }

    return 1;
}


/* compiled regexes, kept for the life of the test */
static struct {
    char        *re;
    pcre2_code  *code;
}  ref_regexes[64];


static int
ref_regex(const char *re, yajl_val v)
{
    int                   rc, err, i;
    PCRE2_SIZE            at;
    pcre2_code           *code;
    pcre2_match_data     *md;
    pcre2_match_context  *mc;

    code = NULL;

    for (i = 0; i < 64 && ref_regexes[i].re; i++) {
        if (strcmp(ref_regexes[i].re, re) == 0) {
            code = ref_regexes[i].code;
            break;
        }
    }

    if (code == NULL) {
        code = pcre2_compile((PCRE2_SPTR) re, PCRE2_ZERO_TERMINATED,
                             PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &err, &at,
                             NULL);
        if (code == NULL) {
            return 0;
        }

        if (i < 64) {
            ref_regexes[i].re = strdup(re);
            ref_regexes[i].code = code;
        }
    }

    md = pcre2_match_data_create_from_pattern(code, NULL);
    mc = pcre2_match_context_create(NULL);
    pcre2_set_match_limit(mc, EB_PATTERN_REGEX_MATCH_LIMIT);

    rc = pcre2_match(code, (PCRE2_SPTR) v->u.string, strlen(v->u.string),
                     0, PCRE2_NO_JIT, md, mc);

    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);

    if (i >= 64) {
        pcre2_code_free(code);
    }

    return rc >= 0;
}


static void
ref_regex_free(void)
{
    int  i;

    for (i = 0; i < 64 && ref_regexes[i].re; i++) {
        free(ref_regexes[i].re);
        pcre2_code_free(ref_regexes[i].code);
        ref_regexes[i].re = NULL;
    }
}


static int ref_op(const char *op, yajl_val arg, yajl_val v);


static int
ref_anything_but(yajl_val arg, yajl_val v)
{
    size_t       i;
    yajl_val     list;
    const char  *op;

    if (YAJL_IS_OBJECT(arg)) {
        if (!YAJL_IS_STRING(v)) {
            return 0;
        }

        op = arg->u.object.keys[0];
        list = arg->u.object.values[0];

        if (YAJL_IS_ARRAY(list)) {
            for (i = 0; i < list->u.array.len; i++) {
                if (ref_op(op, list->u.array.values[i], v)) {
                    return 0;
                }
            }

            return 1;
        }

        return !ref_op(op, list, v);
    }

    if (YAJL_IS_ARRAY(arg)) {
        for (i = 0; i < arg->u.array.len; i++) {
            if (ref_scalar_eq(arg->u.array.values[i], v)) {
                return 0;
            }
        }

        return 1;
    }

    return !ref_scalar_eq(arg, v);
}


static int
ref_numeric(yajl_val arg, yajl_val v)
{
    size_t       i;
    long double  x, b;
    const char  *op;

    if (!YAJL_IS_NUMBER(v)) {
        return 0;
    }

    x = ref_num(v);

    for (i = 0; i < arg->u.array.len; i += 2) {
        op = arg->u.array.values[i]->u.string;
        b = ref_num(arg->u.array.values[i + 1]);

        if ((strcmp(op, "=") == 0 && !(x == b))
            || (strcmp(op, "<") == 0 && !(x < b))
            || (strcmp(op, "<=") == 0 && !(x <= b))
            || (strcmp(op, ">") == 0 && !(x > b))
            || (strcmp(op, ">=") == 0 && !(x >= b)))
        {
            return 0;
        }
    }

    return 1;
}


static int
ref_op(const char *op, yajl_val arg, yajl_val v)
{
    int          r;
    char        *a, *b;
    yajl_val     ci;

    if (strcmp(op, "exists") == 0) {
        return YAJL_IS_TRUE(arg);
    }

    if (strcmp(op, "numeric") == 0) {
        return ref_numeric(arg, v);
    }

    if (strcmp(op, "anything-but") == 0) {
        return ref_anything_but(arg, v);
    }

    if (!YAJL_IS_STRING(v)) {
        return 0;
    }

    if (strcmp(op, "prefix") == 0 || strcmp(op, "suffix") == 0) {
        if (YAJL_IS_OBJECT(arg)) {
            ci = ref_get(arg, "equals-ignore-case");
            a = ref_fold(ci->u.string);
            b = ref_fold(v->u.string);
            r = ref_affix(b, a, op[0] == 's');
            free(a);
            free(b);
            return r;
        }

        return ref_affix(v->u.string, arg->u.string, op[0] == 's');
    }

    if (strcmp(op, "contains") == 0) {
        return strstr(v->u.string, arg->u.string) != NULL;
    }

    if (strcmp(op, "equals-ignore-case") == 0) {
        a = ref_fold(arg->u.string);
        b = ref_fold(v->u.string);
        r = strcmp(a, b) == 0;
        free(a);
        free(b);
        return r;
    }

    if (strcmp(op, "wildcard") == 0) {
        return ref_glob(arg->u.string, v->u.string);
    }

    if (strcmp(op, "cidr") == 0) {
        return ref_cidr(arg->u.string, v->u.string);
    }

    if (strcmp(op, "regex") == 0) {
        return ref_regex(arg->u.string, v);
    }

    return 0;
}


/* one condition (an element of a leaf list) on one value */
static int
ref_cond(yajl_val c, yajl_val v)
{
    size_t  i;

    if (!YAJL_IS_OBJECT(c)) {
        return ref_scalar_eq(c, v);
    }

    for (i = 0; i < c->u.object.len; i++) {
        if (!ref_op(c->u.object.keys[i], c->u.object.values[i], v)) {
            return 0;
        }
    }

    return 1;
}


static int
ref_list(yajl_val list, yajl_val v)
{
    size_t  i;

    for (i = 0; i < list->u.array.len; i++) {
        if (ref_cond(list->u.array.values[i], v)) {
            return 1;
        }
    }

    return 0;
}


static int
ref_allows_absent(yajl_val list)
{
    size_t    i;
    yajl_val  c, e;

    for (i = 0; i < list->u.array.len; i++) {
        c = list->u.array.values[i];

        if (YAJL_IS_OBJECT(c) && (e = ref_get(c, "exists")) != NULL
            && YAJL_IS_FALSE(e))
        {
            return 1;
        }
    }

    return 0;
}


/* backtracking over the conjuncts of an alternative; chosen[array] is
 * the element index taken, or -1 */
static int
ref_alt(const ref_event_t *ev, const ref_alt_t *alt, int k, int *chosen)
{
    int                 i, t, ok, present, set[REF_MAX_TRAIL], nset;
    const ref_conj_t   *c;
    const ref_field_t  *f;

    if (k == alt->n) {
        return 1;
    }

    c = &alt->c[k];
    present = 0;

    for (i = 0; i < ev->n; i++) {
        f = &ev->f[i];

        if (strcmp(f->path, c->path) != 0) {
            continue;
        }

        present = 1;

        if (!ref_list(c->list, f->v)) {
            continue;
        }

        ok = 1;

        for (t = 0; t < f->ntrail; t++) {
            if (chosen[f->trail[t][0]] >= 0
                && chosen[f->trail[t][0]] != f->trail[t][1])
            {
                ok = 0;
            }
        }

        if (!ok) {
            continue;
        }

        nset = 0;

        for (t = 0; t < f->ntrail; t++) {
            if (chosen[f->trail[t][0]] < 0) {
                chosen[f->trail[t][0]] = f->trail[t][1];
                set[nset++] = f->trail[t][0];
            }
        }

        ok = ref_alt(ev, alt, k + 1, chosen);

        while (nset) {
            chosen[set[--nset]] = -1;
        }

        if (ok) {
            return 1;
        }
    }

    if (!present && ref_allows_absent(c->list)) {
        return ref_alt(ev, alt, k + 1, chosen);
    }

    return 0;
}


static int
ref_match(const ref_rule_t *r, const ref_event_t *ev)
{
    int   i, ok, *chosen;

    chosen = malloc((ev->narrays + 1) * sizeof(int));

    for (i = 0; i < ev->narrays; i++) {
        chosen[i] = -1;
    }

    for (ok = 0, i = 0; !ok && i < r->n; i++) {
        ok = ref_alt(ev, &r->alt[i], 0, chosen);
    }

    free(chosen);

    return ok;
}

#endif /* TEST_PATTERN_REF_H */
