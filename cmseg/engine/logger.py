"""Training logs: ``metrics.csv`` always, TensorBoard when installed, and a progress bar.

``metrics.csv`` is in long form, one value per row::

    step,split,name,value
    10,train,loss,0.6931
    10,train,lr,0.0001
    500,val,sm,0.8812

so a run can log any set of names without rewriting a header (``pandas.read_csv(...).pivot``
gives the wide table). Rows are appended and flushed one line at a time; when a run resumes
from step ``s``, rows after ``s`` (written by the interrupted run after its last checkpoint)
and a torn last line are dropped first, so the file reads as one uninterrupted run.

Only rank 0 logs; on other ranks every method is a no-op.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cmseg.io import write_text
from cmseg.logs import progress_enabled

__all__ = ["RunLogger", "ProgressBar"]

log = logging.getLogger(__name__)

CSV_NAME = "metrics.csv"
CSV_HEADER = ("step", "split", "name", "value")


class RunLogger:
    """Scalar logging to ``<output_dir>/metrics.csv`` and ``<output_dir>/tensorboard/``.

    Args:
        output_dir: the run folder.
        enabled: False on ranks other than 0.
        tensorboard: also write TensorBoard event files (skipped, with one warning, when the
            ``tensorboard`` package is not installed).
        resume_step: the step a resumed run starts from; later rows are dropped.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike[str],
        *,
        enabled: bool = True,
        tensorboard: bool = True,
        resume_step: int | None = None,
    ) -> None:
        self.enabled = enabled
        self._csv = None
        self._tb = None
        if not enabled:
            return
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / CSV_NAME
        if resume_step is not None and path.exists():
            _truncate_after(path, resume_step)
        new = not path.exists() or path.stat().st_size == 0
        self._csv = open(path, "a", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
        self._writer = csv.writer(self._csv, lineterminator="\n")
        if new:
            self._write(CSV_HEADER)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.warning(
                    "TensorBoard logging is off: the 'tensorboard' package is not installed"
                )
            else:
                # purge_step hides events after the resumed step, as the CSV rows are dropped.
                self._tb = SummaryWriter(str(out / "tensorboard"), purge_step=resume_step)

    def log(self, step: int, split: str, values: Mapping[str, float]) -> None:
        """Append ``values`` (name -> number) at ``step`` for ``split`` (``train``, ``val``)."""
        if not self.enabled:
            return
        for name, value in values.items():
            self._write((step, split, name, _fmt(value)))
            if self._tb is not None:
                self._tb.add_scalar(f"{split}/{name}", float(value), step)
        if self._tb is not None:
            self._tb.flush()

    def _write(self, row: tuple[Any, ...]) -> None:
        assert self._csv is not None
        self._writer.writerow(row)
        self._csv.flush()

    def close(self) -> None:
        if self._csv is not None:
            self._csv.close()
            self._csv = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _fmt(value: float) -> str:
    return repr(float(value))  # shortest text that reads back as the same float


def _truncate_after(path: Path, step: int) -> None:
    """Keep the header and the complete rows up to ``step`` (rewrites the file atomically)."""
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):  # a line torn by a kill
        text = text[: text.rfind("\n") + 1]
    kept = io.StringIO()
    writer = csv.writer(kept, lineterminator="\n")
    for i, row in enumerate(csv.reader(io.StringIO(text))):
        if i == 0:
            writer.writerow(row)
            continue
        try:
            keep = len(row) == len(CSV_HEADER) and int(row[0]) <= step
        except ValueError:
            keep = False
        if keep:
            writer.writerow(row)
    write_text(path, kept.getvalue())


class ProgressBar:
    """A tqdm bar over optimizer steps showing loss, lr and images/s.

    Drawn only on rank 0 and when :func:`cmseg.logs.progress_enabled` (a terminal, not
    ``--quiet``; ``CMSEG_PROGRESS=1`` forces it). Otherwise :meth:`update` logs one line every
    call it is given, so CI logs and files stay readable.
    """

    def __init__(self, total: int, initial: int, *, enabled: bool = True) -> None:
        self._bar = None
        self.enabled = enabled
        if enabled and progress_enabled():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc="train", dynamic_ncols=True)
        self.total = total

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def show(self, step: int, loss: float, lr: float, images_per_s: float) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(f"loss {loss:.4f}  lr {lr:.2e}  {images_per_s:.1f} img/s")
        else:
            log.info(
                "step %d/%d  loss %.4f  lr %.2e  %.1f img/s",
                step,
                self.total,
                loss,
                lr,
                images_per_s,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
