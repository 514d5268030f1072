/*
 * hiredis on ebd's libevent loop (ebd_redis_loop.c): in place of
 * hiredis' own adapter, a persistent read event and commands written at
 * the end of the loop turn that queued them.
 */

#ifndef EBD_REDIS_LOOP_H
#define EBD_REDIS_LOOP_H

#include <event2/event.h>
#include <hiredis/async.h>


/* Returns 0, or -1 (out of memory, or ac already attached). */
int ebd_redis_attach(redisAsyncContext *ac, struct event_base *base);

#endif /* EBD_REDIS_LOOP_H */
