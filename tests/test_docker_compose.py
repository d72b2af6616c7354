"""The container deployment: docker-compose.yml, Dockerfile, .env.example, scripts/healthcheck.py.

No Docker engine is needed: the files are parsed (compose's ${VAR} interpolation is applied with
the values of .env.example), and the production settings are loaded in a subprocess by
`manage.py check --deploy` with that same environment.
"""

import ast
import importlib.util
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import environ
import pytest
import yaml
from cryptography.fernet import Fernet
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
SETTINGS_DIR = ROOT / "recovery" / "settings"
HEALTHCHECK_SCRIPT = ROOT / "scripts" / "healthcheck.py"

PRODUCTION_SETTINGS = "recovery.settings.production"
APP_SERVICES = ("web", "worker", "beat")
BACKING_SERVICES = ("db", "redis")
# Read by the settings, but optional developer overrides whose defaults suit the image and
# compose: neither .env.example nor compose has to set them. Keep this list short.
OPTIONAL_OVERRIDES = frozenset(
    {
        "DJANGO_READ_DOT_ENV_FILE",
        "VAR_DIR",
        "DJANGO_STATIC_ROOT",
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "DEMO_PORT",
    }
)
# What production.py reads with no default (found again below, this is the floor).
REQUIRED_IN_PRODUCTION = frozenset(
    {"DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "FIELD_ENCRYPTION_KEYS", "CONTACT_LOOKUP_KEY"}
)


# --- Reading the files ----------------------------------------------------------------------
def env_calls(path: Path) -> list[tuple[str, bool]]:
    """(variable, has a default) for every env("NAME", ...) / env.list("NAME", ...) call."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        is_env = (isinstance(func, ast.Name) and func.id == "env") or (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "env"
        )
        first = node.args[0]
        if is_env and isinstance(first, ast.Constant) and isinstance(first.value, str):
            has_default = len(node.args) > 1 or any(kw.arg == "default" for kw in node.keywords)
            calls.append((first.value, has_default))
    return calls


def settings_variables() -> set[str]:
    return {name for path in SETTINGS_DIR.glob("*.py") for name, _ in env_calls(path)}


def read_env_file(path: Path) -> dict[str, str]:
    """NAME=value lines of a dotenv file; comments and blank lines skipped, quotes removed."""
    values = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"{path.name}:{number}: {raw!r}"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(text: str, values: dict[str, str]) -> str:
    """compose's interpolation: $$, $NAME, ${NAME}, ${NAME:-default}, ${NAME:?error}."""

    def substitute(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        value = values.get(name)
        op = match["op"] or ""
        unset = value is None or (op.startswith(":") and value == "")
        if op.endswith("-"):
            return match["arg"] if unset else value
        assert not unset, f"compose needs ${name}, which .env.example does not set"
        return value

    return INTERPOLATION.sub(substitute, text)


def interpolate_tree(node, values: dict[str, str]):
    if isinstance(node, dict):
        return {key: interpolate_tree(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(item, values) for item in node]
    if isinstance(node, str):
        return interpolate(node, values)
    return node


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def dockerfile_env() -> dict[str, str]:
    env = {}
    for keyword, arguments in final_stage():
        if keyword == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(arguments))
    return env


def module_file(dotted: str) -> Path | None:
    base = ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def defines_name(path: Path, name: str) -> bool:
    tree = ast.parse(path.read_text())
    return any(
        isinstance(target, ast.Name) and target.id == name
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
    )


def command_text(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def env_files(service: dict) -> list[str]:
    value = service.get("env_file", [])
    items = [value] if isinstance(value, str | dict) else value
    return [item["path"] if isinstance(item, dict) else item for item in items]


def environment(service: dict) -> dict[str, str]:
    value = service.get("environment", {})
    if isinstance(value, list):
        return dict(item.split("=", 1) for item in value)
    return {key: "" if item is None else str(item) for key, item in value.items()}


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def services(env_example) -> dict[str, dict]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    return interpolate_tree(compose, env_example)["services"]


# --- docker-compose.yml ---------------------------------------------------------------------
def test_compose_defines_every_service(services):
    assert set(APP_SERVICES + BACKING_SERVICES) <= set(services)
    assert services["db"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")


def test_web_migrates_then_runs_gunicorn(services):
    command = command_text(services["web"])
    gunicorn = re.search(r"\bgunicorn\s+recovery\.wsgi:application\b", command)
    assert gunicorn, command
    assert "--bind 0.0.0.0:8000" in command
    migrate = command.find("manage.py migrate")
    assert 0 <= migrate < gunicorn.start(), command
    assert any(str(port).endswith("8000:8000") for port in services["web"]["ports"])


@pytest.mark.parametrize(
    ("service", "expected"),
    [("worker", "celery -A recovery worker"), ("beat", "celery -A recovery beat")],
)
def test_celery_commands(services, service, expected):
    assert command_text(services[service]).startswith(expected)


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_run_production_settings_with_dot_env(services, service):
    config = services[service]
    assert env_files(config) == [".env"]
    assert environment(config)["DJANGO_SETTINGS_MODULE"] == PRODUCTION_SETTINGS
    assert "build" in config or "image" in config


def test_app_services_share_one_image(services):
    assert len({services[name].get("image") for name in APP_SERVICES}) == 1
    assert len({str(services[name].get("build")) for name in APP_SERVICES}) == 1


@pytest.mark.parametrize("service", APP_SERVICES)
def test_urls_point_at_the_compose_services(services, env_example, service):
    env = environment(services[service])
    database = urlsplit(env["DATABASE_URL"])
    assert database.hostname == "db"
    assert database.username == env_example["POSTGRES_USER"]
    assert database.password == env_example["POSTGRES_PASSWORD"]
    assert database.path == "/" + env_example["POSTGRES_DB"]
    config = environ.Env.db_url_config(env["DATABASE_URL"])
    assert config["ENGINE"] == "django.db.backends.postgresql"
    redis = urlsplit(env["REDIS_URL"])
    assert (redis.scheme, redis.hostname) == ("redis", "redis")


def test_postgres_is_configured_from_dot_env(services, env_example):
    env = environment(services["db"])
    for name in ("POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"):
        assert env[name] == env_example[name]


@pytest.mark.parametrize(
    ("service", "probe"),
    [
        ("db", "pg_isready"),
        ("redis", "redis-cli ping"),
        ("web", "python scripts/healthcheck.py"),
        ("worker", "celery -A recovery inspect ping"),
    ],
)
def test_healthchecks(services, service, probe):
    test = services[service]["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL")
    assert probe in " ".join(test[1:])


def test_web_healthcheck_script_is_in_the_repository():
    assert HEALTHCHECK_SCRIPT.is_file()


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_wait_for_healthy_backing_services(services, service):
    depends_on = services[service]["depends_on"]
    assert isinstance(depends_on, dict), "the list form cannot wait for health checks"
    for backing in BACKING_SERVICES:
        assert depends_on[backing]["condition"] == "service_healthy"


def test_beat_keeps_its_schedule_in_a_named_volume_at_var_dir():
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    mounts = [str(volume).split(":") for volume in compose["services"]["beat"]["volumes"]]
    var_dir = dockerfile_env()["VAR_DIR"]
    assert any(source in compose["volumes"] and target == var_dir for source, target, *_ in mounts)
    assert settings.CELERY_BEAT_SCHEDULE_FILENAME.startswith(str(settings.VAR_DIR))


def test_named_volumes_are_declared():
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    used = {
        str(volume).split(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
    }
    assert used
    assert used <= set(compose.get("volumes") or {})


# --- .env.example ---------------------------------------------------------------------------
def test_optional_overrides_are_still_read_by_the_settings():
    stale = OPTIONAL_OVERRIDES - settings_variables()
    assert not stale, f"no longer read by recovery/settings: drop {sorted(stale)}"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_settings_variable_is_set_for_the_app_services(services, env_example, service):
    provided = set(env_example) | set(environment(services[service]))
    missing = settings_variables() - OPTIONAL_OVERRIDES - provided
    assert not missing, f"add to .env.example (or compose's environment): {sorted(missing)}"


def test_production_requirements_are_in_env_example_or_set_by_compose(env_example, services):
    required = {
        name for name, has_default in env_calls(SETTINGS_DIR / "production.py") if not has_default
    }
    assert required >= REQUIRED_IN_PRODUCTION
    for name in required:
        in_compose = all(name in environment(services[s]) for s in ("web", "worker", "beat"))
        assert env_example.get(name) or in_compose, f"{name} is required by production.py"


def test_env_example_values_survive_shell_and_compose(env_example):
    # `set -a; . ./.env.example` and compose both read these lines; keep them unambiguous.
    for name, value in env_example.items():
        assert not re.search(r"[\s$`'\"\\#;&|<>]", value), f"{name}={value!r}"


def test_env_example_encryption_keys_are_valid_fernet_keys(env_example):
    keys = [key.strip() for key in env_example["FIELD_ENCRYPTION_KEYS"].split(",")]
    assert keys
    for key in keys:
        Fernet(key)  # raises ValueError for a malformed key


def test_env_example_secret_key_passes_the_deploy_check(env_example):
    secret_key = env_example["DJANGO_SECRET_KEY"]
    assert len(secret_key) >= 50
    assert len(set(secret_key)) >= 5
    assert not secret_key.startswith("django-insecure-")


# --- Dockerfile -----------------------------------------------------------------------------
def test_dockerfile_builds_on_python_312_slim():
    for keyword, arguments in dockerfile_instructions():
        if keyword == "FROM":
            assert arguments.split()[0] == "python:3.12-slim"


def test_dockerfile_cmd_serves_the_wsgi_application():
    cmd = next(json.loads(arguments) for keyword, arguments in final_stage() if keyword == "CMD")
    assert cmd[:2] == ["gunicorn", "recovery.wsgi:application"]
    assert "0.0.0.0:8000" in cmd
    module, _, attribute = cmd[1].partition(":")
    path = module_file(module)
    assert path is not None, f"{module} does not exist"
    assert defines_name(path, attribute)
    assert ("EXPOSE", "8000") in final_stage()


def test_dockerfile_collects_static_files_with_production_settings():
    env = dockerfile_env()
    assert env["DJANGO_SETTINGS_MODULE"] == PRODUCTION_SETTINGS
    assert module_file(env["DJANGO_SETTINGS_MODULE"]) is not None
    assert (ROOT / "manage.py").is_file()
    assert "django.contrib.staticfiles" in settings.INSTALLED_APPS
    run = next(
        arguments
        for keyword, arguments in final_stage()
        if keyword == "RUN" and "collectstatic" in arguments
    )
    assert "python manage.py collectstatic --noinput" in run
    # The secrets production needs are given to this one command, not baked into the image.
    required = REQUIRED_IN_PRODUCTION | {
        name for name, has_default in env_calls(SETTINGS_DIR / "production.py") if not has_default
    }
    for name in required:
        assert f"{name}=" in run
        assert name not in env


def test_dockerfile_runs_as_a_non_root_user_with_a_writable_var_dir():
    stage = final_stage()
    users = [arguments for keyword, arguments in stage if keyword == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    assert dockerfile_env()["VAR_DIR"] == "/app/var"
    assert any(keyword == "RUN" and "chown" in run and "VAR_DIR" in run for keyword, run in stage)


def test_dockerfile_installs_the_pinned_requirements():
    runs = [arguments for keyword, arguments in final_stage() if keyword == "RUN"]
    assert any("pip install" in run and "-r requirements.txt" in run for run in runs)


# --- manage.py check --deploy with .env.example -------------------------------------------
def deploy_check(tmp_path: Path, env_example: dict[str, str], *, without: str = ""):
    inherited = settings_variables() | {"DJANGO_SETTINGS_MODULE"}
    env = {name: value for name, value in os.environ.items() if name not in inherited}
    env.update(env_example)
    env.update(
        DJANGO_SETTINGS_MODULE=PRODUCTION_SETTINGS,
        DATABASE_URL=f"sqlite:///{tmp_path / 'deploy-check.sqlite3'}",
        REDIS_URL="redis://127.0.0.1:6379/0",
        DJANGO_READ_DOT_ENV_FILE="false",
        VAR_DIR=str(tmp_path / "var"),
    )
    env.pop(without, None)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_deploy_check_passes_with_env_example(tmp_path, env_example):
    result = deploy_check(tmp_path, env_example)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize("name", sorted(REQUIRED_IN_PRODUCTION))
def test_production_settings_fail_without_a_required_variable(tmp_path, env_example, name):
    result = deploy_check(tmp_path, env_example, without=name)
    assert result.returncode != 0
    assert name in result.stdout + result.stderr


# --- scripts/healthcheck.py -----------------------------------------------------------------
@pytest.fixture(scope="module")
def healthcheck():
    spec = importlib.util.spec_from_file_location("healthcheck", HEALTHCHECK_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_web():
    """A server on a free loopback port answering /healthz with `state["status"]`."""
    state = {"status": 200, "headers": None}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            state["headers"] = dict(self.headers)
            state["path"] = self.path
            body = json.dumps({"status": "ok" if state["status"] == 200 else "down"}).encode()
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.parametrize(
    ("allowed_hosts", "expected"),
    [
        (None, "localhost"),
        ("", "localhost"),
        ("*", "localhost"),
        ("localhost,study.example.org", "localhost"),
        (" study.example.org , localhost", "study.example.org"),
        (".example.org", "example.org"),
    ],
)
def test_healthcheck_host_header(healthcheck, allowed_hosts, expected):
    assert healthcheck.host_header(allowed_hosts) == expected


def test_healthcheck_sends_host_and_forwarded_proto(healthcheck, fake_web):
    port, state = fake_web
    healthy, message = healthcheck.check(port=port, host_header_value="study.example.org")
    assert healthy, message
    assert state["path"] == "/healthz"
    assert state["headers"]["Host"] == "study.example.org"
    assert state["headers"]["X-Forwarded-Proto"] == "https"


@pytest.mark.parametrize("status", [301, 400, 503])
def test_healthcheck_fails_unless_200(healthcheck, fake_web, status):
    port, state = fake_web
    state["status"] = status
    healthy, message = healthcheck.check(port=port, host_header_value="localhost")
    assert not healthy
    assert str(status) in message


def test_healthcheck_fails_when_nothing_listens(healthcheck):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    healthy, _ = healthcheck.check(port=port, host_header_value="localhost", timeout=2)
    assert not healthy


def test_healthcheck_exit_codes(healthcheck, monkeypatch):
    seen = []

    def fake_check(*, host_header_value):
        seen.append(host_header_value)
        return fake_check.result, "message"

    monkeypatch.setattr(healthcheck, "check", fake_check)
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", "study.example.org,localhost")
    fake_check.result = True
    assert healthcheck.main() == 0
    fake_check.result = False
    assert healthcheck.main() == 1
    assert seen == ["study.example.org", "study.example.org"]
