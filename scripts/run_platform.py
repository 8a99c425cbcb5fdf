"""Run the whole platform on this machine: database, broker, web, worker and beat, with sample data.

Called by ./run.sh after scripts/bootstrap.sh. Steps: find or start PostgreSQL and the broker
(scripts/services.py), migrate, collect static files, make sure an `admin` user and the "Demo" team exist,
load the sample datasets, start gunicorn, a Celery worker on every queue and Celery beat, wait for
/health, print the URLs. Ctrl-C stops the children, then the services this run started. Data stays in
the database (var/pgdata for the embedded one), so the next run picks up where this one stopped.

It also writes var/local.env with the settings it chose (SECRET_KEY, DATABASE_URL, CELERY_BROKER_URL,
PORT): `manage.py` and `celery -A config` read it for any variable the environment does not set, so the
README's commands work in another shell while the platform runs.

Environment: PORT (default 8000), SECRET_KEY or SECRET_KEY_FILE (default: generated once into
var/secret_key), WEB_CONCURRENCY (gunicorn workers, default 2), WORKER_CONCURRENCY (default 2), and
everything scripts/services.py reads (DATABASE_URL, CELERY_BROKER_URL, EMBEDDED, EMBEDDED_BROKER).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

import services  # noqa: E402

ROOT = services.ROOT
VAR = services.VAR
LOG_DIR = VAR / "log"
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
HEALTH_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30


def say(message: str) -> None:
    print(f"run: {message}", flush=True)


@dataclass
class Child:
    name: str
    args: list[str]
    process: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = LOG_DIR / f"{self.name}.log"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            # A session of its own: Ctrl-C reaches only this script, which then stops the children in order.
            self.process = subprocess.Popen(
                self.args, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # gunicorn: graceful; celery worker: warm shutdown; beat: exit
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            say(f"{self.name} did not stop within {STOP_TIMEOUT_S} s; killing it")
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def ensure_secret_key() -> None:
    if os.environ.get("SECRET_KEY") or os.environ.get("SECRET_KEY_FILE"):
        return
    path = VAR / "secret_key"
    if not path.exists():
        VAR.mkdir(exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
        say(f"generated a SECRET_KEY into {path.relative_to(ROOT)}")
    os.environ["SECRET_KEY_FILE"] = str(path)


LOCAL_ENV_KEYS = ("SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "PORT")


def local_env_write(path: Path, environ: dict[str, str]) -> None:
    """The settings this run chose, for manage.py in another shell (config/env.py reads the file).

    Only the owner may read it: it holds the secret key.
    """
    values = dict(environ)
    if not values.get("SECRET_KEY") and values.get("SECRET_KEY_FILE"):
        values["SECRET_KEY"] = Path(values["SECRET_KEY_FILE"]).read_text().strip()
    lines = [f"{key}={values[key]}" for key in LOCAL_ENV_KEYS if values.get(key)]
    header = "# Written by ./run.sh: the settings it chose. Variables set in the environment win over these.\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(header + "\n".join(lines) + "\n")


def manage(*args: str) -> None:
    env = {**os.environ, "LOG_LEVEL": os.environ.get("SETUP_LOG_LEVEL", "WARNING")}  # the step's own output is enough
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def ensure_admin() -> str | None:
    """The `admin` superuser, admin of team "Demo". Returns the password when the user was created now."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections

    from ingestion.management.commands.load_sample import demo_team
    from teams.models import Role
    from teams.services import membership_set

    user_model = get_user_model()
    password = None
    user = user_model.objects.filter(username="admin").first()
    if user is None:
        password = secrets.token_urlsafe(12)
        user = user_model.objects.create_superuser("admin", "admin@localhost", password)
        say("created the superuser admin")
    else:
        say("superuser admin exists (to set a new password: .venv/bin/python manage.py changepassword admin)")
    membership_set(team=demo_team(), user=user, role=Role.ADMIN)
    connections.close_all()
    return password


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) != 0


def health(base_url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except (OSError, ValueError):
        return 0, {}


def children(port: int) -> list[Child]:
    from django.conf import settings

    queues = settings.CELERY_WORKER_QUEUES
    concurrency = os.environ.get("WORKER_CONCURRENCY", "2")
    os.environ.setdefault("WEB_CONCURRENCY", "2")
    celery = str(BIN / "celery")
    schedule, pidfile = str(VAR / "celerybeat-schedule"), str(VAR / "beat.pid")
    return [
        Child("worker", [celery, "-A", "config", "worker", "-Q", queues, "-c", concurrency, "-n", "platform@%h"]),
        Child("beat", [celery, "-A", "config", "beat", "-s", schedule, "--pidfile", pidfile]),
        Child("web", [str(BIN / "gunicorn"), "config.wsgi", "--bind", f"{HOST}:{port}", "--access-logfile", "-"]),
    ]


def wait_healthy(base_url: str, procs: list[Child]) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    status, body = 0, {}
    while time.monotonic() < deadline:
        check_alive(procs)
        status, body = health(base_url)
        if status == 200:
            return
        time.sleep(0.5)
    raise RuntimeError(f"/health did not turn 200 within {HEALTH_TIMEOUT_S} s (last: {status} {body})")


def check_alive(procs: list[Child]) -> None:
    for child in procs:
        code = child.exit_code()
        if code is not None:
            raise RuntimeError(
                f"{child.name} exited with code {code}; last lines of {child.log_path.relative_to(ROOT)}:\n"
                + child.tail()
            )


def summary(base_url: str, password: str | None, took: float) -> str:
    admin_note = f"user admin, password {password}  <- shown only this once" if password else "user admin"
    return "\n".join(
        [
            f"The platform is up ({took:.1f} s):",
            f"  admin          {base_url}/admin/   ({admin_note})",
            f"  API docs       {base_url}/api/docs/",
            f"  health         {base_url}/health",
            f"  anomalies      {base_url}/admin/detectors/anomaly/",
            f"  review queue   {base_url}/review/",
            f"Logs: {LOG_DIR.relative_to(ROOT)}/{{web,worker,beat}}.log. Press Ctrl-C to stop.",
        ]
    )


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def prepare() -> str | None:
    """Services, schema, static files, the admin user and the sample data. Returns a new admin password."""
    os.environ.update(services.ensure_services(for_tests=False))
    # No mail server on this machine unless one is named: email channels write their messages to var/mail.
    if not os.environ.get("EMAIL_HOST"):
        os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
    local_env_write(VAR / "local.env", os.environ)
    say("wrote the chosen settings to var/local.env (manage.py reads it)")
    say("migrating the database")
    manage("migrate", "--noinput", "-v", "0")
    manage("createcachetable")
    manage("collectstatic", "--noinput", "-v", "0")
    password = ensure_admin()
    say("loading the sample datasets")
    manage("load_sample")
    manage("demo_detectors")
    return password


def serve(procs: list[Child], base_url: str, password: str | None, started: float) -> None:
    """Start the children, wait until the site is healthy, then watch them until one stops or we are told to."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for child in procs:
        child.start()
    say(f"started {', '.join(f'{c.name} (pid {c.process.pid})' for c in procs)}; waiting for {base_url}/health")
    wait_healthy(base_url, procs)
    print(summary(base_url, password, time.monotonic() - started), flush=True)
    while True:
        check_alive(procs)
        time.sleep(1)


def run() -> int:
    started = time.monotonic()
    os.chdir(ROOT)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    os.environ.setdefault("HTTPS", "false")  # plain HTTP on 127.0.0.1: secure-only cookies would never be sent
    port = int(os.environ.get("PORT", "8000"))
    os.environ["PORT"] = str(port)
    if not port_free(port):
        say(f"error: something already listens on {HOST}:{port}; stop it or set PORT=<another port>")
        return 1
    ensure_secret_key()
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: it may arrive ignored from a background shell
        signal.signal(signum, _raise_interrupt)
    procs: list[Child] = []
    try:
        password = prepare()
        procs = children(port)
        serve(procs, f"http://{HOST}:{port}", password, started)
    except KeyboardInterrupt:
        say("stopping")
        return 0
    except (services.ServiceError, RuntimeError) as exc:
        say(f"error: {exc}")
        return 1
    except subprocess.CalledProcessError as exc:
        say(f"error: {' '.join(map(str, exc.cmd[1:]))} failed with code {exc.returncode}")
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        for child in reversed(procs):
            child.stop()
        services.stop_services()
        say("stopped")


if __name__ == "__main__":
    sys.exit(run())
