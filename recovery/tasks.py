from celery import shared_task


@shared_task(name="recovery.tasks.analysis_run", ignore_result=True)
def analysis_run(run_id: int) -> None:
    """Only the run's id travels through the broker. Not retried: the service fails the run with
    its reason, and a second delivery of the same id is a no-op (the run is no longer queued)."""
    from recovery.analyses import analysis_run_execute  # analyses enqueues this task: no cycle

    analysis_run_execute(run_id=run_id)


@shared_task(name="recovery.tasks.analysis_runs_sweep")
def analysis_runs_sweep() -> dict[str, int]:
    """The beat entry: fail the runs whose worker is gone (queued an hour, or running past the
    hard time limit), so that their pages stop waiting and their makers can start again."""
    from recovery.analyses import analysis_runs_sweep as sweep

    return sweep()
