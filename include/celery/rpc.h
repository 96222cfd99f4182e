/* Task results as Celery's rpc:// result backend sends them (celery/backends/rpc.py), so
 * that `AsyncResult.get()` of a producer configured with result_backend="rpc://" returns
 * cworker's result or raises its failure. Pure module: no I/O, no logging.
 *
 * Wire format (captured from a Celery 5.2.6 worker on this machine):
 *   exchange     "" (the default exchange), routing key = the request's reply_to property
 *                (the producer's oid; its queue is declared by the producer, non-durable,
 *                auto-delete). Celery producers always set reply_to, also when they have no
 *                result backend: the message is then unroutable and the broker drops it.
 *   properties   content_type application/json, content_encoding utf-8, delivery_mode 1
 *                (result_persistent is off), priority 0, correlation_id = the task's
 *                correlation_id (= task id), headers {} (an empty table).
 *   body         {"task_id", "status", "result", "traceback", "children", "date_done"}:
 *                STARTED   result {"pid", "hostname"} (sent when task_track_started)
 *                SUCCESS   result = the task's return value
 *                RETRY     result = the exception that caused the retry
 *                FAILURE   result = the exception
 *                REVOKED   result = TaskRevokedError(reason)
 *                where an exception is {"exc_type", "exc_message": [args...], "exc_module"}.
 *                Celery 5.2's rpc backend sends no date_done; we add it (naive UTC ISO-8601
 *                for SUCCESS/FAILURE/REVOKED, else null), as its other backends store it, so
 *                AsyncResult.date_done works. RETRY's children are [[[task_id, null], null]]
 *                (the retry's own AsyncResult, as Celery records it), else [].
 * Python rebuilds the exception from exc_module.exc_type when it can import it (so
 * celery.exceptions.NotRegistered really is that class), else a new Exception subclass of
 * that name. */
#ifndef CWORKER_CELERY_RPC_H
#define CWORKER_CELERY_RPC_H

#include "celery/message.h"
#include "celery/encode.h"
#include "base/error.h"

#include <json-c/json.h>
#include <stdbool.h>

#define CELERY_RPC_EXCHANGE "" /* the default exchange */

/* An exception as Celery's prepare_exception serialises it (JSON serializer). */
struct celery_exception {
    const char *type;    /* exc_type, e.g. "NotRegistered" */
    const char *module;  /* exc_module, e.g. "celery.exceptions"; NULL is sent as null */
    const char *message; /* its one argument: exc_message = [message]; NULL: [] */
};

/* What cworker's error classes look like to a Python client:
 *   CW_ERR_PERMANENT  cworker.errors.PermanentError
 *   CW_ERR_TRANSIENT  cworker.errors.TransientError
 *   CW_ERR_TIMEOUT    celery.exceptions.TimeLimitExceeded
 *   anything else     cworker.errors.InternalError
 * with message = e->message (borrowed: valid while e is). */
void celery_rpc_exception_from_error(const struct cw_error *e, struct celery_exception *out);

/* A result message: publish out to CELERY_RPC_EXCHANGE with routing_key. */
struct celery_rpc_msg {
    const char *routing_key; /* borrowed from the task (its reply_to) */
    struct celery_outgoing out;
};
void celery_rpc_msg_free(struct celery_rpc_msg *m);

/* True when the producer can receive results: reply_to is set and ignore_result is not. */
bool celery_rpc_wanted(const struct celery_task *t);

/* The messages below need t->id and t->reply_to (CW_ERR_INTERNAL otherwise); `now` is the
 * wall clock for date_done. *out is initialised here; release it with celery_rpc_msg_free,
 * also after a failure. */
CW_MUST_CHECK int celery_rpc_started(const struct celery_task *t, const char *hostname, long pid,
                                     double now, struct celery_rpc_msg *out, struct cw_error *err);
/* result: the task's return value (borrowed; NULL is None). */
CW_MUST_CHECK int celery_rpc_success(const struct celery_task *t, json_object *result, double now,
                                     struct celery_rpc_msg *out, struct cw_error *err);
/* The task will run again; exc is why. traceback may be NULL. */
CW_MUST_CHECK int celery_rpc_retry(const struct celery_task *t, const struct celery_exception *exc,
                                   const char *traceback, double now, struct celery_rpc_msg *out,
                                   struct cw_error *err);
/* The task failed for good. traceback may be NULL. */
CW_MUST_CHECK int celery_rpc_failure(const struct celery_task *t,
                                     const struct celery_exception *exc, const char *traceback,
                                     double now, struct celery_rpc_msg *out, struct cw_error *err);
/* Not run: celery.exceptions.TaskRevokedError(reason), reason "revoked", "expired" or
 * "terminated" as Celery gives it. */
CW_MUST_CHECK int celery_rpc_revoked(const struct celery_task *t, const char *reason, double now,
                                     struct celery_rpc_msg *out, struct cw_error *err);
/* The worker has no task of that name: FAILURE with celery.exceptions.NotRegistered(name)
 * and no traceback, exactly what Celery's consumer sends (on_unknown_task), so that
 * AsyncResult.get() raises celery.exceptions.NotRegistered. */
CW_MUST_CHECK int celery_rpc_not_registered(const struct celery_task *t, double now,
                                            struct celery_rpc_msg *out, struct cw_error *err);

#endif
