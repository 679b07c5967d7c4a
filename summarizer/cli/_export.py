"""`summarizer export`: a bulk output as CSV or a Markdown digest, written whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import OutputError, UsageError
from ._common import (
    ExportChoice, _err, _exit_codes, _out, _registry, app,
)


@app.command("export", short_help="Turn a bulk output into a spreadsheet (CSV) or a Markdown digest.")
def export_command(
    results: Annotated[Path, typer.Argument(help="A bulk output (JSONL of Result records).", metavar="OUT.jsonl",
                                            show_default=False)],
    output_format: Annotated[ExportChoice, typer.Option("--format", help="csv: one row per document; md: a "
                                                        "digest with footnote citations.")] = ExportChoice.csv,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", metavar="FILE",
                                                   help="Write here instead of standard output.")] = None,
    tasks_dir: Annotated[Optional[Path], typer.Option(
        metavar="DIR", help="A folder of user-defined tasks. Env: SUMMARIZER_TASKS_DIR.")] = None,
) -> None:
    """Write the records of OUT.jsonl as CSV or Markdown (streamed: any size in constant memory)."""
    from ..export import export

    with _exit_codes():
        registry = _registry(tasks_dir)
        if output is None:
            count = export(results, output_format.value, _StdoutText(), registry=registry, on_warning=_err_warning)
        else:
            with _replaced(output, results) as handle:
                count = export(results, output_format.value, handle, registry=registry, on_warning=_err_warning)
    _err(f"exported {count} record(s)")


def _err_warning(message: str) -> None:
    _err(f"warning: {message}")


@contextmanager
def _replaced(output: Path, source: Path) -> Iterator[Any]:
    """A text file that becomes ``output`` only when the export finished: a failed one leaves it as it was.

    ``output`` may not be ``source``: writing the export over the bulk output it reads would lose it.
    A link is written through (its target replaced, not the link); a device or a FIFO (``/dev/stdout``)
    is written into, never replaced by a file — as root that would put a regular file at ``/dev/null``.
    """
    import tempfile

    try:
        if output.exists() and source.exists() and os.path.samefile(output, source):
            raise UsageError(f"--output {output} is the bulk output being exported: choose another file")
        if output.is_dir():
            raise OutputError(f"cannot write {output}: it is a directory")
        if output.exists() and not output.is_file():
            with open(output, "w", encoding="utf-8", newline="", errors="replace") as stream:
                yield stream
            return
        target = Path(os.path.realpath(output))
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"cannot write {output}: {exc.strerror}") from None
    try:
        os.chmod(fd, _new_file_mode(target))
        with os.fdopen(fd, "w", encoding="utf-8", newline="", errors="replace") as handle:
            yield handle
        os.replace(temporary, target)
    except OSError as exc:
        raise OutputError(f"cannot write {output}: {exc.strerror}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _new_file_mode(target: Path) -> int:
    """The replaced file's permissions, else what ``open`` would give a new file (mkstemp's are 0600)."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


class _StdoutText:
    """A text stream over ``_out``: a closed or full stdout is exit 2, not a traceback."""

    def write(self, text: str) -> int:
        _out(text.encode("utf-8", "replace").decode("utf-8"), end="")  # a lone surrogate in a record: '?', as in a file
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)
