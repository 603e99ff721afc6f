"""The DAG file imports in a real Apache Airflow, and its DAGs have the expected tasks,
order, retries and commands. Run by ``cargo xtask infra check`` in a virtual environment
it installs Airflow into."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.models.dagbag import DagBag

DAGS = Path(__file__).resolve().parent.parent / "dags"
CHECKS = {"check_row_counts", "check_key_integrity", "check_no_duplicate_keys"}


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS), include_examples=False)


def test_the_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"music_analytics_daily_gke", "music_analytics_daily_local"}


@pytest.mark.parametrize("dag_id", ["music_analytics_daily_gke", "music_analytics_daily_local"])
def test_session_facts_come_first_then_the_three_checks(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert set(dag.task_ids) == {"recompute_session_facts", *CHECKS}
    first = dag.get_task("recompute_session_facts")
    assert first.upstream_task_ids == set()
    assert first.downstream_task_ids == CHECKS
    for check in CHECKS:
        task = dag.get_task(check)
        assert task.upstream_task_ids == {"recompute_session_facts"}
        assert task.downstream_task_ids == set()


@pytest.mark.parametrize("dag_id", ["music_analytics_daily_gke", "music_analytics_daily_local"])
def test_every_task_retries_and_works_on_the_runs_day(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    for task in dag.tasks:
        assert task.retries == 3, task.task_id
        command = " ".join(task.arguments) if hasattr(task, "arguments") else task.bash_command
        assert "--date {{ ds }}" in command, (task.task_id, command)


def test_the_gke_tasks_run_the_pipeline_image_as_the_pipeline_service_account(dagbag):
    dag = dagbag.dags["music_analytics_daily_gke"]
    commands = {}
    for task in dag.tasks:
        assert task.service_account_name == "pipeline"
        assert task.namespace == "music-analytics"
        assert [e.config_map_ref.name for e in task.env_from] == ["warehouse-config"]
        commands[task.task_id] = task.arguments[:2]
    assert commands == {
        "recompute_session_facts": ["batch", "session-fact"],
        "check_row_counts": ["check", "row-counts"],
        "check_key_integrity": ["check", "keys"],
        "check_no_duplicate_keys": ["check", "duplicates"],
    }
