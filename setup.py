"""The reader widget is part of every install: `widget/` (readable ES modules) is bundled by npm into
`server/static/widget.js` when the package is built, editable installs included.

All other metadata is in pyproject.toml; this file only adds that build step.
"""

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
WIDGET = ROOT / "widget"
BUNDLE = ROOT / "server" / "static" / "widget.js"
BUILD = "npm ci --prefix widget && npm run build --prefix widget"


def _bundle_is_stale() -> bool:
    if not BUNDLE.is_file():
        return True
    sources = [*WIDGET.glob("src/**/*"), WIDGET / "build.mjs", WIDGET / "package-lock.json"]
    built = BUNDLE.stat().st_mtime
    return any(path.is_file() and path.stat().st_mtime > built for path in sources)


class build_py_with_widget(build_py):
    """build_py, after bundling the widget when its sources are newer than the bundle."""

    def run(self) -> None:
        if (WIDGET / "package.json").is_file() and _bundle_is_stale():
            npm = shutil.which("npm")
            if npm is None:
                # The tutor still works; /widget.js answers 503 widget_not_built with this same hint.
                self.warn(f"npm not found, so the reader widget was not built; install Node.js 18+ and run `{BUILD}`.")
            else:
                try:
                    for args in (["ci", "--no-audit", "--no-fund"], ["run", "build"]):
                        subprocess.run([npm, *args, "--prefix", str(WIDGET)], check=True)
                except subprocess.CalledProcessError:
                    # No npm registry within reach, say: install the tutor anyway, without the widget.
                    self.warn(f"the reader widget could not be built; run `{BUILD}` to see why.")
        super().run()


setup(cmdclass={"build_py": build_py_with_widget})
