/* Allocation wrappers that abort on exhaustion (like Redis' zmalloc OOM handler).
 * An executor that runs out of memory dies; the supervisor respawns it and the
 * unacked delivery is redelivered, so aborting is the contained failure here. */
#ifndef CWORKER_XALLOC_H
#define CWORKER_XALLOC_H

#include <stddef.h>

void *cw_xmalloc(size_t size);
void *cw_xcalloc(size_t count, size_t size);
void *cw_xrealloc(void *ptr, size_t size);
char *cw_xstrdup(const char *s);
char *cw_xstrndup(const char *s, size_t n);

#endif
