/*
 * The event console's checks of what a client sends: query parameters
 * (names, stream ids, limit) and the JSON bodies of POST api/dlq/redrive
 * and POST api/replay. Apart from nginx, so the unit tests and a fuzzer
 * reach them; the messages are the API's own (docs/console.md), sent by
 * the module as they are in a 400 InvalidParameter.
 */

#ifndef EB_CONSOLE_PARAMS_H
#define EB_CONSOLE_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "eb_str.h"


#define EB_CONSOLE_NAME_MAX      EB_NAME_MAX  /* bus, target, rule, replay */
#define EB_CONSOLE_ID_MAX        41       /* MS-SEQ: 19 digits each */
#define EB_CONSOLE_LIMIT_MAX     100      /* items per page */
#define EB_CONSOLE_REDRIVE_MAX   100      /* letters per POST */
#define EB_CONSOLE_LIST_MAX      256      /* rules, targets of a replay */
#define EB_CONSOLE_RATE_MAX      1000000000   /* events/s */
#define EB_CONSOLE_BODY_MAX      65536    /* a POST's body */


/* data[0..len); NUL-terminated except a list's items */
typedef struct {
    const char  *data;
    size_t       len;
} eb_console_str_t;


/* a stream id, MS or MS-SEQ, 1 to 19 digits each: 0, else -1 */
#define EB_CONSOLE_ID_SEQ     1   /* MS-SEQ only (an entry, not a time) */
#define EB_CONSOLE_ID_CURSOR  2   /* not 0 or 0-0: "(0-0" is no range */

int eb_console_id(const unsigned char *p, size_t len, unsigned flags);

/* "limit": 1 to EB_CONSOLE_LIMIT_MAX, digits only: 0, else -1 */
int eb_console_limit(const unsigned char *p, size_t len, unsigned *limit);

/* A replay's window as ebd replay takes it: what arrives from now on is
 * delivered live, so a window ending now or later ends 1 ms before.
 * NULL, or the message. */
const char *eb_console_window(int64_t from, int64_t *to, int64_t now);


typedef struct {
    eb_console_str_t  bus;
    eb_console_str_t  target;
    eb_console_str_t  ids[EB_CONSOLE_REDRIVE_MAX];
    size_t            nids;
    unsigned          all;         /* "all": true (nids is 0) */
} eb_console_redrive_t;

typedef struct {
    /* "a,b" as the state hash keeps it; the items point into it */
    eb_console_str_t  joined;
    eb_console_str_t  items[EB_CONSOLE_LIST_MAX];
    size_t            n;           /* 0: not given */
} eb_console_list_t;

typedef struct {
    eb_console_str_t   bus;
    int64_t            from;
    int64_t            to;         /* clipped as eb_console_window() */
    eb_console_list_t  rules;
    eb_console_list_t  targets;
    int64_t            rate;       /* 0: unpaced */
    eb_console_str_t   name;       /* data NULL: not given */
    char               default_name[EB_CONSOLE_NAME_MAX + 1];
} eb_console_replay_t;


/* A body: the strings are copied into buf, which must hold len + 1 bytes
 * (it holds the text, NUL-terminated, while yajl parses it; no string is
 * longer than its JSON text). Nothing else is kept: yajl's tree is freed
 * before they return. NULL, or the message naming the member. */
const char *eb_console_redrive_parse(const unsigned char *body, size_t len,
    char *buf, size_t size, eb_console_redrive_t *rd);
/* now: ms since the epoch, for the window */
const char *eb_console_replay_parse(const unsigned char *body, size_t len,
    int64_t now, char *buf, size_t size, eb_console_replay_t *rp);

/* The name ebd replay gives a replay when the body has none:
 * FROM-TO[-RULES][-TARGETS], commas as dots, in rp->default_name; a
 * given name is left alone. NULL, or the message when it would be over
 * EB_CONSOLE_NAME_MAX. */
const char *eb_console_replay_name(eb_console_replay_t *rp);

#endif /* EB_CONSOLE_PARAMS_H */
