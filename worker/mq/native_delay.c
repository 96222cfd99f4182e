/* Celery 5.5's native delayed-delivery ladder: names and keys (see mq/native_delay.h). */
#include "mq/native_delay.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void native_delay_level_name(int level, char *out, size_t len)
{
    snprintf(out, len, "celery_delayed_%d", level);
}

/* "*." once for each digit above `level`, then the digit and ".#". */
static void digit_key(int level, char digit, char *out, size_t len)
{
    size_t n = 0;
    for (int i = NATIVE_DELAY_MAX_LEVEL; i > level && n + 2 < len; i--) {
        out[n++] = '*';
        out[n++] = '.';
    }
    snprintf(out + n, len - n, "%c.#", digit);
}

void native_delay_queue_key(int level, char *out, size_t len)
{
    digit_key(level, '1', out, len);
}

void native_delay_pass_key(int level, char *out, size_t len)
{
    digit_key(level, '0', out, len);
}

void native_delay_work_key(const char *rk, char *out, size_t len)
{
    snprintf(out, len, rk[0] == '#' ? "%s" : "#.%s", rk);
}

bool native_delay_routing_key(long seconds, const char *rk, char *out, size_t len)
{
    size_t need = 2 * NATIVE_DELAY_LEVELS + strlen(rk) + 1;
    if (seconds < 1 || seconds > NATIVE_DELAY_MAX_SECONDS || rk[0] == '\0' ||
        strlen(rk) > NATIVE_DELAY_MAX_QUEUE_KEY || need > len)
        return false;
    size_t n = 0;
    for (int bit = NATIVE_DELAY_MAX_LEVEL; bit >= 0; bit--) {
        out[n++] = (seconds >> bit) & 1 ? '1' : '0';
        out[n++] = '.';
    }
    memcpy(out + n, rk, strlen(rk) + 1);
    return true;
}

long native_delay_seconds(double delay)
{
    if (!(delay >= 0.001)) /* also NaN */
        return 0;
    if (delay >= (double)NATIVE_DELAY_MAX_SECONDS)
        return NATIVE_DELAY_MAX_SECONDS;
    return (long)ceil(delay);
}
