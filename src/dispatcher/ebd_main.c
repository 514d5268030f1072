/*
 * ebd: the dispatcher's command line. See docs/ebd.md.
 *
 *   ebd [options]                          deliver (the daemon)
 *   ebd redrive [options] BUS TARGET       dead letters back to their target
 *   ebd trace [options] --bus BUS --event ID
 *   ebd trace [options] --bus BUS [--since T] [--until T] [--target NAME]
 *   ebd archive export [options] --bus BUS [--from T] [--to T] [--output F]
 *   ebd archive import [options] --bus BUS [--input F]
 *   ebd replay [options] --bus BUS --from T --to T [--rule R] [--target T]
 *              [--rate N] [--name NAME] [--dry-run]
 *   ebd replay [options] --status [--bus BUS]
 *   ebd pause [options] [TARGET [--reason TEXT]]
 *   ebd resume [options] TARGET
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ebd.h"
#include "ebd_log.h"
#include "ebd_metrics.h"


#define EBD_VERSION  "0.1.0"


static const char  ebd_usage[] =
"usage: ebd [options]                       run the dispatcher\n"
"       ebd redrive [options] BUS TARGET    send BUS's dead letters of TARGET\n"
"                                           back to TARGET\n"
"       ebd trace [options] --bus BUS --event ID\n"
"       ebd trace [options] --bus BUS [--since TIME] [--until TIME]\n"
"                 [--target NAME] [--limit N]\n"
"       ebd redrive ... [--limit N]: at most N dead letters\n"
"       ebd archive export [options] --bus BUS [--from TIME] [--to TIME]\n"
"                 [--output FILE]  BUS's events as NDJSON (default stdout)\n"
"       ebd archive import [options] --bus BUS [--input FILE]\n"
"                 NDJSON CloudEvents appended to BUS's events (default stdin)\n"
"       ebd replay [options] --bus BUS --from TIME --to TIME [--rule R[,R]]\n"
"                 [--target T[,T]] [--rate N] [--name NAME] [--dry-run]\n"
"                 BUS's events of the window matched again with the\n"
"                 current rules and sent to their targets once more\n"
"       ebd replay [options] --status [--bus BUS]   the replays and where\n"
"                 they are\n"
"       ebd pause [options] TARGET [--reason TEXT]   stop sending to TARGET\n"
"                 (every ebd, within a second) until ebd resume TARGET;\n"
"                 without TARGET: the paused targets\n"
"       ebd resume [options] TARGET\n"
"\n"
"options:\n"
"  -c, --config FILE      the bus configuration (default " 
                          "/etc/eventbridge/eventbridge.json)\n"
"  -t, --test-config      check the configuration (and the signing secrets\n"
"                         it names) and exit; connects to nothing\n"
"  -r, --redis ADDR[,ADDR...]\n"
"                         host:port, [v6]:port or /path/to.sock (default\n"
"                         127.0.0.1:6379); several with --cluster/--sentinel\n"
"      --cluster          the ADDRs are seeds of a Redis Cluster\n"
"      --sentinel MASTER  the ADDRs are Sentinels; MASTER is the name they\n"
"                         know the primary by\n"
"      --redis-user USER  Redis ACL user (or the EBD_REDIS_USER variable)\n"
"  -a, --password PASS    Redis password (or the EBD_REDIS_PASSWORD variable)\n"
"      --sentinel-password PASS\n"
"                         the Sentinels' password (or EBD_SENTINEL_PASSWORD)\n"
"      --redis-timeout DUR  drop and make again a Redis connection that does\n"
"                         not connect or answer within DUR (default 10s;\n"
"                         a blocking read gets --block more)\n"
"  -d, --db N             Redis database (default 0)\n"
"  -n, --consumer NAME    this process's name in the consumer groups\n"
"                         (default: the host name; unique per process)\n"
"  -w, --workers N        N worker processes under a master, consumers\n"
"                         NAME-1 .. NAME-N (default 1: no master)\n"
"  -l, --log-level LEVEL  error, warn, info (default) or debug\n"
"      --claim-idle DUR   take over entries other consumers left pending\n"
"                         longer than this (default 60s)\n"
"      --block DUR        how long one read waits for new entries (2s)\n"
"      --trace-maxlen N   approximate length cap of eb:{BUS}:trace (100000)\n"
"      --grace DUR        SIGTERM/SIGHUP: wait this long for deliveries in\n"
"                         flight (default 30s)\n"
"      --metrics ADDR     serve Prometheus metrics on http://ADDR/metrics\n"
"                         (host:port, [v6]:port or :port; default: none)\n"
"  -h, --help, -V, --version\n"
"\n"
"DUR: a number of milliseconds or 250ms, 10s, 5m, 2h, 1d.\n"
"TIME: ms since the epoch, RFC 3339 (2026-11-23T10:00:00Z), or -10m, now.\n"
"Signals: SIGTERM/SIGINT stop (deliveries in flight finish, the rest stays\n"
"pending in Redis); SIGHUP reloads the configuration.\n";


/* A duration option: milliseconds, or what the configuration file takes
 * ("250ms", "10s", "5m", "2h", "1d"). */
static int
ebd_duration_arg(const char *name, const char *s, uint64_t *ms)
{
    char  *end;

    *ms = strtoull(s, &end, 10);

    if ((end != s && *end == '\0') || eb_config_duration_str(s, ms) == 0) {
        return 0;
    }

    fprintf(stderr, "ebd: %s: invalid duration \"%s\"\n", name, s);
    return -1;
}


/* -r and its modes, before anything connects (names are resolved
 * later, by whoever connects). */
static int
ebd_check_redis(const ebd_opts_t *o)
{
    char         err[512];
    size_t       i, n;
    ebd_addr_t  *a;

    if (o->cluster && o->sentinel_master) {
        fprintf(stderr, "ebd: --cluster and --sentinel exclude each "
                "other\n");
        return -1;
    }

    if (o->cluster && o->redis_db) {
        fprintf(stderr, "ebd: -d: a Redis Cluster has database 0 only\n");
        return -1;
    }

    if (o->redis_user && o->redis_password == NULL) {
        fprintf(stderr, "ebd: --redis-user needs a password (-a or "
                "EBD_REDIS_PASSWORD)\n");
        return -1;
    }

    if (ebd_addr_list(o->redis_addr, &a, &n, err, sizeof(err)) != 0) {
        fprintf(stderr, "ebd: -r: %s\n", err);
        return -1;
    }

    for (i = 0; i < n; i++) {
        if (a[i].path[0] && (o->cluster || o->sentinel_master)) {
            fprintf(stderr, "ebd: -r: %s: a %s is reached over TCP\n",
                    a[i].path, o->cluster ? "cluster" : "sentinel");
            free(a);
            return -1;
        }
    }

    free(a);

    if (n > 1 && !o->cluster && !o->sentinel_master) {
        fprintf(stderr, "ebd: -r: %zu addresses need --cluster or "
                "--sentinel\n", n);
        return -1;
    }

    return 0;
}


/* -t: the file and ebd's own checks, as at start and on SIGHUP */
static int
ebd_test_config(const ebd_opts_t *o)
{
    char          err[EB_CONFIG_ERROR_MAX];
    eb_config_t  *cf;

    cf = ebd_config_load(o->config_file, err, sizeof(err));
    if (cf == NULL) {
        fprintf(stderr, "ebd: %s\nebd: configuration test failed\n", err);
        return 1;
    }

    eb_config_free(cf);
    fprintf(stderr, "ebd: configuration %s: test is successful\n",
            o->config_file);
    return 0;
}


int
main(int argc, char **argv)
{
    int          c, idx;
    char         host[256], err[512], *end;
    const char  *cmd;
    ebd_addr_t   maddr;
    ebd_opts_t   o;

    enum { O_CLAIM = 256, O_BLOCK, O_TRACE_MAXLEN, O_GRACE, O_BUS, O_EVENT,
           O_SINCE, O_UNTIL, O_TARGET, O_LIMIT, O_CLUSTER, O_SENTINEL,
           O_REDIS_USER, O_SENTINEL_PASSWORD, O_REDIS_TIMEOUT, O_METRICS,
           O_FROM, O_TO, O_OUTPUT, O_INPUT, O_RULE, O_RATE, O_NAME,
           O_DRY_RUN, O_STATUS, O_REASON };

    static const struct option  longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "test-config", no_argument, NULL, 't' },
        { "redis", required_argument, NULL, 'r' },
        { "password", required_argument, NULL, 'a' },
        { "cluster", no_argument, NULL, O_CLUSTER },
        { "sentinel", required_argument, NULL, O_SENTINEL },
        { "redis-user", required_argument, NULL, O_REDIS_USER },
        { "sentinel-password", required_argument, NULL, O_SENTINEL_PASSWORD },
        { "redis-timeout", required_argument, NULL, O_REDIS_TIMEOUT },
        { "db", required_argument, NULL, 'd' },
        { "consumer", required_argument, NULL, 'n' },
        { "workers", required_argument, NULL, 'w' },
        { "log-level", required_argument, NULL, 'l' },
        { "claim-idle", required_argument, NULL, O_CLAIM },
        { "block", required_argument, NULL, O_BLOCK },
        { "trace-maxlen", required_argument, NULL, O_TRACE_MAXLEN },
        { "grace", required_argument, NULL, O_GRACE },
        { "metrics", required_argument, NULL, O_METRICS },
        { "bus", required_argument, NULL, O_BUS },
        { "event", required_argument, NULL, O_EVENT },
        { "since", required_argument, NULL, O_SINCE },
        { "until", required_argument, NULL, O_UNTIL },
        { "target", required_argument, NULL, O_TARGET },
        { "limit", required_argument, NULL, O_LIMIT },
        { "from", required_argument, NULL, O_FROM },
        { "to", required_argument, NULL, O_TO },
        { "output", required_argument, NULL, O_OUTPUT },
        { "input", required_argument, NULL, O_INPUT },
        { "rule", required_argument, NULL, O_RULE },
        { "rate", required_argument, NULL, O_RATE },
        { "name", required_argument, NULL, O_NAME },
        { "dry-run", no_argument, NULL, O_DRY_RUN },
        { "status", no_argument, NULL, O_STATUS },
        { "reason", required_argument, NULL, O_REASON },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };

    memset(&o, 0, sizeof(o));
    o.config_file = "/etc/eventbridge/eventbridge.json";
    o.redis_addr = "127.0.0.1:6379";
    o.redis_password = getenv("EBD_REDIS_PASSWORD");
    o.redis_user = getenv("EBD_REDIS_USER");
    o.sentinel_password = getenv("EBD_SENTINEL_PASSWORD");
    o.redis_timeout_ms = 10000;
    o.claim_idle_ms = 60000;
    o.block_ms = 2000;
    o.trace_maxlen = 100000;
    o.grace_ms = 30000;
    o.workers = 1;

    if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0') {
        strcpy(host, "ebd");
    }
    host[sizeof(host) - 1] = '\0';
    o.consumer = host;

    while ((c = getopt_long(argc, argv, "c:r:a:d:n:w:l:thV", longopts, &idx))
           != -1)
    {
        switch (c) {
        case 'c':
            o.config_file = optarg;
            break;
        case 't':
            o.test_config = 1;
            break;
        case 'r':
            o.redis_addr = optarg;
            break;
        case 'a':
            o.redis_password = optarg;
            break;
        case O_CLUSTER:
            o.cluster = 1;
            break;
        case O_SENTINEL:
            if (optarg[0] == '\0') {
                fprintf(stderr, "ebd: --sentinel: the master's name is "
                        "empty\n");
                return 2;
            }
            o.sentinel_master = optarg;
            break;
        case O_REDIS_USER:
            o.redis_user = optarg;
            break;
        case O_SENTINEL_PASSWORD:
            o.sentinel_password = optarg;
            break;
        case O_REDIS_TIMEOUT:
            if (ebd_duration_arg("--redis-timeout", optarg,
                                 &o.redis_timeout_ms))
            {
                return 2;
            }
            if (o.redis_timeout_ms < 100) {
                fprintf(stderr, "ebd: --redis-timeout: 100ms at least, not "
                        "\"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'd':
            o.redis_db = (int) strtol(optarg, &end, 10);
            if (*end || o.redis_db < 0) {
                fprintf(stderr, "ebd: -d: invalid database \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'n':
            o.consumer = optarg;
            break;
        case 'w':
            o.workers = (unsigned) strtoul(optarg, &end, 10);
            if (*end || o.workers < 1 || o.workers > 64) {
                fprintf(stderr, "ebd: -w: 1 to 64 worker processes, not "
                        "\"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'l':
            if (ebd_log_set_level(optarg) != 0) {
                fprintf(stderr, "ebd: -l: unknown level \"%s\" (error, warn, "
                        "info, debug)\n", optarg);
                return 2;
            }
            break;
        case O_CLAIM:
            if (ebd_duration_arg("--claim-idle", optarg, &o.claim_idle_ms)) {
                return 2;
            }
            if (o.claim_idle_ms < 100) {
                o.claim_idle_ms = 100;
            }
            break;
        case O_BLOCK:
            if (ebd_duration_arg("--block", optarg, &o.block_ms)) {
                return 2;
            }
            if (o.block_ms == 0) {
                o.block_ms = 1;  /* BLOCK 0 would wait for ever */
            }
            break;
        case O_TRACE_MAXLEN:
            o.trace_maxlen = strtoll(optarg, &end, 10);
            if (*end || o.trace_maxlen < 1) {
                fprintf(stderr, "ebd: --trace-maxlen: invalid \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        case O_GRACE:
            if (ebd_duration_arg("--grace", optarg, &o.grace_ms)) {
                return 2;
            }
            break;
        case O_METRICS:
            if (ebd_listen_parse(optarg, &maddr, err, sizeof(err)) != 0) {
                fprintf(stderr, "ebd: --metrics: %s\n", err);
                return 2;
            }
            o.metrics = optarg;
            break;
        case O_BUS:
            o.bus = optarg;
            break;
        case O_EVENT:
            o.event = optarg;
            break;
        case O_SINCE:
            o.since = optarg;
            break;
        case O_UNTIL:
            o.until = optarg;
            break;
        case O_TARGET:
            o.target = optarg;
            break;
        case O_LIMIT:
            o.limit = strtoll(optarg, &end, 10);
            if (*end || o.limit < 1) {
                fprintf(stderr, "ebd: --limit: invalid \"%s\"\n", optarg);
                return 2;
            }
            break;
        case O_FROM:
            o.from = optarg;
            break;
        case O_TO:
            o.to = optarg;
            break;
        case O_OUTPUT:
            o.output = optarg;
            break;
        case O_INPUT:
            o.input = optarg;
            break;
        case O_RULE:
            o.rule = optarg;
            break;
        case O_RATE:
            o.rate = strtoull(optarg, &end, 10);
            if (*end || end == optarg || o.rate < 1 || optarg[0] == '-') {
                fprintf(stderr, "ebd: --rate: events per second, 1 or more, "
                        "not \"%s\"\n", optarg);
                return 2;
            }
            break;
        case O_NAME:
            o.name = optarg;
            break;
        case O_DRY_RUN:
            o.dry_run = 1;
            break;
        case O_STATUS:
            o.status = 1;
            break;
        case O_REASON:
            o.reason = optarg;
            break;
        case 'h':
            fputs(ebd_usage, stdout);
            return 0;
        case 'V':
            puts("ebd " EBD_VERSION);
            return 0;
        default:
            fputs(ebd_usage, stderr);
            return 2;
        }
    }

    if (ebd_check_redis(&o) != 0) {
        return 2;
    }

    if (o.test_config) {
        return ebd_test_config(&o);
    }

    /* options may come before or after the subcommand: getopt has put
     * the other words last */
    cmd = NULL;
    if (optind < argc && (strcmp(argv[optind], "redrive") == 0
                          || strcmp(argv[optind], "trace") == 0
                          || strcmp(argv[optind], "archive") == 0
                          || strcmp(argv[optind], "replay") == 0
                          || strcmp(argv[optind], "pause") == 0
                          || strcmp(argv[optind], "resume") == 0))
    {
        cmd = argv[optind++];
    }

    if (cmd == NULL && (o.bus || o.event || o.since || o.until || o.target
                        || o.limit))
    {
        fprintf(stderr, "ebd: --bus, --event, --since, --until, --target and "
                "--limit are options of \"ebd trace\" (--bus also of \"ebd "
                "archive\" and \"ebd replay\")\n");
        return 2;
    }

    if ((cmd == NULL || (strcmp(cmd, "archive") != 0
                         && strcmp(cmd, "replay") != 0))
        && (o.from || o.to || o.output || o.input))
    {
        fprintf(stderr, "ebd: --from, --to, --output and --input are options "
                "of \"ebd archive\" (--from and --to also of \"ebd "
                "replay\")\n");
        return 2;
    }

    if ((cmd == NULL || strcmp(cmd, "replay") != 0)
        && (o.rule || o.rate || o.name || o.dry_run || o.status))
    {
        fprintf(stderr, "ebd: --rule, --rate, --name, --dry-run and --status "
                "are options of \"ebd replay\"\n");
        return 2;
    }

    if ((cmd == NULL || strcmp(cmd, "pause") != 0) && o.reason) {
        fprintf(stderr, "ebd: --reason is an option of \"ebd pause\"\n");
        return 2;
    }

    if (cmd && (strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0)) {
        return ebd_pause_main(&o, argc - optind, argv + optind,
                              cmd[0] == 'r');
    }

    if (cmd && strcmp(cmd, "replay") == 0) {
        return ebd_replay_main(&o, argc - optind, argv + optind);
    }

    if (cmd && strcmp(cmd, "archive") == 0) {
        return ebd_archive_main(&o, argc - optind, argv + optind);
    }

    if (cmd && strcmp(cmd, "redrive") == 0) {
        return ebd_redrive_main(&o, argc - optind, argv + optind);
    }

    if (cmd && strcmp(cmd, "trace") == 0) {
        return ebd_trace_main(&o, argc - optind, argv + optind);
    }

    if (optind < argc) {
        fprintf(stderr, "ebd: unexpected argument \"%s\"\n%s", argv[optind],
                ebd_usage);
        return 2;
    }

    /* before the workers are forked: they share the counters and the
     * listening socket */
    if (ebd_metrics_open(&o, EBD_VERSION, err, sizeof(err)) != 0) {
        fprintf(stderr, "ebd: %s\n", err);
        return 1;
    }

    return o.workers > 1 ? ebd_master(&o) : ebd_run(&o);
}
