"""Two versions of an application: a terse one, and one that explains its answer."""

from __future__ import annotations


def terse(question: str) -> str:
    """The first version's answer."""
    return "30 days."


def helpful(question: str) -> str:
    """The second version's answer."""
    return "Refunds are accepted within 30 days of delivery, with the receipt."
