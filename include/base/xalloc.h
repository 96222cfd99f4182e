/* Allocation wrappers that abort on exhaustion (like Redis' zmalloc OOM handler).
 * An executor that runs out of memory dies; the supervisor respawns it and the
 * unacked delivery is redelivered, so aborting is the contained failure here. */
#ifndef CWORKER_XALLOC_H
#define CWORKER_XALLOC_H

#include <stdbool.h>
#include <stddef.h>

void *cw_xmalloc(size_t size);
void *cw_xcalloc(size_t count, size_t size);
void *cw_xrealloc(void *ptr, size_t size);
char *cw_xstrdup(const char *s);
char *cw_xstrndup(const char *s, size_t n);

/* A memory ceiling's soft landing (EXECUTOR_MEMORY_LIMIT). cw_xalloc_reserve sets aside
 * `bytes` (touched, so really there); when an allocation then fails, the reserve is
 * released, the allocation retried, and cw_xalloc_reserve_used() turns true, so the task
 * can fail with a clear error at its next check instead of aborting. Only when the
 * retry fails too does the process abort. cw_xalloc_reserve again after such a task. */
void cw_xalloc_reserve(size_t bytes);
bool cw_xalloc_reserve_used(void);

/* An allocation outside these wrappers failed (json-c returns NULL instead): handled as
 * one of theirs would be. The reserve is released, so the task fails at its next check
 * of cw_xalloc_reserve_used(); with no reserve left, the process aborts. */
void cw_xalloc_failed(size_t size);

#endif
