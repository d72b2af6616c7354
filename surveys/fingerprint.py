"""A fingerprint of the software this process runs: what a kept result must be rebuilt after.

The export line cache (``surveys.datasets.linecache``) keeps CSV text across exports; text
written by other code (a new release of this app, of pandas, NumPy or pyarrow, another time
zone database) may differ, so its plans carry this fingerprint. It covers:

- the source of every module of this project's apps (every ``.py`` file under the folder of
  each installed app that lives in the project, not in site-packages): the builder, the
  derived measures and whatever they import from their own app, the writers, the settings;
- the versions of Python, Django, NumPy, pandas, pyarrow and tzdata, and the version of the
  system's time zone database (``/usr/share/zoneinfo``), which ``zoneinfo`` reads first.

It is computed once, when the app starts (``SurveysConfig.ready``), from the files as they are
then: a process keeps the fingerprint of the code it loaded even if a deploy replaces the files
under it. The whole project counts, not only the modules known to shape a line: a release
costs one full rebuild of each plan's lines, while a missed dependency would hand out stale
values.
"""

import hashlib
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

from django.apps import apps
from django.conf import settings

LIBRARIES = ("django", "numpy", "pandas", "pyarrow", "tzdata")
SYSTEM_TZDATA = Path("/usr/share/zoneinfo/tzdata.zi")

_fingerprint: str | None = None


def project_app_folders() -> list[Path]:
    """The folders of the installed apps that are part of this project (under ``BASE_DIR``,
    and not installed packages, even when a virtualenv lives there too)."""
    base = Path(settings.BASE_DIR).resolve()
    installed = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}
    folders = {Path(config.path).resolve() for config in apps.get_app_configs()}
    return sorted(
        folder
        for folder in folders
        if folder.is_relative_to(base) and not any(folder.is_relative_to(i) for i in installed)
    )


def versions() -> dict[str, str]:
    found = {"python": sys.version}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    try:
        with SYSTEM_TZDATA.open(encoding="utf-8") as zones:
            found["system tzdata"] = zones.readline().strip()  # "# version 2025b"
    except OSError:
        found["system tzdata"] = "absent"
    return found


def compute() -> str:
    digest = hashlib.sha256()
    base = Path(settings.BASE_DIR).resolve()
    for folder in project_app_folders():
        for path in sorted(folder.rglob("*.py")):
            digest.update(str(path.relative_to(base)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    for name, version in sorted(versions().items()):
        digest.update(f"{name}={version}\0".encode())
    return digest.hexdigest()


def software_fingerprint() -> str:
    """The fingerprint of the software this process started with."""
    global _fingerprint
    if _fingerprint is None:
        _fingerprint = compute()
    return _fingerprint
