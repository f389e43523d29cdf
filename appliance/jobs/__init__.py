"""Scheduled work run by `appliance jobs run-due` (a systemd timer in production).

Each job is claimed through its `job_runs` row, so when several nodes' timers fire
together, one node runs it and the others skip it.
"""

from appliance.jobs.registry import Job, default_jobs
from appliance.jobs.runner import JobOutcome, run_due_jobs

__all__ = ["Job", "JobOutcome", "default_jobs", "run_due_jobs"]
