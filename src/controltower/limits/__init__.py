"""Budgets and rate limits: what calls are charged, and ledgers that hold and settle them."""

from controltower.limits.charges import Charge, Cost, Rule, Subject, charges_for, rules_of
from controltower.limits.ledger import Admission, Ledger, MemoryLedger, Refusal

__all__ = [
    "Admission",
    "Charge",
    "Cost",
    "Ledger",
    "MemoryLedger",
    "Refusal",
    "Rule",
    "Subject",
    "charges_for",
    "rules_of",
]
