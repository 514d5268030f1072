/*
 * Event patterns: the rule language of AWS EventBridge (and of the seed's
 * Alibaba EventBridge), compiled for a whole bus into one matcher whose
 * cost follows the event, not the number of rules.
 *
 * THE LANGUAGE
 *
 * A pattern is a JSON object; its leaves are non-empty arrays of
 * conditions. An event matches when every leaf matches (AND across
 * fields) and a leaf matches when one of its conditions matches one value
 * of its field (OR within a list):
 *
 *   {"source": ["my.dingtalk"],
 *    "data": {"body": {"syncAction": ["user_add_org", "user_leave_org"]}}}
 *
 * Conditions (the element of a leaf array):
 *
 *   "s", 300, true, false, null      exact value; numbers compare as
 *                                    numbers (3.0e2 equals 300, -0 equals
 *                                    0; integers exact up to 2^64, see
 *                                    Limits), strings never equal numbers
 *   {"prefix": "s"}                  strings starting with s ("" : every
 *   {"suffix": "s"}                  string); ending with s
 *   {"prefix": {"equals-ignore-case": "s"}}, and the same for suffix
 *   {"equals-ignore-case": "s"}      case-insensitive string equality
 *   {"contains": "s"}                strings containing s (Alibaba)
 *   {"wildcard": "a*b"}              '*' is any run of characters; \* is a
 *                                    star, \\ a backslash; "**" refused
 *   {"numeric": [">", 0, "<=", 5]}   numbers in a range: "=" alone, or one
 *                                    of > >= and/or one of < <=
 *   {"cidr": "10.0.0.0/8"}           strings that are IPv4 (IPv6) addresses
 *                                    inside the block
 *   {"exists": true}                 the field has a value (null too)
 *   {"exists": false}                the field has no value anywhere in
 *                                    the event (missing is not null)
 *   {"anything-but": V}              any value other than V: V a scalar or
 *                                    a list of scalars; or V an object
 *                                    {"prefix"|"suffix"|"wildcard"|
 *                                    "equals-ignore-case": s or [s, ...]}:
 *                                    strings matching none of them
 *   {"regex": "^a[0-9]+$"}           PCRE2 (UTF, searched like grep: anchor
 *                                    it with ^ and $), JIT-compiled; a match
 *                                    that hits the match limit is no match
 *
 * Several operators in ONE object must all hold for the same value (AND
 * on one field): {"prefix": "a", "suffix": "z"} matches "abcz". Several
 * objects in the list are OR, as always.
 *
 * "$or": [pattern, ...] may stand beside the fields of any object: the
 * object matches when its own fields and one of the alternatives match (the
 * alternatives may nest further "$or"s).
 *
 * Values inside event arrays match one by one ("any element"). Arrays of
 * objects are array-consistent, as in EventBridge: the values that make a
 * rule match must not come from different elements of the same array
 * ({"a": {"b": [1], "c": [2]}} does not match {"a": [{"b": 1}, {"c": 2}]}).
 * Object keys are path segments: {"a.b": [1]} names the key "a.b", not
 * a -> b. Matching looks at values; an object is not a value (so "exists"
 * applies to leaves only, as in EventBridge).
 *
 * Not accepted (each with an error "PATH: reason", PATH the JSON path in
 * the pattern, e.g. 'data.body.syncAction[0]: unknown operator "prefx"'):
 * a pattern that is not an object, an empty object or list, a leaf that
 * is not an array, nested arrays, unknown operators or wrong operand
 * types, numbers that are not finite, a bad numeric sequence or an empty
 * range, bad CIDR blocks, consecutive "**" or more than
 * EB_PATTERN_MAX_WILDCARDS stars, regexes that do not compile, lack JIT,
 * or are longer than EB_PATTERN_MAX_REGEX bytes, "$or" expanding to more
 * than EB_PATTERN_MAX_ALTERNATIVES alternatives, nesting deeper than
 * EB_PATTERN_MAX_DEPTH.
 *
 * THE MATCHER (design; see eb_pattern_compile.c for the details)
 *
 * Compile. Each pattern is expanded into alternatives without "$or" (a
 * rule matches when one of them does). An alternative is a set of
 * conjuncts (path, condition list). All paths of all rules form a trie of
 * key segments (the "path trie"); each leaf path is a field with a dense
 * id. The conjuncts of an alternative are sorted, selective ones first
 * (exact values, then prefixes/ranges, then exists:false, then broad
 * ones: anything-but, exists, regex), and the alternatives of ALL rules
 * are inserted into one trie of states: a state has, per field, one value
 * index (a "matcher") whose entries lead to child states; identical
 * conjunct prefixes share states, and a state lists the rules that end
 * there. A matcher indexes its conditions by kind:
 *   - exact strings, numbers (by value), literals, case-folded strings:
 *     one hash probe;
 *   - prefixes and suffixes (also case-folded, and the literal head or
 *     tail of a wildcard): one hash probe per distinct length;
 *   - CIDR blocks: one probe per distinct prefix length;
 *   - numeric ranges: a segment tree over the sorted end points (a point
 *     query costs O(log n + hits));
 *   - contains, and the middle literal of "*a*" wildcards: an Aho-Corasick
 *     automaton, one pass over the value;
 *   - exists:true, anything-but, regex: a list checked per value (these
 *     match most values, so this work is the progress they make);
 *   - exists:false: a list followed when the field has no value.
 * Conditions with several operators are indexed by their most selective
 * operator and verified on the others.
 *
 * Match. The event is scanned once (a strict JSON scanner); only the
 * subtrees whose key paths are in the path trie are kept, as (field,
 * value, array trail) triples, sorted by field. Matching starts at the
 * root state and, from every state reached, looks up the event's values
 * for the fields that state has matchers for (joining the state's sorted
 * field list with the event's); every index hit is a transition to a child
 * state. The array trail (which element of which array of objects a value
 * came from) is checked on every step; states are visited once per
 * distinct relevant trail, so a value array cannot make work explode.
 *
 * Cost per event: O(event bytes) to scan, plus, for every state reached,
 * O(min(fields of the state, fields of the event)) to join and O(1)
 * probes per value and index kind (O(distinct lengths) for prefixes and
 * suffixes, O(log n) for ranges, O(value length) for contains), plus the
 * entries that hit. Rules that do not progress cost nothing: 10 or 10,000
 * rules on the same fields cost about the same. Compile: O(total pattern
 * size x log) time; memory O(total pattern size) plus, per state, the
 * sorted list of the fields used below it.
 *
 * Limits and choices:
 *   - Numbers, in patterns and events alike, compare as long doubles
 *     (x86-64: 80-bit extended, a 64-bit significand), each read once
 *     with one correct rounding: every integer of magnitude up to 2^64
 *     is exact (9007199254740993 is not 9007199254740992; all int64 and
 *     uint64 ids), and numbers of up to 18 significant digits keep their
 *     order and stay distinct. Rounded to 64 significant bits: longer
 *     integers (2^64 + 1 equals 2^64) and decimals binary cannot hold
 *     (0.1, which equals 0.10 and 1e-1, as it always did). Magnitudes
 *     past about 1.19e4932 are not finite: refused in a pattern,
 *     +-infinity in an event. Where long double is a double (not x86-64
 *     or aarch64) integers are exact only up to 2^53. Numbers with more
 *     than a 64-bit significand or an exponent past 1e+-27 go to
 *     strtold(), which wants the C locale's decimal point (nginx and the
 *     dispatcher never call setlocale()).
 *   - Case-insensitive operators fold ASCII, Latin-1, Latin Extended-A,
 *     Greek, Cyrillic and full-width Latin letters, one character to one
 *     (no "ss" for a sharp s, no Turkish dotted I).
 *   - Strings compare as bytes after JSON unescaping; event strings are
 *     not checked for UTF-8 (the module checks them before).
 *   - exists:false looks at the whole event, arrays included: a field
 *     present in one element of an array of objects is present.
 *   - A key repeated in one event object acts as if its values were
 *     merged (like the elements of an array, without array positions).
 *   - anything-but, exists:true and regex conditions are checked one by
 *     one for each value of their field in the states that reach them
 *     (sorted last in their rule, after its selective conditions);
 *     prefixes and suffixes cost one probe per distinct length.
 *   - Events nested deeper than EB_PATTERN_EVENT_MAX_DEPTH are refused.
 *
 * Thread model: a compiled ruleset is read-only and may be shared by any
 * number of threads; each thread matches with its own scratch, which
 * keeps every buffer between calls so that steady-state matching does not
 * allocate.
 */

#ifndef EB_PATTERN_H
#define EB_PATTERN_H

#include <stddef.h>
#include <stdint.h>


#define EB_PATTERN_MAX_DEPTH          32     /* pattern object nesting */
#define EB_PATTERN_MAX_ALTERNATIVES   1024   /* after expanding "$or" */
#define EB_PATTERN_MAX_CONJUNCTS      256    /* fields per alternative */
#define EB_PATTERN_MAX_WILDCARDS      16     /* stars in one wildcard */
#define EB_PATTERN_MAX_REGEX          1024   /* bytes of one regex */
#define EB_PATTERN_MAX_RULE_ID        ((1u << 24) - 1)

#define EB_PATTERN_EVENT_MAX_DEPTH    256    /* event nesting */

#define EB_PATTERN_REGEX_MATCH_LIMIT  100000
#define EB_PATTERN_REGEX_DEPTH_LIMIT  1000

/* negative returns of the match functions */
#define EB_PATTERN_BAD_EVENT   -1     /* not a JSON object, or too deep */
#define EB_PATTERN_NOMEM       -2
#define EB_PATTERN_MISUSE      -3     /* not compiled, or foreign event */


typedef struct eb_ruleset_s         eb_ruleset_t;
typedef struct eb_match_scratch_s   eb_match_scratch_t;
typedef struct eb_pattern_event_s   eb_pattern_event_t;


eb_ruleset_t *eb_ruleset_new(void);

/* Adds one rule. rule_id is chosen by the caller (dense small integers,
 * at most EB_PATTERN_MAX_RULE_ID); adding the same id again ORs the
 * patterns. Returns 0, or -1 with err = "PATH: what is wrong". */
int eb_ruleset_add(eb_ruleset_t *rs, uint32_t rule_id,
    const unsigned char *pattern_json, size_t len, char *err, size_t errlen);

/* Builds the matcher, after all adds; no add afterwards. Returns 0, or -1
 * with err set (out of memory). */
int eb_ruleset_compile(eb_ruleset_t *rs, char *err, size_t errlen);

void eb_ruleset_free(eb_ruleset_t *rs);

/* Checks a pattern alone: 0, or -1 with err as eb_ruleset_add() sets it. */
int eb_pattern_check(const unsigned char *pattern_json, size_t len,
    char *err, size_t errlen);


typedef struct {
    size_t  rules;           /* distinct rule ids */
    size_t  alternatives;    /* after expanding "$or" */
    size_t  fields;          /* distinct leaf paths */
    size_t  states;
    size_t  matchers;
    size_t  memory;          /* bytes held by the compiled ruleset */
} eb_ruleset_stats_t;

void eb_ruleset_stats(const eb_ruleset_t *rs, eb_ruleset_stats_t *st);


/* Per-thread reusable scratch: matching allocates nothing in steady
 * state. NULL when out of memory. */
eb_match_scratch_t *eb_match_scratch_new(void);
void eb_match_scratch_free(eb_match_scratch_t *s);

/* How many regex matches ended at the match limit (counted as no match)
 * since the scratch was created. */
uint64_t eb_match_scratch_regex_limits(const eb_match_scratch_t *s);


/* Parses a JSON event and matches it: writes the matched rule ids
 * ascending, without duplicates, into ids; returns their count (which may
 * exceed max_ids: then only max_ids are written), or a negative
 * EB_PATTERN_* code (EB_PATTERN_BAD_EVENT: not a JSON object). */
int eb_ruleset_match_json(const eb_ruleset_t *rs, eb_match_scratch_t *s,
    const unsigned char *json, size_t len, uint32_t *ids, size_t max_ids);


/* Parse once, match many times: an event flattened for one compiled
 * ruleset (it keeps only the fields that ruleset's rules name). Strings
 * without escapes point into json, which must outlive the parsed event. */
eb_pattern_event_t *eb_pattern_event_new(void);
void eb_pattern_event_free(eb_pattern_event_t *ev);

/* Returns 0, or a negative EB_PATTERN_* code. */
int eb_pattern_event_parse(eb_pattern_event_t *ev, const eb_ruleset_t *rs,
    const unsigned char *json, size_t len);

/* As eb_ruleset_match_json(), for an event parsed for rs
 * (EB_PATTERN_MISUSE otherwise). */
int eb_ruleset_match_event(const eb_ruleset_t *rs, eb_match_scratch_t *s,
    const eb_pattern_event_t *ev, uint32_t *ids, size_t max_ids);

#endif /* EB_PATTERN_H */
