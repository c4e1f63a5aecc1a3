"""Reading a district file in a child process, with a time limit.

Parsing a large or hostile file holds the GIL for seconds and may use a lot of memory; in a
web worker that stalls every other request (and the health check that keeps the worker
alive). In a child process it costs the worker nothing, and a parse over its time limit is
killed. Children are forked from a forkserver that has already imported the geo stack, so a
child starts in milliseconds rather than re-importing GDAL, pandas and pyproj.

As with any multiprocessing child, the parent's main module is imported in the child: the
programs that serve the API (``knacka serve``, uvicorn, gunicorn, ``python -m api.cli``) all
guard their entry point, and a program fed on standard input cannot use this.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import tempfile
import traceback
from pathlib import Path
from typing import Any

from geo.addresses import AddressTable, read_addresses
from geo.districts import DistrictFileError, DistrictFileTooLarge, DistrictTable, read_districts

__all__ = ["DistrictReadTimeout", "read_addresses_isolated", "read_districts_isolated"]

# The readers a child may run, by name (a name pickles; the forkserver has them imported).
_READERS = {"districts": read_districts, "addresses": read_addresses}


class DistrictReadTimeout(DistrictFileError):
    """Reading took longer than the time limit; the child was killed."""

    def __init__(self, message: str, *, seconds: float):
        super().__init__(message)
        self.seconds = seconds


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["geo.districts", "geo.addresses"])
        return ctx
    return multiprocessing.get_context("spawn")


def _child(reader: str, path: str, options: dict[str, Any], result: str) -> None:
    try:
        outcome: tuple = ("ok", _READERS[reader](path, **options))
    except DistrictFileTooLarge as exc:
        outcome = ("too_large", str(exc), exc.limit)
    except DistrictFileError as exc:
        outcome = ("error", str(exc), exc.features)
    except BaseException:  # the parent raises it as a bug, with this trace
        outcome = ("crash", traceback.format_exc())
    with open(result, "wb") as out:
        pickle.dump(outcome, out, protocol=pickle.HIGHEST_PROTOCOL)


def read_districts_isolated(
    path: str | os.PathLike[str], *, timeout: float, **options: Any
) -> DistrictTable:
    """Run :func:`geo.districts.read_districts` in a child process.

    Parameters
    ----------
    path : path-like
        The file to read.
    timeout : float
        Seconds the child may take; after that it is killed and DistrictReadTimeout raised.
    **options
        Passed on to ``read_districts``.

    Returns
    -------
    DistrictTable

    Raises
    ------
    DistrictFileError
        As ``read_districts`` does (DistrictFileTooLarge too), or DistrictReadTimeout.
    RuntimeError
        When the child failed in a way ``read_districts`` does not foresee (a bug), or died.
    """
    return _isolated("districts", path, timeout, options)


def read_addresses_isolated(
    path: str | os.PathLike[str], *, timeout: float, **options: Any
) -> AddressTable:
    """Run :func:`geo.addresses.read_addresses` in a child process, as
    :func:`read_districts_isolated` runs the district reader (same errors)."""
    return _isolated("addresses", path, timeout, options)


def _isolated(reader: str, path: str | os.PathLike[str], timeout: float, options: dict) -> Any:
    with tempfile.TemporaryDirectory(prefix="knacka-read-") as tmp:
        result = Path(tmp) / "result.pickle"
        # Daemonic: a worker that shuts down takes its reader with it instead of waiting.
        child = _context().Process(
            target=_child,
            args=(reader, str(path), options, str(result)),
            name=f"knacka-read-{reader}",
            daemon=True,
        )
        child.start()
        child.join(timeout)
        if child.is_alive():
            child.kill()
            child.join()
            raise DistrictReadTimeout(
                f"file: reading {Path(path).name} took longer than {timeout:g} seconds",
                seconds=timeout,
            )
        if not result.exists():
            raise RuntimeError(f"the {reader} reader died (exit code {child.exitcode})")
        # Written just now by our own child process, never by a client.
        with result.open("rb") as raw:
            outcome = pickle.load(raw)
    kind = outcome[0]
    if kind == "ok":
        return outcome[1]
    if kind == "too_large":
        raise DistrictFileTooLarge(outcome[1], limit=outcome[2])
    if kind == "error":
        raise DistrictFileError(outcome[1], features=outcome[2])
    raise RuntimeError(f"the {reader} reader failed:\n{outcome[1]}")
