/* Finding and claiming orphaned runs (db/orphans.h). */
#include "db/orphans.h"
#include "db/db_internal.h"
#include "base/xalloc.h"

#include <stdio.h>
#include <stdlib.h>

/* The orphan condition on ingestion_runs r, with the timeout as parameter $1. Kept in one
 * place so that the search and the claim can never disagree. greatest() ignores NULLs:
 * the application writes started_at and last_heartbeat together, and a run whose
 * heartbeat alone was moved back (a test, a tool) is still as recent as its start. */
#define ORPHAN_CONDITION                                                                           \
    "upper(r.status) = 'PARSING' "                                                                 \
    "AND NOT EXISTS (SELECT 1 FROM cworker_tasks t "                                               \
    "                 WHERE t.task_id = r.task_id AND t.run_id = r.id) "                           \
    "AND coalesce(greatest(r.started_at, r.last_heartbeat), r.created_at) "                        \
    "    < now() - make_interval(secs => $1::float8) "

int db_orphaned_runs(struct db *db, double orphan_timeout, struct db_orphan_run **runs, size_t *n,
                     struct cw_error *err)
{
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%.3f", orphan_timeout);
    const char *values[] = {timeout};
    PGresult *res = exec_params(
        db, "looking for orphaned runs",
        "SELECT r.id, r.task_id IS NOT NULL, coalesce(r.task_id, ''), "
        "       extract(epoch FROM now() - coalesce(greatest(r.started_at, r.last_heartbeat), "
        "                                           r.created_at))::float8 "
        "  FROM ingestion_runs r WHERE " ORPHAN_CONDITION "ORDER BY r.id LIMIT 100",
        1, values, err);
    if (!res)
        return -1;
    *n = (size_t)PQntuples(res);
    *runs = cw_xcalloc(*n ? *n : 1, sizeof **runs);
    for (size_t i = 0; i < *n; i++) {
        struct db_orphan_run *r = &(*runs)[i];
        r->run_id = strtol(PQgetvalue(res, (int)i, 0), NULL, 10);
        r->has_task_id = PQgetvalue(res, (int)i, 1)[0] == 't';
        snprintf(r->task_id, sizeof r->task_id, "%s", PQgetvalue(res, (int)i, 2));
        r->marked_for = strtod(PQgetvalue(res, (int)i, 3), NULL);
    }
    PQclear(res);
    return 0;
}

int db_orphan_claim(struct db *db, const struct db_orphan_run *run, double orphan_timeout,
                    const char *new_task_id, bool *claimed, struct cw_error *err)
{
    char timeout[32], id[24];
    snprintf(timeout, sizeof timeout, "%.3f", orphan_timeout);
    format_run_id(id, sizeof id, run->run_id);
    const char *values[] = {timeout, id, run->has_task_id ? run->task_id : NULL, new_task_id};
    /* The whole condition again, in the UPDATE itself: of several sweepers only the first
     * UPDATE finds it true, the others find last_heartbeat already moved to now(). */
    PGresult *res = exec_params(db, "claiming an orphaned run",
                                "UPDATE ingestion_runs r SET last_heartbeat = now(), "
                                "       task_id = coalesce(r.task_id, $4) "
                                " WHERE r.id = $2::bigint AND r.task_id IS NOT DISTINCT FROM $3 "
                                "   AND " ORPHAN_CONDITION "RETURNING r.task_id",
                                4, values, err);
    if (!res)
        return -1;
    *claimed = PQntuples(res) == 1;
    PQclear(res);
    return 0;
}
