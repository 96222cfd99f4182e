/* app.worker.tasks.parse_run(run_id) (CONTRACT 1.5): the task's arguments checked, the run
 * claimed, its uploads ingested (tasks/run_ingest.h: streamed into one transaction, all
 * or nothing), and a failure classified and recorded: a retry, a final failure, or a
 * requeue when the database itself is away. */
#include "tasks/run_ingest.h"
#include "base/clock.h"
#include "base/log.h"
#include "db/pg.h"
#include "db/run_claim.h"
#include "db/run_metrics.h"
#include "mq/conn.h"
#include "mq/native_delay.h"
#include "tasks/parse_run_args.h"
#include "tasks/retry_policy.h"
#include "tasks/task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RUN_LOCK_WAIT_S 30

/* The database connection itself is gone: an outage, not this task's fault. Nothing can
 * be recorded; the delivery is requeued and no retry is consumed. */
static bool database_outage(struct task_context *ctx)
{
    return !db_ensure_connected(ctx->db);
}

/* The run is no longer PARSING for this task: its outcome was written by another
 * execution (or a new parse started), and this one's is dropped rather than overwrite it. */
static void skip_not_ours(struct task_context *ctx, struct task_report *report, const char *what)
{
    struct db_run run = {0};
    bool found = false;
    struct cw_error ignored;
    if (db_run_load(ctx->db, report->run_id, &run, &found, &ignored) != 0 || !found)
        snprintf(run.status, sizeof run.status, "%s", found ? "in an unknown state" : "gone");
    log_warn("run %ld is %s under task %s, no longer PARSING for this task: its %s is not "
             "recorded",
             report->run_id, run.status, run.task_id[0] ? run.task_id : "(none)", what);
    report->outcome = TASK_SKIPPED;
}

/* Tests only (CWORKER_DEBUG_AFTER_COMMIT_DELAY_MS): a pause after the result's COMMIT and
 * before the outcome is reported, so a test can kill the executor in between. */
static void debug_after_commit(const struct cw_config *cfg)
{
    double until = clock_monotonic() + cfg->debug_after_commit_delay_ms / 1000.0;
    while (clock_monotonic() < until)
        usleep(20000);
}

/* Where a retry of this task waits (the delay queue the supervisor publishes it to, named
 * after the queue the task came from; "" when that is unknown) and after how long it runs:
 * its eta, but never before the delay queue's TTL sends it back (a negative jitter makes
 * the eta earlier than that). */
static double retry_wait(const struct task_context *ctx, const struct retry_decision *d,
                         char *queue, size_t len)
{
    const struct cw_config *cfg = ctx->cfg;
    queue[0] = '\0';
    if (d->retry && cfg->retry_native) { /* the supervisor's delay_route: whole seconds, up */
        long seconds = native_delay_seconds(d->delay);
        if (seconds > 0)
            snprintf(queue, len, "%s", NATIVE_DELAY_LADDER_NAME);
        return (double)seconds;
    }
    if (!d->retry || cfg->nretry_delays <= 0)
        return d->delay;
    double ttl = cfg->retry_delays[retry_policy_slot(d->next_retries, cfg->nretry_delays)];
    if (ctx->queue && *ctx->queue)
        mq_conn_retry_queue_name(ctx->queue, ttl, queue, len);
    return d->delay > ttl ? d->delay : ttl;
}

static void record_failure(struct task_context *ctx, const struct celery_task *msg,
                           struct task_report *report)
{
    const struct cw_config *cfg = ctx->cfg;
    if (report->err.unavailable || (report->err.cls == CW_ERR_TRANSIENT && database_outage(ctx))) {
        report->outcome = TASK_REQUEUE;
        return;
    }
    struct retry_decision d =
        retry_policy_decide(report->err.cls, msg->retries, cfg->max_retries, cfg->retry_delays,
                            cfg->nretry_delays, cfg->retry_jitter, drand48());
    char message[CW_ERROR_DETAIL_MAX + 64];
    retry_policy_message(report->err.cls, &d, cfg->max_retries, report->err.message, message,
                         sizeof message);
    struct strbuf tb = STRBUF_INIT;
    cw_error_format_traceback(&report->err, &tb);
    int retry_count = d.retry ? d.next_retries : msg->retries;
    char retry_queue[300];
    double retry_in = retry_wait(ctx, &d, retry_queue, sizeof retry_queue);
    json_object *metrics =
        run_failure_metrics(clock_monotonic() - ctx->started, retry_count, d.error_type);
    struct db_run_error e = {.final = !d.retry,
                             .retry_count = retry_count,
                             .retry_in = retry_in,
                             .retry_queue = retry_queue[0] ? retry_queue : NULL,
                             .message = message,
                             .traceback = strbuf_cstr(&tb),
                             .metrics_json =
                                 json_object_to_json_string_ext(metrics, JSON_C_TO_STRING_PLAIN)};
    struct cw_error werr;
    bool written = false;
    int rc = db_run_record_error(ctx->db, report->run_id, msg->id, &e, &written, &werr);
    json_object_put(metrics);
    strbuf_free(&tb);
    if (rc != 0) {
        /* A transient write error is an outage: redeliver later. A permanent one would fail
         * the same way every time, so the delivery is settled rather than looped. */
        log_error("could not record the failure of run %ld: %s", report->run_id, werr.message);
        report->outcome = werr.cls == CW_ERR_TRANSIENT ? TASK_REQUEUE : TASK_FAILED;
        return;
    }
    if (!written) {
        skip_not_ours(ctx, report, "failure");
        return;
    }
    log_warn("%s", message);
    report->outcome = d.retry ? TASK_RETRY : TASK_FAILED;
    report->retry_delay = d.delay;
}

/* Deliveries of one message (a quorum queue's x-delivery-count) after which the run is
 * failed rather than left to the queue's delivery-limit (RabbitMQ 4 defaults to 20), which
 * would drop or dead-letter the message with the run still PARSING. Requeues for an outage
 * count there too, so the bound is well above the executor-crash bound. */
#define QUORUM_DELIVERY_BOUND 18

/* A message that keeps killing its executor: started more than max(3, MAX_RETRIES + 1)
 * times at one retry number by our own count (attempts, this one included), or delivered
 * QUORUM_DELIVERY_BOUND times by the broker's. The claim marks the run only up to this
 * many attempts (0 once the broker's bound is reached). */
static int max_attempts(const struct cw_config *cfg, long delivery_count)
{
    if (delivery_count + 1 >= QUORUM_DELIVERY_BOUND)
        return 0;
    return cfg->max_retries + 1 > 3 ? cfg->max_retries + 1 : 3;
}

static json_object *already_completed(long run_id)
{
    json_object *r = json_object_new_object();
    json_object_object_add(r, "run_id", json_object_new_int64(run_id));
    json_object_object_add(r, "status", json_object_new_string("already_completed"));
    json_object_object_add(r, "duration_seconds", json_object_new_int(0));
    return r;
}

/* What the claim found, when this delivery does not go on: 0 with the report settled,
 * -1 to record report->err as the run's failure. */
static int claim_declined(const struct celery_task *msg, const struct cw_error *bad_call,
                          const struct db_claim *claim, int max, struct task_report *report)
{
    if (!claim->found) {
        /* No row to record it in, now or on a redelivery: the message is dead-lettered. */
        if (bad_call)
            CW_FAIL(&report->err, CW_ERR_PERMANENT, "Run %ld not found; and %s", report->run_id,
                    bad_call->message);
        else
            CW_FAIL(&report->err, CW_ERR_PERMANENT, "Run %ld not found", report->run_id);
        report->outcome = TASK_REJECTED;
        return 0;
    }
    if (strcmp(claim->status, "COMPLETE") == 0) {
        /* A finished run is never overwritten; a wrong call is reported, not recorded. The
         * claim recorded the run's final state under this task id (a duplicate delivery). */
        if (bad_call) {
            report->err = *bad_call;
            report->outcome = TASK_FAILED;
        } else {
            report->result = already_completed(report->run_id);
            report->outcome = TASK_SUCCEEDED;
        }
        return 0;
    }
    if (claim->task.final_status[0]) {
        /* A redelivery of a task that already finished (the ack was lost): keep its outcome. */
        report->outcome = TASK_SKIPPED;
        report->result =
            claim->task.result_json ? json_tokener_parse(claim->task.result_json) : NULL;
        return 0;
    }
    if (claim->task.attempts > max) {
        CW_FAIL(&report->err, CW_ERR_PERMANENT,
                "the task was started %d times without finishing (its executor died each time)",
                claim->task.attempts - 1 > (int)msg->delivery_count ? claim->task.attempts - 1
                                                                    : (int)msg->delivery_count);
        return -1;
    }
    /* Not marked otherwise: the row went away under the claim. */
    CW_FAIL(&report->err, CW_ERR_PERMANENT, "Run %ld not found", report->run_id);
    report->outcome = TASK_REJECTED;
    return 0;
}

/* Steps 1-2 in one round trip (db/run_claim.h): the run lock, then whether this delivery
 * runs, and the claim. Returns 1 to go on (without bad_call, the result transaction is
 * then open), 0 with the report settled, -1 to record report->err as the run's failure.
 * bad_call (non-NULL: the message's arguments are wrong, parse_run_args): the run is
 * claimed only to be failed with it. */
static int claim_run(struct task_context *ctx, const struct celery_task *msg,
                     const struct cw_error *bad_call, struct run_ingest *st, struct db_claim *claim,
                     struct task_report *report)
{
    int max = max_attempts(ctx->cfg, msg->delivery_count);
    /* Another delivery of the same run (a retry, a duplicate click) may be executing: the
     * claim waits for it, so this one then sees its outcome. If it is still running after
     * the wait, the application's commit for this delivery is long past and the other
     * run's final write will overwrite it; this delivery is dropped. */
    struct db_claim_request req = {.run_id = report->run_id,
                                   .task_id = msg->id,
                                   .retries = msg->retries,
                                   .max_attempts = max,
                                   .adopt_complete = !bad_call,
                                   .lock_wait_s = RUN_LOCK_WAIT_S,
                                   .writer = bad_call ? NULL : &st->writer,
                                   .tick = &st->tick};
    if (db_run_claim(ctx->db, &req, claim, &report->err) != 0) {
        if (claim->locked)
            return -1; /* the claim statement failed: recorded like any failure */
        /* Only an outage is worth a redelivery; anything else would fail the same way in a
         * loop. */
        report->outcome = report->err.cls == CW_ERR_TRANSIENT ? TASK_REQUEUE : TASK_FAILED;
        return 0;
    }
    if (!claim->locked) {
        log_info("run %ld is still being executed by another delivery after %d s; this one is "
                 "dropped",
                 report->run_id, RUN_LOCK_WAIT_S);
        report->outcome = TASK_SKIPPED;
        return 0;
    }
    st->writer.unlock_at_commit = true;
    return claim->marked ? 1 : claim_declined(msg, bad_call, claim, max, report);
}

static void run_task(struct task_context *ctx, const struct celery_task *msg,
                     const struct cw_error *bad_call, struct task_report *report)
{
    struct run_ingest st;
    run_ingest_init(&st, ctx, report->run_id, msg->id);
    struct db_claim claim;
    int claimed = claim_run(ctx, msg, bad_call, &st, &claim, report);
    if (claimed == 1 && bad_call) {
        report->err = *bad_call;
        claimed = -1; /* recorded as the run's permanent failure */
    }
    bool written = false;
    if (claimed == 1 &&
        run_ingest_store(&st, msg, &claim, &report->result, &written, &report->err) == 0) {
        if (written && ctx->cfg->debug_after_commit_delay_ms > 0)
            debug_after_commit(ctx->cfg);
        if (written)
            report->outcome = TASK_SUCCEEDED;
        else
            skip_not_ours(ctx, report, "result");
    } else if (claimed != 0) {
        CW_WRAP(&report->err, "parse_run(%ld), task %s, retries %d", report->run_id, msg->id,
                msg->retries);
        record_failure(ctx, msg, report);
    }
    /* After a COMMIT the lock went in the same round trip. */
    if (claim.locked && !st.writer.unlocked)
        db_run_unlock(ctx->db, report->run_id);
    db_claim_free(&claim);
    run_ingest_free(&st);
}

/* The supervisor killed an earlier attempt (ctx->forced): record why, under the run lock. */
static void record_forced(struct task_context *ctx, const struct celery_task *msg,
                          struct task_report *report)
{
    bool locked = false;
    if (db_run_lock_wait(ctx->db, report->run_id, RUN_LOCK_WAIT_S, &locked, &report->err) != 0) {
        report->outcome = report->err.cls == CW_ERR_TRANSIENT ? TASK_REQUEUE : TASK_FAILED;
        return;
    }
    if (!locked) {
        log_info("run %ld is still being executed by another delivery after %d s; this one is "
                 "dropped",
                 report->run_id, RUN_LOCK_WAIT_S);
        report->outcome = TASK_SKIPPED;
        return;
    }
    report->err = *ctx->forced;
    CW_WRAP(&report->err, "parse_run(%ld), task %s, retries %d", report->run_id, msg->id,
            msg->retries);
    record_failure(ctx, msg, report);
    db_run_unlock(ctx->db, report->run_id);
}

void parse_run_task(struct task_context *ctx, const struct celery_task *msg,
                    struct task_report *report)
{
    bool wrong_call = false;
    struct cw_error bad_call;
    cw_error_clear(&bad_call);
    if (parse_run_check_task_id(msg->id, &bad_call) != 0 ||
        parse_run_args(msg, &report->run_id, &wrong_call, &bad_call) != 0) {
        report->err = bad_call; /* names no run, or cannot be recorded in one */
        report->outcome = TASK_REJECTED;
        return;
    }
    log_set_task(msg->id, report->run_id);
    if (ctx->forced)
        record_forced(ctx, msg, report);
    else
        run_task(ctx, msg, wrong_call ? &bad_call : NULL, report);
}
