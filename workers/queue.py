"""Queueing work for the workers: one kind of job, "advance this run"."""

from __future__ import annotations

from redis import Redis
from rq import Queue

from workers import keys

JOB_TIMEOUT = 24 * 3600
"""A job may wait out long bounded polls (etcd redeployments take tens of minutes); RQ must not kill it."""
WAKE_SECONDS = 120


def enqueue_advance(redis: Redis, run_id: str) -> bool:
    """Queue an advance job unless one is already queued for the run; True if this call queued it."""
    if not redis.set(keys.wake(run_id), "1", nx=True, ex=WAKE_SECONDS):
        return False
    Queue(keys.QUEUE, connection=redis).enqueue(
        "workers.jobs.advance",
        run_id,
        job_timeout=JOB_TIMEOUT,
        result_ttl=600,
        failure_ttl=86400,
    )
    return True
