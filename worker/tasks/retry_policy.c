/* Retry policy: permanent fails now, transient retries with the configured delays. */
#include "tasks/retry_policy.h"

#include <stdio.h>

static double clamp(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* delays[retries], the last one repeating; spread by +-jitter_percent (clamped to 0..100,
 * so a delay is never negative) with random01 clamped to [0,1]. */
static double jittered_delay(int retries, const double *delays, int ndelays, double jitter_percent,
                             double random01)
{
    double delay = delays[retries < ndelays ? retries : ndelays - 1];
    double spread = clamp(jitter_percent, 0, 100) / 100.0;
    return delay * (1.0 + spread * (2.0 * clamp(random01, 0, 1) - 1.0));
}

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
        if (retries < 0) /* a corrupt count indexes no delay: treat it as the first attempt */
            retries = 0;
        if (retries >= max_retries || ndelays <= 0) {
            d.error_type = "transient_exhausted";
            return d;
        }
        d.retry = true;
        d.next_retries = retries + 1;
        d.delay = jittered_delay(retries, delays, ndelays, jitter_percent, random01);
        d.error_type = NULL;
        return d;
    case CW_ERR_NONE:
    case CW_ERR_INTERNAL:
        break;
    }
    d.error_type = "internal";
    return d;
}

int retry_policy_slot(int next_retries, int ndelays)
{
    int slot = next_retries - 1 < ndelays ? next_retries - 1 : ndelays - 1;
    return slot < 0 ? 0 : slot;
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
