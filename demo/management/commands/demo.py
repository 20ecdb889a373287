"""`python manage.py demo`: migrate, create the demo users and project, run web + worker.

This is the embedded default: SQLite and a broker on SQLite (kombu's SQLAlchemy transport), a
real Celery worker (with beat) in a second process. Nothing else to install or start.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the platform with a demo project (embedded default: SQLite + a broker on SQLite)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="Only migrate and create the demo project.")
        parser.add_argument("--no-loop", action="store_true", help="Do not train, deploy and simulate traffic.")

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)
        password = self._password()
        User = get_user_model()
        owner, _ = User.objects.get_or_create(username="demo", defaults={"email": "demo@example.com"})
        owner.set_password(password)
        owner.save()
        reviewer, _ = User.objects.get_or_create(username="reviewer", defaults={"email": "reviewer@example.com"})
        reviewer.set_password(password)
        reviewer.save()
        from demo.seed import seed_demo

        project = seed_demo(owner=owner, reviewer=reviewer)
        url = f"http://127.0.0.1:{options['port']}/"
        self.stdout.write(
            self.style.SUCCESS(
                f"\nmlplatform demo\n  open     {url}\n  log in   demo / {password}   (reviewer: reviewer / {password})\n"
                f"  project  {url}projects/{project.pk}/\n  API docs {url}api/v1/docs/\n"
            )
        )
        if options["no_serve"]:
            return
        self._serve(options["port"], project=None if options["no_loop"] else project, owner=owner)

    def _password(self) -> str:
        path = settings.DATA_DIR / "demo_password"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(9))
            path.chmod(0o600)
        return path.read_text().strip()

    def _serve(self, port: int, *, project, owner) -> None:
        env = dict(os.environ)
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "mlplatform",
                "worker",
                "-B",
                "-Q",
                "default,training,logging",
                "-c",
                "2",
                "--loglevel",
                "INFO",
                "-s",
                str(settings.DATA_DIR / "celerybeat-schedule"),
            ],
            env=env,
            cwd=settings.BASE_DIR,
        )
        web = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            env=env,
            cwd=settings.BASE_DIR,
        )
        stop = False
        if project is not None:
            # The loop (data, training, evaluation, deployment, traffic) runs on the worker while
            # the web server is already up: its jobs show in the UI with their progress bars.
            import threading

            from demo.loop import run_loop

            def loop():
                try:
                    run_loop(project=project, owner=owner, log=lambda m: self.stdout.write(m))
                except Exception as exc:  # noqa: BLE001 - the demo keeps serving what it has
                    self.stderr.write(f"demo: the loop stopped: {exc}")

            threading.Thread(target=loop, name="demo-loop", daemon=True).start()

        def on_signal(signum, frame):
            nonlocal stop
            stop = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        try:
            while not stop and worker.poll() is None and web.poll() is None:
                time.sleep(0.5)
        finally:
            for proc in (web, worker):
                if proc.poll() is None:
                    proc.terminate()
            for proc in (web, worker):
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
