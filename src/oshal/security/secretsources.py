"""Where scanned text comes from: files on disk and stored values, turned into ``Blob``s for ``scan_blobs``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from oshal.logs import get_logger
from oshal.security.secretscan import Blob

__all__ = ["file_blobs", "text_blob"]

log = get_logger(__name__)


def file_blobs(paths: Iterable[Path], source: str, *, root: Path | None = None,
               max_bytes: int = 2_000_000) -> Iterator[Blob]:
    """One blob per text file under ``paths``; binary files and oversized non-log files are skipped.

    A log-style file over ``max_bytes`` is read from its last ``max_bytes`` (recent lines matter most);
    its blob location then ends in ``:N``, the real line number where the tail starts.
    """
    for path in _walk(paths):
        blob = _file_blob(path, source, root, max_bytes)
        if blob is not None:
            yield blob


def _walk(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(child for child in path.rglob("*") if child.is_file())
        elif path.is_file():
            yield path


def _file_blob(path: Path, source: str, root: Path | None, max_bytes: int) -> Blob | None:
    try:
        size = path.stat().st_size
        if size <= max_bytes:
            data, first_line = path.read_bytes(), 1
        elif _is_log_style(path, source):
            data, first_line = _read_tail(path, size, max_bytes)
        else:
            return None
    except OSError as e:  # unreadable, or rotated away mid-scan: one file must not stop the scan
        log.warning("secretscan.file_skipped", path=str(path), error=str(e))
        return None
    if b"\x00" in data:
        return None
    location = _relative(path, root) + (f":{first_line}" if first_line > 1 else "")
    return Blob(source, location, data.decode("utf-8", errors="replace"))


def _is_log_style(path: Path, source: str) -> bool:
    return source == "logs" or ".log" in path.name  # control.log and its rotations control.log.1, ...


def _read_tail(path: Path, size: int, max_bytes: int) -> tuple[bytes, int]:
    start = size - max_bytes
    with path.open("rb") as handle:
        lines_before = _count_newlines(handle, start)
        tail = handle.read()
    cut = tail.find(b"\n") + 1  # the tail starts mid-line; that partial line is dropped
    if cut == 0:
        return tail, lines_before + 1
    return tail[cut:], lines_before + 2


def _count_newlines(handle: BinaryIO, upto: int, chunk: int = 1 << 20) -> int:
    count = 0
    while upto > 0:
        data = handle.read(min(chunk, upto))
        if not data:
            break
        count += data.count(b"\n")
        upto -= len(data)
    return count


def _relative(path: Path, root: Path | None) -> str:
    if root is not None and path.is_relative_to(root):
        return path.relative_to(root).as_posix()
    return path.as_posix()


def text_blob(source: str, location: str, value: object) -> Blob:
    """A blob for a stored value: plain text stays as is; structures become one ``path.to.key: value`` per leaf.

    Key names stay next to their values so the keyword detector sees ``config.password: "..."``; strings
    holding JSON (stream payloads, serialised results) are expanded too.
    """
    value = _embedded_json(value)
    if isinstance(value, str):
        return Blob(source, location, value)
    return Blob(source, location, "\n".join(_leaf_lines(value, "")))


def _leaf_lines(value: object, path: str) -> Iterator[str]:
    value = _embedded_json(value)
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaf_lines(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            yield from _leaf_lines(item, f"{path}[{index}]")
    else:
        rendered = _render_scalar(value)
        yield f"{path}: {rendered}" if path else rendered


def _embedded_json(value: object) -> object:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _render_scalar(value: object) -> str:
    # JSON quoting keeps each leaf on one line and gives the keyword and entropy detectors their quotes.
    return json.dumps(value, ensure_ascii=False, default=str)
