/* ISO-8601 times as Celery writes them (eta, expires) <-> epoch seconds (UTC). */
#include "celery/time.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

/* Python's datetime range (years 1..9999); anything else cannot round-trip. */
#define EPOCH_MIN (-62135596800.0)
#define EPOCH_MAX 253402300799.0

/* Reads exactly n digits. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        char c = (*p)[0];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
        (*p)++;
    }
    *out = v;
    return 0;
}

static int expect(const char **p, char c)
{
    if (**p != c)
        return -1;
    (*p)++;
    return 0;
}

static int days_in_month(int year, int mon)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

    return (mon == 2 && leap) ? 29 : days[mon - 1];
}

/* ".123456" or ",5": any number of digits; beyond nanoseconds they cannot matter. */
static int fraction(const char **p, double *out)
{
    double scale = 0.1;

    *out = 0;
    if (**p != '.' && **p != ',')
        return 0;
    (*p)++;
    if (**p < '0' || **p > '9')
        return -1;
    for (; **p >= '0' && **p <= '9'; (*p)++) {
        *out += (**p - '0') * scale;
        scale /= 10;
    }
    return 0;
}

/* Nothing (UTC), 'Z', or +HH, +HHMM, +HH:MM (also '-'). Sets seconds east of UTC. */
static int utc_offset(const char **p, long *out)
{
    int sign, hh, mm = 0;

    *out = 0;
    if (**p == '\0')
        return 0;
    if (**p == 'Z' || **p == 'z') {
        (*p)++;
        return 0;
    }
    if (**p != '+' && **p != '-')
        return -1;
    sign = (**p == '-') ? -1 : 1;
    (*p)++;
    if (digits(p, 2, &hh) != 0)
        return -1;
    if (**p == ':')
        (*p)++;
    if (**p != '\0' && digits(p, 2, &mm) != 0)
        return -1;
    if (hh > 23 || mm > 59)
        return -1;
    *out = sign * (hh * 3600L + mm * 60L);
    return 0;
}

static int clock_time(const char **p, struct tm *tm, double *frac)
{
    *frac = 0;
    if (digits(p, 2, &tm->tm_hour) != 0 || expect(p, ':') != 0 || digits(p, 2, &tm->tm_min) != 0)
        return -1;
    if (**p == ':') {
        (*p)++;
        if (digits(p, 2, &tm->tm_sec) != 0 || fraction(p, frac) != 0)
            return -1;
    }
    /* 60 admits a leap second; timegm carries it into the next minute. */
    return (tm->tm_hour > 23 || tm->tm_min > 59 || tm->tm_sec > 60) ? -1 : 0;
}

int celery_parse_iso8601(const char *s, double *epoch_out)
{
    struct tm tm = {0};
    const char *p = s;
    int year, mon, day;
    double frac = 0;
    long offset = 0;

    if (s == NULL || digits(&p, 4, &year) != 0 || expect(&p, '-') != 0 ||
        digits(&p, 2, &mon) != 0 || expect(&p, '-') != 0 || digits(&p, 2, &day) != 0)
        return -1;
    if (year < 1 || mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon))
        return -1;
    if (*p != '\0') {
        if (*p != 'T' && *p != 't' && *p != ' ')
            return -1;
        p++;
        if (clock_time(&p, &tm, &frac) != 0 || utc_offset(&p, &offset) != 0 || *p != '\0')
            return -1;
    }
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    *epoch_out = (double)timegm(&tm) + frac - (double)offset;
    return 0;
}

void celery_format_iso8601(double epoch, char *buf, size_t len)
{
    double whole;
    long usec;
    time_t t;
    struct tm tm;

    if (len == 0)
        return;
    buf[0] = '\0';
    if (!isfinite(epoch) || epoch < EPOCH_MIN || epoch > EPOCH_MAX)
        return;
    whole = floor(epoch);
    usec = lround((epoch - whole) * 1e6);
    if (usec >= 1000000) {
        whole += 1;
        usec -= 1000000;
    }
    t = (time_t)whole;
    if (gmtime_r(&t, &tm) == NULL)
        return;
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld+00:00", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, usec);
}
