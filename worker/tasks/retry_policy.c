/* Retry policy: permanent fails now, transient retries with the configured delays. */
#include "tasks/retry_policy.h"

#include <stdio.h>

struct retry_decision retry_policy_decide(enum cw_error_class cls, int retries, int max_retries,
                                          const double *delays, int ndelays, double jitter_percent,
                                          double random01)
{
    struct retry_decision d = {false, 0, retries, "permanent"};
    switch (cls) {
    case CW_ERR_TIMEOUT:
        d.error_type = "timeout";
        return d;
    case CW_ERR_PERMANENT:
        return d;
    case CW_ERR_TRANSIENT:
        if (retries >= max_retries || ndelays <= 0) {
            d.error_type = "transient_exhausted";
            return d;
        }
        d.retry = true;
        d.next_retries = retries + 1;
        d.delay = delays[retries < ndelays ? retries : ndelays - 1];
        if (jitter_percent > 0)
            d.delay *= 1.0 + jitter_percent / 100.0 * (2.0 * random01 - 1.0);
        d.error_type = NULL;
        return d;
    case CW_ERR_NONE:
    case CW_ERR_INTERNAL:
        break;
    }
    d.error_type = "internal";
    return d;
}

void retry_policy_message(enum cw_error_class cls, const struct retry_decision *d, int max_retries,
                          const char *msg, char *out, size_t len)
{
    if (d->retry)
        snprintf(out, len, "Transient error (retry %d): %s", d->next_retries, msg);
    else if (cls == CW_ERR_TIMEOUT)
        snprintf(out, len, "Task exceeded time limit");
    else if (cls == CW_ERR_TRANSIENT)
        snprintf(out, len, "Failed after %d retries: %s", max_retries, msg);
    else if (cls == CW_ERR_PERMANENT)
        snprintf(out, len, "Permanent error: %s", msg);
    else
        snprintf(out, len, "Unexpected error: %s", msg);
}
