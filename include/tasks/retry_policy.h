/* When a failed attempt is retried, and after how long (CONTRACT 1.8). Pure. */
#ifndef CWORKER_RETRY_POLICY_H
#define CWORKER_RETRY_POLICY_H

#include "base/error.h"

#include <stdbool.h>

struct retry_decision {
    bool retry;             /* publish a retry; otherwise the failure is final */
    double delay;           /* seconds before the retry runs */
    int next_retries;       /* the retry message's `retries` */
    const char *error_type; /* metrics error_type of a final failure */
};

/* retries: the failed message's `retries`. delays[i] is the wait before retry i+1; past the
 * list the last delay repeats. jitter_percent spreads delays by +-percent using `random01`
 * (a number in [0,1), passed in so the policy stays pure). */
struct retry_decision retry_policy_decide(enum cw_error_class cls, int retries, int max_retries,
                                          const double *delays, int ndelays, double jitter_percent,
                                          double random01);

/* Which of the ndelays delay queues (Q.retry.<delays[i]>s) the retry numbered next_retries
 * waits in: the i-th retry in the i-th queue, the last one for every retry past the list
 * (as the delays repeat). 0 when there is no list. */
int retry_policy_slot(int next_retries, int ndelays);

/* The error_message the run shows, per CONTRACT 1.8. */
void retry_policy_message(enum cw_error_class cls, const struct retry_decision *d, int max_retries,
                          const char *msg, char *out, size_t len);

#endif
