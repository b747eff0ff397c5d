"""One error type for bad user input, so every step reports it the same way."""

from __future__ import annotations

import errno
from pathlib import Path


class InputError(ValueError):
    """Bad input: names the file, the problem and the fix.

    The CLI prints ``str(error)`` without a traceback and exits with code 2.
    """

    def __init__(self, path: str | Path | None, problem: str, fix: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        self.fix = fix
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{problem}. Fix: {fix}")

    def __reduce__(self):
        """Rebuilt from its three parts, so an error raised in a worker process reaches the CLI intact."""
        return (type(self), (self.path, self.problem, self.fix))


#: What a user can do about the operating-system errors a write meets most often.
_OS_FIXES = {
    errno.ENOSPC: "free disk space there, or choose an --outdir on a disk with room",
    errno.EDQUOT: "free space within your disk quota, or choose an --outdir elsewhere",
    errno.EACCES: "choose an --outdir you can write to, or fix its permissions",
    errno.EPERM: "choose an --outdir you can write to, or fix its permissions",
    errno.EROFS: "the file system is read-only: choose an --outdir on a writable disk",
    errno.ENOTDIR: "a file stands where a folder is needed: choose another --outdir or move that file",
    errno.EEXIST: "a file stands where a folder is needed: choose another --outdir or move that file",
}


def os_error(err: OSError, path: str | Path | None = None) -> InputError:
    """An :class:`InputError` for an operating-system error, naming the path it hit and a fix."""
    where = path if path is not None else err.filename
    code = errno.ENOSPC if err.errno is None and "No space left" in str(err) else err.errno  # h5py puts the errno in its text
    problem = f"could not be written or read: {err.strerror or err} ({type(err).__name__})"
    return InputError(where, problem, _OS_FIXES.get(code, "check that the path exists, is writable and its disk has room"))
