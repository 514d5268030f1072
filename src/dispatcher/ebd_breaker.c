/*
 * A target's circuit breaker ("circuit_breaker": {"failures": N,
 * "cooldown": T}). After N attempts in a row failed with a transient
 * error (EBD_RETRY: a connection refused, a timeout, 429, 5xx), the
 * target is open: nothing is sent to it for T, so that a target that is
 * down is not hammered by every retry that comes due, and its entries
 * keep their attempts for when it is back (they wait in the target's
 * queue, not in their retry count). Then one attempt goes as a probe
 * (half open): delivered closes the breaker, failed opens it for another
 * T. Any attempt delivered meanwhile closes it too. A rejected attempt
 * (4xx, a data error) says nothing of the target and does not count.
 *
 * The state is the process's own (each ebd worker and host has its
 * breaker); ebd_circuit_open{bus,target} counts the workers whose
 * breaker is open, and the trace's "retry" entry that opens it says so.
 */

#include <stdio.h>
#include <string.h>

#include "ebd_core.h"
#include "ebd_log.h"


static void
ebd_breaker_timer(evutil_socket_t fd, short what, void *arg)
{
    ebd_target_pump(arg);
}


static void
ebd_breaker_publish(ebd_tcore_t *tc, int open)
{
    size_t        i;
    ebd_route_t  *r;
    ebd_disp_t   *dp = tc->dp;

    for (i = 0; i < dp->nroutes; i++) {
        r = dp->routes[i];
        if (r->target == &tc->target) {
            ebd_metrics_circuit(r->metrics, open);
        }
    }
}


int
ebd_breaker_setup(ebd_tcore_t *tc, yajl_val spec)
{
    yajl_val  v;

    tc->cb_failures = 0;

    if (spec == NULL) {
        return 0;
    }

    v = eb_config_get(spec, "failures");
    tc->cb_failures = v && YAJL_IS_INTEGER(v) ? (unsigned) YAJL_GET_INTEGER(v)
                                              : 5;

    if (eb_config_duration(eb_config_get(spec, "cooldown"),
                           &tc->cb_cooldown_ms) != 0
        || tc->cb_cooldown_ms == 0)
    {
        tc->cb_cooldown_ms = 30000;
    }

    tc->cb_timer = evtimer_new(tc->target.base, ebd_breaker_timer, tc);

    return tc->cb_timer != NULL ? 0 : -1;
}


void
ebd_breaker_free(ebd_tcore_t *tc)
{
    if (tc->cb_state != EBD_CB_CLOSED) {
        ebd_breaker_publish(tc, 0);
        tc->cb_state = EBD_CB_CLOSED;
    }

    if (tc->cb_timer != NULL) {
        event_free(tc->cb_timer);
        tc->cb_timer = NULL;
    }
}


/* Whether it may go now (the pump's last check): always when closed;
 * open, only once the cool-down is over, and then as the one probe. */
int
ebd_breaker_allows(ebd_tcore_t *tc, ebd_item_t *it)
{
    uint64_t        now;
    struct timeval  tv;

    if (tc->cb_failures == 0 || tc->cb_state == EBD_CB_CLOSED) {
        return 1;
    }

    if (tc->cb_probe != NULL) {
        return 0;               /* half open: the probe is out */
    }

    now = ebd_mono_us() / 1000;

    if (tc->cb_state == EBD_CB_OPEN && now < tc->cb_open_until) {
        if (!evtimer_pending(tc->cb_timer, NULL)) {
            tv.tv_sec = (tc->cb_open_until - now) / 1000;
            tv.tv_usec = ((tc->cb_open_until - now) % 1000) * 1000 + 1000;
            evtimer_add(tc->cb_timer, &tv);
        }
        return 0;
    }

    if (tc->cb_state == EBD_CB_OPEN) {
        tc->cb_state = EBD_CB_HALF_OPEN;
        ebd_log(EBD_LOG_INFO, "target %s: circuit half open: one attempt "
                "as a probe", tc->target.name);
    }

    tc->cb_probe = it;
    return 1;
}


/* An attempt's outcome; may add to the trace's error text (err, of
 * errlen bytes) that the circuit opened. */
void
ebd_breaker_result(ebd_tcore_t *tc, ebd_item_t *it, ebd_outcome_t outcome,
    char *err, size_t errlen)
{
    size_t  len;
    int     probe;

    if (tc->cb_failures == 0) {
        return;
    }

    probe = (it == tc->cb_probe);
    if (probe) {
        tc->cb_probe = NULL;
    }

    if (it->undeliverable || it->no_rule || outcome == EBD_REJECTED) {
        return;                 /* the event's (or the configuration's)
                                 * fault, not the target's */
    }

    if (outcome == EBD_DELIVERED) {
        tc->cb_consecutive = 0;

        if (tc->cb_state != EBD_CB_CLOSED) {
            tc->cb_state = EBD_CB_CLOSED;
            if (evtimer_pending(tc->cb_timer, NULL)) {
                evtimer_del(tc->cb_timer);
            }
            ebd_breaker_publish(tc, 0);
            ebd_log(EBD_LOG_INFO, "target %s: circuit closed: an attempt "
                    "was delivered", tc->target.name);
        }
        return;
    }

    tc->cb_consecutive++;

    if ((tc->cb_state == EBD_CB_CLOSED
         && tc->cb_consecutive >= tc->cb_failures)
        || (tc->cb_state == EBD_CB_HALF_OPEN && probe))
    {
        ebd_breaker_publish(tc, 1);
        tc->cb_state = EBD_CB_OPEN;
        tc->cb_open_until = ebd_mono_us() / 1000 + tc->cb_cooldown_ms;

        ebd_log(EBD_LOG_WARN, "target %s: circuit open for %llu ms after "
                "%u failed attempt(s) in a row", tc->target.name,
                (unsigned long long) tc->cb_cooldown_ms, tc->cb_consecutive);

        len = strlen(err);
        if (len < errlen) {
            snprintf(err + len, errlen - len, "; circuit open for %llu ms",
                     (unsigned long long) tc->cb_cooldown_ms);
        }
    }
}
