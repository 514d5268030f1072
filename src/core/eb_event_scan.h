/*
 * The top-level members of a stored event, read in one pass of yajl's
 * streaming parser without building a tree: what a delivery needs when
 * no transform or JSONPath reads the event (its id, the attributes a
 * CloudEvents binary request sends as headers, the raw text of "data").
 * A tree costs an allocation per node and a second pass to write data
 * back out; this costs one buffer and keeps data's bytes as stored.
 */

#ifndef EB_EVENT_SCAN_H
#define EB_EVENT_SCAN_H

#include <stddef.h>

#include "eb_buf.h"
#include "eb_jsonpath.h"


typedef enum {
    EB_EV_STRING = 0,
    EB_EV_NUMBER,
    EB_EV_TRUE,
    EB_EV_FALSE,
    EB_EV_NULL,
    EB_EV_OBJECT,
    EB_EV_ARRAY
} eb_event_kind_t;


typedef struct {
    const char        *name;      /* decoded, NUL-terminated */
    size_t             name_len;  /* more than strlen(name) if the name
                                   * has a NUL of its own */
    eb_event_kind_t    kind;
    const char        *text;      /* a string decoded; a number, true or
                                   * false as written; NULL otherwise
                                   * (NUL-terminated; a string may hold
                                   * NUL bytes of its own: text_len) */
    size_t             text_len;
    size_t             start;     /* the value's raw bytes in the event: */
    size_t             end;       /* event[start..end) */
} eb_event_member_t;


typedef struct {
    eb_event_member_t  *members;  /* in the order of the text */
    size_t              n;
    char               *buf;      /* where names and texts live */
    eb_event_member_t  *found;    /* [npaths] of eb_event_scan_paths() */
    size_t              nfound;
    char               *fbuf;     /* where their texts live */
} eb_event_scan_t;


/* Reads event[0..len), which must be one JSON object (anything else, and
 * text that is not JSON, is -1 with a one-line reason in err). On 0 the
 * caller frees s with eb_event_scan_free(); on -1 s holds nothing. */
int eb_event_scan(const unsigned char *event, size_t len, eb_event_scan_t *s,
    char *err, size_t errlen);

/* The same, and the values at paths[0..npaths), simple JSONPaths
 * (eb_jsonpath_is_simple()), found in the same pass: what a tree would
 * give (of repeated names the last; a string's escapes decoded the same
 * way), without one. */
struct eb_jsonpath_s;
int eb_event_scan_paths(const unsigned char *event, size_t len,
    eb_event_scan_t *s, const struct eb_jsonpath_s *const *paths,
    size_t npaths, char *err, size_t errlen);

/* The value at paths[i]: NULL when the event has none. Its name is NULL;
 * a string, number or literal has its text; an object or array only
 * start and end. */
const eb_event_member_t *eb_event_scan_found(const eb_event_scan_t *s,
    size_t i);

/* The value at paths[i] as eb_jsonpath_text() writes it from a tree,
 * appended to b: a string's characters up to a NUL (a tree's strings
 * are C strings), a number's or literal's text, null as "null"
 * (EB_JSONPATH_NULL); EB_JSONPATH_MISSING: nothing. An object or array
 * is not written here: EB_JSONPATH_ERROR with b->failed unset, for the
 * caller to write it from a tree. */
eb_jsonpath_rc_t eb_event_scan_text(const eb_event_scan_t *s, size_t i,
    eb_buf_t *b);

/* The last member named name (as a JSON object's reader takes the last
 * of repeated keys), or NULL. */
const eb_event_member_t *eb_event_scan_get(const eb_event_scan_t *s,
    const char *name);

void eb_event_scan_free(eb_event_scan_t *s);

#endif /* EB_EVENT_SCAN_H */
