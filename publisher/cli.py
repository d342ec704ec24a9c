"""The `publisher` command (also `python -m publisher`)."""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import os
import signal
import subprocess
import sys
import time

import click

from . import create_app


@click.group(help="publisher: plan content and publish it to every channel of your community.")
def main() -> None:
    pass


# --- processes ----------------------------------------------------------------------------------

@main.command(help="Start the web app, a worker and the scheduler together; Ctrl-C stops all three.")
@click.option("--workers", default=1, show_default=True, help="Worker processes to start.")
def up(workers: int) -> None:
    from . import embedded_redis
    from .migrate import upgrade

    embedded = not os.environ.get("PUBLISHER_REDIS_URL")
    app = create_app()
    upgrade(app)
    env = dict(os.environ, PUBLISHER_REDIS_URL=app.config["REDIS_URL"])
    commands = {"web": ["web"], "scheduler": ["scheduler"]}
    for n in range(workers):
        commands[f"worker-{n + 1}"] = ["worker"]
    children: dict[str, subprocess.Popen] = {}

    def start(name: str) -> None:
        # Each child in a session of its own: Ctrl-C reaches only `up`, which then stops every child
        # with SIGTERM, the graceful signal for all three (gunicorn's SIGINT "quick" shutdown waits
        # out idle keep-alive connections, then kills its workers).
        children[name] = subprocess.Popen([sys.executable, "-m", "publisher", *commands[name]], env=env,
                                          start_new_session=True, preexec_fn=_die_with_parent)

    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    for name in commands:
        start(name)
    click.echo(f"\npublisher is running at {app.config['BASE_URL']}/  (Ctrl-C stops everything)")
    click.echo("Log in with the account from `publisher demo` or `publisher users create`.\n")
    try:
        while not stopping:
            for name, proc in list(children.items()):
                if proc.poll() is not None and not stopping:
                    click.echo(f"{name} exited with {proc.returncode}; starting it again", err=True)
                    time.sleep(1)
                    start(name)
            time.sleep(0.2)
    finally:
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in children.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if embedded:
            embedded_redis.stop(app.instance_path)
        click.echo("publisher stopped.")


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if `up` itself dies (even by SIGKILL), so nothing is left running."""
    with contextlib.suppress(OSError):  # not Linux: the children are stopped by `up` on its way out
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@main.command(help="Serve the web app with gunicorn.")
@click.option("--host", default=None, help="Default: PUBLISHER_HOST.")
@click.option("--port", default=None, type=int, help="Default: PUBLISHER_PORT.")
def web(host: str | None, port: int | None) -> None:
    app = create_app()  # resolves the embedded Redis before gunicorn forks
    bind = f"{host or app.config['HOST']}:{port or app.config['PORT']}"
    os.environ["PUBLISHER_REDIS_URL"] = app.config["REDIS_URL"]
    argv = [sys.executable, "-m", "gunicorn", "--bind", bind, "--workers", str(app.config["WEB_WORKERS"]),
            "--threads", str(app.config["WEB_THREADS"]), "--graceful-timeout", "10", "--access-logfile", "-",
            # No control socket: it lives in $HOME, which several instances would share.
            "--no-control-socket", "publisher.wsgi:app"]
    os.execv(sys.executable, argv)


@main.command(help="Run a worker that sends deliveries.")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker(burst: bool) -> None:
    from workers.worker import run

    run(create_app(), burst=burst)


@main.command(help="Run the scheduler that hands due deliveries to the workers.")
def scheduler() -> None:
    from workers.scheduler import Scheduler

    Scheduler(create_app()).run()


# --- database ------------------------------------------------------------------------------------

@main.group(help="Database schema.")
def db() -> None:
    pass


@db.command("upgrade", help="Apply the migrations (Alembic).")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    from .migrate import upgrade

    upgrade(create_app(), revision)
    click.echo("database is up to date")


# --- users and tokens --------------------------------------------------------------------------

@main.group(help="User accounts.")
def users() -> None:
    pass


@users.command("create")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(["admin", "editor", "reviewer"]), default="editor", show_default=True)
@click.option("--name", default="")
@click.option("--password", envvar="PUBLISHER_NEW_PASSWORD", help="Asked for when not given.")
def users_create(email: str, role: str, name: str, password: str | None) -> None:
    from sqlalchemy.exc import IntegrityError

    from .extensions import db as sqla
    from .models import Role
    from .security import create_user

    app = create_app()
    if not password:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Again: "):
            raise click.ClickException("the passwords differ")
    with app.app_context():
        try:
            user = create_user(email, password, Role(role), name)
            sqla.session.commit()
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        except IntegrityError:  # the e-mail is unique
            sqla.session.rollback()
            raise click.ClickException(f"a user with the e-mail {user.email} already exists") from None
        click.echo(f"created {user.role} {user.email}")


@main.group(help="API tokens.")
def tokens() -> None:
    pass


@tokens.command("create")
@click.option("--email", required=True, help="The user the token acts as.")
@click.option("--name", default="api", show_default=True)
def tokens_create(email: str, name: str) -> None:
    from sqlalchemy import select

    from .extensions import db as sqla
    from .models import User
    from .security import create_token

    app = create_app()
    with app.app_context():
        user = sqla.session.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            raise click.ClickException(f"no user {email}")
        _row, token = create_token(user, name)
        sqla.session.commit()
        click.echo(token)
        click.echo("Keep it now: it is not stored and cannot be shown again.", err=True)


@main.command(help="Create a demo organisation, logins, columns, channels and items; running it again changes nothing.")
def demo() -> None:
    from .demo import run

    click.echo(run(create_app()))
