/* Internal to the remote-control module: the replies of Celery's inspect commands
 * (`celery inspect active|reserved|scheduled|query_task|revoked|registered|active_queues|
 * stats|conf|report`) built from the state celery_control_handle is given. Pure: no I/O,
 * no logging. Every json_object returned is new and owned by the caller (a reply value);
 * st and everything it points to are borrowed. */
#ifndef CWORKER_CELERY_INSPECT_H
#define CWORKER_CELERY_INSPECT_H

#include "celery/control.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

/* A list of Request.info() dicts; safe shows argsrepr/kwargsrepr instead of the values
 * (`inspect active --safe`). */
json_object *celery_inspect_tasks(const struct celery_control_state *st,
                                  const struct celery_control_task *tasks, size_t n, bool safe);

/* `inspect scheduled`: [{"eta", "priority", "request"}] of st->scheduled. */
json_object *celery_inspect_scheduled(const struct celery_control_state *st);

/* The task with this id among active, reserved and scheduled, and in *state its state
 * name ("active" or "reserved"); NULL when this worker does not hold it. */
const struct celery_control_task *celery_inspect_find_task(const struct celery_control_state *st,
                                                           const char *id, const char **state);

/* `inspect query_task`: {id: [state, info]} for those of ids (an array of strings,
 * borrowed) that this worker holds. */
json_object *celery_inspect_query_task(const struct celery_control_state *st, json_object *ids);

/* `inspect revoked`: the revoked ids. */
json_object *celery_inspect_revoked(const struct celery_control_state *st);

/* Sorted names, Celery's own celery.* tasks left out (as registered() does by default). */
json_object *celery_inspect_registered(const struct celery_control_state *st);

/* `inspect active_queues`: the consumed queues as kombu's Queue.as_dict(recurse=True). */
json_object *celery_inspect_active_queues(const struct celery_control_state *st);

/* `inspect stats`: totals, pid, clock, uptime, pool, broker (never the password),
 * prefetch_count and rusage. */
json_object *celery_inspect_stats(const struct celery_control_state *st);

/* The settings that differ from Celery's defaults, as `inspect conf` lists them. */
json_object *celery_inspect_conf(const struct celery_control_state *st);

/* `inspect report`'s text into out (truncated to len, always terminated). */
void celery_inspect_report(const struct celery_control_state *st, char *out, size_t len);

#endif
