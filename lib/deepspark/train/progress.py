"""Rank-0 progress: a redrawn bar on a terminal, a log line per interval otherwise."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("deepspark.train")


class Progress:
    """Steps, samples/s, loss and ETA for one epoch (silent on ranks other than 0)."""

    def __init__(
        self, epoch: int, epochs: int, steps: int, *, enabled: bool, every_s: float
    ) -> None:
        self.epoch, self.epochs, self.steps = epoch, epochs, steps
        self.enabled, self.every_s = enabled, every_s
        self.tty = enabled and sys.stderr.isatty()
        self.start = self.last = time.perf_counter()

    def update(self, step: int, samples: int, loss: float) -> None:
        """Report after ``step`` steps (1-based) and ``samples`` samples on this rank."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if not self.tty and now - self.last < self.every_s and step < self.steps:
            return
        self.last = now
        elapsed = now - self.start
        rate = samples / elapsed if elapsed > 0 else 0.0
        eta = elapsed / step * (self.steps - step) if step else 0.0
        head = f"epoch {self.epoch + 1}/{self.epochs}"
        if self.tty:
            filled = int(30 * step / max(self.steps, 1))
            bar = "#" * filled + "." * (30 - filled)
            sys.stderr.write(
                f"\r{head} [{bar}] {step}/{self.steps} {rate:,.0f} samples/s "
                f"loss {loss:.4f} eta {eta:.0f}s"
            )
            if step >= self.steps:  # erased: the next epoch redraws it, the log keeps the lines
                sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
        else:  # a log file: the epoch's summary line says enough unless debugging (-v)
            log.debug(
                "%s step %d/%d, %.0f samples/s, loss %.4f, eta %.0fs",
                head, step, self.steps, rate, loss, eta,
            )  # fmt: skip
