/* What the operator commands (cmd_dlq.c, cmd_runs.c) share: argument parsing that also
 * accepts the connection flags of `cworker run`, configuration from the environment,
 * one-line errors, and JSON-lines output.
 *
 * Conventions: results are one JSON object per line on stdout; errors and notes are one
 * line each on stderr, prefixed with the command ("cworker dlq list: ..."), and never
 * contain a connection string. Exit codes are enum cmd_exit. */
#ifndef CWORKER_CMD_COMMON_H
#define CWORKER_CMD_COMMON_H

#include "base/config.h"
#include "base/error.h"

#include <getopt.h>
#include <json-c/json.h>

#define CMD_PARSE_RUN_TASK "app.worker.tasks.parse_run"

/* One action: its name for messages, its --help text, and its own long options
 * (terminated by a zeroed entry; each val must be a printable character, like 'q'). */
struct cmd_spec {
    const char *name;  /* "dlq list" */
    const char *usage; /* printed as is by --help */
    const struct option *options;
};

/* cmd_parser_next's answers besides an option's val. */
enum { CMD_OPT_END = -1, CMD_OPT_HELP = -2, CMD_OPT_USAGE = -3 };

struct cmd_parser {
    const struct cmd_spec *spec;
    int argc;
    char **argv;
    struct option *longopts; /* the action's options + the common ones + --help; owned */
    char **cfg_argv;         /* connection flags for config_load (argv[0] = the action); owned
                                array, the strings belong to argv */
    int cfg_argc;
};

/* argv[0] is the action's name ("list"); argv is borrowed for the parser's lifetime. */
void cmd_parser_init(struct cmd_parser *p, const struct cmd_spec *spec, int argc, char **argv);
/* The next option of the action: its val with *arg set to its value (NULL for flags);
 * CMD_OPT_END when the options are done (positional arguments are then
 * cmd_parser_rest); CMD_OPT_HELP after printing the usage; CMD_OPT_USAGE after printing
 * a one-line error about an unknown option or a missing value. The common flags
 * (--broker, --database, --queues/-Q, --log-level, --log-format) are kept for
 * cmd_parser_config and never returned. */
int cmd_parser_next(struct cmd_parser *p, const char **arg);
/* After CMD_OPT_END: the positional arguments (*rest points into argv). */
int cmd_parser_rest(const struct cmd_parser *p, char ***rest);

/* An action's own options, one at a time: 0, or -1 after printing why it is refused. */
typedef int (*cmd_take_option)(const struct cmd_spec *spec, void *opts, int c, const char *arg);
/* The loop every action runs: each of its options through take, then --help and usage
 * errors turned into the exit code. Returns -1 when the options are done (go on), else the
 * exit code to end the command with. */
int cmd_parser_options(struct cmd_parser *p, cmd_take_option take, void *opts);
/* For actions without positional arguments: 0, or -1 after naming the first one. */
CW_MUST_CHECK int cmd_parser_no_rest(const struct cmd_parser *p);
/* After cmd_parser_config: 0 when the setting is there, else -1 after saying which one
 * must be set (cfg is then freed). */
CW_MUST_CHECK int cmd_require(const struct cmd_parser *p, struct cw_config *cfg, const char *value,
                              const char *what);
/* config_load from the environment and the common flags; prints the error. */
CW_MUST_CHECK int cmd_parser_config(struct cmd_parser *p, struct cw_config *cfg);
void cmd_parser_free(struct cmd_parser *p);

/* A decimal integer in [min, max]; prints "<cmd>: <what> must be ..." on failure. */
CW_MUST_CHECK int cmd_parse_long(const struct cmd_spec *spec, const char *what, const char *text,
                                 long min, long max, long *out);

/* "cworker <spec->name>: <formatted message>" on stderr. */
void cmd_error(const struct cmd_spec *spec, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The error's message, and with LOG_LEVEL=debug its context chain too. */
void cmd_report(const struct cmd_spec *spec, const struct cw_config *cfg,
                const struct cw_error *err);

/* A command with actions ("cworker dlq list"): runs the named one with argv from the
 * action on, prints usage for --help, and a one-line error (exit 2) for none or an
 * unknown one. actions ends with {NULL, NULL}. */
struct cmd_action {
    const char *name;
    int (*run)(int argc, char **argv);
};
int cmd_dispatch(const char *command, const char *usage, const struct cmd_action *actions, int argc,
                 char **argv);

/* One JSON object on one line of stdout (compact, UTF-8 raw, '/' unescaped). */
void cmd_print_json(json_object *obj);

#endif
