/* The operator subcommands main dispatches to besides `run` and `migrate`. Each takes the
 * arguments after `cworker` (argv[0] is the command's name), prints its results as JSON
 * lines on stdout (cmd_common.h) and returns the process exit code. */
#ifndef CWORKER_COMMANDS_H
#define CWORKER_COMMANDS_H

/* 0 done; 1 something failed (nothing half done is left behind: see each command);
 * 2 usage or configuration error. */
enum cmd_exit { CMD_EXIT_OK = 0, CMD_EXIT_FAILED = 1, CMD_EXIT_USAGE = 2 };

/* cworker dlq list|replay: inspect and replay the dead-letter queue <queue>.dead. */
int cmd_dlq(int argc, char **argv);
/* cworker runs list|retry: list ingestion runs, re-publish parse_run for one. */
int cmd_runs(int argc, char **argv);

/* cworker status RUN_ID | cworker metrics: the application's GET /v1/worker/runs/{id}/status
 * and GET /v1/worker/metrics as one JSON line (run_status.h); status exits 1 for an
 * unknown run. */
int cmd_status(int argc, char **argv);
int cmd_metrics(int argc, char **argv);

/* cworker health: GET /healthz from the worker's own HTTP listener (CWORKER_HTTP); exit 0
 * only when it answers 200 (supervisor alive, broker and database connected). */
int cmd_health(int argc, char **argv);

#endif
