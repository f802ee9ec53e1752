"""Extra labels from outside the golden set (reviewers' decisions), through a setting.

`settings.RISKROUTER_FEEDBACK_SOURCE` is the dotted path of a callable taking
no arguments and returning an iterable of `LabeledAction`. riskrouter never
imports the app that owns the decisions; that app points this setting at its
own function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .model import LABELS
from .types import LabeledAction


def load_feedback(source: str | Callable[[], Iterable[LabeledAction]] | None = None) -> list[LabeledAction]:
    """The configured source's labels, checked; [] when none is configured."""
    if source is None:
        from django.conf import settings

        source = getattr(settings, "RISKROUTER_FEEDBACK_SOURCE", None)
    if not source:
        return []
    produce: Callable[[], Iterable[LabeledAction]]
    if isinstance(source, str):
        from django.utils.module_loading import import_string

        produce = import_string(source)
    else:
        produce = source
    labels: list[LabeledAction] = []
    for item in produce():
        if not isinstance(item, LabeledAction):
            raise TypeError(f"feedback source yielded {type(item).__name__}, not LabeledAction")
        if item.label not in LABELS:
            raise ValueError(f"feedback label {item.label!r} is not one of {LABELS}")
        if item.weight <= 0:
            continue
        labels.append(item)
    return labels
