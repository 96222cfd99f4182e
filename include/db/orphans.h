/* Orphaned runs: PARSING runs whose message never reached a worker (Celery publishes
 * without confirms, so a message can be lost between the application and RabbitMQ).
 *
 * A run is orphaned when it is PARSING, no cworker execution of its task id ever started
 * (no cworker_tasks row for the run's task_id: an execution writes one before anything
 * else, in its claim: db/run_claim.h), and the application's PARSING mark (the later of started_at
 * and last_heartbeat, both written by the application; created_at when it wrote neither) is older
 * than ORPHAN_TIMEOUT. A claim moves last_heartbeat to now(), so the mark ages again from the
 * re-publish: at most one re-publish per run per ORPHAN_TIMEOUT. */
#ifndef CWORKER_DB_ORPHANS_H
#define CWORKER_DB_ORPHANS_H

#include "db/db.h"

struct db_orphan_run {
    long run_id;
    char task_id[256]; /* the run's task id; "" when it has none */
    bool has_task_id;
    double marked_for; /* seconds since the application's PARSING mark */
};

/* Up to 100 orphaned runs, oldest id first (*runs: caller frees). */
CW_MUST_CHECK int db_orphaned_runs(struct db *db, double orphan_timeout,
                                   struct db_orphan_run **runs, size_t *n, struct cw_error *err);

/* Claims an orphan for its re-publish in one conditional UPDATE ... RETURNING: only while
 * it is still orphaned with the same task id (another sweeper's claim or an execution that
 * started in the meantime wins). new_task_id is stored when the run has no task id.
 * claimed=false when the run is no longer an orphan. */
CW_MUST_CHECK int db_orphan_claim(struct db *db, const struct db_orphan_run *run,
                                  double orphan_timeout, const char *new_task_id, bool *claimed,
                                  struct cw_error *err);

#endif
