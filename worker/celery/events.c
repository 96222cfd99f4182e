/* Celery event messages (EventDispatcher.publish in celery/events/dispatcher.py): the
 * event body, kombu's properties and the routing key; plus the Python text forms the
 * events carry (saferepr of results, repr of exceptions, repr of floats). */
#include "celery/events.h"

#include "mq/json.h"
#include "celery/encode.h"
#include "base/strbuf.h"
#include "base/utf8.h"
#include "base/xalloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Celery's saferepr shows at most this many nested containers (its maxlevels). */
#define SAFEREPR_MAXLEVELS 3

static json_object *string_or_null(const char *s);
static int finish(const struct celery_worker_identity *w, const char *type, json_object *body,
                  double now, struct celery_event_msg *out, struct cw_error *err);

/* ---- the Lamport clock ---- */

uint64_t celery_clock_forward(struct celery_clock *c)
{
    return ++c->value;
}

void celery_clock_adjust(struct celery_clock *c, uint64_t other)
{
    c->value = (other > c->value ? other : c->value) + 1;
}

int celery_events_utcoffset(time_t now)
{
    struct tm tm;
    if (localtime_r(&now, &tm) == NULL)
        return 0;
    /* Python's time.timezone counts seconds west of UTC and Celery floor-divides it. */
    return (int)floor((double)-tm.tm_gmtoff / 3600.0);
}

/* ---- the message ---- */

void celery_event_msg_free(struct celery_event_msg *m)
{
    celery_outgoing_free(&m->out);
    m->routing_key[0] = '\0';
}

static amqp_bytes_t pool_str(amqp_pool_t *pool, const char *s)
{
    size_t len = strlen(s);
    amqp_bytes_t b;
    b.bytes = amqp_pool_alloc(pool, len ? len : 1);
    if (b.bytes == NULL)
        abort(); /* out of memory: same policy as cw_xmalloc */
    memcpy(b.bytes, s, len);
    b.len = len;
    return b;
}

int celery_events_fill_json(struct celery_outgoing *out, json_object *headers, json_object *body,
                            uint8_t delivery_mode, struct cw_error *err)
{
    amqp_basic_properties_t *p = &out->props;
    if (headers != NULL) {
        if (mq_json_to_table(headers, &out->pool, &p->headers, err) != 0)
            return -1;
        p->_flags |= AMQP_BASIC_HEADERS_FLAG;
    }
    p->_flags |= AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
                 AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG;
    p->content_type = pool_str(&out->pool, "application/json");
    p->content_encoding = pool_str(&out->pool, "utf-8");
    p->delivery_mode = delivery_mode;
    p->priority = 0;
    out->body =
        pool_str(&out->pool, json_object_to_json_string_ext(
                                 body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    return 0;
}

/* The fields Event() and EventDispatcher.publish put first, in Celery's order. */
static json_object *event_head(const struct celery_worker_identity *w)
{
    json_object *e = json_object_new_object();
    json_object_object_add(e, "hostname", json_object_new_string(w->hostname));
    json_object_object_add(e, "utcoffset", json_object_new_int(w->utcoffset));
    json_object_object_add(e, "pid", json_object_new_int64(w->pid));
    json_object_object_add(e, "clock",
                           json_object_new_int64((int64_t)celery_clock_forward(w->clock)));
    return e;
}

static int check_identity(const struct celery_worker_identity *w, struct cw_error *err)
{
    if (w == NULL || w->hostname == NULL || w->hostname[0] == '\0' || w->clock == NULL) {
        CW_FAIL(err, CW_ERR_INTERNAL, "event sender has no node name or clock");
        return -1;
    }
    return 0;
}

/* Adds timestamp and type last (as Event() does), fills the message; takes body. */
static int finish(const struct celery_worker_identity *w, const char *type, json_object *body,
                  double now, struct celery_event_msg *out, struct cw_error *err)
{
    json_object *headers = json_object_new_object();
    int rc;

    json_object_object_add(body, "timestamp", celery_events_double(now));
    json_object_object_add(body, "type", json_object_new_string(type));
    /* EventDispatcher.publish: routing_key=type.replace('-', '.') */
    snprintf(out->routing_key, sizeof out->routing_key, "%s", type);
    for (char *c = out->routing_key; *c; c++)
        if (*c == '-')
            *c = '.';
    json_object_object_add(headers, "hostname", json_object_new_string(w->hostname));
    rc = celery_events_fill_json(&out->out, headers, body, 1, err);
    json_object_put(headers);
    json_object_put(body);
    if (rc != 0)
        CW_WRAP(err, "encoding the %s event", type);
    return rc;
}

static void msg_init(struct celery_event_msg *out)
{
    memset(out, 0, sizeof *out);
    celery_outgoing_init(&out->out);
}

static const char *const worker_event_types[] = {
    [CELERY_WORKER_ONLINE] = "worker-online",
    [CELERY_WORKER_HEARTBEAT] = "worker-heartbeat",
    [CELERY_WORKER_OFFLINE] = "worker-offline",
};

int celery_events_worker(const struct celery_worker_identity *w, enum celery_worker_event type,
                         const struct celery_worker_load *load, double now,
                         struct celery_event_msg *out, struct cw_error *err)
{
    msg_init(out);
    if (check_identity(w, err) != 0)
        return -1;
    if ((unsigned)type > CELERY_WORKER_OFFLINE || load == NULL) {
        CW_FAIL(err, CW_ERR_INTERNAL, "bad worker event %d", (int)type);
        return -1;
    }
    json_object *e = event_head(w);
    json_object *avg = json_object_new_array_ext(3);
    for (int i = 0; i < 3; i++) /* celery.utils.sysinfo.load_average rounds up */
        json_object_array_add(avg, celery_events_double(ceil(load->loadavg[i] * 1e2) / 1e2));
    json_object_object_add(e, "freq", celery_events_double(load->freq));
    json_object_object_add(e, "active", json_object_new_int(load->active));
    json_object_object_add(e, "processed", json_object_new_int64((int64_t)load->processed));
    json_object_object_add(e, "loadavg", avg);
    json_object_object_add(e, "sw_ident", string_or_null(w->sw_ident));
    json_object_object_add(e, "sw_ver", string_or_null(w->sw_ver));
    json_object_object_add(e, "sw_sys", string_or_null(w->sw_sys));
    return finish(w, worker_event_types[type], e, now, out, err);
}

/* ---- task events (celery/worker/strategy.py and request.py) ---- */

static json_object *string_or_null(const char *s)
{
    return s != NULL ? json_object_new_string(s) : NULL;
}

static json_object *iso_or_null(bool has, double epoch)
{
    char buf[64];
    if (!has)
        return NULL;
    celery_format_iso8601(epoch, buf, sizeof buf);
    return buf[0] ? json_object_new_string(buf) : NULL;
}

/* The producer's argsrepr/kwargsrepr; protocol 1 messages have none: repr the values. */
static json_object *repr_field(const char *given, json_object *value)
{
    if (given != NULL)
        return json_object_new_string(given);
    char *r = celery_events_saferepr(value, -1);
    json_object *s = json_object_new_string(r);
    free(r);
    return s;
}

/* Starts a task event: the common head plus uuid. */
static int task_head(const struct celery_worker_identity *w, const char *uuid,
                     struct celery_event_msg *out, json_object **e, struct cw_error *err)
{
    msg_init(out);
    *e = NULL;
    if (check_identity(w, err) != 0)
        return -1;
    if (uuid == NULL || uuid[0] == '\0') {
        CW_FAIL(err, CW_ERR_INTERNAL, "task event without a task id");
        return -1;
    }
    *e = event_head(w);
    json_object_object_add(*e, "uuid", json_object_new_string(uuid));
    return 0;
}

int celery_events_task_received(const struct celery_worker_identity *w, const struct celery_task *t,
                                double now, struct celery_event_msg *out, struct cw_error *err)
{
    json_object *e;
    if (task_head(w, t ? t->id : NULL, out, &e, err) != 0)
        return -1;
    json_object_object_add(e, "name", string_or_null(t->task));
    json_object_object_add(e, "args", repr_field(t->argsrepr, t->args));
    json_object_object_add(e, "kwargs", repr_field(t->kwargsrepr, t->kwargs));
    json_object_object_add(e, "root_id", string_or_null(t->root_id));
    json_object_object_add(e, "parent_id", string_or_null(t->parent_id));
    json_object_object_add(e, "retries", json_object_new_int(t->retries));
    json_object_object_add(e, "eta", iso_or_null(t->has_eta, t->eta));
    json_object_object_add(e, "expires", iso_or_null(t->has_expires, t->expires));
    return finish(w, "task-received", e, now, out, err);
}

int celery_events_task_started(const struct celery_worker_identity *w, const char *uuid, double now,
                               struct celery_event_msg *out, struct cw_error *err)
{
    json_object *e;
    if (task_head(w, uuid, out, &e, err) != 0)
        return -1;
    return finish(w, "task-started", e, now, out, err);
}

int celery_events_task_succeeded(const struct celery_worker_identity *w, const char *uuid,
                                 json_object *result, double runtime, double now,
                                 struct celery_event_msg *out, struct cw_error *err)
{
    json_object *e;
    if (task_head(w, uuid, out, &e, err) != 0)
        return -1;
    /* Celery sends saferepr(retval, resultrepr_maxsize), never the value itself. */
    char *r = celery_events_saferepr(result, CELERY_EVENTS_RESULT_REPR_MAX);
    json_object_object_add(e, "result", json_object_new_string(r));
    free(r);
    json_object_object_add(e, "runtime", celery_events_double(runtime));
    return finish(w, "task-succeeded", e, now, out, err);
}

static int exception_event(const struct celery_worker_identity *w, const char *type,
                           const char *uuid, const char *exception, const char *traceback,
                           double now, struct celery_event_msg *out, struct cw_error *err)
{
    json_object *e;
    if (task_head(w, uuid, out, &e, err) != 0)
        return -1;
    json_object_object_add(e, "exception", string_or_null(exception));
    if (traceback != NULL)
        json_object_object_add(e, "traceback", json_object_new_string(traceback));
    return finish(w, type, e, now, out, err);
}

int celery_events_task_failed(const struct celery_worker_identity *w, const char *uuid,
                              const char *exception, const char *traceback, double now,
                              struct celery_event_msg *out, struct cw_error *err)
{
    return exception_event(w, "task-failed", uuid, exception, traceback, now, out, err);
}

int celery_events_task_retried(const struct celery_worker_identity *w, const char *uuid,
                               const char *exception, const char *traceback, double now,
                               struct celery_event_msg *out, struct cw_error *err)
{
    return exception_event(w, "task-retried", uuid, exception, traceback, now, out, err);
}

int celery_events_task_rejected(const struct celery_worker_identity *w, const char *uuid,
                                bool requeue, double now, struct celery_event_msg *out,
                                struct cw_error *err)
{
    json_object *e;
    if (task_head(w, uuid, out, &e, err) != 0)
        return -1;
    json_object_object_add(e, "requeue", json_object_new_boolean(requeue));
    return finish(w, "task-rejected", e, now, out, err);
}

int celery_events_task_revoked(const struct celery_worker_identity *w, const char *uuid,
                               bool terminated, int signum, bool expired, double now,
                               struct celery_event_msg *out, struct cw_error *err)
{
    json_object *e;
    if (task_head(w, uuid, out, &e, err) != 0)
        return -1;
    json_object_object_add(e, "terminated", json_object_new_boolean(terminated));
    json_object_object_add(e, "signum", signum > 0 ? json_object_new_int(signum) : NULL);
    json_object_object_add(e, "expired", json_object_new_boolean(expired));
    return finish(w, "task-revoked", e, now, out, err);
}

/* ---- Python's repr(float) ---- */

/* Shortest digits that read back as v (what Python's float repr prints), laid out as
 * Python does: positional for exponents -4..15 (always with a fraction), else 1e+16. */
static void float_repr(double v, char *buf, size_t len)
{
    char sci[40];
    int prec, exp;

    if (!isfinite(v)) {
        snprintf(buf, len, "%s", isnan(v) ? "nan" : v < 0 ? "-inf" : "inf");
        return;
    }
    for (prec = 1; prec < 17; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec - 1, v);
        if (strtod(sci, NULL) == v)
            break;
    }
    snprintf(sci, sizeof sci, "%.*e", prec - 1, v);
    exp = atoi(strchr(sci, 'e') + 1);
    if (exp < -4 || exp >= 16) {
        snprintf(buf, len, "%s", sci);
        return;
    }
    snprintf(buf, len, "%.*f", prec - 1 - exp > 0 ? prec - 1 - exp : 0, v);
    if (strchr(buf, '.') == NULL)
        strncat(buf, ".0", len - strlen(buf) - 1);
}

json_object *celery_events_double(double v)
{
    char buf[64];
    float_repr(v, buf, sizeof buf);
    return json_object_new_double_s(v, buf);
}

/* ---- Celery's saferepr (celery/utils/saferepr.py) over JSON values ----
 *
 * saferepr streams tokens and, with a maxlen, checks the remaining budget before each
 * token: once it is spent it writes ", ..." and only the closing brackets of the
 * containers still open. Lengths count characters, not bytes. */

struct srepr {
    struct strbuf out;
    bool limited;
    long budget; /* characters left when limited */
    bool stopped;
    int level;
};

static void srepr_put(struct srepr *r, const char *s, size_t len)
{
    strbuf_append(&r->out, s, len);
    if (r->limited)
        r->budget -= (long)utf8_char_count(s, len);
}

/* The check Celery makes before each token; false once the budget is spent. */
static bool srepr_may_emit(struct srepr *r)
{
    if (r->stopped)
        return false;
    if (r->limited && r->budget <= 0) {
        strbuf_append_str(&r->out, ", ...");
        r->stopped = true;
        return false;
    }
    return true;
}

static void srepr_literal(struct srepr *r, const char *s)
{
    if (srepr_may_emit(r))
        srepr_put(r, s, strlen(s));
}

/* Closing brackets of containers still open when the budget ran out are written anyway
 * (Celery's dangling parens), but a bracket whose own check found the budget spent is
 * lost with that check, as in Celery: "{'x': 'ab...', ...". */
static void srepr_close(struct srepr *r, const char *s)
{
    if (r->stopped)
        strbuf_append_str(&r->out, s);
    else if (srepr_may_emit(r))
        srepr_put(r, s, strlen(s));
}

/* celery.utils.text.truncate: at maxlen characters, back to the last space, plus "...". */
static void srepr_truncated(struct srepr *r, const char *s, size_t len, struct strbuf *to)
{
    if (r->limited && r->budget > 0 && utf8_char_count(s, len) >= (size_t)r->budget) {
        size_t cut = utf8_prefix_chars(s, len, (size_t)r->budget);
        const char *space = memrchr(s, ' ', cut);
        strbuf_append(to, s, space ? (size_t)(space - s) : cut);
        strbuf_append_str(to, "...");
        return;
    }
    strbuf_append(to, s, len);
}

/* A string token: quoted with ', only ' escaped (_format_chars). */
static void srepr_string(struct srepr *r, const char *s, size_t len)
{
    struct strbuf cut = STRBUF_INIT, q = STRBUF_INIT;
    if (!srepr_may_emit(r))
        return;
    srepr_truncated(r, s, len, &cut);
    strbuf_append_char(&q, '\'');
    for (size_t i = 0; i < cut.len; i++) {
        if (cut.data[i] == '\'')
            strbuf_append_char(&q, '\\');
        strbuf_append_char(&q, cut.data[i]);
    }
    strbuf_append_char(&q, '\'');
    srepr_put(r, q.data, q.len);
    strbuf_free(&cut);
    strbuf_free(&q);
}

/* Numbers, booleans, None and "{...}": str() of the value, truncated like text. */
static void srepr_text(struct srepr *r, const char *s)
{
    struct strbuf t = STRBUF_INIT;
    if (!srepr_may_emit(r))
        return;
    srepr_truncated(r, s, strlen(s), &t);
    srepr_put(r, strbuf_cstr(&t), t.len);
    strbuf_free(&t);
}

static void srepr_value(struct srepr *r, json_object *v);

static void srepr_container(struct srepr *r, json_object *v, bool is_object)
{
    if (r->level >= SAFEREPR_MAXLEVELS) {
        srepr_text(r, is_object ? "{...}" : "[...]");
        return;
    }
    srepr_literal(r, is_object ? "{" : "[");
    r->level++;
    if (is_object) {
        bool first = true;
        json_object_object_foreach(v, key, val)
        {
            if (!first)
                srepr_literal(r, ", ");
            first = false;
            srepr_string(r, key, strlen(key));
            srepr_literal(r, ": ");
            srepr_value(r, val);
        }
    } else {
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            if (i > 0)
                srepr_literal(r, ", ");
            srepr_value(r, json_object_array_get_idx(v, i));
        }
    }
    r->level--;
    srepr_close(r, is_object ? "}" : "]");
}

static void srepr_value(struct srepr *r, json_object *v)
{
    char num[64];
    switch (json_object_get_type(v)) {
    case json_type_null:
        srepr_text(r, "None");
        break;
    case json_type_boolean:
        srepr_text(r, json_object_get_boolean(v) ? "True" : "False");
        break;
    case json_type_int:
        snprintf(num, sizeof num, "%lld", (long long)json_object_get_int64(v));
        srepr_text(r, num);
        break;
    case json_type_double:
        float_repr(json_object_get_double(v), num, sizeof num);
        srepr_text(r, num);
        break;
    case json_type_string:
        srepr_string(r, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        break;
    case json_type_object:
        srepr_container(r, v, true);
        break;
    case json_type_array:
        srepr_container(r, v, false);
        break;
    }
}

char *celery_events_saferepr(json_object *value, long maxlen)
{
    struct srepr r = {STRBUF_INIT, maxlen >= 0, maxlen, false, 0};
    srepr_value(&r, value);
    return strbuf_steal(&r.out);
}

/* ---- Python's repr(str), for exception reprs ---- */

/* Decodes one UTF-8 sequence at s (len > 0); returns its length, or 0 when malformed. */
static size_t utf8_decode(const unsigned char *s, size_t len, unsigned *cp)
{
    size_t n = s[0] < 0x80             ? 1
               : (s[0] & 0xE0) == 0xC0 ? 2
               : (s[0] & 0xF0) == 0xE0 ? 3
               : (s[0] & 0xF8) == 0xF0 ? 4
                                       : 0;
    if (n == 0 || n > len || !utf8_valid((const char *)s, n))
        return 0;
    *cp = n == 1 ? s[0] : s[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++)
        *cp = (*cp << 6) | (s[i] & 0x3F);
    return n;
}

/* Characters str.isprintable() rejects that a message may plausibly hold: controls,
 * C1 controls, no-break space, soft hyphen and the common invisible format characters. */
static bool py_unprintable(unsigned cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD ||
           (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202E) ||
           (cp >= 0x2060 && cp <= 0x2064) || cp == 0xFEFF;
}

static void py_escape(struct strbuf *sb, unsigned cp)
{
    if (cp == '\n')
        strbuf_append_str(sb, "\\n");
    else if (cp == '\r')
        strbuf_append_str(sb, "\\r");
    else if (cp == '\t')
        strbuf_append_str(sb, "\\t");
    else if (cp <= 0xFF)
        strbuf_appendf(sb, "\\x%02x", cp);
    else
        strbuf_appendf(sb, "\\u%04x", cp);
}

static void py_str_repr(struct strbuf *sb, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    char quote = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';

    strbuf_append_char(sb, quote);
    while (len > 0) {
        unsigned cp;
        size_t n = utf8_decode(p, len, &cp);
        if (n == 0) { /* not UTF-8: show the byte, keep the output valid UTF-8 */
            strbuf_appendf(sb, "\\x%02x", *p);
            n = 1;
        } else if (cp == '\\' || cp == (unsigned)quote) {
            strbuf_append_char(sb, '\\');
            strbuf_append_char(sb, (char)cp);
        } else if (py_unprintable(cp)) {
            py_escape(sb, cp);
        } else {
            strbuf_append(sb, p, n);
        }
        p += n;
        len -= n;
    }
    strbuf_append_char(sb, quote);
}

char *celery_events_exception_repr(const char *exc_type, const char *message)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_append_str(&sb, exc_type && exc_type[0] ? exc_type : "Exception");
    strbuf_append_char(&sb, '(');
    if (message != NULL)
        py_str_repr(&sb, message);
    strbuf_append_char(&sb, ')');
    return strbuf_steal(&sb);
}
