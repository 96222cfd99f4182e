/* Stuck-run sweep: claim for a retry, or fail when the retries are spent; and orphaned runs
 * (their message never reached a worker): claim for a re-publish of the original task. */
#include "executor/sweeper.h"
#include "base/log.h"
#include "db/orphans.h"
#include "db/run_metrics.h"
#include "tasks/retry_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <uuid/uuid.h>

static json_object *requeue_entry(const struct db_stuck_run *r)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "run_id", json_object_new_int64(r->run_id));
    json_object_object_add(o, "task_id", json_object_new_string(r->task_id));
    json_object_object_add(o, "retries", json_object_new_int(r->retry_count + 1));
    return o;
}

/* Only while the run is still PARSING for the stuck task and its heartbeat still old: an
 * owner that finished (or a sweeper that claimed it) in the meantime wins. */
static int fail_exhausted(struct db *db, const struct cw_config *cfg, const struct db_stuck_run *r,
                          const char *why, struct cw_error *err)
{
    char message[512];
    snprintf(message, sizeof message, "Failed after %d retries: %s", cfg->max_retries, why);
    json_object *metrics = run_failure_metrics(0, r->retry_count, "transient_exhausted");
    struct db_run_error e = {
        .final = true,
        .retry_count = r->retry_count,
        .message = message,
        .traceback = why,
        .metrics_json = json_object_to_json_string_ext(metrics, JSON_C_TO_STRING_PLAIN),
        .stale_for = cfg->visibility_timeout,
    };
    bool written = false;
    int rc = db_run_record_error(db, r->run_id, r->task_id, &e, &written, err);
    json_object_put(metrics);
    if (rc == 0 && written)
        log_warn("stuck run %ld failed: %s", r->run_id, why);
    else if (rc == 0)
        log_info("stuck run %ld was finished or claimed meanwhile; left as it is", r->run_id);
    return rc;
}

/* One candidate, under its run lock (held only if the owner is gone). */
static int sweep_one(struct db *db, const struct cw_config *cfg, const struct db_stuck_run *r,
                     json_object *requeue, struct cw_error *err)
{
    char why[256];
    snprintf(why, sizeof why, "no heartbeat for %.0f s; the worker running it is gone",
             r->silent_for);
    if (r->retry_count >= cfg->max_retries)
        return fail_exhausted(db, cfg, r, why, err);
    char message[512];
    snprintf(message, sizeof message, "Transient error (retry %d): %s", r->retry_count + 1, why);
    bool claimed = false;
    if (db_stuck_run_claim(db, r, cfg->visibility_timeout, message, &claimed, err) != 0)
        return -1;
    if (claimed) {
        log_warn("stuck run %ld recovered: %s; retry %d", r->run_id, why, r->retry_count + 1);
        json_object_array_add(requeue, requeue_entry(r));
    }
    return 0;
}

static json_object *orphan_entry(long run_id, const char *task_id)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "run_id", json_object_new_int64(run_id));
    json_object_object_add(o, "task_id", json_object_new_string(task_id));
    json_object_object_add(o, "retries", json_object_new_int(0));
    json_object_object_add(o, "orphan", json_object_new_boolean(1));
    return o;
}

/* One orphan, under its run lock: an execution that starts meanwhile holds the lock, and
 * one that finished wrote its cworker_tasks row before releasing it, so the claim sees it. */
static int claim_orphan(struct db *db, const struct cw_config *cfg, const struct db_orphan_run *r,
                        json_object *requeue, struct cw_error *err)
{
    char new_id[37] = "";
    if (!r->has_task_id) { /* stored on the run by the claim, so the re-publish is its task */
        uuid_t uu;
        uuid_generate_random(uu);
        uuid_unparse_lower(uu, new_id);
    }
    bool claimed = false;
    if (db_orphan_claim(db, r, cfg->orphan_timeout, new_id, &claimed, err) != 0)
        return -1;
    if (claimed) {
        log_debug("run %ld marked PARSING %.0f s ago and never started: claimed for a re-publish",
                  r->run_id, r->marked_for);
        json_object_array_add(requeue,
                              orphan_entry(r->run_id, r->has_task_id ? r->task_id : new_id));
    }
    return 0;
}

static int sweep_orphans(struct db *db, const struct cw_config *cfg, json_object *requeue,
                         struct cw_error *err)
{
    struct db_orphan_run *runs = NULL;
    size_t n = 0;
    if (db_orphaned_runs(db, cfg->orphan_timeout, &runs, &n, err) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool locked = false;
        rc = db_run_try_lock(db, runs[i].run_id, &locked, err);
        if (rc != 0 || !locked)
            continue; /* an execution of it has just started */
        rc = claim_orphan(db, cfg, &runs[i], requeue, err);
        db_run_unlock(db, runs[i].run_id);
    }
    free(runs);
    return rc;
}

json_object *sweeper_run(struct db *db, const struct cw_config *cfg, struct cw_error *err)
{
    struct db_stuck_run *runs = NULL;
    size_t n = 0;
    if (db_stuck_runs(db, cfg->visibility_timeout, &runs, &n, err) != 0)
        return NULL;
    json_object *requeue = json_object_new_array();
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool locked = false;
        rc = db_run_try_lock(db, runs[i].run_id, &locked, err);
        if (rc != 0 || !locked)
            continue; /* an execution holds it: the owner is alive */
        rc = sweep_one(db, cfg, &runs[i], requeue, err);
        db_run_unlock(db, runs[i].run_id);
    }
    free(runs);
    if (rc != 0) {
        json_object_put(requeue);
        return NULL;
    }
    /* The stuck runs claimed above must be published whatever happens to the orphans. */
    struct cw_error orphan_err;
    if (sweep_orphans(db, cfg, requeue, &orphan_err) != 0)
        log_warn("looking for orphaned runs failed (the next sweep tries again): %s",
                 orphan_err.message);
    return requeue;
}
