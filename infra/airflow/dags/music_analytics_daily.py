"""The daily batch of music-analytics, in two variants of the same DAG.

Each day, for the previous day (the run's data interval, ``{{ ds }}``):

1. ``recompute_session_facts``: ``pipeline batch session-fact --date DAY`` rebuilds the
   day's session facts from what the warehouse holds and versions any that disagree
   (idempotent: a second run changes nothing).
2. Then, in parallel, the data-quality checks of ``pipeline check``:
   ``check_row_counts`` (the day has sessions; rows per table are logged),
   ``check_key_integrity`` (every fact's foreign keys are in their dimensions) and
   ``check_no_duplicate_keys`` (no primary key stored twice). A failed check fails its
   task, and the run.

``music_analytics_daily_gke`` runs each step as a pod on GKE (KubernetesPodOperator)
with the pipeline image, the ``pipeline`` service account (Workload Identity gives it
BigQuery) and the ``warehouse-config`` ConfigMap of ``infra/k8s``.
``music_analytics_daily_local`` runs the same commands with BashOperator against the
local pipeline binary and DuckDB file.

Settings come from the environment of the Airflow workers, so the DAG file holds none:
``MUSIC_ANALYTICS_PIPELINE_IMAGE`` (GKE), ``MUSIC_ANALYTICS_NAMESPACE`` (GKE, default
``music-analytics``), ``MUSIC_ANALYTICS_PIPELINE`` (local: the binary, default
``pipeline``) and the pipeline's own ``MUSIC_ANALYTICS__*`` variables (local: where
the warehouse is, default ``data/warehouse.duckdb``).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.standard.operators.bash import BashOperator
from kubernetes.client import models as k8s

# The steps: task id, then the pipeline's arguments for the day.
SESSION_FACTS = ("recompute_session_facts", ["batch", "session-fact", "--date", "{{ ds }}"])
CHECKS = [
    ("check_row_counts", ["check", "row-counts", "--date", "{{ ds }}"]),
    ("check_key_integrity", ["check", "keys", "--date", "{{ ds }}"]),
    ("check_no_duplicate_keys", ["check", "duplicates", "--date", "{{ ds }}"]),
]

DEFAULT_ARGS = {
    "owner": "music-analytics",
    "retries": 3,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=20),
    "execution_timeout": timedelta(hours=1),
}


def _dag(dag_id: str, description: str, tags: list[str]) -> DAG:
    return DAG(
        dag_id=dag_id,
        description=description,
        schedule="@daily",
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["music-analytics", *tags],
        doc_md=__doc__,
    )


def _gke_task(task_id: str, arguments: list[str]) -> KubernetesPodOperator:
    return KubernetesPodOperator(
        task_id=task_id,
        name=task_id.replace("_", "-"),
        namespace=os.environ.get("MUSIC_ANALYTICS_NAMESPACE", "music-analytics"),
        image=os.environ.get(
            "MUSIC_ANALYTICS_PIPELINE_IMAGE", "music-analytics/pipeline:latest"
        ),
        arguments=arguments,
        service_account_name="pipeline",
        env_from=[
            k8s.V1EnvFromSource(
                config_map_ref=k8s.V1ConfigMapEnvSource(name="warehouse-config")
            )
        ],
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": "500m", "memory": "1Gi"}, limits={"memory": "2Gi"}
        ),
        get_logs=True,
        on_finish_action="delete_succeeded_pod",
    )


def _local_task(task_id: str, arguments: list[str]) -> BashOperator:
    return BashOperator(
        task_id=task_id,
        bash_command=" ".join(['"${MUSIC_ANALYTICS_PIPELINE:-pipeline}"', *arguments]),
    )


with _dag(
    "music_analytics_daily_gke",
    "Session facts and data-quality checks of the previous day, as pods on GKE.",
    ["gke"],
) as gke:
    session_facts = _gke_task(*SESSION_FACTS)
    session_facts >> [_gke_task(*check) for check in CHECKS]

with _dag(
    "music_analytics_daily_local",
    "Session facts and data-quality checks of the previous day, with the local binary.",
    ["local"],
) as local:
    session_facts = _local_task(*SESSION_FACTS)
    session_facts >> [_local_task(*check) for check in CHECKS]
