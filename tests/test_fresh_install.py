"""The README's quick start, run as written in a fresh venv: what a new user does first.

CI upgrades nothing the README does not: a fresh venv's own pip (23.x on Python 3.11) resolves
extras differently from a new one (it missed jusText's `lxml[html_clean]`, and HTML input died
with an ImportError on a fresh install while CI stayed green).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Read before conftest points XDG_CACHE_HOME at a temp dir: pip's wheel cache (llama.cpp's build) is reused.
_PIP_CACHE = os.environ.get("PIP_CACHE_DIR") or str(
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pip")

pytestmark = pytest.mark.slow


def _quick_start() -> str:
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the README's quick start has no bash block"
    return block.group(1)


def test_the_readme_quick_start_works_in_a_fresh_venv(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs a git checkout to clone")
    script = _quick_start()
    assert "pip install --upgrade pip" not in script and "pip install -U pip" not in script
    script = script.replace("git clone <this repository> summarizer", f"git clone -q {ROOT} summarizer")
    # A marker before each summarizer command, to tell their outputs from pip's.
    script = re.sub(r"^summarizer ", "echo @@@; summarizer ", script, flags=re.MULTILINE)
    outer_venv = os.environ.get("VIRTUAL_ENV")
    path = [p for p in os.environ["PATH"].split(os.pathsep) if not (outer_venv and p.startswith(outer_venv))]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PATH=os.pathsep.join(path), PIP_CACHE_DIR=_PIP_CACHE, PIP_DISABLE_PIP_VERSION_CHECK="1")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    text_brief, page_brief, scorecard = done.stdout.split("@@@\n")[1:]
    for brief in (text_brief, page_brief):  # one paragraph each
        assert len(brief.strip().splitlines()) == 1 and len(brief.split()) >= 20, done.stdout[-3000:]
    assert "Chile" in page_brief or "earthquake" in page_brief, page_brief  # the article, not the page's menus
    assert scorecard.rstrip().endswith("PASS"), scorecard[-2000:]  # the eval gate
