"""Time to first page, as a newcomer gets it: a clean clone, nothing cached, `make demo` until the board answers.

Clones the current HEAD of the working copy this runs from into a temporary directory, runs
`make demo` there with empty caches (its own UV_CACHE_DIR, PIP_CACHE_DIR and XDG_CACHE_HOME; the
Makefile drops the caller's product variables) on a free loopback port, and polls the board (`/`; a
redirect to the login page counts: any answer under 500) until it answers. Prints the seconds of
the install (until make starts its first manage.py command), of the migration and demo build (until
it starts the server), of the server's start and in all, each with the load average, and the
processor time make and all it ran used; then stops the server and removes the directory.
Uncommitted changes are not measured: commit first.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
# Past this, the first page is not coming: stop and say where it stood.
GIVE_UP_SECONDS = float(os.environ.get("BENCH_FIRST_PAGE_TIMEOUT", "900"))
# make echoes each command as it starts it: the install ends when the first manage.py command starts
# (the demo build, which migrates first), the build when the server starts.
INSTALLED, BUILT = "manage.py ", "manage.py runserver"
# Variables of the caller that would change what a newcomer gets (the Makefile drops the product's own);
# make's own, when `make bench` runs this, would make the clone's make a sub-make of it.
CALLERS = (
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
    "UV_PYTHON",
    "PIP_REQUIRE_VIRTUALENV",
    "DJANGO_SETTINGS_MODULE",
    "MAKEFLAGS",
    "MAKELEVEL",
    "MFLAGS",
    "MAKEOVERRIDES",
)


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _answers(url: str) -> int | None:
    """The board's status once the server answers (redirects not followed), None while it does not."""

    class _Stay(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    try:
        with urllib.request.build_opener(_Stay).open(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as answered:
        return int(answered.code)
    except (OSError, urllib.error.URLError):
        return None


class _Make:
    """`make demo` in ``clone``, its output kept and the moment each marker line appeared."""

    def __init__(self, clone: Path, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.seen: dict[str, float] = {}
        self.process = subprocess.Popen(
            ["make", "demo"],
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: the server and its reloader stop with it
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            now = time.monotonic()
            self.lines.append(line.rstrip())
            for marker in (INSTALLED, BUILT):
                if marker in line and marker not in self.seen:
                    self.seen[marker] = now

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.reader.join(timeout=5)


def measure() -> dict[str, float]:
    """Seconds of the install, of migrate and the demo build, and in all, from a clean clone."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="first-page-"))
    make: _Make | None = None
    try:
        clone = work / "release-lineage"
        subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", "--detach", head], check=True)
        cache = work / "cache"
        port = free_port()
        env = {key: value for key, value in os.environ.items() if key not in CALLERS}
        env.update(
            PORT=str(port),
            UV_CACHE_DIR=str(cache / "uv"),
            PIP_CACHE_DIR=str(cache / "pip"),
            XDG_CACHE_HOME=str(cache),
        )
        print(f"   clone of {head[:12]} in {clone}, port {port}, load {_load()}", flush=True)
        used_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        make = _Make(clone, env)
        status = None
        while status is None:
            if make.process.poll() is not None:
                raise RuntimeError(f"make demo exited {make.process.returncode}:\n" + "\n".join(make.lines[-30:]))
            if time.monotonic() - started > GIVE_UP_SECONDS:
                raise RuntimeError(f"no answer after {GIVE_UP_SECONDS:.0f} s:\n" + "\n".join(make.lines[-30:]))
            if BUILT in make.seen:
                status = _answers(f"http://127.0.0.1:{port}/")
            if status is None or status >= 500:
                if status is not None:
                    raise RuntimeError(f"the board answered {status}:\n" + "\n".join(make.lines[-30:]))
                time.sleep(0.05)
        answered = time.monotonic()
        make.stop()
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        installed, built = make.seen[INSTALLED], make.seen[BUILT]
        return {
            "install": installed - started,
            "migrate_and_build": built - installed,
            "serve": answered - built,
            "total": answered - started,
            # Less load-bound than the seconds: what make and everything it ran used of the processors.
            "cpu": used.ru_utime + used.ru_stime - used_before.ru_utime - used_before.ru_stime,
            "status": float(status),
        }
    finally:
        if make is not None:
            make.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    figures = measure()
    load = _load()
    print(f"   install (venv, uv, requirements-dev.txt): {figures['install']:6.1f} s   load {load}")
    print(f"   migrate + build_demo:                     {figures['migrate_and_build']:6.1f} s   load {load}")
    print(f"   server start until the board answers:     {figures['serve']:6.1f} s   load {load}")
    print(
        f"   total, clean clone to first page:          {figures['total']:6.1f} s   load {load}"
        f"   (board answered {figures['status']:.0f})",
        flush=True,
    )
    print(f"   processor time used by make and all it ran (user + system): {figures['cpu']:.1f} s", flush=True)


if __name__ == "__main__":
    main()
    sys.exit(0)
