/*
 * Internals of the event-pattern engine, shared by src/core/eb_pattern_*.c
 * and by white-box unit tests. Not an API.
 */

#ifndef EB_PATTERN_INT_H
#define EB_PATTERN_INT_H

#include <float.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH  8
#include <pcre2.h>

#include "eb_pattern.h"


#define EB_PM_NONE  0xffffffffu


/* growable arrays: n elements of a size given on every call */

typedef struct {
    void    *data;
    size_t   n;
    size_t   cap;
} eb_pm_vec_t;

#define eb_pm_vec_at(v, type, i)  (&((type *) (v)->data)[i])

/* Appends count zeroed elements; returns the first, or NULL. */
void *eb_pm_vec_push(eb_pm_vec_t *v, size_t size, size_t count);
/* Makes room for count elements in all; returns 0 or -1. */
int eb_pm_vec_reserve(eb_pm_vec_t *v, size_t size, size_t count);
/* Zeroes the n elements. */
void eb_pm_zero(eb_pm_vec_t *v, size_t size);
/* Gives back the room beyond n. */
void eb_pm_vec_shrink(eb_pm_vec_t *v, size_t size);
void eb_pm_vec_free(eb_pm_vec_t *v);


/* a map from (namespace, bytes) to a u32, open addressing */

typedef struct {
    uint64_t  hash;
    uint32_t  ns;
    uint32_t  key_off;
    uint32_t  key_len;
    uint32_t  value;          /* EB_PM_NONE: empty slot */
} eb_pm_slot_t;

typedef struct {
    eb_pm_slot_t   *slots;
    size_t          mask;
    size_t          count;
    eb_pm_vec_t     keys;      /* bytes */
} eb_pm_map_t;

uint64_t eb_pm_hash(uint32_t ns, const unsigned char *p, size_t len);
/* Returns 1 when inserted, 0 when the key was there (*value gets its
 * value), -1 when out of memory. */
int eb_pm_map_put(eb_pm_map_t *m, uint32_t ns, const unsigned char *p,
    size_t len, uint32_t *value);
uint32_t eb_pm_map_get(const eb_pm_map_t *m, uint64_t hash, uint32_t ns,
    const unsigned char *p, size_t len);
void eb_pm_map_free(eb_pm_map_t *m);


/*
 * Numbers, in patterns and events alike, are long doubles: on x86-64 the
 * 80-bit extended format, whose 64-bit significand holds every integer
 * of magnitude up to 2^64 exactly (all int64 and uint64 ids), where a
 * double loses integers past 2^53. Every number goes through the same
 * correctly rounded conversion (eb_pm_number), which is monotone, so
 * equality, order and the range tree agree with the decimal values up to
 * that one rounding; -0 is made 0. Kept over a decimal key (sign,
 * exponent, digits; exact for all JSON) because it stays a fixed-size
 * value that compares in one instruction in the range tree and hashes as
 * bytes. Where long double is only a double (LDBL_MANT_DIG 53) integers
 * are exact up to 2^53, as before.
 *
 * EB_PM_NUM_KEY: the bytes of a number that hold its value, which the
 * exact-value index hashes and compares (the x87 format is 10 bytes
 * padded to 16; the padding is not part of the value).
 */
typedef long double  eb_pm_num_t;

#if (LDBL_MANT_DIG == 64 && LDBL_MAX_EXP == 16384)
#define EB_PM_NUM_KEY  10
#else
#define EB_PM_NUM_KEY  sizeof(eb_pm_num_t)
#endif


/* JSON value types, in patterns and events */

enum {
    EB_PM_T_STRING = 1,
    EB_PM_T_NUMBER,
    EB_PM_T_TRUE,
    EB_PM_T_FALSE,
    EB_PM_T_NULL,
    EB_PM_T_OBJECT,
    EB_PM_T_ARRAY
};


/* the pattern AST (kept after compile: verification reads it) */

enum {
    EB_PM_OP_EXACT = 1,       /* v: a typed scalar */
    EB_PM_OP_PREFIX,          /* v: string */
    EB_PM_OP_SUFFIX,
    EB_PM_OP_CONTAINS,
    EB_PM_OP_EQ_CI,           /* v: case-folded string */
    EB_PM_OP_PREFIX_CI,
    EB_PM_OP_SUFFIX_CI,
    EB_PM_OP_WILDCARD,        /* list: the literal pieces around the stars */
    EB_PM_OP_NUMERIC,         /* lo/hi */
    EB_PM_OP_CIDR,            /* ip, bits, family */
    EB_PM_OP_REGEX,           /* re */
    EB_PM_OP_EXISTS,
    EB_PM_OP_ABSENT,
    EB_PM_OP_NOT              /* list: positive preds, none may match */
};

typedef struct {
    uint8_t       type;       /* EB_PM_T_* */
    uint32_t      off;        /* string bytes in rs->bytes */
    uint32_t      len;
    eb_pm_num_t   num;        /* numbers: -0 made 0 */
} eb_pm_scalar_t;

typedef struct {
    uint8_t          op;
    uint8_t          lo_incl;
    uint8_t          hi_incl;
    uint8_t          family;      /* CIDR: 4 or 6 */
    uint8_t          bits;
    uint8_t          strings;     /* NOT: only strings can match */
    eb_pm_scalar_t   v;
    eb_pm_num_t      lo;          /* -HUGE_VALL when unbounded */
    eb_pm_num_t      hi;
    uint8_t          ip[16];      /* masked */
    uint32_t         list_off;    /* in rs->ids: pieces or pred ids */
    uint32_t         list_n;
    uint32_t         re;          /* index in rs->regex */
} eb_pm_pred_t;

/* a condition: preds that must all hold for one value */
typedef struct {
    uint32_t   pred_off;      /* pred ids in rs->ids */
    uint32_t   pred_n;
} eb_pm_cond_t;

typedef struct {
    uint32_t   node;          /* path trie node */
    uint32_t   cond_off;      /* cond ids in rs->ids: any may hold */
    uint32_t   cond_n;
    uint8_t    absent;        /* one of them is exists:false */
    uint8_t    rank;          /* order in the alternative: selective first */
    uint32_t   canon_off;     /* canonical text of the list in rs->canon */
    uint32_t   canon_len;
    uint32_t   field;         /* set by compile */
} eb_pm_conj_t;

typedef struct {
    uint32_t   rule_id;
    uint32_t   conj_off;      /* conj ids in rs->ids */
    uint32_t   conj_n;
} eb_pm_alt_t;


/* the path trie */

typedef struct {
    uint32_t   parent;
    uint32_t   seg_off;       /* in rs->bytes */
    uint32_t   seg_len;
    uint32_t   field;         /* EB_PM_NONE: no conjunct names this path */
    uint32_t   lo;            /* field ids of this subtree, itself included */
    uint32_t   hi;
    uint8_t    leaf;          /* some conjunct names this path */
    uint8_t    inner;         /* some longer path goes through it */
} eb_pm_pnode_t;


/* the compiled machine */

typedef struct {
    uint32_t   target;        /* child state */
    uint32_t   cond;          /* verified for the value, or EB_PM_NONE */
} eb_pm_entry_t;

typedef struct {
    uint32_t   off;           /* entries */
    uint32_t   n;
} eb_pm_range_t;

/* value index kinds: hash namespaces (matcher id * EB_PM_K_N + kind) */
enum {
    EB_PM_K_STR = 0,
    EB_PM_K_NUM,
    EB_PM_K_LIT,
    EB_PM_K_STR_CI,
    EB_PM_K_PREFIX,           /* the kinds from here have length lists */
    EB_PM_K_SUFFIX,
    EB_PM_K_PREFIX_CI,
    EB_PM_K_SUFFIX_CI,
    EB_PM_K_CIDR4,
    EB_PM_K_CIDR6,
    EB_PM_K_N
};

#define EB_PM_K_LENS   EB_PM_K_PREFIX
#define EB_PM_NLENS    (EB_PM_K_N - EB_PM_K_LENS)

typedef struct {
    uint32_t   field;
    uint32_t   kinds;         /* bit per EB_PM_K_* present */
    uint32_t   lens_off[EB_PM_NLENS];    /* in rs->lens, ascending */
    uint32_t   lens_n[EB_PM_NLENS];
    uint32_t   num_off;       /* end points in rs->nums */
    uint32_t   num_n;
    uint32_t   tree_off;      /* segment tree nodes in rs->tree */
    uint32_t   tree_leaves;   /* power of two; 0: no ranges */
    uint32_t   ac;            /* Aho-Corasick root in rs->ac, or NONE */
    uint32_t   lin_off;       /* entries checked for every value */
    uint32_t   lin_n;
    uint32_t   abs_off;       /* targets (in rs->ids) when no value */
    uint32_t   abs_n;
} eb_pm_matcher_t;

typedef struct {
    uint32_t   field;
    uint32_t   matcher;
} eb_pm_trans_t;

typedef struct {
    uint32_t   trans_off;     /* sorted by field */
    uint32_t   trans_n;
    uint32_t   absent_off;    /* matcher ids with exists:false, in ids */
    uint32_t   absent_n;
    uint32_t   rules_off;     /* rule ids ending here, in rs->ids */
    uint32_t   rules_n;
    uint32_t   fut_off;       /* field ids used below, sorted, in ids */
    uint32_t   fut_n;
} eb_pm_state_t;

typedef struct {
    uint32_t        edges_off;
    uint16_t        edges_n;
    uint32_t        fail;
    uint32_t        dict;     /* next node on the fail chain with output */
    uint32_t        out_off;  /* entries */
    uint32_t        out_n;
} eb_pm_acnode_t;

typedef struct {
    uint8_t    byte;
    uint32_t   next;
} eb_pm_acedge_t;


struct eb_ruleset_s {
    int              compiled;
    int              broken;      /* out of memory mid-add: no more adds */

    /* AST */
    eb_pm_vec_t      bytes;       /* unsigned char: strings, segments */
    eb_pm_vec_t      canon;       /* unsigned char: canonical lists */
    eb_pm_vec_t      ids;         /* uint32_t */
    eb_pm_vec_t      preds;       /* eb_pm_pred_t */
    eb_pm_vec_t      conds;       /* eb_pm_cond_t */
    eb_pm_vec_t      conjs;       /* eb_pm_conj_t */
    eb_pm_vec_t      alts;        /* eb_pm_alt_t */
    eb_pm_vec_t      regex;       /* pcre2_code * */
    uint32_t         max_rule_id;
    size_t           nrules;      /* distinct ids, once compiled */
    size_t           nalts;

    /* the path trie: node 0 is the root */
    eb_pm_vec_t      pnodes;      /* eb_pm_pnode_t */
    eb_pm_map_t      children;    /* (parent, segment) -> node */
    uint32_t         nfields;

    /* the machine */
    eb_pm_vec_t      states;      /* eb_pm_state_t; 0 is the start */
    eb_pm_vec_t      trans;       /* eb_pm_trans_t */
    eb_pm_vec_t      matchers;    /* eb_pm_matcher_t */
    eb_pm_vec_t      entries;     /* eb_pm_entry_t */
    eb_pm_vec_t      buckets;     /* eb_pm_range_t: map values */
    eb_pm_map_t      index;       /* (matcher, kind, key) -> bucket */
    eb_pm_vec_t      lens;        /* uint32_t */
    eb_pm_vec_t      nums;        /* eb_pm_num_t */
    eb_pm_vec_t      tree;        /* eb_pm_range_t */
    eb_pm_vec_t      acnodes;     /* eb_pm_acnode_t */
    eb_pm_vec_t      acedges;     /* eb_pm_acedge_t */
};


/* the flattened event */

/* num first: a 16-byte long double anywhere else pads the struct */
typedef struct {
    eb_pm_num_t            num;
    const unsigned char   *str;         /* string bytes, number text */
    uint32_t               field;
    uint32_t               ord;         /* document order */
    uint32_t               len;
    uint32_t               trail_off;   /* element ids in ev->trails */
    uint32_t               trail_n;
    uint8_t                type;        /* EB_PM_T_* */
} eb_pm_value_t;

/* an element of an array that is itself an object or array */
typedef struct {
    uint32_t   array;         /* array id within the event */
    uint32_t   node;          /* path trie node of the array */
    uint32_t   level;         /* arrays around it, itself included */
    uint32_t   lo;            /* ords of the values inside: [lo, hi) */
    uint32_t   hi;
} eb_pm_elem_t;

typedef struct {
    uint32_t   gen;
    uint32_t   first;         /* in vals, sorted by field */
    uint32_t   n;
} eb_pm_fieldref_t;

struct eb_pattern_event_s {
    const eb_ruleset_t   *rs;
    eb_pm_vec_t           vals;       /* eb_pm_value_t */
    eb_pm_vec_t           tmp;        /* eb_pm_value_t, for sorting */
    eb_pm_vec_t           elems;      /* eb_pm_elem_t */
    eb_pm_vec_t           trails;     /* uint32_t */
    eb_pm_vec_t           stack;      /* uint32_t: the current trail */
    eb_pm_vec_t           strs;       /* unsigned char: unescaped */
    eb_pm_vec_t           fields;     /* eb_pm_fieldref_t per field id */
    eb_pm_vec_t           present;    /* uint32_t: field ids, sorted */
    uint32_t              narrays;
    uint32_t              gen;
    unsigned char         key[256];   /* an unescaped key */
};


/* helpers (eb_pattern_util.c) */

/* Parses JSON number text (already validated), correctly rounded to an
 * eb_pm_num_t; -0 becomes 0. */
eb_pm_num_t eb_pm_number(const unsigned char *p, size_t len);
/* Folds case (ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic, full
 * width Latin; simple one-to-one folds only) into dst, which must hold
 * len bytes; the length never changes. */
void eb_pm_fold(unsigned char *dst, const unsigned char *src, size_t len);
/* Parses an IPv4 or IPv6 address; returns 4, 6 or 0 (not an address). */
int eb_pm_ip(const unsigned char *p, size_t len, uint8_t ip[16]);
/* Parses "address/bits" into a masked address; returns 4, 6 or 0. */
int eb_pm_cidr(const unsigned char *p, size_t len, uint8_t ip[16],
    unsigned *bits);
void eb_pm_mask(uint8_t *ip, unsigned nbytes, unsigned bits);
/* Matches s against a wildcard given as n literal pieces (pairs of
 * offset and length in base; a star between consecutive pieces). */
int eb_pm_wildcard(const uint32_t *pieces, size_t n,
    const unsigned char *base, const unsigned char *s, size_t len);

/* A stable merge sort of u32s by cmp; tmp holds n elements. */
typedef int (*eb_pm_cmp_pt)(void *ctx, uint32_t a, uint32_t b);
void eb_pm_sort(uint32_t *a, size_t n, eb_pm_cmp_pt cmp, void *ctx,
    uint32_t *tmp);


/* the AST of one pattern (eb_pattern_parse.c) */

int eb_pm_parse(eb_ruleset_t *rs, uint32_t rule_id,
    const unsigned char *p, size_t len, char *err, size_t errlen);

#endif /* EB_PATTERN_INT_H */
