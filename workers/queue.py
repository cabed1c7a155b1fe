"""Queueing work for the workers: one kind of job, "advance this run".

Jobs are stored as JSON, not pickles: anyone who can write to Redis could otherwise make the workers,
which hold the SSH keys and kubeconfigs, run any code. The only argument is a run id.
"""

from __future__ import annotations

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from workers import keys

JOB_TIMEOUT = 24 * 3600
"""A job may wait out long bounded polls (etcd redeployments take tens of minutes); RQ must not kill it."""
WAKE_SECONDS = 120


def queue(redis: Redis) -> Queue:
    return Queue(keys.QUEUE, connection=redis, serializer=JSONSerializer)


def enqueue_advance(redis: Redis, run_id: str, woken: bool = False) -> bool:
    """Queue an advance job unless one is already queued for the run; True if this call queued it.

    `woken`: the caller already set the run's wake key (the reaper does, in its revival script)."""
    if not woken and not redis.set(keys.wake(run_id), "1", nx=True, ex=WAKE_SECONDS):
        return False
    queue(redis).enqueue(
        "workers.jobs.advance",
        run_id,
        job_timeout=JOB_TIMEOUT,
        result_ttl=600,
        failure_ttl=86400,
    )
    return True
