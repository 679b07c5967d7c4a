"""Installed plugins: tasks (entry point group summarizer.tasks) and backends (summarizer.backends).

A real distribution on the path — a dist-info folder with entry_points.txt — and the real
console script in a subprocess: what `pip install summarizer-plugin` would give.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import UNGA

PLUGIN = '''
from pydantic import BaseModel

from summarizer import Backend, Completion, Usage, model_task


class Places(BaseModel):
    places: list[str]


def task():
    return model_task(
        "places", Places, description="The places an article names.", evidence=("places[]",),
        system="List the places the document names, as JSON {\\"places\\": [...]}.",
        user="<document>\\n$document\\n</document>", reask="Not valid:\\n$errors")


class Echo(Backend):
    """Answers every request with the document's first words: no network, no model."""

    model = "echo-1"

    def __init__(self, settings):
        self.settings = settings

    async def complete(self, messages, *, output=None, params=None):
        if "<document>" not in messages[-1]["content"]:
            raise IndexError("a bug: the plugin expects the document in the last message")  # re-asks have none
        text = messages[-1]["content"].rsplit("<document>", 1)[1].split("</document>")[0].strip()
        if output is not None and output.json_schema is not None:
            return Completion(text='{"places": ["New York"]}', usage=Usage(requests=1), model=self.model)
        return Completion(text=" ".join(text.split()[:45]) + ".", usage=Usage(requests=1), model=self.model)


def broken(settings):
    raise RuntimeError("cannot start")
'''


def _distribution(site: Path, package: str, source: str, entry_points: str) -> Path:
    """An installed distribution of one package: its module and a dist-info folder naming its entry points."""
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text(source)
    info = site / f"{package}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    return site


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    return _distribution(tmp_path / "site", "summarizer_plugin", PLUGIN,
                         "[summarizer.tasks]\nplaces = summarizer_plugin:task\n\n"
                         "[summarizer.backends]\necho = summarizer_plugin:Echo\nbroken = summarizer_plugin:broken\n")


def run(plugin_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUMMARIZER_", "OPENAI_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(plugin_path), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "summarizer", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_plugin_task_runs_on_a_plugin_backend(plugin_path: Path) -> None:
    listed = run(plugin_path, "--help")
    assert "places" in listed.stdout  # the task is a command like brief
    result = run(plugin_path, "places", str(UNGA), "--backend", "echo")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"places": ["New York"]}
    brief = run(plugin_path, "brief", str(UNGA), "--backend", "echo", "--json", "--words", "30-60")
    assert brief.returncode == 0, brief.stderr
    assert json.loads(brief.stdout)["model"] == "echo-1"
    # A re-ask (the brief is too long for 5-10 words) meets the plugin's bug: exit 4, one line, no traceback.
    buggy = run(plugin_path, "brief", str(UNGA), "--backend", "echo", "--words", "5-10")
    assert buggy.returncode == 4 and "backend plugin echo failed: IndexError" in buggy.stderr
    assert "Traceback" not in buggy.stderr


def test_an_unknown_backend_is_usage_and_a_broken_plugin_configuration(plugin_path: Path) -> None:
    for name, message, code in [("nope", "no backend named 'nope'; known: auto, openai, local, broken, echo", 2),
                                ("broken", "RuntimeError: cannot start", 3)]:
        result = run(plugin_path, "brief", str(UNGA), "--backend", name)
        assert result.returncode == code, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr


BROKEN_TASKS = '''
from pydantic import BaseModel

from summarizer import model_task


class Places(BaseModel):
    places: list[str]


def raises():
    raise RuntimeError("cannot start")


def clashes():
    return model_task("brief", Places, system="s", user="$document", reask="$errors")


def reserved():
    return model_task("run", Places, system="s", user="$document", reask="$errors")
'''


@pytest.mark.parametrize(("entry", "message"), [
    ("raises", "task plugin bad (broken_tasks:raises) failed to load: RuntimeError: cannot start"),
    ("clashes", "task 'brief' (plugin task brief) is already defined (built-in)"),
    ("reserved", "task name 'run' is taken by a command, route or prompt of summarizer"),
])
def test_a_broken_task_plugin_is_one_line_and_exit_3_for_every_command(tmp_path: Path, entry: str,
                                                                         message: str) -> None:
    site = _distribution(tmp_path / "site", "broken_tasks", BROKEN_TASKS,
                         f"[summarizer.tasks]\nbad = broken_tasks:{entry}\n")
    for args in (["--help"], ["brief", str(UNGA)], ["check", str(UNGA), str(UNGA)]):
        result = run(site, *args)  # (was a traceback at import, exit 1, for every command)
        assert result.returncode == 3, (args, result.stderr)
        assert result.stderr.startswith("summarizer: error: ") and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
