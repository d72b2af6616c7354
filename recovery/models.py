"""Saved analysis runs: every run of the admin's analyses page, ``manage.py run_analyses`` or a
background job, with what it needs to be reproduced and compared."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from surveys.models import Study


class AnalysisRun(models.Model):
    """One run of the analyses (``recovery.analyses``): its parameters, a hash of the data it
    read, row counts, the code version and times, and its results (aggregates only: tables,
    charts and estimates, never a participant's row). Small runs run at once; big ones go to
    Celery with progress."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="analysis_runs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="analysis_runs",
        help_text="Empty for a run of manage.py run_analyses.",
    )
    # Started by manage.py run_analyses (the whole study), not by a staff member's page.
    from_command = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    # The AnalysisSpec as a dict (recovery.analyses.AnalysisSpec.to_dict).
    parameters = models.JSONField(default=dict)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Per cent, 0–100.")
    # Why it failed, for the user: never a traceback, never participant data.
    message = models.TextField(blank=True)
    # The site codes whose participants the run read (the creator's scope when it ran): who
    # may see the run is decided by them.
    scope_sites = models.JSONField(default=list, blank=True)
    data_hash = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the analysis frame the run read."
    )
    participants = models.PositiveIntegerField(null=True, blank=True)
    rows = models.PositiveIntegerField(null=True, blank=True, help_text="Participant × wave rows.")
    code_version = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    results = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name = "analysis run"
        indexes = [models.Index(fields=("study", "created_at"), name="analysis_run_study")]
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="analysis_run_progress")
        ]

    def __str__(self) -> str:
        return f"Analysis {self.pk} of {self.study} ({self.get_status_display()})"

    @property
    def analyses(self) -> list[str]:
        """The analyses the run was asked for (from its parameters)."""
        return list(self.parameters.get("analyses", []))
