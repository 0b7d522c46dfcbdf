"""Combine policy opinions into one ``ScaleDecision``: max of opinions, bounds in force, then cooldowns.

Semantics (DESIGN §4): scale out if any policy says out, in only if all agree; clamp to the static bounds overridden by
the latest due schedule action; a scale-out during ``scale_out_cooldown_s`` goes ahead only if it asks for more than
the last scale-out's target; a scale-in waits ``scale_in_cooldown_s`` after any scaling activity; a scale-out is never
blocked by the scale-in cooldown. Bound changes (schedule actions) apply at once, like AAS scheduled actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ebbtide.core.policies.base import Policy, Recommendation
from ebbtide.core.signals import PoolSignals
from ebbtide.core.standby import StandbyWish

__all__ = ["Controller", "ControllerState", "ScaleDecision", "ScalingRules"]


@dataclass(frozen=True, slots=True)
class ScalingRules:
    min_replicas: int
    max_replicas: int
    scale_out_cooldown_s: float
    scale_in_cooldown_s: float
    scale_to_zero_after_s: float = 0.0


@dataclass(frozen=True, slots=True)
class ControllerState:
    policy_states: tuple[Any, ...]
    last_scale_out_s: float | None = None
    last_scale_out_target: int = 0
    last_scaling_s: float | None = None


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    pool: str
    at_s: float
    current: int
    desired: int
    opinions: tuple[Recommendation, ...]
    min_replicas: int
    max_replicas: int
    bounds_source: str
    blocked_by: str | None = None
    notes: tuple[str, ...] = field(default=())
    variant: str | None = None
    standby: StandbyWish | None = None  # the last policy's standby wish, if any; None: the pool's configured one

    @property
    def direction(self) -> str:
        if self.desired > self.current:
            return "out"
        if self.desired < self.current:
            return "in"
        return "none"


class Controller:
    """Pure decider for one pool. Usage: ``decision, state = controller.decide(signals, state, now_s)``."""

    def __init__(self, pool: str, rules: ScalingRules, policies: Sequence[Policy]) -> None:
        self.pool = pool
        self.rules = rules
        self.policies = tuple(policies)

    def initial_state(self) -> ControllerState:
        return ControllerState(tuple(p.initial_state() for p in self.policies))

    def decide(
        self, signals: PoolSignals, state: ControllerState, now_s: float
    ) -> tuple[ScaleDecision, ControllerState]:
        opinions: list[Recommendation] = []
        new_policy_states: list[Any] = []
        for policy, policy_state in zip(self.policies, state.policy_states, strict=True):
            rec, nxt = policy.decide(signals, policy_state, now_s)
            opinions.append(rec)
            new_policy_states.append(nxt)
        state = ControllerState(
            tuple(new_policy_states), state.last_scale_out_s, state.last_scale_out_target, state.last_scaling_s
        )
        lo, hi, source = self._bounds(opinions)
        current = signals.capacity
        wanted = [o.desired for o in opinions if o.desired is not None]
        raw = max(wanted) if wanted else current
        notes: list[str] = []
        raw = self._zero_rules(signals, raw, now_s, notes)
        target = min(max(raw, lo), hi)
        variant = next((o.variant for o in reversed(opinions) if o.variant is not None), None)
        standby = next((o.standby for o in reversed(opinions) if o.standby is not None), None)
        decision = ScaleDecision(self.pool, now_s, current, current, tuple(opinions), lo, hi, source, None, (), variant,
                                 standby)
        if target > current:
            return self._scale_out(decision, state, target, raw, now_s, notes)
        if target < current:
            return self._scale_in(decision, state, target, hi, now_s, notes)
        return _with(decision, current, None, notes), state

    def _bounds(self, opinions: Sequence[Recommendation]) -> tuple[int, int, str]:
        lo, hi, source = self.rules.min_replicas, self.rules.max_replicas, "static"
        for o in opinions:
            if o.min_replicas is not None or o.max_replicas is not None:
                lo = o.min_replicas if o.min_replicas is not None else lo
                hi = o.max_replicas if o.max_replicas is not None else hi
                source = f"{o.policy} ({o.bounds_source})" if o.bounds_source else o.policy
        return lo, max(lo, hi), source

    def _zero_rules(self, signals: PoolSignals, raw: int, now_s: float, notes: list[str]) -> int:
        if raw <= 0 < signals.outstanding:
            notes.append(f"{signals.outstanding} requests outstanding: keep at least 1")
            return 1
        if raw <= 0 and signals.last_arrival_s is not None:
            idle_s = now_s - signals.last_arrival_s
            if idle_s < self.rules.scale_to_zero_after_s:
                notes.append(f"idle {idle_s:.0f}s < scale_to_zero_after_s {self.rules.scale_to_zero_after_s:g}")
                return 1
        return raw

    def _scale_out(
        self,
        decision: ScaleDecision,
        state: ControllerState,
        target: int,
        raw: int,
        now_s: float,
        notes: list[str],
    ) -> tuple[ScaleDecision, ControllerState]:
        forced_by_min = target > raw
        in_cooldown = (
            state.last_scale_out_s is not None and now_s - state.last_scale_out_s < self.rules.scale_out_cooldown_s
        )
        if in_cooldown and not forced_by_min and target <= state.last_scale_out_target and decision.current > 0:
            last = state.last_scale_out_target
            notes.append(f"scale-out to {target} within cooldown of the last scale-out to {last}")
            if decision.current >= decision.min_replicas:
                return _with(decision, decision.current, "scale_out_cooldown", notes), state
            # Below the min bound (a replica failed): only the part up to the min is forced.
            forced = ControllerState(state.policy_states, state.last_scale_out_s, state.last_scale_out_target, now_s)
            return _with(decision, decision.min_replicas, "scale_out_cooldown", notes), forced
        new_state = ControllerState(state.policy_states, now_s, target, now_s)
        return _with(decision, target, None, notes), new_state

    def _scale_in(
        self,
        decision: ScaleDecision,
        state: ControllerState,
        target: int,
        hi: int,
        now_s: float,
        notes: list[str],
    ) -> tuple[ScaleDecision, ControllerState]:
        forced_by_max = decision.current > hi
        if state.last_scaling_s is not None and now_s - state.last_scaling_s < self.rules.scale_in_cooldown_s:
            left = self.rules.scale_in_cooldown_s - (now_s - state.last_scaling_s)
            notes.append(f"scale-in to {target} waits {left:.0f}s more of scale_in_cooldown")
            if not forced_by_max:
                return _with(decision, decision.current, "scale_in_cooldown", notes), state
            # Only the part above the max bound is forced; going further down still waits for the cooldown.
            target, blocked = hi, "scale_in_cooldown"
        else:
            blocked = None
        # Capacity removed here no longer counts as "added by the last scale-out" for the scale-out cooldown.
        new_state = ControllerState(
            state.policy_states, state.last_scale_out_s, min(state.last_scale_out_target, target), now_s
        )
        return _with(decision, target, blocked, notes), new_state


def _with(decision: ScaleDecision, desired: int, blocked_by: str | None, notes: list[str]) -> ScaleDecision:
    return ScaleDecision(
        decision.pool,
        decision.at_s,
        decision.current,
        desired,
        decision.opinions,
        decision.min_replicas,
        decision.max_replicas,
        decision.bounds_source,
        blocked_by,
        tuple(notes),
        decision.variant,
        decision.standby,
    )
