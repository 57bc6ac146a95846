"""Budgets and limits: what calls are charged, and ledgers that hold and settle them."""

from controltower.limits.charges import Charge, Cost, Subject, charges_for
from controltower.limits.ledger import Ledger, MemoryLedger, Refusal

__all__ = ["Charge", "Cost", "Ledger", "MemoryLedger", "Refusal", "Subject", "charges_for"]
