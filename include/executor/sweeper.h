/* Stuck-run recovery (CONTRACT 1.8 "visibility timeout"), run inside an executor: PARSING runs
 * whose heartbeat is older than VISIBILITY_TIMEOUT, whose owner is gone (their advisory lock
 * is free) and which are not waiting for a scheduled retry are either claimed for a retry
 * (returned so the supervisor can publish it) or failed when their retries are spent.
 * Orphaned runs (db/orphans.h: PARSING for longer than ORPHAN_TIMEOUT, and no execution of
 * their task id ever started) are claimed for a re-publish of parse_run(run_id) under the
 * run's own task id (a new one, stored on the run, when it has none).
 * Safe when several workers sweep at once: each claim is one conditional UPDATE. */
#ifndef CWORKER_SWEEPER_H
#define CWORKER_SWEEPER_H

#include "base/config.h"
#include "db/db.h"

#include <json-c/json.h>

/* Returns the runs to re-enqueue as [{"run_id", "task_id", "retries", "orphan"?}] (caller
 * owns), where retries is the number the retry message carries; an orphan (true) is
 * published as a new task (retries 0) instead of a retry. NULL with err on a database
 * error of the stuck-run part; an orphan search that fails is logged and retried by the
 * next sweep. */
json_object *sweeper_run(struct db *db, const struct cw_config *cfg, struct cw_error *err);

#endif
