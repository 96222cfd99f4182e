/* Connection attempts in a thread of their own (see mq/connector.h). */
#include "mq/connector.h"

#include <signal.h>
#include <string.h>

static void *attempt(void *arg)
{
    struct mq_connector *k = arg;
    cw_error_clear(&k->err);
    k->rc = k->open(k->arg, &k->conn, &k->err);
    if (k->rc != 0)
        mq_conn_abandon(&k->conn);
    atomic_store(&k->finished, true);
    return NULL;
}

bool mq_connector_start(struct mq_connector *k, mq_open_fn open, void *arg, struct cw_error *err)
{
    if (k->running)
        return false;
    memset(&k->conn, 0, sizeof k->conn);
    k->open = open;
    k->arg = arg;
    atomic_store(&k->finished, false);
    /* Signals stay with the loop's thread: stop signals must interrupt its poll(). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&k->thread, NULL, attempt, k);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "cannot start a connection thread: %s", strerror(rc));
        return false;
    }
    k->running = true;
    return true;
}

int mq_connector_poll(struct mq_connector *k, struct mq_conn *out, bool *ok, struct cw_error *err)
{
    if (!k->running || !atomic_load(&k->finished))
        return 0;
    pthread_join(k->thread, NULL);
    k->running = false;
    *ok = k->rc == 0;
    if (*ok)
        *out = k->conn;
    else
        *err = k->err;
    memset(&k->conn, 0, sizeof k->conn);
    return 1;
}

bool mq_connector_busy(const struct mq_connector *k)
{
    return k->running;
}

void mq_connector_stop(struct mq_connector *k)
{
    if (!k->running)
        return;
    pthread_join(k->thread, NULL); /* bounded: every step of an attempt has a timeout */
    k->running = false;
    mq_conn_close(&k->conn);
}
