"""Find or start the PostgreSQL database and the Celery broker, and say what was chosen and why.

Database: DATABASE_URL if set; else PostgreSQL on 127.0.0.1:5432; else an embedded PostgreSQL (pgserver)
in var/pgdata, kept across runs. Broker: CELERY_BROKER_URL if set; else Redis on 127.0.0.1:6379; else a
private redis-server started in var/redis; else kombu's SQLAlchemy transport on the same PostgreSQL.
EMBEDDED=1 ignores services already running on this machine; EMBEDDED_BROKER=redis|sqla picks the broker
the platform starts itself.

As a module: ``env = ensure_services(for_tests=False)`` ... ``stop_services()``.
As a command (stdlib, psycopg and pgserver only)::

    python scripts/services.py --exec -- <command...>   # ensure, run the command, stop what was started
    python scripts/services.py [--tests]                # ensure, print `export` lines, leave them running
    python scripts/services.py --stop                   # stop the embedded PostgreSQL and Redis in var/
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
PGDATA = VAR / "pgdata"
REDIS_DIR = VAR / "redis"

LOCAL_HOST = "127.0.0.1"
LOCAL_PG_URL = f"postgres://postgres@{LOCAL_HOST}:5432"
LOCAL_REDIS_PORT = 6379
DB_NAME = "anomaly"
TEST_REDIS_DB = 15  # tests never share a Redis database with a running platform
TEST_BROKER_DB = "anomaly_test_broker"  # nor an SQL broker's tables
CONNECT_TIMEOUT_S = 3

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # pgserver asks platformdirs; harmless
logging.getLogger("pgserver").setLevel(logging.WARNING)  # its INFO lines narrate every step

# What this process started, newest last; stop_services() undoes it in reverse.
_stoppers: list[tuple[str, Callable[[], None]]] = []


class ServiceError(RuntimeError):
    """A service the platform needs is neither reachable nor startable."""


def say(message: str) -> None:
    print(f"services: {message}", file=sys.stderr, flush=True)


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


# --- PostgreSQL ---------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return parts._replace(path="/" + quote(name)).geturl()


def _database_name(url: str) -> str:
    return unquote(urlsplit(url).path.lstrip("/")) or "postgres"


def _pg_connect(url: str, timeout: float = CONNECT_TIMEOUT_S) -> psycopg.Connection:
    return psycopg.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=timeout, autocommit=True)


def _pg_problem(url: str) -> str | None:
    """None when we can log in to the PostgreSQL at url, else why not."""
    try:
        _pg_connect(url, timeout=2).close()
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def ensure_database(url: str) -> bool:
    """Create the database named in url if it does not exist. True when it was created."""
    name = _database_name(url)
    with _pg_connect(_with_database(url, "postgres")) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return True


def _given_database(url: str) -> str:
    try:
        _pg_connect(_with_database(url, "postgres")).close()
    except psycopg.Error as exc:
        raise ServiceError(f"DATABASE_URL={redact(url)} is set but not reachable: {str(exc).strip()}") from exc
    created = ensure_database(url)
    say(f"database: DATABASE_URL is set; using {redact(url)}" + (" (database created)" if created else ""))
    return url


def _embedded_postgres_running() -> bool:
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(PGDATA) if (PGDATA / "postmaster.pid").exists() else None
    return info is not None and info.is_running()


def stop_embedded_postgres() -> None:
    from pgserver._commands import pg_ctl

    if not _embedded_postgres_running():
        return
    user = "pgserver" if os.name == "posix" and os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=PGDATA, user=user)
    say(f"database: stopped the embedded PostgreSQL in {PGDATA.relative_to(ROOT)}")


def _embedded_postgres() -> str:
    import pgserver

    VAR.mkdir(exist_ok=True)
    was_running = _embedded_postgres_running()
    try:
        server = pgserver.get_server(PGDATA, cleanup_mode=None)
    except Exception as exc:  # pgserver raises several kinds; each means "could not start"
        log = PGDATA / "log"
        detail = log.read_text()[-2000:] if log.exists() else str(exc)
        hint = "Point DATABASE_URL at a reachable PostgreSQL instead, or fix the cause above."
        raise ServiceError(f"could not start the embedded PostgreSQL in {PGDATA}:\n{detail}\n{hint}") from exc
    socket_dir = server.get_postmaster_info().socket_dir
    url = f"postgres://postgres@/{DB_NAME}?host={socket_dir}"
    ensure_database(url)
    where = PGDATA.relative_to(ROOT)
    if was_running:
        say(f"database: embedded PostgreSQL in {where} is already running; using it ({url})")
    else:
        _stoppers.append(("embedded PostgreSQL", stop_embedded_postgres))
        say(f"database: started the embedded PostgreSQL in {where} ({url})")
    return url


def resolve_database(*, embedded: bool) -> str:
    given = os.environ.get("DATABASE_URL")
    if given:
        return _given_database(given)
    problem = "skipped" if embedded else _pg_problem(f"{LOCAL_PG_URL}/postgres")
    if problem is None:
        url = f"{LOCAL_PG_URL}/{DB_NAME}"
        created = ensure_database(url)
        note = " (created)" if created else ""
        say(f"database: PostgreSQL answers on {LOCAL_HOST}:5432; using database {DB_NAME}{note}")
        return url
    if not embedded:
        say(f"database: no usable PostgreSQL on {LOCAL_HOST}:5432 ({problem}); starting an embedded one")
    return _embedded_postgres()


# --- Broker -------------------------------------------------------------------


def _redis_ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a Redis server on host:port answers PING without a password."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    return reply.startswith(b"+PONG")


def _tcp_reachable(host: str, port: int, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def sqla_broker_url(database_url: str) -> str:
    """kombu's SQLAlchemy transport URL for a postgres:// URL (socket hosts in ?host= work too)."""
    return "sqla+postgresql+psycopg://" + database_url.split("://", 1)[1]


def _check_given_broker(url: str) -> None:
    scheme = url.split("://", 1)[0]
    if scheme.startswith(("sqla+", "sqlalchemy+")):
        db_url = "postgresql://" + url.split("://", 1)[1]
        try:
            _pg_connect(db_url).close()
        except psycopg.Error as exc:
            raise ServiceError(f"CELERY_BROKER_URL={redact(url)} is set but not reachable: {exc}") from exc
        return
    if scheme in {"memory", "filesystem"}:
        return
    parts = urlsplit(url)
    default_port = {"redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671, "pyamqp": 5672}.get(scheme, 0)
    host, port = parts.hostname or LOCAL_HOST, parts.port or default_port
    if not _tcp_reachable(host, port):
        raise ServiceError(f"CELERY_BROKER_URL={redact(url)} is set but nothing answers on {host}:{port}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCAL_HOST, 0))
        return sock.getsockname()[1]


def _is_redis(pid: int) -> bool:
    """False when pid is gone or (where /proc tells) is no longer a redis-server."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if Path("/proc/self").exists():
        return cmdline.exists() and b"redis-server" in cmdline.read_bytes()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _terminate(pid: int, proc: subprocess.Popen | None) -> None:
    os.kill(pid, signal.SIGTERM)
    if proc is not None:  # our child: wait for it, so it is not left a zombie
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return
    for _ in range(100):
        if not _is_redis(pid):
            return
        time.sleep(0.1)


def stop_private_redis(pidfile: Path | None = None, proc: subprocess.Popen | None = None) -> None:
    """Stop the private redis-server of pidfile, or every one recorded in var/redis."""
    for path in [pidfile] if pidfile else sorted(REDIS_DIR.glob("redis-*.pid")):
        try:
            pid = int(path.read_text())
        except (OSError, ValueError):
            continue
        if _is_redis(pid):
            _terminate(pid, proc)
            say(f"broker: stopped the private redis-server (pid {pid})")
        path.unlink(missing_ok=True)


def _private_redis(binary: str) -> str:
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    args = [binary, "--bind", LOCAL_HOST, "--port", str(port), "--save", "", "--appendonly", "no"]
    args += ["--dir", str(REDIS_DIR), "--logfile", str(REDIS_DIR / "redis.log")]
    # A session of its own: Ctrl-C reaches the platform, which stops the workers before their broker.
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
    pidfile = REDIS_DIR / f"redis-{port}.pid"
    pidfile.write_text(str(proc.pid))
    _stoppers.append(("private redis-server", lambda: stop_private_redis(pidfile, proc)))
    for _ in range(100):
        if _redis_ping(LOCAL_HOST, port):
            say(f"broker: started a private redis-server on {LOCAL_HOST}:{port} (no persistence, var/redis)")
            return f"redis://{LOCAL_HOST}:{port}/0"
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    _stoppers.pop()
    stop_private_redis(pidfile, proc)
    raise ServiceError(f"redis-server did not start; see {REDIS_DIR / 'redis.log'}")


def _sqla_broker(database_url: str, *, for_tests: bool, why: str) -> str:
    if for_tests:
        database_url = _with_database(database_url, TEST_BROKER_DB)
        ensure_database(database_url)
    url = sqla_broker_url(database_url)
    say(f"broker: {why}; using kombu's SQLAlchemy transport on PostgreSQL ({url})")
    return url


def resolve_broker(database_url: str, *, for_tests: bool, embedded: bool) -> str:
    given = os.environ.get("CELERY_BROKER_URL")
    if given:
        _check_given_broker(given)
        say(f"broker: CELERY_BROKER_URL is set; using {redact(given)}")
        return given
    choice = os.environ.get("EMBEDDED_BROKER", "")
    if choice not in {"", "redis", "sqla"}:
        raise ServiceError(f"EMBEDDED_BROKER must be redis or sqla, got {choice!r}")
    if not embedded and _redis_ping(LOCAL_HOST, LOCAL_REDIS_PORT):
        db = TEST_REDIS_DB if for_tests else 0
        say(f"broker: Redis answers on {LOCAL_HOST}:{LOCAL_REDIS_PORT}; using database {db}")
        return f"redis://{LOCAL_HOST}:{LOCAL_REDIS_PORT}/{db}"
    binary = shutil.which("redis-server")
    if choice == "sqla":
        return _sqla_broker(database_url, for_tests=for_tests, why="EMBEDDED_BROKER=sqla")
    if binary:
        return _private_redis(binary)
    if choice == "redis":
        raise ServiceError("EMBEDDED_BROKER=redis, but no redis-server is on PATH")
    return _sqla_broker(database_url, for_tests=for_tests, why="no Redis running and no redis-server on PATH")


# --- Both ---------------------------------------------------------------------


def ensure_services(for_tests: bool = False) -> dict[str, str]:
    """Make the database and the broker reachable; return the env vars that point the platform at them."""
    embedded = os.environ.get("EMBEDDED", "").lower() in {"1", "true", "yes", "on"}
    if embedded:
        say("EMBEDDED is set: ignoring services already running on this machine")
    try:
        database_url = resolve_database(embedded=embedded)
        broker_url = resolve_broker(database_url, for_tests=for_tests, embedded=embedded)
    except BaseException:
        stop_services()
        raise
    return {"DATABASE_URL": database_url, "CELERY_BROKER_URL": broker_url}


def stop_services() -> None:
    """Stop what ensure_services started in this process (services found running are left alone)."""
    while _stoppers:
        name, stop = _stoppers.pop()
        try:
            stop()
        except Exception as exc:  # keep stopping the others
            say(f"could not stop the {name}: {exc}")


def _in_terminal_foreground() -> bool:
    try:
        return os.getpgrp() == os.tcgetpgrp(sys.stdin.fileno())
    except OSError:
        return False


def _run(command: list[str], env: dict[str, str]) -> int:
    """Run command with env and wait for it; SIGTERM, and SIGINT sent to us alone, are passed on."""
    proc = subprocess.Popen(command, env={**os.environ, **env})
    # Ctrl-C in a terminal already reaches the whole foreground group; passing it on would double it.
    interactive = _in_terminal_foreground()

    def forward(signum, _frame):
        if proc.poll() is None and not (signum == signal.SIGINT and interactive):
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = None
    if "--exec" in argv:
        at = argv.index("--exec")
        argv, command = argv[:at], argv[at + 1 :]
        command = command[1:] if command[:1] == ["--"] else command
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", action="store_true", help="choose services for the test suite")
    parser.add_argument("--stop", action="store_true", help="stop the embedded PostgreSQL and Redis in var/")
    parser.epilog = "--exec -- COMMAND...  run COMMAND with the services' env vars, then stop what was started"
    args = parser.parse_args(argv)
    if command == []:
        parser.error("--exec needs a command after --")
    if args.stop:
        stop_private_redis()
        stop_embedded_postgres()
        return 0
    try:
        env = ensure_services(for_tests=args.tests)
    except ServiceError as exc:
        print(f"services: error: {exc}", file=sys.stderr)
        return 2
    if command is None:
        _stoppers.clear()  # left running for the caller
        for key, value in env.items():
            print(f"export {key}={shlex.quote(value)}")
        return 0
    try:
        return _run(command, env)
    finally:
        stop_services()


if __name__ == "__main__":
    sys.exit(main())
