"""Build hook: the console's front-end bundle (scripts/build-web.sh: the hunting editor and charts,
from the npm packages in package-lock.json) is built before the package's files are gathered, so
every wheel carries src/clampdown/web/static/dist/. Everything else is in pyproject.toml."""

from __future__ import annotations

import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLE = ROOT / "src" / "clampdown" / "web" / "static" / "dist" / "hunting-editor.js"


class BuildPyWithBundle(build_py):
    def run(self) -> None:
        script = ROOT / "scripts" / "build-web.sh"
        if script.exists():  # a checkout; a source archive carries the bundle it was made with
            subprocess.run(["bash", str(script)], check=True)
        if not BUNDLE.exists():
            raise SystemExit(f"{BUNDLE} is missing: run scripts/build-web.sh (needs node and npm)")
        super().run()


setup(cmdclass={"build_py": BuildPyWithBundle})
