"""Run the demo: print the staff login, then the web server, a Celery worker and Celery beat
together until Ctrl-C, which stops all three. If one of them dies, the others are stopped too."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PORT = os.environ.get("DEMO_PORT", "8000")


def main() -> int:
    os.chdir(ROOT)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "recovery.settings.local",
        "PYTHONUNBUFFERED": "1",
    }
    url = f"http://127.0.0.1:{PORT}"
    subprocess.run([PY, "manage.py", "demo_login", "--url", url], check=True, env=env)
    commands = {
        "web": [PY, "manage.py", "runserver", f"127.0.0.1:{PORT}", "--noreload"],
        "worker": [
            PY,
            "-m",
            "celery",
            "-A",
            "recovery",
            "worker",
            "--loglevel=INFO",
            "--concurrency=2",
            "--without-mingle",
            "--without-gossip",
        ],
        "beat": [PY, "-m", "celery", "-A", "recovery", "beat", "--loglevel=INFO"],
    }
    procs = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}
    print(
        f"\nDemo running at {url}/admin/ — press Ctrl-C to stop web, worker and beat.\n", flush=True
    )

    stopping = False

    def stop(*_args) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(
                    f"{name} exited with code {proc.returncode}; stopping the demo.",
                    file=sys.stderr,
                )
                exit_code = proc.returncode or 1
                stopping = True
        time.sleep(0.5)
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
    print("Demo stopped.")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
