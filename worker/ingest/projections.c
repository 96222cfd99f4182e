/* Turns the parsed .conf files of one run into COPY text for the stanzas table and the
 * six typed projection tables (CONTRACT 1.4, 1.7). Pure: no I/O.
 *
 * Every varchar(n) value goes through put_text, which cuts it to n characters (as
 * PostgreSQL counts them) on a UTF-8 boundary and counts the cut: one over-long value
 * must never fail the whole run's COPY. json/jsonb values are made with json-c. */
#include "ingest/projections.h"
#include "ingest/copy_text.h"
#include "ingest/provenance.h"
#include "base/utf8.h"
#include "base/xalloc.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Column widths from the application's schema (CONTRACT 1.4). */
enum {
    W_CONF_TYPE = 50,
    W_NAME = 512,  /* stanzas.name, props.target, transforms.name */
    W_SHORT = 255, /* app, index, sourcetype, stanza_type, dest_key, array elements, ... */
    W_SCOPE = 50,
    W_PATH = 1024,
};

struct proj_serverclass {
    char *name;
    json_object *whitelist, *blacklist, *apps, *kv; /* objects, possibly empty */
};

static const char *const TABLE_NAMES[PROJ_COUNT] = {
    "inputs", "props", "transforms", "indexes", "outputs", "serverclasses",
};

static const char *const COPY_TARGETS[PROJ_COUNT] = {
    "inputs (run_id, source_path, stanza_type, \"index\", sourcetype, disabled, kv, app, "
    "scope, layer)",
    "props (run_id, target, transforms_list, sedcmds, kv)",
    "transforms (run_id, name, dest_key, regex, format, writes_meta_index, "
    "writes_meta_sourcetype, kv)",
    "indexes (run_id, name, kv)",
    "outputs (run_id, group_name, servers, kv)",
    "serverclasses (run_id, name, whitelist, blacklist, app_assignments, kv)",
};

const char STANZAS_COPY_TARGET[] = "stanzas (run_id, file_id, conf_type, name, app, scope, "
                                   "layer, order_in_file, source_path, raw_kv)";

const char *proj_table_name(enum proj_table t)
{
    return (unsigned)t < PROJ_COUNT ? TABLE_NAMES[t] : "unknown";
}

const char *proj_copy_target(enum proj_table t)
{
    return (unsigned)t < PROJ_COUNT ? COPY_TARGETS[t] : NULL;
}

/* ---- field writers ------------------------------------------------------------------ */

/* A varchar(width) field; width 0 = unlimited (text). NULL writes \N. */
static void put_text(struct run_rows *rr, struct copy_row *row, const char *s, size_t width)
{
    if (!s) {
        copy_row_null(row);
        return;
    }
    size_t len = strlen(s);
    size_t keep = width ? utf8_prefix_chars(s, len, width) : len;
    if (keep < len)
        rr->truncations++;
    copy_row_text_n(row, s, keep);
}

/* Provenance strings use "" for NULL. */
static void put_opt(struct run_rows *rr, struct copy_row *row, const char *s, size_t width)
{
    put_text(rr, row, s[0] ? s : NULL, width);
}

static void put_bool(struct copy_row *row, int tristate)
{
    copy_row_text(row, tristate < 0 ? NULL : tristate ? "t" : "f");
}

/* json-c returns NULL (or -1) when memory runs out, where a wrong row would be written:
 * that is memory exhaustion as base/xalloc.h handles it (the run fails before any send,
 * tasks/parse_run.c checks first). The row written meanwhile is never sent. */
static json_object *new_object(void)
{
    json_object *obj = json_object_new_object();
    if (!obj)
        cw_xalloc_failed(sizeof(void *));
    return obj;
}

/* Writes obj as JSON text and releases it; an empty object when empty_is_null writes \N. */
static void put_json(struct copy_row *row, json_object *obj, bool empty_is_null)
{
    if (!obj || (empty_is_null && json_object_object_length(obj) == 0)) {
        copy_row_null(row);
    } else {
        size_t len;
        const char *js = json_object_to_json_string_length(
            obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!js) {
            cw_xalloc_failed(len);
            copy_row_null(row);
        } else {
            copy_row_text_n(row, js, len);
        }
    }
    json_object_put(obj);
}

/* Adds v (owned) to obj; false when it could not (after an exhaustion obj may be NULL),
 * v then dropped. */
static bool obj_add(json_object *obj, const char *key, json_object *v)
{
    if (obj && v && json_object_object_add(obj, key, v) == 0)
        return true;
    json_object_put(v);
    if (obj)
        cw_xalloc_failed(strlen(key));
    return false;
}

static void obj_set(json_object *obj, const char *key, const char *value)
{
    json_object *v = json_object_new_string(value);
    if (!v)
        cw_xalloc_failed(strlen(value));
    obj_add(obj, key, v);
}

/* A PostgreSQL array literal of varchar(255) elements, built up element by element:
 * {"a","b \"x\""}. Every element is quoted, so commas, braces and "NULL" are data. */
struct pg_array {
    struct strbuf lit;
    size_t n;
};

static void array_add(struct run_rows *rr, struct pg_array *a, const char *s, size_t len)
{
    size_t keep = utf8_prefix_chars(s, len, W_SHORT);
    if (keep < len)
        rr->truncations++;
    strbuf_append_str(&a->lit, a->n++ ? ",\"" : "{\"");
    for (size_t i = 0; i < keep; i++) {
        if (s[i] == '"' || s[i] == '\\')
            strbuf_append_char(&a->lit, '\\');
        strbuf_append_char(&a->lit, s[i]);
    }
    strbuf_append_char(&a->lit, '"');
}

/* Writes the array (NULL when it has no elements) and frees it. */
static void put_array(struct copy_row *row, struct pg_array *a)
{
    if (a->n == 0) {
        copy_row_null(row);
    } else {
        strbuf_append_char(&a->lit, '}');
        copy_row_text_n(row, a->lit.data, a->lit.len);
    }
    strbuf_free(&a->lit);
}

static bool has_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- the stanzas table -------------------------------------------------------------- */

static json_object *settings_object(const struct conf_stanza *st)
{
    json_object *obj = new_object();
    for (size_t i = 0; i < st->nsettings; i++)
        obj_set(obj, st->settings[i].key, st->settings[i].value);
    return obj;
}

static void put_app(struct run_rows *rr, struct copy_row *row, const struct provenance *pv)
{
    if (pv->app_truncated)
        rr->truncations++;
    put_opt(rr, row, pv->app, W_SHORT);
}

static void add_stanza_row(struct run_rows *rr, long file_id, const char *path, enum conf_type type,
                           const struct provenance *pv, const struct conf_stanza *st)
{
    struct copy_row row;
    copy_row_begin(&row, &rr->stanzas);
    copy_row_long(&row, rr->run_id);
    if (file_id > 0)
        copy_row_long(&row, file_id);
    else
        copy_row_null(&row);
    put_text(rr, &row, conf_type_name(type), W_CONF_TYPE);
    put_text(rr, &row, st->name, W_NAME);
    put_app(rr, &row, pv);
    put_opt(rr, &row, pv->scope, W_SCOPE);
    put_opt(rr, &row, pv->layer, W_SCOPE);
    copy_row_long(&row, st->order_in_file);
    put_text(rr, &row, path, W_PATH);
    put_json(&row, settings_object(st), false); /* {} for an empty stanza */
    copy_row_end(&row);
    rr->nstanzas++;
}

/* ---- typed projections ------------------------------------------------------------- */

static struct copy_row begin_typed(struct run_rows *rr, enum proj_table t)
{
    struct copy_row row;
    copy_row_begin(&row, &rr->typed[t]);
    copy_row_long(&row, rr->run_id);
    rr->ntyped[t]++;
    return row;
}

/* true/1/yes -> 1, false/0/no -> 0, anything else -> -1 (NULL). */
static int parse_bool(const char *v)
{
    static const char *const yes[] = {"true", "1", "yes"}, *const no[] = {"false", "0", "no"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return 1;
        if (strcasecmp(v, no[i]) == 0)
            return 0;
    }
    return -1;
}

static void add_inputs_row(struct run_rows *rr, const char *path, const struct provenance *pv,
                           const struct conf_stanza *st)
{
    const char *index = NULL, *sourcetype = NULL, *disabled = NULL;
    json_object *kv = new_object();
    for (size_t i = 0; i < st->nsettings; i++) {
        const struct conf_setting *s = &st->settings[i];
        if (strcmp(s->key, "index") == 0)
            index = s->value;
        else if (strcmp(s->key, "sourcetype") == 0)
            sourcetype = s->value;
        else if (strcmp(s->key, "disabled") == 0)
            disabled = s->value;
        else
            obj_set(kv, s->key, s->value);
    }
    /* stanza_type: the scheme of "monitor:///var/log", lower-cased; NULL without one. */
    const char *sep = strstr(st->name, "://");
    char *scheme = sep && sep > st->name ? cw_xstrndup(st->name, (size_t)(sep - st->name)) : NULL;
    for (char *c = scheme; c && *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');

    struct copy_row row = begin_typed(rr, PROJ_INPUTS);
    put_text(rr, &row, path, W_PATH);
    put_text(rr, &row, scheme, W_SHORT);
    put_text(rr, &row, index, W_SHORT);
    put_text(rr, &row, sourcetype, W_SHORT);
    put_bool(&row, disabled ? parse_bool(disabled) : -1);
    put_json(&row, kv, true);
    put_app(rr, &row, pv);
    put_opt(rr, &row, pv->scope, W_SCOPE);
    put_opt(rr, &row, pv->layer, W_SCOPE);
    copy_row_end(&row);
    free(scheme);
}

/* "a, b,,c " -> elements a, b, c. */
static void add_list(struct run_rows *rr, struct pg_array *a, const char *list)
{
    const char *p = list;
    for (;;) {
        const char *end = strchrnul(p, ',');
        const char *s = p;
        size_t n = (size_t)(end - p);
        while (n && (*s == ' ' || *s == '\t' || *s == '\n')) {
            s++;
            n--;
        }
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n'))
            n--;
        if (n)
            array_add(rr, a, s, n);
        if (!*end)
            break;
        p = end + 1;
    }
}

static void add_props_row(struct run_rows *rr, const struct conf_stanza *st)
{
    struct pg_array transforms = {STRBUF_INIT, 0}, sedcmds = {STRBUF_INIT, 0};
    json_object *kv = new_object();
    for (size_t i = 0; i < st->nsettings; i++) {
        const struct conf_setting *s = &st->settings[i];
        if (has_prefix_ci(s->key, "TRANSFORMS-"))
            add_list(rr, &transforms, s->value);
        else if (has_prefix_ci(s->key, "SEDCMD-"))
            array_add(rr, &sedcmds, s->value, strlen(s->value));
        else
            obj_set(kv, s->key, s->value);
    }
    struct copy_row row = begin_typed(rr, PROJ_PROPS);
    put_text(rr, &row, st->name, W_NAME);
    put_array(&row, &transforms);
    put_array(&row, &sedcmds);
    put_json(&row, kv, true);
    copy_row_end(&row);
}

static void add_transforms_row(struct run_rows *rr, const struct conf_stanza *st)
{
    const char *dest = NULL, *regex = NULL, *format = NULL;
    json_object *kv = new_object();
    for (size_t i = 0; i < st->nsettings; i++) {
        const struct conf_setting *s = &st->settings[i];
        if (strcmp(s->key, "DEST_KEY") == 0)
            dest = s->value;
        else if (strcmp(s->key, "REGEX") == 0)
            regex = s->value;
        else if (strcmp(s->key, "FORMAT") == 0)
            format = s->value;
        else
            obj_set(kv, s->key, s->value);
    }
    int meta_index = -1, meta_sourcetype = -1; /* unknown without DEST_KEY */
    if (dest) {
        meta_index = strcasecmp(dest, "_MetaData:Index") == 0;
        meta_sourcetype = strcasecmp(dest, "MetaData:Sourcetype") == 0 ||
                          strcasecmp(dest, "_MetaData:Sourcetype") == 0;
    }
    struct copy_row row = begin_typed(rr, PROJ_TRANSFORMS);
    put_text(rr, &row, st->name, W_NAME);
    put_text(rr, &row, dest, W_SHORT);
    put_text(rr, &row, regex, 0);
    put_text(rr, &row, format, 0);
    put_bool(&row, meta_index);
    put_bool(&row, meta_sourcetype);
    put_json(&row, kv, true);
    copy_row_end(&row);
}

static void add_indexes_row(struct run_rows *rr, const struct conf_stanza *st)
{
    struct copy_row row = begin_typed(rr, PROJ_INDEXES);
    put_text(rr, &row, st->name, W_SHORT);
    put_json(&row, settings_object(st), true);
    copy_row_end(&row);
}

static void add_outputs_row(struct run_rows *rr, const struct conf_stanza *st)
{
    json_object *servers = new_object(), *kv = new_object();
    for (size_t i = 0; i < st->nsettings; i++) {
        const struct conf_setting *s = &st->settings[i];
        bool is_server = strcmp(s->key, "server") == 0 || strcmp(s->key, "uri") == 0 ||
                         strcmp(s->key, "target_group") == 0;
        obj_set(is_server ? servers : kv, s->key, s->value);
    }
    struct copy_row row = begin_typed(rr, PROJ_OUTPUTS);
    put_text(rr, &row, st->name, W_SHORT);
    put_json(&row, servers, true);
    put_json(&row, kv, true);
    copy_row_end(&row);
}

/* ---- serverclasses: aggregated over the whole run ------------------------------------ */

/* The class named name[0..len), created on first mention (by either stanza kind); found
 * through set->index (name -> position), so many classes stay linear. */
static struct proj_serverclass *find_class(struct proj_class_set *set, const char *name, size_t len)
{
    char *key = cw_xstrndup(name, len);
    json_object *at;
    if (!set->index)
        set->index = new_object();
    if (json_object_object_get_ex(set->index, key, &at)) {
        free(key);
        return &set->v[json_object_get_int64(at)];
    }
    obj_add(set->index, key, json_object_new_int64((int64_t)set->n));
    if (set->n == set->cap) {
        set->cap = set->cap ? set->cap * 2 : 8;
        set->v = cw_xrealloc(set->v, set->cap * sizeof *set->v);
    }
    struct proj_serverclass *c = &set->v[set->n++];
    c->name = key;
    c->whitelist = new_object();
    c->blacklist = new_object();
    c->apps = new_object();
    c->kv = new_object();
    return c;
}

/* "whitelist.0" -> "0" when the suffix is a number (the pattern lists); other
 * whitelist.* keys (from_pathname, select_field, ...) stay in kv. */
static const char *list_index(const char *key, const char *prefix)
{
    if (!has_prefix_ci(key, prefix))
        return NULL;
    const char *n = key + strlen(prefix);
    if (!*n || strspn(n, "0123456789") != strlen(n))
        return NULL;
    return n;
}

static void merge_class_settings(struct proj_serverclass *c, const struct conf_stanza *st)
{
    for (size_t i = 0; i < st->nsettings; i++) {
        const struct conf_setting *s = &st->settings[i];
        const char *n;
        if ((n = list_index(s->key, "whitelist.")))
            obj_set(c->whitelist, n, s->value);
        else if ((n = list_index(s->key, "blacklist.")))
            obj_set(c->blacklist, n, s->value);
        else
            obj_set(c->kv, s->key, s->value);
    }
}

/* The settings object of app in apps, made when missing; borrowed (apps holds it), or
 * NULL when it cannot be added (memory exhausted). */
static json_object *app_object(json_object *apps, const char *app)
{
    json_object *obj;
    if (json_object_object_get_ex(apps, app, &obj))
        return obj;
    obj = new_object();
    bool added = obj_add(apps, app, json_object_get(obj));
    json_object_put(obj); /* apps holds it, or it is gone */
    return added ? obj : NULL;
}

static void merge_app_settings(struct proj_serverclass *c, const char *app,
                               const struct conf_stanza *st)
{
    json_object *obj = app_object(c->apps, app);
    if (!obj)
        return;
    for (size_t i = 0; i < st->nsettings; i++)
        obj_set(obj, st->settings[i].key, st->settings[i].value);
}

/* [serverClass:<name>] and [serverClass:<name>:app:<app>]; other stanzas (global)
 * make no serverclass row. Repeats merge key by key, the later one winning, as
 * Splunk layers repeated stanzas. They are gathered per file first (a file that fails to
 * parse must leave no trace) and merged into the run's when the file ends. */
static void collect_serverclass(struct run_rows *rr, const struct conf_stanza *st)
{
    static const char prefix[] = "serverClass:";
    if (!has_prefix_ci(st->name, prefix))
        return;
    const char *name = st->name + sizeof prefix - 1;
    const char *app = strstr(name, ":app:");
    struct proj_serverclass *c =
        find_class(&rr->file_classes, name, app ? (size_t)(app - name) : strlen(name));
    rr->serverclass_items += 1 + st->nsettings;
    rr->serverclass_bytes += strlen(st->name);
    for (size_t i = 0; i < st->nsettings; i++)
        rr->serverclass_bytes += strlen(st->settings[i].key) + strlen(st->settings[i].value);
    if (app)
        merge_app_settings(c, app + 5, st);
    else
        merge_class_settings(c, st);
}

/* Key by key, src's values winning; a key new to dst goes last, as it would have had the
 * settings been merged into dst directly. */
static void merge_object(json_object *dst, json_object *src)
{
    if (!src)
        return; /* after an exhaustion */
    json_object_object_foreach(src, key, value)
    {
        obj_add(dst, key, json_object_get(value));
    }
}

static void merge_class(struct proj_serverclass *dst, const struct proj_serverclass *src)
{
    merge_object(dst->whitelist, src->whitelist);
    merge_object(dst->blacklist, src->blacklist);
    merge_object(dst->kv, src->kv);
    if (!src->apps)
        return; /* after an exhaustion */
    json_object_object_foreach(src->apps, app, settings)
    {
        json_object *obj = app_object(dst->apps, app);
        if (obj)
            merge_object(obj, settings);
    }
}

static void class_set_free(struct proj_class_set *set)
{
    for (size_t i = 0; i < set->n; i++) {
        struct proj_serverclass *c = &set->v[i];
        free(c->name);
        json_object_put(c->whitelist);
        json_object_put(c->blacklist);
        json_object_put(c->apps);
        json_object_put(c->kv);
    }
    free(set->v);
    json_object_put(set->index);
    memset(set, 0, sizeof *set);
}

static void emit_serverclasses(struct run_rows *rr)
{
    for (size_t i = 0; i < rr->classes.n; i++) {
        struct proj_serverclass *c = &rr->classes.v[i];
        struct copy_row row = begin_typed(rr, PROJ_SERVERCLASSES);
        put_text(rr, &row, c->name, W_SHORT);
        put_json(&row, json_object_get(c->whitelist), true);
        put_json(&row, json_object_get(c->blacklist), true);
        put_json(&row, json_object_get(c->apps), true);
        put_json(&row, json_object_get(c->kv), true);
        copy_row_end(&row);
    }
}

/* ---- public ------------------------------------------------------------------------- */

void run_rows_init(struct run_rows *rr, long run_id)
{
    memset(rr, 0, sizeof *rr);
    rr->run_id = run_id;
    strbuf_init(&rr->stanzas);
    for (int t = 0; t < PROJ_COUNT; t++)
        strbuf_init(&rr->typed[t]);
}

static void add_typed_row(struct run_rows *rr, enum conf_type type, const char *path,
                          const struct provenance *pv, const struct conf_stanza *st)
{
    switch (type) {
    case CONF_TYPE_INPUTS:
        add_inputs_row(rr, path, pv, st);
        break;
    case CONF_TYPE_PROPS:
        add_props_row(rr, st);
        break;
    case CONF_TYPE_TRANSFORMS:
        add_transforms_row(rr, st);
        break;
    case CONF_TYPE_INDEXES:
        add_indexes_row(rr, st);
        break;
    case CONF_TYPE_OUTPUTS:
        add_outputs_row(rr, st);
        break;
    case CONF_TYPE_SERVERCLASSES:
        collect_serverclass(rr, st);
        break;
    case CONF_TYPE_OTHER:
        break;
    }
}

static void counts_save(const struct run_rows *rr, struct run_rows_counts *c)
{
    c->nstanzas = rr->nstanzas;
    memcpy(c->ntyped, rr->ntyped, sizeof c->ntyped);
    c->truncations = rr->truncations;
    c->repairs = rr->repairs;
    c->serverclass_items = rr->serverclass_items;
    c->serverclass_bytes = rr->serverclass_bytes;
}

static void counts_restore(struct run_rows *rr, const struct run_rows_counts *c)
{
    rr->nstanzas = c->nstanzas;
    memcpy(rr->ntyped, c->ntyped, sizeof rr->ntyped);
    rr->truncations = c->truncations;
    rr->repairs = c->repairs;
    rr->serverclass_items = c->serverclass_items;
    rr->serverclass_bytes = c->serverclass_bytes;
}

static void set_marks(struct run_rows *rr)
{
    rr->mark_stanzas = rr->stanzas.len;
    for (int t = 0; t < PROJ_COUNT; t++)
        rr->mark_typed[t] = rr->typed[t].len;
}

static void end_file_state(struct run_rows *rr)
{
    class_set_free(&rr->file_classes);
    free(rr->path);
    rr->path = NULL;
    rr->in_file = false;
}

void run_rows_begin_file(struct run_rows *rr, long file_id, const char *source_path)
{
    if (rr->in_file)
        run_rows_abort_file(rr);
    counts_save(rr, &rr->at_begin);
    set_marks(rr);
    rr->in_file = true;
    rr->file_id = file_id;
    /* Archive entry names are bytes; a COPY with invalid UTF-8 would fail the run. */
    rr->path = cw_xstrdup(source_path);
    if (utf8_repair(rr->path, strlen(rr->path)) > 0)
        rr->repairs++;
    rr->type = conf_type_from_path(rr->path);
    provenance_from_path(rr->path, &rr->pv);
}

void run_rows_add_stanza(struct run_rows *rr, const struct conf_stanza *st)
{
    add_stanza_row(rr, rr->file_id, rr->path, rr->type, &rr->pv, st);
    add_typed_row(rr, rr->type, rr->path, &rr->pv, st);
}

void run_rows_end_file(struct run_rows *rr)
{
    for (size_t i = 0; i < rr->file_classes.n; i++) {
        const struct proj_serverclass *c = &rr->file_classes.v[i];
        merge_class(find_class(&rr->classes, c->name, strlen(c->name)), c);
    }
    end_file_state(rr);
}

static void cut_back(struct strbuf *sb, size_t mark)
{
    if (mark < sb->len) {
        sb->len = mark;
        sb->data[mark] = '\0';
    }
}

void run_rows_abort_file(struct run_rows *rr)
{
    counts_restore(rr, &rr->at_begin);
    cut_back(&rr->stanzas, rr->mark_stanzas);
    for (int t = 0; t < PROJ_COUNT; t++)
        cut_back(&rr->typed[t], rr->mark_typed[t]);
    end_file_state(rr);
}

/* A buffer is kept for the next batch unless one huge row grew it far beyond one. */
#define KEEP_CAP (16u << 20)

static void empty_buffer(struct strbuf *sb)
{
    if (sb->cap > KEEP_CAP)
        strbuf_free(sb);
    else
        strbuf_reset(sb);
}

void run_rows_stanzas_sent(struct run_rows *rr)
{
    empty_buffer(&rr->stanzas);
    rr->mark_stanzas = 0;
}

void run_rows_typed_sent(struct run_rows *rr)
{
    for (int t = 0; t < PROJ_COUNT; t++)
        empty_buffer(&rr->typed[t]);
    memset(rr->mark_typed, 0, sizeof rr->mark_typed);
}

static void drop_front(struct strbuf *sb, size_t n)
{
    if (n == 0)
        return;
    memmove(sb->data, sb->data + n, sb->len - n + 1); /* with the NUL */
    sb->len -= n;
}

void run_rows_sent_before_marks(struct run_rows *rr)
{
    drop_front(&rr->stanzas, rr->mark_stanzas);
    rr->mark_stanzas = 0;
    for (int t = 0; t < PROJ_COUNT; t++) {
        drop_front(&rr->typed[t], rr->mark_typed[t]);
        rr->mark_typed[t] = 0;
    }
}

size_t run_rows_buffered(const struct run_rows *rr)
{
    size_t n = rr->stanzas.len;
    for (int t = 0; t < PROJ_COUNT; t++)
        n += rr->typed[t].len;
    return n;
}

void run_rows_add_file(struct run_rows *rr, long file_id, const char *source_path,
                       const struct conf_file *f)
{
    run_rows_begin_file(rr, file_id, source_path);
    for (size_t i = 0; i < f->nstanzas; i++)
        run_rows_add_stanza(rr, &f->stanzas[i]);
    run_rows_end_file(rr);
}

void run_rows_finish(struct run_rows *rr)
{
    if (rr->finished)
        return;
    rr->finished = true;
    emit_serverclasses(rr);
}

size_t run_rows_typed_total(const struct run_rows *rr)
{
    size_t n = 0;
    for (int t = 0; t < PROJ_COUNT; t++)
        n += rr->ntyped[t];
    return n;
}

void run_rows_free(struct run_rows *rr)
{
    strbuf_free(&rr->stanzas);
    for (int t = 0; t < PROJ_COUNT; t++)
        strbuf_free(&rr->typed[t]);
    end_file_state(rr);
    class_set_free(&rr->classes);
}
