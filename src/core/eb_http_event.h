/*
 * The CloudEvent an HTTP event source produces, in the seed service's
 * shape (type eventbridge:Events:HTTPEvent, the aliyun* attributes, data
 * with headers, path, httpMethod, queryString and body).
 */

#ifndef EB_HTTP_EVENT_H
#define EB_HTTP_EVENT_H

#include <yajl/yajl_gen.h>

#include "eb_str.h"


typedef struct {
    eb_bytes_t  name;
    eb_bytes_t  value;
} eb_kv_t;


typedef void *(*eb_alloc_pt)(void *ctx, size_t size);


typedef struct {
    eb_bytes_t      id;
    eb_bytes_t      source;
    eb_bytes_t      bus;
    eb_bytes_t      region;
    eb_bytes_t      account;
    eb_bytes_t      time;            /* RFC 3339, local offset */
    eb_bytes_t      publish_time;    /* RFC 3339, UTC */
    eb_bytes_t      publish_addr;

    /* the distributed tracing extension (W3C Trace Context): empty
     * traceparent, none; tracestate only with a traceparent */
    eb_bytes_t      traceparent;
    eb_bytes_t      tracestate;

    eb_bytes_t      path;
    eb_bytes_t      method;

    /* Lower-case names; repeated names are merged with ", ". */
    const eb_kv_t  *headers;
    size_t          nheaders;

    /* Decoded; repeated names are merged with ",". */
    const eb_kv_t  *query;
    size_t          nquery;

    eb_bytes_t      body;
    int             body_is_json;    /* body is validated JSON text */

    /* scratch memory for sorting and merging; never freed individually */
    eb_alloc_pt     alloc;
    void           *alloc_ctx;
} eb_http_event_t;


#define EB_HTTP_EVENT_TYPE  "eventbridge:Events:HTTPEvent"

/* Length of the subject "acs:eventbridge:REGION:ACCOUNT:eventbus/BUS/
 * eventsource/SOURCE", and the subject itself written to buf. */
size_t eb_http_event_subject_len(const eb_http_event_t *ev);
size_t eb_http_event_subject(const eb_http_event_t *ev, unsigned char *buf);

/* Generates the whole CloudEvent as one JSON object into g.
 * Returns 0, or -1 if the generator or the allocator failed. */
int eb_http_event_encode(yajl_gen g, const eb_http_event_t *ev);

#endif /* EB_HTTP_EVENT_H */
