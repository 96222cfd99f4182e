/* Shared by the files of the rabbitmq-c wrapper (mq/conn.c, mq/topology.c, mq/url.c) and
 * nothing else: error helpers and the URL form rabbitmq-c parses. */
#ifndef CWORKER_MQ_CONN_INTERNAL_H
#define CWORKER_MQ_CONN_INTERNAL_H

#include "base/error.h"
#include "mq/conn.h"

#include <amqp.h>

/* err from a reply of the broker or the library, naming what was done and where. */
int mq_fail_reply(struct cw_error *err, const struct mq_conn *c, amqp_rpc_reply_t r,
                  const char *what);
/* The reply of the last synchronous call, as mq_fail_reply (0 when it was fine). */
int mq_check_rpc(struct mq_conn *c, const char *what, struct cw_error *err);
/* err from a rabbitmq-c status code. Returns -1. */
int mq_fail_status(struct cw_error *err, const struct mq_conn *c, int status, const char *what);
/* A copy of a kombu URL that rabbitmq-c parses the way kombu reads the original. */
char *mq_url_for_rabbitmq_c(const char *url);

#endif
