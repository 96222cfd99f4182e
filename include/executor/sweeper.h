/* Stuck-run recovery (CONTRACT 1.8 "visibility timeout"), run inside an executor: PARSING runs
 * whose heartbeat is older than VISIBILITY_TIMEOUT, whose owner is gone (their advisory lock
 * is free) and which are not waiting for a scheduled retry are either claimed for a retry
 * (returned so the supervisor can publish it) or failed when their retries are spent.
 * Safe when several workers sweep at once: each claim is one conditional UPDATE. */
#ifndef CWORKER_SWEEPER_H
#define CWORKER_SWEEPER_H

#include "base/config.h"
#include "db/db.h"

#include <json-c/json.h>

/* Returns the runs to re-enqueue as [{"run_id", "task_id", "retries"}] (caller owns), where
 * retries is the number the retry message carries; NULL with err on a database error. */
json_object *sweeper_run(struct db *db, const struct cw_config *cfg, struct cw_error *err);

#endif
