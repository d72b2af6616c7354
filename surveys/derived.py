"""Derived measures: variables computed from a response's answers by registered functions.

The engine knows nothing about recovery research; an app registers its measures at start-up
(``recovery.apps.RecoveryConfig.ready``) and the dataset builder, exports and analyses compute
them here, so every place gets the same number from the same code.
"""

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DerivedMeasure:
    name: str
    label: str
    formula: str  # documented in codebooks, in words and symbols
    kind: str  # integer, decimal, binary or category
    instruments: tuple[str, ...]  # instrument slugs whose answers it is computed from
    compute: Callable[[dict], object] = field(compare=False)
    choices: tuple[tuple[str, str], ...] = ()  # for categories: (code, label)


_REGISTRY: dict[str, DerivedMeasure] = {}


def register(measure: DerivedMeasure) -> None:
    existing = _REGISTRY.get(measure.name)
    if existing is not None and existing != measure:
        raise ValueError(f"a different derived measure is already named {measure.name!r}")
    _REGISTRY[measure.name] = measure


def measures(instrument: str | None = None) -> list[DerivedMeasure]:
    return [m for m in _REGISTRY.values() if instrument is None or instrument in m.instruments]


def compute(instrument: str, answers: dict) -> dict[str, object]:
    """Every measure registered for ``instrument``, computed from one response's answers."""
    return {m.name: m.compute(answers) for m in measures(instrument)}
