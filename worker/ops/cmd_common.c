/* Argument parsing, configuration, errors and JSON lines for the operator commands. */
#include "ops/cmd_common.h"
#include "ops/commands.h"

#include "base/log.h"
#include "base/strbuf.h"
#include "base/xalloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The flags of `cworker run` that say where the servers are and how to log: accepted by
 * every operator command so it reaches the same broker and database as the worker.
 * Their vals sit above any character an action uses for its own options. */
enum { COMMON_BASE = 0x100 };
static const struct option common_options[] = {
    {"broker", required_argument, NULL, COMMON_BASE + 0},
    {"database", required_argument, NULL, COMMON_BASE + 1},
    {"queues", required_argument, NULL, COMMON_BASE + 2},
    {"log-level", required_argument, NULL, COMMON_BASE + 3},
    {"log-format", required_argument, NULL, COMMON_BASE + 4},
    {"help", no_argument, NULL, 'h'},
};
#define NCOMMON (sizeof common_options / sizeof common_options[0])

void cmd_parser_init(struct cmd_parser *p, const struct cmd_spec *spec, int argc, char **argv)
{
    size_t nown = 0;
    while (spec->options[nown].name != NULL)
        nown++;
    memset(p, 0, sizeof *p);
    p->spec = spec;
    p->argc = argc;
    p->argv = argv;
    p->longopts = cw_xcalloc(nown + NCOMMON + 1, sizeof *p->longopts);
    memcpy(p->longopts, spec->options, nown * sizeof *p->longopts);
    memcpy(p->longopts + nown, common_options, sizeof common_options);
    /* each forwarded flag takes two slots; +2 for argv[0] and the terminating NULL */
    p->cfg_argv = cw_xcalloc((size_t)argc * 2 + 2, sizeof *p->cfg_argv);
    p->cfg_argv[p->cfg_argc++] = argv[0];
    /* optind = 0 makes glibc forget any earlier scan (config_load parses argv too). */
    optind = 0;
    opterr = 0;
}

static void forward(struct cmd_parser *p, int val, const char *value)
{
    static const char *const flags[] = {"--broker", "--database", "--queues", "--log-level",
                                        "--log-format"};
    p->cfg_argv[p->cfg_argc++] = (char *)flags[val - COMMON_BASE];
    p->cfg_argv[p->cfg_argc++] = (char *)value;
}

int cmd_parser_next(struct cmd_parser *p, const char **arg)
{
    for (;;) {
        /* ':' first: a missing value is reported as ':' rather than '?' */
        int c = getopt_long(p->argc, p->argv, ":hQ:", p->longopts, NULL);
        *arg = optarg;
        if (c == -1)
            return CMD_OPT_END;
        if (c == 'h') {
            fputs(p->spec->usage, stdout);
            return CMD_OPT_HELP;
        }
        if (c == 'Q')
            c = COMMON_BASE + 2;
        if (c >= COMMON_BASE) {
            forward(p, c, optarg);
            continue;
        }
        if (c == ':' || c == '?') {
            cmd_error(p->spec, "%s option %s (see cworker %s --help)",
                      c == ':' ? "missing value for" : "unknown", p->argv[optind - 1],
                      p->spec->name);
            return CMD_OPT_USAGE;
        }
        return c;
    }
}

int cmd_parser_rest(const struct cmd_parser *p, char ***rest)
{
    *rest = p->argv + optind;
    return p->argc - optind;
}

int cmd_parser_options(struct cmd_parser *p, cmd_take_option take, void *opts)
{
    const char *arg;
    int c;

    while ((c = cmd_parser_next(p, &arg)) >= 0)
        if (take(p->spec, opts, c, arg) != 0)
            return CMD_EXIT_USAGE;
    return c == CMD_OPT_HELP ? CMD_EXIT_OK : c == CMD_OPT_USAGE ? CMD_EXIT_USAGE : -1;
}

int cmd_parser_no_rest(const struct cmd_parser *p)
{
    char **rest;

    if (cmd_parser_rest(p, &rest) == 0)
        return 0;
    cmd_error(p->spec, "unexpected argument '%s'", rest[0]);
    return -1;
}

int cmd_require(const struct cmd_parser *p, struct cw_config *cfg, const char *value,
                const char *what)
{
    if (value != NULL)
        return 0;
    cmd_error(p->spec, "%s must be set", what);
    config_free(cfg);
    return -1;
}

int cmd_parser_config(struct cmd_parser *p, struct cw_config *cfg)
{
    struct cw_error err;

    p->cfg_argv[p->cfg_argc] = NULL;
    if (config_load(cfg, p->cfg_argc, p->cfg_argv, &err) != 0) {
        cmd_error(p->spec, "%s", err.message);
        config_free(cfg);
        return -1;
    }
    log_configure((enum log_level)cfg->log_level, cfg->log_json, "cworker");
    return 0;
}

void cmd_parser_free(struct cmd_parser *p)
{
    free(p->longopts);
    free(p->cfg_argv);
    memset(p, 0, sizeof *p);
}

int cmd_parse_long(const struct cmd_spec *spec, const char *what, const char *text, long min,
                   long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max) {
        cmd_error(spec, "%s must be an integer from %ld to %ld, got '%s'", what, min, max, text);
        return -1;
    }
    *out = v;
    return 0;
}

void cmd_error(const struct cmd_spec *spec, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "cworker %s: ", spec->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void cmd_report(const struct cmd_spec *spec, const struct cw_config *cfg,
                const struct cw_error *err)
{
    struct strbuf tb = STRBUF_INIT;

    cmd_error(spec, "%s", err->message);
    if (cfg != NULL && cfg->log_level == LOG_LEVEL_DEBUG) {
        cw_error_format_traceback(err, &tb);
        fputs(strbuf_cstr(&tb), stderr);
        strbuf_free(&tb);
    }
}

void cmd_print_json(json_object *obj)
{
    puts(json_object_to_json_string_ext(obj,
                                        JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static void list_actions(const struct cmd_action *actions, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (const struct cmd_action *a = actions; a->name && used < len; a++)
        used +=
            (size_t)snprintf(out + used, len - used, "%s%s", a == actions ? "" : " or ", a->name);
}

int cmd_dispatch(const char *command, const char *usage, const struct cmd_action *actions, int argc,
                 char **argv)
{
    const char *action = argc > 1 ? argv[1] : NULL;
    char names[128];
    list_actions(actions, names, sizeof names);
    if (action == NULL) {
        fprintf(stderr, "cworker %s: missing action (%s; see cworker %s --help)\n", command, names,
                command);
        return CMD_EXIT_USAGE;
    }
    if (strcmp(action, "--help") == 0 || strcmp(action, "-h") == 0 || strcmp(action, "help") == 0) {
        fputs(usage, stdout);
        return CMD_EXIT_OK;
    }
    for (const struct cmd_action *a = actions; a->name; a++)
        if (strcmp(action, a->name) == 0)
            return a->run(argc - 1, argv + 1);
    fprintf(stderr, "cworker %s: unknown action '%s' (%s; see cworker %s --help)\n", command,
            action, names, command);
    return CMD_EXIT_USAGE;
}
