"""Small file-system helpers shared by the commands."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from policies.gaussian import FILE_MODE

REPO_ROOT = Path(__file__).resolve().parent.parent


def ensure_writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check that files can be written in it.

    Raises:
        ValueError: naming the directory and the reason, when it cannot be created or written.
    """
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"cannot write to output directory {str(out)!r}: {e.strerror}") from None
    return out


def git_commit() -> str:
    """Short commit hash of the checkout metarl runs from, or ``"unknown"``."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Write ``path`` all at once: ``write(tmp)`` fills a temporary file beside it, which is synced and
    renamed over ``path``; if ``write`` fails, ``path`` keeps its previous content and no temporary
    file remains. (``policies.save_policy`` writes atomically on its own: ``policies`` imports nothing
    of metarl.)

    Args:
        path: the file to write.
        write: called with the temporary file's path (same directory and suffix as ``path``).

    Returns:
        ``path``.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)  # mkstemp's file is private; the result gets the usual mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_torch_file(path: str | Path, what: str = "metarl file"):
    """``torch.load(path, weights_only=True)`` on the CPU, with one-line errors of our own.

    The safe loader runs no code from the file: anything but tensors and plain Python values is refused.

    Args:
        path: the file.
        what: what the caller expected (``"checkpoint"``, ``"model"``...), named in the errors.

    Raises:
        ValueError: naming ``path``: missing, empty, not a torch file, or holding objects the safe loader
            refuses.
    """
    import pickle
    import warnings

    import torch

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no {what} at {str(path)!r}")
    if path.stat().st_size == 0:
        raise ValueError(f"{str(path)!r} is empty (0 bytes), not a {what}; it was probably cut short while written")
    try:
        with warnings.catch_warnings():  # torch's own notes on foreign pickles: our error below says it all
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" in str(e).lower() or "unsupported global" in str(e).lower():
            raise ValueError(f"{str(path)!r} holds objects other than tensors and plain values, which the safe loader "
                             f"refuses to run; it is not a {what} written by metarl") from None
        raise ValueError(f"{str(path)!r} is not a torch file (not a {what} written by metarl)") from None
    except Exception:  # torch raises assorted types (EOFError, KeyError, RuntimeError...) for foreign bytes
        raise ValueError(f"{str(path)!r} is not a readable torch file (truncated or not written by torch); "
                         f"expected a {what}") from None


def remove_stale_temporaries(directory: str | Path, names: tuple[str, ...]) -> list[Path]:
    """Remove what :func:`atomic_write` left of ``names`` in ``directory`` when a process was killed mid-write
    (its hidden ``.<stem>.*<suffix>`` files); returns the files removed. Call it only where this process is the
    directory's one writer of those names."""
    removed = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for name in names:
        stem, suffix = Path(name).stem, Path(name).suffix
        for stale in directory.glob(f".{stem}.*{suffix}"):
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed
