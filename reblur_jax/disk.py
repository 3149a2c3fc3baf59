"""Running out of disk space: recognised however deep a library wraps it, reported as one line."""

from __future__ import annotations

import errno


class DiskFullError(OSError):
  """No space left while writing; the message says what was kept and how to go on."""


def is_disk_full(error: BaseException | None) -> bool:
  """Whether `error`, or an exception it was raised from, is ENOSPC (Orbax's async writers and
  TensorStore re-raise it as their own errors, keeping the cause or the message)."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
      return True
    if "No space left on device" in str(error):
      return True
    error = error.__cause__ or error.__context__
  return False
