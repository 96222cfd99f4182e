/* parse_run(run_id)'s message: its task id, and its arguments judged as Python would call the
 * function, plus what a run id can be (ingestion_runs.id, a PostgreSQL serial: 1 to 2^31-1). Pure:
 * no I/O. */
#ifndef CWORKER_PARSE_RUN_ARGS_H
#define CWORKER_PARSE_RUN_ARGS_H

#include "celery/message.h"
#include "base/error.h"

#include <stdbool.h>

/* 0: *run_id names a possible run. With *bad_call the call itself is wrong (an extra
 * positional or keyword argument, run_id twice): err holds Python's TypeError wording,
 * and the run is to be failed with it. -1: no run can be identified (run_id missing, not
 * an integer, out of range, given twice with different values); err says why, for the
 * dead letter. err is CW_ERR_PERMANENT whenever it is set. */
CW_MUST_CHECK int parse_run_args(const struct celery_task *t, long *run_id, bool *bad_call,
                                 struct cw_error *err);

/* ingestion_runs.task_id is varchar(255): a message whose id is longer can never be
 * recorded. 0 when it fits, else -1 with CW_ERR_PERMANENT saying so. */
CW_MUST_CHECK int parse_run_check_task_id(const char *task_id, struct cw_error *err);

#endif
