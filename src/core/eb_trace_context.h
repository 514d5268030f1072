/*
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) as events
 * carry it: the traceparent and tracestate of the CloudEvents distributed
 * tracing extension. The edge checks what a request brings and starts a
 * trace for an event that comes without one; ebd checks what it passes
 * on to targets as HTTP headers.
 */

#ifndef EB_TRACE_CONTEXT_H
#define EB_TRACE_CONTEXT_H

#include <stddef.h>
#include <sys/types.h>
#include <yajl/yajl_tree.h>

#include "eb_uuid.h"


/* version 00: "00-" 32 hex "-" 16 hex "-" 2 hex */
#define EB_TRACEPARENT_LEN      55
/* a later version's traceparent is passed on as it came, up to this */
#define EB_TRACEPARENT_MAX      256
/* a tracestate taken from a header, or sent as one, is cut to this by
 * dropping whole members (the specification asks for at least 512) */
#define EB_TRACESTATE_MAX       512
#define EB_TRACESTATE_MEMBERS   32


/*
 * 1 when p[0..len) is a traceparent to keep. Version 00 exactly as the
 * Recommendation (Trace Context Level 1, "traceparent Header Field
 * Values") defines it: lower-case hex, trace-id and parent-id not all
 * zeros, 55 characters. A later version (not ff) by its first fields, as
 * "Versioning of traceparent" says to parse it: trace-id and parent-id
 * as above, two hex flags characters, then the end or "-" and more
 * visible ASCII, at most EB_TRACEPARENT_MAX characters in all.
 */
int eb_traceparent_valid(const unsigned char *p, size_t len);

/* Starts a trace: writes EB_TRACEPARENT_LEN bytes, version 00, a random
 * trace-id and parent-id from g and flags 01 (sampled: the bus records
 * every event it accepts and every delivery attempt). 0, or -1 (errno
 * set) if the kernel gave no random bytes. */
int eb_traceparent_new(eb_uuid_gen_t *g, char *out);

/*
 * A tracestate list ("Tracestate Header"): members "key=value" separated
 * by commas, optional whitespace around them, empty members allowed; at
 * most 32 members, each key once. Writes the list to dst without the
 * optional whitespace and empty members, at most max bytes: when it is
 * longer, members of more than 128 characters go first, then members
 * from the end ("tracestate Limits"). Returns the length written (0: no
 * member left), or -1 if the list is malformed. dst may be p. dst NULL:
 * only checks, and returns the length of the whole list.
 */
ssize_t eb_tracestate_normalize(unsigned char *dst, size_t max,
    const unsigned char *p, size_t len);

/*
 * The traceparent attribute of a parsed event when it is a string that
 * eb_traceparent_valid() accepts, else NULL; *tracestate then its
 * tracestate attribute if a string (NULL otherwise), not checked.
 */
const char *eb_trace_context_of(yajl_val event, const char **tracestate);

#endif /* EB_TRACE_CONTEXT_H */
