"""Where the corpus lives and which cases it has (shared by the test modules)."""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def corpus_cases() -> list[str]:
    """Names of the corpus projects (each a folder with its own pytest.ini)."""
    return sorted(p.name for p in CORPUS.iterdir() if p.is_dir() and (p / "pytest.ini").exists())
