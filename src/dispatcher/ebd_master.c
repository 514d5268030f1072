/*
 * ebd -w N: a master process and N worker processes, as nginx does it.
 * One ebd is one thread on one core; workers share the consumer groups
 * like separate ebd processes would, each under its own consumer name
 * (NAME-1 ... NAME-N, stable across restarts, so that a restarted worker
 * delivers what it held first). The master only forwards signals and
 * starts a worker again when one dies of anything but a clean exit.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ebd.h"
#include "ebd_log.h"
#include "ebd_metrics.h"


#define EBD_WORKERS_MAX  64


typedef struct {
    pid_t      pid;
    unsigned   index;           /* its cells of the metrics */
    char       name[300];
    time_t     started;
} ebd_worker_t;


static pid_t
ebd_spawn(ebd_opts_t *o, ebd_worker_t *w, const sigset_t *old)
{
    pid_t  pid;

    pid = fork();

    if (pid == 0) {
        sigprocmask(SIG_SETMASK, old, NULL);
        ebd_metrics_worker(w->index);
        o->consumer = w->name;
        o->workers = 1;
        o->worker = w->index;
        exit(ebd_run(o));
    }

    if (pid < 0) {
        ebd_log(EBD_LOG_ERROR, "ebd: fork: %s", strerror(errno));
        return -1;
    }

    w->pid = pid;
    w->started = time(NULL);
    return pid;
}


int
ebd_master(ebd_opts_t *o)
{
    int            sig, st, rc, stopping, alive;
    char           err[EB_CONFIG_ERROR_MAX];
    pid_t          pid;
    unsigned       i, n = o->workers;
    sigset_t       set, old;
    eb_config_t   *cf;
    ebd_worker_t   w[EBD_WORKERS_MAX];

    /* a configuration that cannot work stops here, not in N workers */
    cf = ebd_config_load(o->config_file, err, sizeof(err));
    if (cf == NULL) {
        ebd_log(EBD_LOG_ERROR, "ebd: %s", err);
        return 1;
    }
    eb_config_free(cf);

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &old);

    ebd_log(EBD_LOG_INFO, "ebd: master %d: %u workers, consumers %s-1 .. "
            "%s-%u", (int) getpid(), n, o->consumer, o->consumer, n);

    memset(w, 0, sizeof(w));
    for (i = 0; i < n; i++) {
        snprintf(w[i].name, sizeof(w[i].name), "%s-%u", o->consumer, i + 1);
        w[i].index = i;
        if (ebd_spawn(o, &w[i], &old) < 0) {
            return 1;
        }
    }

    stopping = 0;
    rc = 0;

    for ( ;; ) {
        if (sigwait(&set, &sig) != 0) {
            continue;
        }

        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
            if (sig != SIGHUP) {
                stopping = 1;
            }
            for (i = 0; i < n; i++) {
                if (w[i].pid > 0) {
                    kill(w[i].pid, sig);
                }
            }
            continue;
        }

        /* SIGCHLD */
        while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
            for (i = 0; i < n && w[i].pid != pid; i++) { /* void */ }
            if (i == n) {
                continue;
            }

            w[i].pid = 0;

            if (stopping) {
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                    rc = 1;
                }
                continue;
            }

            if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
                /* it could not start (Redis address, a target): the
                 * others cannot either */
                ebd_log(EBD_LOG_ERROR, "ebd: worker %s exited with status "
                        "%d; stopping", w[i].name, WEXITSTATUS(st));
                rc = 1;
                stopping = 1;
                for (unsigned j = 0; j < n; j++) {
                    if (w[j].pid > 0) {
                        kill(w[j].pid, SIGTERM);
                    }
                }
                continue;
            }

            ebd_log(EBD_LOG_ERROR, "ebd: worker %s (pid %d) %s %d; starting "
                    "it again", w[i].name, (int) pid,
                    WIFSIGNALED(st) ? "killed by signal" : "exited with",
                    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));

            if (time(NULL) - w[i].started < 1) {
                sleep(1);       /* no restart storm */
            }

            ebd_metrics_worker_restarted();
            (void) ebd_spawn(o, &w[i], &old);
        }

        alive = 0;
        for (i = 0; i < n; i++) {
            alive += w[i].pid > 0;
        }

        if (stopping && alive == 0) {
            ebd_log(EBD_LOG_INFO, "ebd: master: all workers stopped");
            return rc;
        }
    }
}
