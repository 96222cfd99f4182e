/* Reading a message of <queue>.dead (what dead_letter.h wrote): what it is and why it is
 * there. (Its properties as they were before dead-lettering, for a replay, are
 * dead_letter_restore_properties.) Pure module: no I/O, no logging. Never decodes a
 * non-JSON body. */
#ifndef CWORKER_DLQ_MESSAGE_H
#define CWORKER_DLQ_MESSAGE_H

#include <amqp.h>
#include <json-c/json.h>

/* A new JSON object (caller owns) describing a dead-lettered message:
 *   position         the given position (1 = head of the queue)
 *   task_id, task    from the Celery headers `id`/`task`, else from a protocol 1 JSON
 *                    body's "id"/"task"; null when neither says
 *   reason, original_queue, dead_lettered_at   the x-cworker-* headers, or null
 *   content_type     the property, or null
 *   body_bytes       the body's size
 *   run_id           for a message of task `run_task` (parse_run) that decodes (JSON only):
 *                    its run id argument (first positional or run_id keyword); else null
 * Strings that are not valid UTF-8 are shown with '?' for the bad bytes. */
json_object *dlq_message_describe(const amqp_basic_properties_t *props, amqp_bytes_t body,
                                  long position, const char *run_task);

#endif
