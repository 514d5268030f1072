/*
 * Rules in nginx: `eventbridge_config PATH;` loads the bus configuration
 * file (src/core/eb_config.c checks all of it, so `nginx -t` refuses a bad
 * file), and the RESP fragments of every (rule, target) fan-out are built
 * here once, so that per event only the JSON is copied between them.
 * Matching runs in the worker against the bus's compiled ruleset, with a
 * per-worker scratch so that it allocates nothing.
 */

#include "ngx_http_eventbridge.h"


/* per worker: matching scratch (workers are single-threaded) */
static eb_match_scratch_t  *ngx_http_eventbridge_scratch;


static void
ngx_http_eventbridge_config_cleanup(void *data)
{
    eb_config_free(data);
}


static ngx_int_t
ngx_http_eventbridge_build_bus(ngx_conf_t *cf,
    ngx_http_eventbridge_bus_t *bus, const eb_config_t *ecf,
    const eb_config_bus_t *ebus)
{
    u_char                         *p;
    size_t                          klen, nlen;
    ngx_uint_t                      i, j;
    const eb_config_rule_t         *er;
    const eb_config_target_t       *et;
    ngx_http_eventbridge_rule_t    *rule;
    ngx_http_eventbridge_fanout_t  *fo;

    bus->name.data = (u_char *) ebus->name;
    bus->name.len = ngx_strlen(ebus->name);
    bus->conf = ebus;
    bus->nrules = ebus->nrules;

    bus->rules = ngx_pcalloc(cf->pool, (ebus->nrules ? ebus->nrules : 1)
                                       * sizeof(ngx_http_eventbridge_rule_t));
    if (bus->rules == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < ebus->nrules; i++) {
        er = &ebus->rules[i];
        rule = &bus->rules[er->id];

        rule->name.data = (u_char *) er->name;
        rule->name.len = ngx_strlen(er->name);
        rule->ntargets = er->ntargets;

        rule->targets = ngx_pcalloc(cf->pool, (er->ntargets ? er->ntargets : 1)
                                      * sizeof(ngx_http_eventbridge_fanout_t));
        if (rule->targets == NULL) {
            return NGX_ERROR;
        }

        nlen = rule->name.len;

        for (j = 0; j < er->ntargets; j++) {
            et = &ecf->targets[er->targets[j].target];
            fo = &rule->targets[j];

            /* eb:{BUS}:target:TARGET */
            klen = sizeof("eb:{}:target:") - 1 + bus->name.len
                   + ngx_strlen(et->name);

            /* target streams are work queues for ebd: never trimmed here */
            fo->head.data = ngx_pnalloc(cf->pool, 64 + klen);
            if (fo->head.data == NULL) {
                return NGX_ERROR;
            }

            p = ngx_sprintf(fo->head.data,
                            "*7\r\n$4\r\nXADD\r\n$%uz\r\neb:{%V}:target:%s\r\n"
                            "$1\r\n*\r\n$5\r\nevent\r\n",
                            klen, &bus->name, et->name);
            fo->head.len = p - fo->head.data;

            fo->tail.data = ngx_pnalloc(cf->pool, 32 + nlen);
            if (fo->tail.data == NULL) {
                return NGX_ERROR;
            }

            p = ngx_sprintf(fo->tail.data, "$4\r\nrule\r\n$%uz\r\n%V\r\n",
                            nlen, &rule->name);
            fo->tail.len = p - fo->tail.data;

            /* the same, as the dedupe script's arguments */
            fo->key.data = ngx_pnalloc(cf->pool, klen);
            if (fo->key.data == NULL) {
                return NGX_ERROR;
            }

            fo->key.len = ngx_sprintf(fo->key.data, "eb:{%V}:target:%s",
                                      &bus->name, et->name)
                          - fo->key.data;
            fo->rule = rule->name;

            if (er->targets[j].partitions) {
                fo->conf = &er->targets[j];
                fo->prefix.data = ngx_pnalloc(cf->pool, klen + 3);
                if (fo->prefix.data == NULL) {
                    return NGX_ERROR;
                }
                fo->prefix.len = ngx_sprintf(fo->prefix.data, "%V:p:",
                                             &fo->key)
                                 - fo->prefix.data;
            }
        }
    }

    return NGX_OK;
}


char *
ngx_http_eventbridge_config_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_eventbridge_main_conf_t  *mcf = conf;

    char                         err[EB_CONFIG_ERROR_MAX];
    ngx_str_t                   *value, file;
    ngx_uint_t                   i;
    eb_config_t                 *ecf;
    ngx_pool_cleanup_t          *cln;
    ngx_http_eventbridge_bus_t  *bus;

    if (mcf->config) {
        return "is duplicate";
    }

    value = cf->args->elts;
    file = value[1];

    /* relative to nginx's configuration prefix, as include is */
    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ecf = eb_config_load((char *) file.data, err, sizeof(err));
    if (ecf == NULL) {
        ngx_http_eventbridge_conf_error(cf, "%s", err);
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        eb_config_free(ecf);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_eventbridge_config_cleanup;
    cln->data = ecf;

    mcf->config = ecf;
    mcf->config_file = file;

    mcf->buses = ngx_array_create(cf->pool, ecf->nbuses ? ecf->nbuses : 1,
                                  sizeof(ngx_http_eventbridge_bus_t));
    if (mcf->buses == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < ecf->nbuses; i++) {
        bus = ngx_array_push(mcf->buses);
        if (bus == NULL
            || ngx_http_eventbridge_build_bus(cf, bus, ecf, &ecf->buses[i])
               != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


ngx_http_eventbridge_bus_t *
ngx_http_eventbridge_find_bus(ngx_http_eventbridge_main_conf_t *mcf,
    ngx_str_t *name)
{
    ngx_uint_t                   i;
    ngx_http_eventbridge_bus_t  *bus;

    if (mcf->buses == NULL) {
        return NULL;
    }

    bus = mcf->buses->elts;

    for (i = 0; i < mcf->buses->nelts; i++) {
        if (bus[i].name.len == name->len
            && ngx_strncmp(bus[i].name.data, name->data, name->len) == 0)
        {
            return &bus[i];
        }
    }

    return NULL;
}


ngx_int_t
ngx_http_eventbridge_rules_init_worker(ngx_cycle_t *cycle)
{
    ngx_http_eventbridge_scratch = eb_match_scratch_new();

    if (ngx_http_eventbridge_scratch == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "eventbridge: no memory for rule matching");
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_eventbridge_match(ngx_http_eventbridge_bus_t *bus, ngx_str_t *event,
    uint32_t *ids, ngx_uint_t max)
{
    int  n;

    if (bus == NULL || bus->nrules == 0 || ngx_http_eventbridge_scratch == NULL)
    {
        return 0;
    }

    n = eb_ruleset_match_json(bus->conf->ruleset, ngx_http_eventbridge_scratch,
                              event->data, event->len, ids, max);

    return n < 0 ? NGX_ERROR : (ngx_int_t) ngx_min((ngx_uint_t) n, max);
}
