/* Shared by the fuzz targets: a cursor over the fuzzer's bytes and a builder of rabbitmq-c
 * field values from them, so the AMQP side of a target is reached without going through
 * rabbitmq-c's own (uninstrumented) wire decoder.
 *
 * Layout (everything is optional: a short input reads as zeros / empty):
 *   value  := kind:u8 payload          kind is taken modulo the FUZZ_KINDS table
 *   bytes  := len:u8 data[len]         (UTF8, BYTES)
 *   table  := n:u8 (klen:u8 key[klen] value){n % 64}
 *   array  := n:u8 value{n % 64}
 *   integers and floats are their width in little-endian bytes; decimal is u8 + u32.
 * Nesting stops at FUZZ_MAX_NEST (deeper than MQ_JSON_MAX_DEPTH, so its check is hit). */
#ifndef CWORKER_FUZZ_INPUT_H
#define CWORKER_FUZZ_INPUT_H

#include <amqp.h>
#include <stddef.h>
#include <stdint.h>

#define FUZZ_MAX_NEST 40

struct fuzz_cursor {
    const uint8_t *p;
    size_t left;
};

uint8_t fuzz_u8(struct fuzz_cursor *c);

/* The kind byte that selects `kind` (for writing seeds), or -1 when it has none. */
int fuzz_kind_index(uint8_t kind);

/* Up to n bytes (fewer when the input ends); *len gets how many. Points into the input. */
const uint8_t *fuzz_take(struct fuzz_cursor *c, size_t n, size_t *len);

/* amqp_bytes_t of len:u8 data[len], pointing into the input. */
amqp_bytes_t fuzz_short_bytes(struct fuzz_cursor *c);

/* A field value (and what it nests) allocated in pool. */
void fuzz_field(struct fuzz_cursor *c, amqp_pool_t *pool, int depth, amqp_field_value_t *out);

/* A table (see the layout above) allocated in pool. */
void fuzz_table(struct fuzz_cursor *c, amqp_pool_t *pool, int depth, amqp_table_t *out);

#endif
