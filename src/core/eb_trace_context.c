/*
 * W3C Trace Context: traceparent checks and new trace ids, tracestate
 * checks and truncation.
 */

#include <string.h>

#include "eb_trace_context.h"


#define EB_TRACESTATE_KEY_MAX    256
#define EB_TRACESTATE_VALUE_MAX  256
/* members longer than this are the first to go when a list is cut */
#define EB_TRACESTATE_LONG       128


typedef struct {
    const unsigned char  *p;
    size_t                len;
    size_t                klen;
    int                   keep;
} eb_tc_member_t;


/* n lower-case hex digits; *nonzero set if one is not '0' */
static int
eb_tc_hex(const unsigned char *p, size_t n, int *nonzero)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            return 0;
        }

        if (p[i] != '0') {
            *nonzero = 1;
        }
    }

    return 1;
}


int
eb_traceparent_valid(const unsigned char *p, size_t len)
{
    int     nz;
    size_t  i;

    if (len < EB_TRACEPARENT_LEN || len > EB_TRACEPARENT_MAX) {
        return 0;
    }

    /* version: ff is forbidden */
    nz = 0;

    if (!eb_tc_hex(p, 2, &nz) || (p[0] == 'f' && p[1] == 'f')
        || p[2] != '-')
    {
        return 0;
    }

    /* trace-id and parent-id: all zeros is invalid */
    nz = 0;

    if (!eb_tc_hex(p + 3, 32, &nz) || !nz || p[35] != '-') {
        return 0;
    }

    nz = 0;

    if (!eb_tc_hex(p + 36, 16, &nz) || !nz || p[52] != '-') {
        return 0;
    }

    if (!eb_tc_hex(p + 53, 2, &nz)) {
        return 0;
    }

    if (len == EB_TRACEPARENT_LEN) {
        return 1;
    }

    /* version 00 ends there; a later one may have more fields */
    if ((p[0] == '0' && p[1] == '0') || p[55] != '-') {
        return 0;
    }

    /* unknown fields are not parsed, but they go into a header */
    for (i = 56; i < len; i++) {
        if (p[i] < 0x21 || p[i] > 0x7e) {
            return 0;
        }
    }

    return 1;
}


int
eb_traceparent_new(eb_uuid_gen_t *g, char *out)
{
    size_t          i;
    char           *o;
    unsigned char   b[24], t, s;

    static const char  hex[] = "0123456789abcdef";

    /* 16 bytes of trace-id, 8 of parent-id; all zeros (2^-64 for the
     * parent-id) would be invalid: drawn again */
    do {
        if (eb_uuid_random(g, b, sizeof(b)) != 0) {
            return -1;
        }

        for (t = 0, i = 0; i < 16; i++) {
            t |= b[i];
        }

        for (s = 0; i < 24; i++) {
            s |= b[i];
        }

    } while (t == 0 || s == 0);

    o = out;
    *o++ = '0';
    *o++ = '0';

    for (i = 0; i < 24; i++) {
        if (i == 0 || i == 16) {
            *o++ = '-';
        }

        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 0x0f];
    }

    memcpy(o, "-01", 3);

    return 0;
}


static int
eb_tc_key_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
           || c == '-' || c == '*' || c == '/' || c == '@';
}


/* printable ASCII but ',' and '=' */
static int
eb_tc_value_char(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e && c != ',' && c != '=';
}


/*
 * key = ( lcalpha / DIGIT ) 0*255( keychar ), "=", then 1 to 256 of
 * space and value characters, the last not a space. Keys as Level 2 of
 * the specification has them (a superset of Level 1's tenant@system
 * form): what a newer tracer sends is not refused.
 */
static int
eb_tc_member(eb_tc_member_t *m)
{
    size_t                i, vlen;
    const unsigned char  *v, *eq;

    eq = memchr(m->p, '=', m->len);
    if (eq == NULL) {
        return 0;
    }

    m->klen = (size_t) (eq - m->p);

    if (m->klen == 0 || m->klen > EB_TRACESTATE_KEY_MAX
        || !((m->p[0] >= 'a' && m->p[0] <= 'z')
             || (m->p[0] >= '0' && m->p[0] <= '9')))
    {
        return 0;
    }

    for (i = 1; i < m->klen; i++) {
        if (!eb_tc_key_char(m->p[i])) {
            return 0;
        }
    }

    v = eq + 1;
    vlen = m->len - m->klen - 1;

    if (vlen == 0 || vlen > EB_TRACESTATE_VALUE_MAX
        || !eb_tc_value_char(v[vlen - 1]))
    {
        return 0;
    }

    for (i = 0; i < vlen; i++) {
        if (v[i] != ' ' && !eb_tc_value_char(v[i])) {
            return 0;
        }
    }

    return 1;
}


static size_t
eb_tc_list_len(const eb_tc_member_t *m, size_t n)
{
    size_t  i, len, k;

    for (len = 0, k = 0, i = 0; i < n; i++) {
        if (m[i].keep) {
            len += m[i].len;
            k++;
        }
    }

    return k ? len + k - 1 : 0;
}


ssize_t
eb_tracestate_normalize(unsigned char *dst, size_t max,
    const unsigned char *p, size_t len)
{
    size_t          i, j, n, s, e, total;
    unsigned char  *o;
    eb_tc_member_t  m[EB_TRACESTATE_MEMBERS];

    n = 0;

    for (s = 0; s <= len; s = e + 1) {
        for (e = s; e < len && p[e] != ','; e++) {
            /* void */
        }

        /* optional whitespace around a member; empty members skipped */
        for (i = s; i < e && (p[i] == ' ' || p[i] == '\t'); i++) {
            /* void */
        }

        for (j = e; j > i && (p[j - 1] == ' ' || p[j - 1] == '\t'); j--) {
            /* void */
        }

        if (i == j) {
            continue;
        }

        if (n == EB_TRACESTATE_MEMBERS) {
            return -1;
        }

        m[n].p = p + i;
        m[n].len = j - i;
        m[n].keep = 1;

        if (!eb_tc_member(&m[n])) {
            return -1;
        }

        for (j = 0; j < n; j++) {
            if (m[j].klen == m[n].klen
                && memcmp(m[j].p, m[n].p, m[n].klen) == 0)
            {
                return -1;
            }
        }

        n++;
    }

    total = eb_tc_list_len(m, n);

    if (dst == NULL) {
        return (ssize_t) total;
    }

    /* too long: whole members go, the long ones first, from the end */
    for (i = n; i-- > 0 && total > max; /* void */) {
        if (m[i].len > EB_TRACESTATE_LONG) {
            m[i].keep = 0;
            total = eb_tc_list_len(m, n);
        }
    }

    for (i = n; i-- > 0 && total > max; /* void */) {
        m[i].keep = 0;
        total = eb_tc_list_len(m, n);
    }

    o = dst;

    for (i = 0; i < n; i++) {
        if (!m[i].keep) {
            continue;
        }

        if (o > dst) {
            *o++ = ',';
        }

        memmove(o, m[i].p, m[i].len);      /* dst may be p */
        o += m[i].len;
    }

    return (ssize_t) (o - dst);
}


/* the last member of that name, as ebd's other readers take it */
static yajl_val
eb_tc_member_of(yajl_val obj, const char *key)
{
    size_t  i;

    for (i = YAJL_GET_OBJECT(obj)->len; i-- > 0; /* void */) {
        if (strcmp(YAJL_GET_OBJECT(obj)->keys[i], key) == 0) {
            return YAJL_GET_OBJECT(obj)->values[i];
        }
    }

    return NULL;
}


const char *
eb_trace_context_of(yajl_val event, const char **tracestate)
{
    yajl_val  tp, ts;

    *tracestate = NULL;

    if (event == NULL || !YAJL_IS_OBJECT(event)) {
        return NULL;
    }

    tp = eb_tc_member_of(event, "traceparent");

    if (!YAJL_IS_STRING(tp)
        || !eb_traceparent_valid((const unsigned char *) tp->u.string,
                                 strlen(tp->u.string)))
    {
        return NULL;
    }

    ts = eb_tc_member_of(event, "tracestate");

    if (YAJL_IS_STRING(ts)) {
        *tracestate = ts->u.string;
    }

    return tp->u.string;
}
