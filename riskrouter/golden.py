"""The golden data set: labelled actions written by people, one file per domain."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .model import LABELS
from .types import ActionInput, LabeledAction

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


@dataclass(frozen=True, slots=True)
class GoldenRow:
    id: str
    domain: str
    label: str
    why: str
    action: ActionInput

    def labeled(self) -> LabeledAction:
        return LabeledAction(action=self.action, label=self.label, weight=1.0, source=f"golden:{self.id}")


def action_from_json(data: dict) -> ActionInput:
    """An ActionInput from API.md's action shape (unknown keys ignored)."""
    return ActionInput(
        action_type=str(data["action_type"]),
        payload=data.get("payload") or {},
        summary=str(data.get("summary") or ""),
        tool=str(data.get("tool") or ""),
        rationale=str(data.get("rationale") or ""),
        agent=str(data.get("agent") or ""),
        context=data.get("context") or None,
        agent_is_new=bool(data.get("agent_is_new", False)),
        action_type_is_new=bool(data.get("action_type_is_new", False)),
    )


def load_golden(directory: Path = GOLDEN_DIR) -> list[GoldenRow]:
    """Every row of every *.jsonl file, in file then line order; fails loudly on a bad row."""
    rows: list[GoldenRow] = []
    seen: set[str] = set()
    for path in sorted(directory.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                row = GoldenRow(
                    id=str(data["id"]),
                    domain=str(data.get("domain") or path.stem),
                    label=str(data["label"]),
                    why=str(data.get("why", "")),
                    action=action_from_json(data["action"]),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path.name}:{number}: {exc}") from exc
            if row.label not in LABELS:
                raise ValueError(f"{path.name}:{number}: label {row.label!r} is not one of {LABELS}")
            if row.id in seen:
                raise ValueError(f"{path.name}:{number}: duplicate id {row.id!r}")
            seen.add(row.id)
            rows.append(row)
    return rows
