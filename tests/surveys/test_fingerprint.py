"""The software fingerprint (``surveys.fingerprint``) kept export lines are tied to."""

from importlib import metadata

from surveys import fingerprint


def test_it_changes_with_any_source_file_of_the_project(tmp_path, monkeypatch, settings):
    settings.BASE_DIR = tmp_path
    app = tmp_path / "someapp"
    (app / "sub").mkdir(parents=True)
    (app / "models.py").write_text("X = 1\n")
    (app / "sub" / "helpers.py").write_text("def f():\n    return 1\n")
    monkeypatch.setattr(fingerprint, "project_app_folders", lambda: [app])
    first = fingerprint.compute()
    assert fingerprint.compute() == first
    (app / "sub" / "helpers.py").write_text("def f():\n    return 2\n")
    assert fingerprint.compute() != first


def test_it_changes_with_the_libraries_that_write_the_text(monkeypatch):
    first = fingerprint.compute()
    real = metadata.version
    monkeypatch.setattr(
        fingerprint.metadata,
        "version",
        lambda name: "99.0" if name == "pandas" else real(name),
    )
    assert fingerprint.versions()["pandas"] == "99.0"
    assert fingerprint.compute() != first


def test_the_project_apps_are_covered_and_installed_libraries_are_not():
    names = {folder.name for folder in fingerprint.project_app_folders()}
    assert {"surveys", "recovery", "api"} <= names
    assert not any("site-packages" in str(f) for f in fingerprint.project_app_folders())


def test_a_process_keeps_the_fingerprint_it_started_with(tmp_path, monkeypatch):
    started = fingerprint.software_fingerprint()
    monkeypatch.setattr(fingerprint, "compute", lambda: "code deployed under a running process")
    assert fingerprint.software_fingerprint() == started
