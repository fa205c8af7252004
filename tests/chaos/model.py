"""What the harness and its workers share: the plan of what is produced, and the harness's own tables.

The plan is a pure function of (seed, unit number), so a worker that restarts knows what its next unit
holds and the harness knows, without asking anyone, what should have been accepted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import sqlalchemy as sa

STREAM = "chaos"
CONSUMER = "chaos-effects"
MSG = "chaos.msg"
TIMER = "chaos.timer"

md = sa.MetaData()

# One row per committed producer unit, written in the unit's own transaction: a restarted producer
# resumes after the last unit that committed, and never writes one twice (the primary key says so).
units = sa.Table(
    "chaos_units", md,
    sa.Column("unit", sa.Integer, primary_key=True),
    sa.Column("worker", sa.Integer, nullable=False),
    sa.Column("messages", sa.Integer, nullable=False),
    sa.Column("committed_ms", sa.BigInteger, nullable=False),
)

# The side effect: one row per applied message, written by the handler in the applying transaction.
effects = sa.Table(
    "chaos_effects", md,
    sa.Column("n", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(100), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("message_id", sa.BigInteger, nullable=False),
    sa.Column("type", sa.String(50), nullable=False),
    sa.Column("timer_id", sa.BigInteger, nullable=True),  # for "timer fired" messages
    sa.Column("worker", sa.Integer, nullable=False),
    sa.Column("applied_ms", sa.BigInteger, nullable=False),
)


@dataclass(frozen=True)
class Plan:
    seed: int
    units: int  # producer units of work
    keys: int  # keys k0 … k{keys-1}
    mean_unit: int  # mean messages per unit (1 … 2·mean-1, uniform)
    timer_every: int  # every n-th unit also schedules a timer (0: none)
    timer_window_ms: int  # a timer is due 0 … this many ms after its unit commits

    def unit(self, u: int) -> tuple[list[tuple[str, int]], tuple[str, int] | None]:
        """Unit `u`: its messages as (key, index), and its timer as (key, delay in ms) or None."""
        rng = random.Random(self.seed * 1_000_003 + u)
        size = rng.randint(1, 2 * self.mean_unit - 1)
        msgs = [(f"k{rng.randrange(self.keys)}", j) for j in range(size)]
        timer = None
        if self.timer_every and u % self.timer_every == 0:
            timer = (f"k{rng.randrange(self.keys)}", rng.randrange(self.timer_window_ms + 1))
        return msgs, timer

    def totals(self) -> tuple[int, int]:
        """(messages, timers) that the whole plan accepts."""
        n = t = 0
        for u in range(self.units):
            msgs, timer = self.unit(u)
            n += len(msgs)
            t += timer is not None
        return n, t

    def argv(self) -> list[str]:
        return ["--seed", str(self.seed), "--units", str(self.units), "--keys", str(self.keys),
                "--mean-unit", str(self.mean_unit), "--timer-every", str(self.timer_every),
                "--timer-window-ms", str(self.timer_window_ms)]
