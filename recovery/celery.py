import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recovery.settings.local")

app = Celery("recovery")
# Every CELERY_* Django setting configures Celery (JSON only, time limits, beat schedule).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
