/*
 * CloudEvents intake, private to its files: the event being built and
 * what the modes (eb_ce_json.c, eb_ce_batch.c, eb_ce_binary.c) share.
 */

#ifndef EB_CE_INT_H
#define EB_CE_INT_H

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "eb_str.h"
#include "eb_cloudevent.h"


/* members of an event, as bits */
#define EB_CE_SPECVERSION      0x0001
#define EB_CE_ID               0x0002
#define EB_CE_SOURCE           0x0004
#define EB_CE_TYPE             0x0008
#define EB_CE_DATACONTENTTYPE  0x0010
#define EB_CE_DATASCHEMA       0x0020
#define EB_CE_SUBJECT          0x0040
#define EB_CE_TIME             0x0080
#define EB_CE_DATA             0x0100
#define EB_CE_DATA_BASE64      0x0200
#define EB_CE_TRACEPARENT      0x0400   /* the distributed tracing */
#define EB_CE_TRACESTATE       0x0800   /* extension, when ctx->trace */

#define EB_CE_REQUIRED                                                        \
    (EB_CE_SPECVERSION | EB_CE_ID | EB_CE_SOURCE | EB_CE_TYPE)

/* an extension name as a sort key: its length, then the name, 0-padded */
#define EB_CE_NAME_SLOT        (EB_CE_NAME_MAX + 1)

/* longest piece of sender text quoted in an error message */
#define EB_CE_QUOTE_MAX        40


typedef enum {
    EB_CE_T_SPEC,               /* the string "1.0" */
    EB_CE_T_STRING,             /* a non-empty string */
    EB_CE_T_URI_REF,            /* a non-empty URI-reference */
    EB_CE_T_URI,                /* an absolute URI */
    EB_CE_T_TIMESTAMP,
    EB_CE_T_MEDIA_TYPE,
    EB_CE_T_TRACEPARENT,        /* W3C Trace Context traceparent */
    EB_CE_T_TRACESTATE,         /* W3C Trace Context tracestate */
    EB_CE_T_SERVER              /* an extension the bus sets itself */
} eb_ce_type_t;


typedef struct {
    const char    *name;
    size_t         len;
    unsigned       bit;
    eb_ce_type_t   type;
} eb_ce_attr_t;


typedef enum {
    EB_CE_V_NULL,
    EB_CE_V_STRING,             /* decoded text */
    EB_CE_V_NUMBER,             /* JSON number text */
    EB_CE_V_BOOLEAN,            /* "true" or "false" */
    EB_CE_V_OBJECT,
    EB_CE_V_ARRAY
} eb_ce_value_t;


typedef enum {
    EB_CE_DATA_NONE,
    EB_CE_DATA_JSON,            /* JSON text, copied without whitespace */
    EB_CE_DATA_TEXT,            /* UTF-8 bytes, written as a JSON string */
    EB_CE_DATA_ENCODE           /* bytes, written base64-encoded */
} eb_ce_data_t;


/* one event being built into out */
typedef struct {
    const eb_ce_ctx_t    *ctx;
    eb_buf_t             *out;
    eb_ce_error_t        *err;

    size_t                start;        /* out->len before the event */
    unsigned              seen;         /* members met, null or not */
    unsigned              present;      /* attributes that have a value */
    int                   ct_json;      /* datacontenttype declares JSON */
    size_t                id_off;       /* the id's JSON text in out */
    size_t                id_len;

    const char           *data_name;
    eb_ce_data_t          data_how;
    const unsigned char  *data;
    size_t                data_len;
    const unsigned char  *b64;          /* a structured data_base64 */
    size_t                b64_len;

    eb_buf_t              scratch;      /* a decoded string */
    eb_buf_t              names;        /* extension names, as slots */
} eb_ce_event_t;


/* character classes */

static inline int
eb_ce_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}


static inline int
eb_ce_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}


static inline int
eb_ce_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}


static inline int
eb_ce_json_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}


static inline int
eb_ce_eq(const unsigned char *p, size_t len, const char *s)
{
    size_t  n;

    n = strlen(s);

    return len == n && (n == 0 || memcmp(p, s, n) == 0);
}


static inline int
eb_ce_caseeq(const unsigned char *p, size_t len, const char *s)
{
    size_t  n;

    n = strlen(s);

    return len == n && (n == 0 || strncasecmp((const char *) p, s, n) == 0);
}


#define EB_CE_QUOTE_BUF  (EB_CE_QUOTE_MAX + sizeof("..."))


/* eb_ce_event.c: the event builder */
void eb_ce_event_init(eb_ce_event_t *ev, const eb_ce_ctx_t *ctx,
    eb_buf_t *out, eb_ce_error_t *err);
void eb_ce_event_free(eb_ce_event_t *ev);
void eb_ce_event_begin(eb_ce_event_t *ev);
int eb_ce_attribute(eb_ce_event_t *ev, const unsigned char *name,
    size_t nlen, eb_ce_value_t vt, const unsigned char *v, size_t vlen);
int eb_ce_event_end(eb_ce_event_t *ev);
eb_ce_rc_t eb_ce_event_done(eb_ce_event_t *ev, int rc, eb_ce_entry_t *entry);
void eb_ce_entry_init(eb_ce_entry_t *entry, size_t index);
int eb_ce_nomem(eb_ce_event_t *ev);
int eb_ce_name_error(eb_ce_event_t *ev, const unsigned char *name,
    size_t len);
int eb_ce_fail(eb_ce_error_t *err, const char *code, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__ ((format (printf, 3, 4)))
#endif
    ;
const char *eb_ce_quote(char *buf, const unsigned char *p, size_t len);

/* eb_ce_json.c: events in the JSON format */
size_t eb_ce_ws(const unsigned char *p, size_t i, size_t end);
int eb_ce_element(const unsigned char *p, size_t *i, size_t end, size_t *vs,
    size_t *ve);
eb_ce_rc_t eb_ce_json_event(eb_ce_event_t *ev, const unsigned char *p,
    size_t i, size_t end, eb_ce_entry_t *entry);
eb_ce_rc_t eb_ce_validate(const eb_ce_ctx_t *ctx, const unsigned char *p,
    size_t len, unsigned depth, unsigned dup_level, const char *what,
    eb_ce_error_t *err);

/* eb_ce_output.c: JSON output */
void eb_ce_put(eb_buf_t *b, const char *s);
void eb_ce_put_string(eb_buf_t *b, const unsigned char *p, size_t len);
void eb_ce_put_base64(eb_buf_t *b, const unsigned char *p, size_t len);

/* eb_ce_attr.c */
int eb_ce_media_utf8_text(const unsigned char *p, size_t len);

#endif /* EB_CE_INT_H */
