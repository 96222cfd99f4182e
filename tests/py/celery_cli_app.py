"""A Celery client app as the Python application configures it, plus the rpc:// result
backend: for `AsyncResult.get()` and for the Celery CLI against cworker
(`python3 -m celery -A celery_cli_app inspect ping`, `... control shutdown`).

Environment: CELERY_BROKER_URL (the broker), CWORKER_TEST_QUEUE (optional: route
parse_run to that queue instead of `celery`). tests/py must be on PYTHONPATH for the CLI.

parse_run is declared here only so that `parse_run.delay(run_id)` reads as the
application's code does; it runs in cworker, never in this process.
"""

import os

from celery import Celery

TASK_NAME = "app.worker.tasks.parse_run"


def make_app(broker_url=None, queue=None):
    """(app, parse_run): the application's Celery configuration with result_backend
    rpc://, parse_run routed to `queue` when given."""
    app = Celery("splunk_auto_doc",
                 broker=broker_url or os.environ.get("CELERY_BROKER_URL",
                                                     "amqp://guest:guest@localhost:5672//"),
                 backend="rpc://")
    app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json",
                    task_acks_late=True)
    if queue:
        app.conf.task_routes = {TASK_NAME: {"queue": queue}}

    @app.task(name=TASK_NAME)
    def parse_run(run_id):
        raise RuntimeError("parse_run is executed by cworker, not by this client")

    return app, parse_run


app, parse_run = make_app(queue=os.environ.get("CWORKER_TEST_QUEUE") or None)
