"""reviewqueue's Python client: propose actions, wait for a person, run what was approved.

    from reviewqueue_client import Client, gate

    @gate("payments.transfer", summary=lambda **kw: f"Transfer ${kw['amount']:,} to {kw['to']}")
    def transfer(to: str, amount: float) -> str: ...

See the README beside this package for waiting, errors, webhooks and testing.
"""

from reviewqueue_client import errors
from reviewqueue_client.client import AsyncClient, Client
from reviewqueue_client.gate import gate
from reviewqueue_client.models import Action, Decision, KillSwitchStatus, Outcome, Risk

__all__ = [
    "Action",
    "AsyncClient",
    "Client",
    "Decision",
    "KillSwitchStatus",
    "Outcome",
    "Risk",
    "errors",
    "gate",
]
__version__ = "0.1.0"
