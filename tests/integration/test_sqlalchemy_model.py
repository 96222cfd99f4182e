"""The Python application reads what the worker wrote through its SQLAlchemy models
(tests/py/app_models.py): Enum columns must hold member names or loading the row fails.
Here the run is also created through the ORM, as the application creates it."""

import hashlib

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

import app_models as m
import producer
from conftest import paloalto_upload, wait_for_final_status


@pytest.fixture
def session(env):
    engine = create_engine(env.database_url, future=True)
    with Session(engine) as s:
        yield s
    engine.dispose()


def orm_create_run(session, env, name, data, run_type):
    run = m.IngestionRun(type=run_type, status=m.IngestionStatus.STORED,
                         label="sqlalchemy test")
    session.add(run)
    session.flush()
    key = "runs/%d/%s" % (run.id, name)
    dest = env.storage / key
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    session.add(m.File(run_id=run.id, path=name, sha256=hashlib.sha256(data).hexdigest(),
                       size_bytes=len(data), stored_object_key=key))
    session.commit()
    return run.id


def orm_enqueue(session, celery, run_id, queue):
    task_id = producer.send_parse_run(celery, run_id, queue=queue)
    run = session.get(m.IngestionRun, run_id)
    run.status = m.IngestionStatus.PARSING
    run.task_id = task_id
    run.started_at = run.last_heartbeat = producer.now()
    run.error_message = run.error_traceback = None
    session.commit()
    return task_id


def test_completed_run_loads_through_the_models(env, worker, celery, session):
    name, data = paloalto_upload("tar.gz")
    run_id = orm_create_run(session, env, name, data, m.IngestionType.APP_BUNDLE)
    task_id = orm_enqueue(session, celery, run_id, worker.queue)
    wait_for_final_status(env, run_id, worker=worker)

    session.expire_all()
    run = session.get(m.IngestionRun, run_id)
    assert run.status == m.IngestionStatus.COMPLETE
    assert run.type == m.IngestionType.APP_BUNDLE
    assert run.task_id == task_id
    assert run.completed_at is not None and run.error_message is None
    assert isinstance(run.metrics, dict) and run.metrics["stanzas_created"] == 181
    assert len(run.stanzas) == 181
    assert {s.conf_type for s in run.stanzas} == {"inputs", "props", "transforms", "other"}
    props = session.query(m.Props).filter_by(run_id=run_id, target="pan:log").one()
    assert props.transforms_list[0] == "pan_threat"
    # The application lists runs by status.
    ids = [r.id for r in session.query(m.IngestionRun)
           .filter(m.IngestionRun.status == m.IngestionStatus.COMPLETE)]
    assert run_id in ids


def test_failed_run_loads_through_the_models(env, worker, celery, session):
    run_id = orm_create_run(session, env, "broken.tar.gz", b"\x1f\x8b\x08\x00garbage" * 10,
                            m.IngestionType.APP_BUNDLE)
    orm_enqueue(session, celery, run_id, worker.queue)
    wait_for_final_status(env, run_id, worker=worker)
    session.expire_all()
    run = session.get(m.IngestionRun, run_id)
    assert run.status == m.IngestionStatus.FAILED
    assert run.error_message.startswith("Permanent error: ")
    assert run.metrics["error_type"] == "permanent"
