/* Conversion between AMQP field values (rabbitmq-c 0.11 tables) and json-c values.
 *
 * Celery puts its message headers in an AMQP table, written by py-amqp. Reading them as
 * JSON lets one code path validate protocol 1 bodies and protocol 2 headers alike.
 * Writing goes the other way, choosing the wire types py-amqp reads back as the same
 * Python values (see mq_json_to_field). Pure module: no I/O, no logging. */
#ifndef CWORKER_MQ_JSON_H
#define CWORKER_MQ_JSON_H

#include "base/error.h"

#include <amqp.h>
#include <json-c/json.h>

/* Nesting limit for tables/arrays in both directions (hostile input safety). */
#define MQ_JSON_MAX_DEPTH 32

/* The value stored under `key` in `table`, or NULL when absent. The first entry wins
 * when a key is repeated. Keys are compared as bytes (they are not NUL-terminated). */
const amqp_field_value_t *mq_json_table_get(const amqp_table_t *table, const char *key);

/* Converts one AMQP value into a new JSON value that the caller owns (*out; NULL for
 * void, which is JSON null). Strings (UTF8 and BYTES kinds) must be valid UTF-8; integers
 * of every width become JSON ints (U64 is read as the signed 64-bit value py-amqp wrote
 * under 'L'); F32/F64/DECIMAL become doubles; TIMESTAMP becomes an ISO-8601 UTC string
 * as py-amqp would hand Python a datetime. Fails with CW_ERR_PERMANENT on invalid UTF-8,
 * unknown kinds or nesting deeper than MQ_JSON_MAX_DEPTH; *out is untouched then. */
CW_MUST_CHECK int mq_json_from_field(const amqp_field_value_t *value, json_object **out,
                                     struct cw_error *err);

/* Converts JSON into an AMQP value whose memory (strings, entries) lives in `pool`.
 * Chosen so that py-amqp decodes the same Python value: strings as 'S', booleans 't',
 * null 'V', doubles 'd', ints 'I' when they fit 32 bits and otherwise 'L' (which
 * py-amqp reads as signed 64-bit; rabbitmq-c calls that kind U64), objects 'F',
 * arrays 'A'. Fails with CW_ERR_PERMANENT on keys longer than 255 bytes or nesting
 * deeper than MQ_JSON_MAX_DEPTH. Aborts on pool exhaustion, like cw_xmalloc. */
CW_MUST_CHECK int mq_json_to_field(json_object *j, amqp_pool_t *pool, amqp_field_value_t *out,
                                   struct cw_error *err);

/* mq_json_to_field for a JSON object, producing the table itself (for headers). */
CW_MUST_CHECK int mq_json_to_table(json_object *obj, amqp_pool_t *pool, amqp_table_t *out,
                                   struct cw_error *err);

#endif
