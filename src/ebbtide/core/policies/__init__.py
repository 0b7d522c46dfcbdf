"""Policy registry: adding a policy is one file plus one line in ``POLICY_SPECS``."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field

from ebbtide.core.policies.base import Policy, PolicySpec, Recommendation
from ebbtide.core.policies.concurrency import ConcurrencySpec
from ebbtide.core.policies.ongoing_requests import OngoingRequestsSpec
from ebbtide.core.policies.predictive import PredictiveSpec
from ebbtide.core.policies.queue_depth import QueueDepthSpec
from ebbtide.core.policies.schedule import ScheduleSpec
from ebbtide.core.policies.step import StepSpec
from ebbtide.core.policies.target_tracking import TargetTrackingSpec

__all__ = ["POLICY_SPECS", "AnyPolicySpec", "Policy", "PolicySpec", "Recommendation"]

POLICY_SPECS: dict[str, type[PolicySpec]] = {
    "target_tracking": TargetTrackingSpec,
    "queue_depth": QueueDepthSpec,
    "schedule": ScheduleSpec,
    "step": StepSpec,
    "concurrency": ConcurrencySpec,
    "ongoing_requests": OngoingRequestsSpec,
    "predictive": PredictiveSpec,
}

AnyPolicySpec: Any = Annotated[Union[tuple(POLICY_SPECS.values())], Field(discriminator="kind")]  # noqa: UP007
