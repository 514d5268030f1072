/*
 * OAuth2 client credentials for http and cloudevents targets: one token
 * cache per connection of the configuration, shared by every target that
 * names it. A token is fetched when first needed and kept until shortly
 * before it expires; attempts that need a token while it is being
 * fetched wait in a queue for that one fetch. A 401 from a target
 * invalidates the token it was given (ebd_oauth_invalidate), so that the
 * next request fetches a new one. After a failed fetch the next one waits
 * (1 s, doubling up to 60 s, back to none after a token): attempts that
 * need a token meanwhile fail at once, retryable, with the last error.
 *
 * Nothing here ever logs or reports the client secret or a token.
 */

#ifndef EBD_OAUTH_H
#define EBD_OAUTH_H

#include <stdint.h>

#include "eb_config.h"


typedef struct ebd_oauth_s       ebd_oauth_t;
typedef struct ebd_oauth_wait_s  ebd_oauth_wait_t;

/* authorization: a whole header line "Authorization: Bearer ..." to copy
 * (it is only valid during the call), and the token's generation for
 * ebd_oauth_invalidate(); or NULL and err, a one-line reason without
 * secrets. */
typedef void (*ebd_oauth_cb_pt)(ebd_oauth_wait_t *w,
    const char *authorization, uint64_t generation, const char *err);

struct ebd_oauth_wait_s {
    ebd_oauth_wait_t  *prev;       /* in the queue of a fetch */
    ebd_oauth_wait_t  *next;
    ebd_oauth_cb_pt    cb;
    int64_t            retry_after_ms;  /* with err: when the next fetch
                                         * may start, or -1 */
};


/* The cache of connection c (an oauth2 connection), created on first
 * use; every acquire is matched by a release. The caller must hold a
 * reference on the multi handle (ebd_http_multi_ref) meanwhile. */
ebd_oauth_t *ebd_oauth_acquire(const eb_config_connection_t *c,
    char *err, size_t errlen);
void ebd_oauth_release(ebd_oauth_t *o);

/* Calls w->cb once: at once when a token is cached, else when the fetch
 * (started now if none is running, with this timeout) ends. */
void ebd_oauth_token(ebd_oauth_t *o, ebd_oauth_wait_t *w,
    uint64_t timeout_ms);

/* Forgets the token of that generation (when it is still the current
 * one): the target answered 401 to it. */
void ebd_oauth_invalidate(ebd_oauth_t *o, uint64_t generation);

#endif /* EBD_OAUTH_H */
