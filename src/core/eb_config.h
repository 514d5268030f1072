/*
 * The bus configuration file: buses, rules, targets and connections, in
 * one JSON document read by nginx (`eventbridge_config PATH;`, for
 * matching) and by the dispatcher (for delivery). Every key is checked:
 * unknown keys, wrong types, invalid patterns, transforms and JSONPaths,
 * references to undefined targets or connections are refused with the
 * file, the place (a path such as buses.hr.rules.new-employee.pattern)
 * and what is wrong; JSON syntax errors with line and column.
 *
 * docs/configuration.md documents every key.
 */

#ifndef EB_CONFIG_H
#define EB_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#include "eb_jsonpath.h"
#include "eb_pattern.h"
#include "eb_transform.h"


typedef enum {
    EB_CONNECTION_BASIC = 0,
    EB_CONNECTION_API_KEY,
    EB_CONNECTION_OAUTH2
} eb_connection_type_t;


typedef enum {
    EB_TARGET_HTTP = 0,
    EB_TARGET_CLOUDEVENTS,
    EB_TARGET_MYSQL,
    EB_TARGET_POSTGRESQL,
    EB_TARGET_REDIS,
    EB_TARGET_DINGTALK
} eb_target_type_t;


typedef struct {
    const char            *name;
    eb_connection_type_t   type;
    yajl_val               spec;          /* the object, validated */
} eb_config_connection_t;


typedef struct {
    const char            *name;
    eb_target_type_t       type;
    yajl_val               spec;          /* the object, validated */
    int                    connection;    /* index, or -1 */
} eb_config_target_t;


typedef struct {
    size_t                 target;        /* index into eb_config_t.targets */
    eb_transform_t        *transform;     /* the ORIGINAL event when absent */
    /* per-key order (eb_order.h): the entry goes to one of "partitions"
     * streams by its key; 0: not ordered. order_path NULL: one key for
     * all (a NONE target without "ordering_key") */
    unsigned               partitions;
    eb_jsonpath_t         *order_path;
} eb_config_rule_target_t;


typedef struct {
    const char               *name;
    uint32_t                  id;         /* index in its bus's rules */
    int                       enabled;
    eb_config_rule_target_t  *targets;
    size_t                    ntargets;
} eb_config_rule_t;


typedef struct {
    const char            *name;
    eb_config_rule_t      *rules;
    size_t                 nrules;
    eb_ruleset_t          *ruleset;       /* the enabled rules, compiled */
    /* "retention" of eb:{BUS}:events, which ebd enforces; 0: not set */
    uint64_t               retention_age_ms;
    uint64_t               retention_length;
} eb_config_bus_t;


typedef struct {
    char                    *file;
    yajl_val                 root;
    eb_config_connection_t  *connections;
    size_t                   nconnections;
    eb_config_target_t      *targets;
    size_t                   ntargets;
    eb_config_bus_t         *buses;
    size_t                   nbuses;
} eb_config_t;


#define EB_CONFIG_ERROR_MAX  1024

/* the largest "length" of a bus's "retention" */
#define EB_CONFIG_RETENTION_LENGTH_MAX  1000000000000LL

/* secrets of one target's "signing", all kinds together */
#define EB_CONFIG_SIGNING_KEYS_MAX  8

/* Reads and checks the file. On failure returns NULL and err holds
 * "FILE: WHERE: WHAT" (FILE:LINE:COLUMN for JSON syntax errors). */
eb_config_t *eb_config_load(const char *file, char *err, size_t errlen);

/* The same for text already in memory; file only names it in messages. */
eb_config_t *eb_config_parse(const char *file, const unsigned char *text,
    size_t len, char *err, size_t errlen);

const eb_config_bus_t *eb_config_bus(const eb_config_t *cf, const char *name,
    size_t len);

void eb_config_free(eb_config_t *cf);

/* The member key of an object of the file (NULL when obj is not an
 * object or has no such member; with a repeated key, the first, the one
 * that was checked). Every reader of the file looks values up with it. */
yajl_val eb_config_get(yajl_val obj, const char *key);

/* A duration as the file writes it: a number of milliseconds, or a
 * string "250ms", "10s", "5m", "2h", "1d". Returns 0, or -1. */
int eb_config_duration(yajl_val v, uint64_t *ms);
/* The string form alone ("250ms" ... "1d"; a unit is required). */
int eb_config_duration_str(const char *s, uint64_t *ms);

#endif /* EB_CONFIG_H */
