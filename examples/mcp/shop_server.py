"""A tiny upstream MCP server for the reviewqueue gateway's example: a shop's back office.

The gateway starts it (see gateway.json); run alone it speaks MCP over stdio, or over streamable HTTP with
``--http PORT``. Every tool prints to stderr what it did, so you can see that only what reviewqueue approved
ran, and with a reviewer's edits.
"""

from __future__ import annotations

import sys

from fastmcp import FastMCP

shop = FastMCP("shop")


def did(text: str) -> None:
    print(f"  [shop] RAN {text}", file=sys.stderr, flush=True)


@shop.tool
def lookup_customer(email: str) -> dict:
    """Look up a customer's record by email."""
    did(f"lookup_customer(email={email!r})")
    return {"email": email, "name": "Jane Doe", "account": "acct-991", "plan": "pro"}


@shop.tool
def transfer_money(to: str, amount: float, currency: str = "USD") -> str:
    """Send money from the company account to another account."""
    did(f"transfer_money(to={to!r}, amount={amount:g}, currency={currency!r})")
    return f"Sent {amount:,.2f} {currency} to {to}."


@shop.tool
def delete_backup(backup_id: str) -> str:
    """Delete a backup for good."""
    did(f"delete_backup(backup_id={backup_id!r})")
    return f"Deleted backup {backup_id}."


if __name__ == "__main__":
    if sys.argv[1:2] == ["--http"]:
        shop.run("http", show_banner=False, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    else:
        shop.run("stdio", show_banner=False, log_level="warning")
