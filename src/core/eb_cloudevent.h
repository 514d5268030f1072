/*
 * CloudEvents 1.0 intake for PutEvents: an event in the JSON format
 * (structured mode), a JSON batch (batched mode) or an HTTP binary-mode
 * message (ce-* headers, Content-Type, body) is checked against the
 * CloudEvents 1.0.2 specification, its JSON event format and its HTTP
 * protocol binding, and becomes the compact event JSON the bus stores,
 * with the bus's own aliyun* attributes. Each event is reported as an id or
 * as an error code and message; the answer collects them.
 */

#ifndef EB_CLOUDEVENT_H
#define EB_CLOUDEVENT_H

#include <stddef.h>
#include <sys/types.h>
#include <yajl/yajl_common.h>

#include "eb_buf.h"
#include "eb_str.h"
#include "eb_http_event.h"


/* Longest attribute name accepted. The specification says names SHOULD
 * NOT exceed 20 characters; every attribute it and its documented
 * extensions define, and the aliyun* ones, fit: longer names are
 * rejected. */
#define EB_CE_NAME_MAX                20

/* Suggested defaults for the handler's directives. The specification
 * wants events of up to 64 KiB accepted; base64 makes binary data 4/3 as
 * large, and the bus adds about 200 bytes. */
#define EB_CE_DEFAULT_MAX_EVENT_SIZE  (256 * 1024)
#define EB_CE_DEFAULT_MAX_ENTRIES     100
#define EB_CE_DEFAULT_MAX_BATCH_SIZE  (1024 * 1024)

#define EB_CE_MESSAGE_MAX             256


/*
 * The errorCode strings: stable, part of the PutEvents answer. Messages
 * (errorMessage) are one line of ASCII, quoting at most 40 characters of
 * what the sender sent.
 */
/* not JSON as eb_json_validate() checks it (syntax, invalid UTF-8 in a
 * string, an unpaired surrogate escape, a key twice in an object below
 * the event's own members); names the byte */
#define EB_CE_INVALID_JSON             "InvalidJSON"
/* nested deeper than max_depth */
#define EB_CE_JSON_TOO_DEEP            "JSONTooDeep"
/* binary mode: a ce-* value is not UTF-8 once percent-decoded */
#define EB_CE_INVALID_UTF8             "InvalidUTF8"
/* an event (or a batch entry) that is not a JSON object */
#define EB_CE_INVALID_EVENT            "InvalidEvent"
/* a batch that is not a JSON array */
#define EB_CE_INVALID_BATCH            "InvalidBatch"
/* specversion, id, source or type absent (or null) */
#define EB_CE_MISSING_ATTRIBUTE        "MissingAttribute"
/* specversion other than "1.0" */
#define EB_CE_INVALID_SPEC_VERSION     "InvalidSpecVersion"
/* not a-z/0-9, empty, longer than EB_CE_NAME_MAX; ce-data and
 * ce-datacontenttype headers */
#define EB_CE_INVALID_ATTRIBUTE_NAME   "InvalidAttributeName"
/* a value not of its attribute's type: an object or array, a fraction or
 * an out-of-range Integer, an empty or non-string required attribute,
 * control characters or noncharacters in a String,
 * bad URI, URI-reference, timestamp or media type, malformed header
 * quoting or percent-encoding; with ctx->trace, a traceparent or
 * tracestate that is not a string in the W3C format, a tracestate
 * without a traceparent */
#define EB_CE_INVALID_ATTRIBUTE_VALUE  "InvalidAttributeValue"
/* a member twice in one event (JSON), a ce-* header twice (binary) */
#define EB_CE_DUPLICATE_ATTRIBUTE      "DuplicateAttribute"
/* data and data_base64 together, data_base64 not a base64 string, data
 * not a string when datacontenttype does not declare JSON */
#define EB_CE_INVALID_DATA             "InvalidData"
/* the event as stored over max_event_size */
#define EB_CE_EVENT_TOO_LARGE          "EventTooLarge"
/* a batch over max_batch_size bytes or max_entries entries */
#define EB_CE_BATCH_TOO_LARGE          "BatchTooLarge"
/* out of memory */
#define EB_CE_INTERNAL_ERROR           "InternalError"


typedef enum {
    EB_CE_OK = 0,
    EB_CE_INVALID,              /* rejected; the error says why */
    EB_CE_NOMEM,                /* out of memory (error: InternalError) */
    EB_CE_ABORTED               /* a batch callback asked to stop */
} eb_ce_rc_t;


typedef enum {
    EB_CE_MODE_BINARY = 0,      /* anything else, or no Content-Type */
    EB_CE_MODE_STRUCTURED,      /* application/cloudevents+json */
    EB_CE_MODE_BATCH,           /* application/cloudevents-batch+json */
    EB_CE_MODE_UNSUPPORTED      /* application/cloudevents... in another
                                   event format, e.g. +avro */
} eb_ce_mode_t;


typedef struct {
    /* The attributes the bus adds to every event, replacing any the
     * sender set: aliyuneventbusname, aliyunregionid, aliyunaccountid,
     * aliyunpublishtime (RFC 3339, UTC) and aliyunpublishaddr. */
    eb_bytes_t         bus;
    eb_bytes_t         region;
    eb_bytes_t         account;
    eb_bytes_t         publish_time;
    eb_bytes_t         publish_addr;

    /* Nesting bound of an event as stored (the event object is level 1),
     * as eventbridge_max_json_depth. */
    unsigned           max_depth;
    /* Bytes of one event as stored (compact JSON, the bus's attributes
     * included), of a batch body, and entries of a batch; 0: no limit. */
    size_t             max_event_size;
    size_t             max_batch_size;
    size_t             max_entries;

    /* W3C Trace Context, the distributed tracing extension: with trace
     * set, an event's traceparent and tracestate attributes must be
     * strings in the W3C format (tracestate only with a traceparent),
     * and an event without a traceparent gets these two (empty: not
     * added). Without it they are extensions like any other. */
    int                trace;
    eb_bytes_t         traceparent;
    eb_bytes_t         tracestate;

    /* yajl's memory during JSON validation; NULL: malloc */
    yajl_alloc_funcs  *afs;
} eb_ce_ctx_t;


typedef struct {
    const char  *code;                        /* NULL: no error */
    char         message[EB_CE_MESSAGE_MAX];  /* one line, ASCII */
} eb_ce_error_t;


/* What became of one event. */
typedef struct {
    size_t          index;      /* position in the batch; 0 otherwise */

    /* On success: the event's compact JSON, and its id as it is written
     * there (JSON-escaped, without the quotes: the text of a JSON string).
     * Both point into the caller's out buffer. */
    eb_bytes_t      event;
    eb_bytes_t      id;

    eb_ce_error_t   error;      /* error.code != NULL: the event failed */
} eb_ce_entry_t;


/* Return 0 to go on, anything else to stop the batch. */
typedef int (*eb_ce_entry_pt)(void *data, const eb_ce_entry_t *entry);


/* The content mode a request's Content-Type selects (HTTP binding 3);
 * ctype may be NULL. */
eb_ce_mode_t eb_ce_mode(const unsigned char *ctype, size_t len);

/*
 * Structured mode: one event in the JSON format. The normalized event is
 * appended to out: the sender's attributes in their order (nulls, which
 * mean unset, left out), then the bus's attributes, then "data" or
 * "data_base64". Attribute strings are re-escaped canonically; data keeps
 * its exact bytes except the whitespace between tokens.
 *
 * EB_CE_OK: entry->event and entry->id are set. EB_CE_INVALID: out is as
 * it was, entry->error says why. EB_CE_NOMEM: out->failed may be set.
 */
eb_ce_rc_t eb_ce_structured(const eb_ce_ctx_t *ctx, const unsigned char *json,
    size_t len, eb_buf_t *out, eb_ce_entry_t *entry);

/*
 * Batched mode: a JSON array of events in the JSON format. Errors of the
 * whole batch (too large, not JSON, not an array, too many entries) are
 * returned as EB_CE_INVALID with err set, before any callback. Otherwise
 * entry() is called once per element, in order, with the normalized event
 * or the error of that element; the event is appended to out for the call
 * and cut off again after it, so entry() copies what it keeps.
 * EB_CE_NOMEM or EB_CE_ABORTED may come after some callbacks.
 */
eb_ce_rc_t eb_ce_batch(const eb_ce_ctx_t *ctx, const unsigned char *json,
    size_t len, eb_buf_t *out, eb_ce_entry_pt entry, void *data,
    eb_ce_error_t *err);

/*
 * Binary mode: headers are (name, raw value) pairs in any case; those
 * named ce-NAME are the attributes (values unquoted and percent-decoded as
 * the HTTP binding says), the others are ignored. ctype is the
 * Content-Type (NULL or empty: none), which becomes datacontenttype. The
 * body becomes data: JSON when ctype is JSON (and must then parse), a
 * string when ctype is text/... in UTF-8 and the body is valid UTF-8,
 * data_base64 otherwise; an empty body is no data. Results as for
 * eb_ce_structured().
 */
eb_ce_rc_t eb_ce_binary(const eb_ce_ctx_t *ctx, const eb_kv_t *headers,
    size_t nheaders, const unsigned char *ctype, size_t ctype_len,
    const unsigned char *body, size_t body_len, eb_buf_t *out,
    eb_ce_entry_t *entry);


/* The PutEvents answer:
 * {"failedEntryCount":N,"entries":[{"eventId":ID} or
 * {"errorCode":CODE,"errorMessage":MESSAGE}, ...]}, entries in order. */
typedef struct {
    eb_buf_t  entries;
    size_t    count;
    size_t    failed;
} eb_ce_answer_t;

void eb_ce_answer_init(eb_ce_answer_t *a);
void eb_ce_answer_free(eb_ce_answer_t *a);
/* Both return 0, or -1 when memory ran out. */
int eb_ce_answer_add(eb_ce_answer_t *a, const eb_ce_entry_t *entry);
int eb_ce_answer_finish(eb_ce_answer_t *a, eb_buf_t *out);


/* The checks behind the above, for the CloudEvents types. */

/* 1 when p[0..len) is a valid attribute name: a-z and 0-9 only, 1 to
 * EB_CE_NAME_MAX characters. */
int eb_ce_name_valid(const unsigned char *p, size_t len);

/* -1 when p[0..len) is a valid CloudEvents String (UTF-8; no control
 * characters U+0000-U+001F, U+007F-U+009F; no noncharacters), else the
 * offset of the first bad character and *why says what it is. */
ssize_t eb_ce_string_invalid_at(const unsigned char *p, size_t len,
    const char **why);

/* RFC 3986: a URI-reference (4.1), and a URI with a scheme (3; a fragment
 * is allowed). Empty text is a URI-reference but no URI. */
int eb_ce_uri_reference_valid(const unsigned char *p, size_t len);
int eb_ce_uri_valid(const unsigned char *p, size_t len);

/* RFC 3339 date-time (5.6), with its calendar and clock ranges. */
int eb_ce_timestamp_valid(const unsigned char *p, size_t len);

/* RFC 2045/2046 media type: type "/" subtype *(";" attribute "=" value),
 * optional whitespace around ";". */
int eb_ce_media_type_valid(const unsigned char *p, size_t len);

/* RFC 4648 base64, standard alphabet, padded. */
int eb_ce_base64_valid(const unsigned char *p, size_t len);

/* An HTTP header value to an attribute's string (HTTP binding 3.1.3.2):
 * optional whitespace trimmed, a quoted-string unquoted, then one round
 * of %XX decoding. dst holds len bytes. Returns the decoded length, or -1
 * for a malformed value (*bad: offset of the fault in src). The result
 * still has to be checked for UTF-8. */
ssize_t eb_ce_header_decode(unsigned char *dst, const unsigned char *src,
    size_t len, size_t *bad);

#endif /* EB_CLOUDEVENT_H */
