"""The OpenAI Files and Batches API, faked, for the fake model server.

A batch's life is clock-driven: ``validating`` for ``durations[0]`` seconds,
then ``in_progress``, ``finalizing``, and ``completed`` (or ``expired``,
``failed``, ``cancelled``). Answers are computed when the batch is created,
with the same behaviours as direct requests (markers in the documents):
``500``/``503``/``429`` become error-file entries, ``missing`` lines are in
neither file, spoilers (malformed, badquote, invalid, …) are valid HTTP with
bad content. Output lines come out of order. ``refuse_creates`` refuses the
next N creations for the enqueued-token limit; ``expire_next`` makes the next
batch expire with that share of its output; ``max_requests``/``max_bytes`` are
the per-file limits. A batch can fail at validation (status ``failed``, its
``errors`` saying why, no files): ``validation_max_requests`` (a per-file limit
lower than the client's), ``validation_error`` (every batch), or lines whose
body carries ``[[batch:refuse]]`` (named by line number). ``POST /v1/batches/fake-release`` ends every running batch now (benchmarks).
"""

from __future__ import annotations

import email.parser
import json
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_TERMINAL = ("completed", "expired", "failed", "cancelled")


@dataclass
class FakeBatchAPI:
    answer: Callable[[dict[str, Any]], tuple[str, dict[str, Any] | None]]  # body -> (behaviour, completion)
    clock: Callable[[], float] = time.monotonic
    durations: tuple[float, float, float] = (0.02, 0.05, 0.02)  # validating, in_progress, finalizing
    max_requests: int = 50_000
    max_bytes: int = 200 * 1024 * 1024
    refuse_creates: int = 0
    expire_next: float | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    submitted: list[str] = field(default_factory=list)  # custom ids, every time one is sent
    created: list[str] = field(default_factory=list)  # batch ids, in order
    refused_creates: int = 0
    disabled: bool = False  # a server without these routes: 404
    on_retrieve: Callable[[int], Any] | None = None  # called with the count of batch look-ups so far
    retrieves: int = 0
    # Failing at validation (the batch is created, then "failed" with `errors`, no files):
    validation_max_requests: int | None = None  # a per-file request limit lower than the client's
    validation_error: dict[str, Any] | None = None  # every batch fails with this error (no line)
    refused: list[str] = field(default_factory=list)  # batch ids failed at validation

    def reset(self) -> None:
        self.files.clear()
        self.batches.clear()
        self.submitted.clear()
        self.created.clear()
        self.refuse_creates = self.refused_creates = self.retrieves = 0
        self.validation_max_requests, self.validation_error = None, None
        self.refused.clear()
        self.expire_next, self.on_retrieve, self.disabled = None, None, False
        self.durations = (0.02, 0.05, 0.02)
        self.clock = time.monotonic
        self.max_requests, self.max_bytes = 50_000, 200 * 1024 * 1024

    # -- routes -----------------------------------------------------------------------------------

    def handle(self, method: str, path: str, head: str, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.disabled:
            return 404, {}, _error(f"no route {method} {path}")
        if path.endswith("/batches/fake-release") and method == "POST":  # for benchmarks: finish them all now
            for batch in self.batches.values():
                batch["_born"] = self.clock() - sum(self.durations)
            return 200, {}, b"{}"
        parts = [p for p in path.split("?")[0].split("/") if p][1:]  # drop "v1"
        routes: dict[tuple[str, int], Callable[..., tuple[int, dict[str, str], bytes]]] = {
            ("POST", 1): self._upload, ("GET", 2): self._file_or_batch, ("GET", 3): self._content,
            ("GET", 1): self._list, ("POST", 3): self._cancel,
        }
        if parts[:1] == ["batches"] and method == "POST" and len(parts) == 1:
            return self._create(payload)
        handler = routes.get((method, len(parts)))
        if handler is None:
            return 404, {}, _error(f"no route {method} {path}")
        return handler(parts, head, payload)

    def _upload(self, parts: list[str], head: str, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        if parts != ["files"]:
            return 404, {}, _error("no route")
        content_type = next((line.split(":", 1)[1].strip() for line in head.split("\r\n")
                             if line.lower().startswith("content-type:")), "")
        message = email.parser.BytesParser().parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + payload)
        fields: dict[str, Any] = {}
        for part in message.get_payload():  # type: ignore[union-attr]
            name = part.get_param("name", header="content-disposition")
            fields[name] = (part.get_filename(), part.get_payload(decode=True))
        filename, data = fields.get("file", (None, b""))
        if len(data) > self.max_bytes:
            return 400, {}, _error(f"file is {len(data)} bytes; the limit is {self.max_bytes}")
        file_id = "file-" + secrets.token_hex(6)
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                               "filename": filename or "upload.jsonl", "purpose": fields.get("purpose", (0, b"batch"))[1]
                               .decode(), "status": "processed", "data": data}
        return 200, {}, json.dumps(_public(self.files[file_id])).encode()

    def _create(self, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        body = json.loads(payload)
        if self.refuse_creates > 0:
            self.refuse_creates -= 1
            self.refused_creates += 1
            return 400, {}, json.dumps({"error": {"code": "token_limit_exceeded", "type": "invalid_request_error",
                                                  "message": "Enqueued token limit reached for fake-model."}}).encode()
        source = self.files.get(body.get("input_file_id", ""))
        if source is None:
            return 400, {}, _error("no such input file")
        lines = [json.loads(line) for line in source["data"].splitlines() if line.strip()]
        if len(lines) > self.max_requests:
            return 400, {}, _error(f"{len(lines)} requests in one file; the limit is {self.max_requests}")
        if any(not {"custom_id", "method", "url", "body"} <= set(line) for line in lines):
            return 400, {}, _error("every line needs custom_id, method, url and body")
        batch_id = "batch_" + secrets.token_hex(6)
        answers = []
        for line in lines:
            self.submitted.append(line["custom_id"])
            behaviour, completion = self.answer(line["body"])
            answers.append((line["custom_id"], behaviour, completion))
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
            "_invalid": self._validate(lines),
            "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
            "status": "validating", "output_file_id": None, "error_file_id": None, "created_at": int(time.time()),
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"), "_born": self.clock(), "_answers": answers,
            "_expire": self.expire_next, "_cancelled": None,
        }
        self.expire_next = None
        self.created.append(batch_id)
        return 200, {}, json.dumps(_public(self.batches[batch_id])).encode()

    def _file_or_batch(self, parts: list[str], head: str, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        kind, key = parts
        if kind == "files" and key in self.files:
            return 200, {}, json.dumps(_public(self.files[key])).encode()
        if kind == "batches" and key in self.batches:
            self.retrieves += 1
            if self.on_retrieve is not None:
                self.on_retrieve(self.retrieves)
            return 200, {}, json.dumps(_public(self._advance(self.batches[key]))).encode()
        return 404, {}, _error(f"no {kind[:-1]} {key}")

    def _content(self, parts: list[str], head: str, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        kind, key, what = parts
        if kind != "files" or what != "content" or key not in self.files:
            return 404, {}, _error("no such file")
        return 200, {"content-type": "application/octet-stream"}, self.files[key]["data"]

    def _list(self, parts: list[str], head: str, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        if parts != ["batches"]:
            return 404, {}, _error("no route")
        data = [_public(self._advance(b)) for b in reversed(list(self.batches.values()))]
        return 200, {}, json.dumps({"object": "list", "data": data, "has_more": False}).encode()

    def _cancel(self, parts: list[str], head: str, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        kind, key, what = parts
        if kind != "batches" or what != "cancel" or key not in self.batches:
            return 404, {}, _error("no such batch")
        batch = self._advance(self.batches[key])
        if batch["status"] not in _TERMINAL:
            batch["_cancelled"] = self.clock()
            self._finish(batch, "cancelled", share=0.3)
        return 200, {}, json.dumps(_public(batch)).encode()

    def _validate(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Why the batch fails validation: the provider's `errors` entries (none: it runs)."""
        if self.validation_error is not None:
            return [{"code": None, "line": None, "param": None, **self.validation_error}]
        if self.validation_max_requests is not None and len(lines) > self.validation_max_requests:
            return [{"code": "too_many_tasks", "line": None, "param": None,
                     "message": f"The batch has {len(lines)} requests; this model allows at most "
                                f"{self.validation_max_requests} per batch."}]
        return [{"code": "invalid_request", "line": number, "param": "body",
                 "message": "The request body is not valid for /v1/chat/completions."}
                for number, line in enumerate(lines, 1) if "[[batch:refuse]]" in json.dumps(line["body"])]

    # -- life cycle --------------------------------------------------------------------------------

    def _advance(self, batch: dict[str, Any]) -> dict[str, Any]:
        if batch["status"] in _TERMINAL:
            return batch
        age = self.clock() - batch["_born"]
        validating, running, finalizing = self.durations
        total = batch["request_counts"]["total"]
        if age < validating:
            batch["status"] = "validating"
        elif batch["_invalid"]:
            batch["status"], batch["errors"] = "failed", {"object": "list", "data": batch["_invalid"]}
            self.refused.append(batch["id"])
        elif age < validating + running:
            batch["status"] = "in_progress"
            done = int(total * (age - validating) / running)
            batch["request_counts"].update(completed=done, failed=0)
        elif age < validating + running + finalizing:
            batch["status"] = "finalizing"
        elif batch["_expire"] is not None:
            self._finish(batch, "expired", share=batch["_expire"])
        else:
            self._finish(batch, "completed", share=1.0)
        return batch

    def _finish(self, batch: dict[str, Any], status: str, *, share: float) -> None:
        answers = batch["_answers"][: int(len(batch["_answers"]) * share)]
        random.Random(batch["id"]).shuffle(answers)  # out of order, as the real one is
        output, errors = [], []
        for custom_id, behaviour, completion in answers:
            if behaviour == "missing":
                continue
            if completion is None:
                status_code = int(behaviour) if behaviour.isdigit() else 500
                errors.append({"id": "batch_req_" + secrets.token_hex(4), "custom_id": custom_id, "response": {
                    "status_code": status_code, "request_id": "req", "body": {"error": {
                        "message": f"fake {status_code}", "type": "server_error"}}}, "error": None})
            else:
                output.append({"id": "batch_req_" + secrets.token_hex(4), "custom_id": custom_id, "response": {
                    "status_code": 200, "request_id": "req", "body": completion}, "error": None})
        batch["status"] = status
        batch["request_counts"] = {"total": len(batch["_answers"]), "completed": len(output), "failed": len(errors)}
        batch["output_file_id"] = self._store(output) if output else None
        batch["error_file_id"] = self._store(errors) if errors else None

    def _store(self, lines: list[dict[str, Any]]) -> str:
        file_id = "file-" + secrets.token_hex(6)
        data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                               "filename": "batch_output.jsonl", "purpose": "batch_output", "status": "processed",
                               "data": data}
        return file_id


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_") and k != "data"}


def _error(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": None}}).encode()
