"""The progress hook stage functions accept: called once per paper when the stage is done with it.

Library code stays free of display concerns; the CLI passes a callback that advances a rich progress bar.
"""

from __future__ import annotations

from collections.abc import Callable

from klong.factory.records import PaperRecord

Progress = Callable[[PaperRecord], None]
"""`progress(record)`: the stage has finished with `record` (kept, dropped or skipped on resume)."""
