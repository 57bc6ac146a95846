"""Orchestration of a gateway call: route, retry, fall back, and record the trace."""

from controltower.gateway.caller import Caller
from controltower.gateway.context import CallContext
from controltower.gateway.prompts import PromptResolver, PromptUse
from controltower.gateway.resilience import Backoff, Fallback, Retrying
from controltower.gateway.router import BalancedAlias, DeploymentState, NoDeploymentAvailable
from controltower.gateway.service import ChatPlan, Gateway

__all__ = [
    "Backoff",
    "BalancedAlias",
    "CallContext",
    "Caller",
    "ChatPlan",
    "DeploymentState",
    "Fallback",
    "Gateway",
    "NoDeploymentAvailable",
    "PromptResolver",
    "PromptUse",
    "Retrying",
]
