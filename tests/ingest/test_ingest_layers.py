"""`controltower.ingest` is pure mapping: no web framework, database or HTTP client."""

from __future__ import annotations

import subprocess
import sys

import controltower.ingest


def test_importing_ingest_pulls_in_no_framework() -> None:
    code = (
        "import sys, controltower.ingest; "
        "print(sorted(m for m in ('starlette', 'sqlalchemy', 'httpx', 'uvicorn', 'pydantic') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_curated_exports() -> None:
    exported = controltower.ingest.__all__
    assert sorted(exported) == sorted(set(exported))
    for name in exported:
        assert hasattr(controltower.ingest, name), name
