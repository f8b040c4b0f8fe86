"""Wheels made by the tests: the fake engines' packages, the real engine's alias and plugin.

Standard library only (zipfile), so any interpreter can build them.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

# A fixed timestamp makes the wheels, and so the fake bases' layers, reproducible.
_ZIP_TIME = (2020, 2, 2, 0, 0, 0)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def make_wheel(
    out_dir: Path,
    name: str,
    version: str,
    files: dict[str, bytes],
    console_scripts: dict[str, str] | None = None,
    entry_points: dict[str, dict[str, str]] | None = None,
    summary: str = "longcat-deploy test fake",
) -> Path:
    """Write a pure-Python wheel (PEP 427) holding ``files`` and return its path.

    Args:
        out_dir: where the wheel goes.
        name: the distribution name, e.g. ``"sglang"``.
        version: its version, e.g. the pinned engine version.
        files: archive path -> content, e.g. ``{"sglang/__init__.py": b"..."}``.
        console_scripts: command name -> ``module:function`` entry points.
        entry_points: more entry points, {group: {name: ``module:function``}}.
        summary: the METADATA summary line.
    """
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    entries = dict(files)
    entries[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {summary}\n"
    ).encode()
    entries[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: longcat-deploy-tests\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n"
    )
    groups = dict(entry_points or {})
    if console_scripts:
        groups["console_scripts"] = console_scripts
    if groups:
        entries[f"{info}/entry_points.txt"] = "\n".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(points.items()))
            for group, points in sorted(groups.items())
        ).encode()
    record = "".join(
        f"{path},{_record_hash(data)},{len(data)}\n" for path, data in sorted(entries.items())
    )
    entries[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    path = Path(out_dir) / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for arcname, data in sorted(entries.items()):
            item = zipfile.ZipInfo(arcname, _ZIP_TIME)
            item.external_attr = 0o644 << 16
            item.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(item, data)
    return path
