"""Orchestration of a gateway call: route, retry, fall back, and record the trace."""

from controltower.gateway.prompts import PromptResolver, PromptUse
from controltower.gateway.resilience import Backoff, Fallback, Retrying
from controltower.gateway.router import BalancedAlias, DeploymentState, NoDeploymentAvailable
from controltower.gateway.service import Caller, Gateway

__all__ = [
    "Backoff",
    "BalancedAlias",
    "Caller",
    "DeploymentState",
    "Fallback",
    "Gateway",
    "NoDeploymentAvailable",
    "PromptResolver",
    "PromptUse",
    "Retrying",
]
