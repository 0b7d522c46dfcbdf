"""``predictive``: provision now for the arrivals a learned weekly profile expects one cold start from now.

The policy counts arrivals (``PoolSignals.arrivals_total``) per time-of-day bucket (``bucket_s``, local to ``tz``);
a bucket's demand is its highest arrival rate over ``rate_window_s`` (1 min: capacity must absorb the bursts inside
a bucket, not its mean). Per weekday × bucket it keeps an exponentially weighted mean of that demand across weeks
(``week_weight`` for the newest week); with ``alike_days`` a slot's demand is the mean of those of its bucket on the
days alike (five samples a week for Monday-Friday, not one). A slot's forecast is the ``smooth_quantile`` of its
demand and its ``smooth_buckets`` neighbours either side: one bucket's peak is a noisy sample of random burst
timing; a median drops an isolated high or low bucket and keeps ramps and steps where they are, a higher quantile
adds margin where neighbours disagree. With ``burst_quantile`` a slot learns its bucket's mean rate instead (a
steadier sample: every arrival counts, not one minute's) and a forecast is that mean times the ``burst_quantile`` of
the recent buckets' peak-to-mean ratios, pooled across slots. Each tick it forecasts the highest of those levels
over the buckets overlapping ``[now, now + lead_time_s]`` (lead time = the p90 cold start), adds headroom = the
``error_quantile`` of recent relative forecast errors and asks for ceil(demand × (1 + headroom) /
``capacity_per_replica_rps``). A running replica the forecast needs again within lead time + ``keep_s`` is kept
rather than stopped and restarted (the oracle's rule). ``predictive_guard.py`` notices a forecast gone wrong (bias,
surge, load, slower requests, hold) and corrects it. While any of the buckets has never been seen (less than a week
of history, or than a day alike) it falls back to a reactive estimate from the recent rate (``fallback: reactive``)
or has no opinion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from ebbtide.core.policies import predictive_guard as guard
from ebbtide.core.policies.base import Recommendation
from ebbtide.core.policies.predictive_guard import GuardState, Tick
from ebbtide.core.policies.predictive_spec import DAY_S, WEEKDAYS, PredictiveSpec
from ebbtide.core.signals import PoolSignals
from ebbtide.core.standby import StandbyWish, TierOffer, choose_standby
from ebbtide.core.stats import nearest_rank

__all__ = ["PredictivePolicy", "PredictiveSpec", "PredictiveState", "slot_of"]

SEEN_CAP = 255


@dataclass(frozen=True, slots=True)
class PredictiveState:
    """``profile[slot]`` is the learned demand (requests/s) of slot = weekday × buckets per day + bucket;
    ``seen[slot]`` how many weeks taught it (0 = never). The counters describe the bucket and the rate window
    being counted now."""

    bucket_start_s: float | None = None
    counted_from_s: float = 0.0
    arrivals_at_start: int = 0
    window_start_s: float = 0.0
    arrivals_at_window: int = 0
    peak_rps: float = 0.0
    profile: tuple[float, ...] = ()
    seen: tuple[int, ...] = ()
    errors: tuple[float, ...] = ()
    bursts: tuple[float, ...] = ()  # recent busy buckets' peak / mean rate (burst_quantile)
    last_rate_rps: float | None = None
    watch: GuardState = field(default_factory=GuardState)  # recent windows and buckets: is the forecast wrong?


def slot_of(now_s: float, tz: ZoneInfo, bucket_s: int) -> tuple[int, float]:
    """(weekday × buckets per day + bucket index, seconds since the local bucket began)."""
    local = datetime.fromtimestamp(now_s, tz)
    sod = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    index = int(sod // bucket_s)
    return local.weekday() * (DAY_S // bucket_s) + index, sod - index * bucket_s


class PredictivePolicy:
    def __init__(self, spec: PredictiveSpec) -> None:
        self.spec = spec
        self.name = "predictive"
        self._tz = ZoneInfo(spec.tz)
        self.standby_offers: tuple[TierOffer, ...] = ()  # the pool's tiers, set by config.build_controller
        self._slots = 7 * DAY_S // spec.bucket_s
        per_day = DAY_S // spec.bucket_s
        group_of = {WEEKDAYS.index(d): tuple(WEEKDAYS.index(x) for x in g) for g in spec.alike_days for d in g}
        # Per slot: the same bucket on each day of its alike_days group (the slot alone when it has none).
        self._alike_slots = tuple(
            tuple(d * per_day + bucket for d in group_of.get(day, (day,)))
            for day in range(7)
            for bucket in range(per_day)
        )
        self._recent_n = max(1, math.ceil(max(spec.hold_s, spec.surge_s) / spec.rate_window_s))
        self._misses_n = max(1, spec.bias_buckets, spec.drop_buckets)

    def initial_state(self) -> PredictiveState:
        return PredictiveState(profile=(0.0,) * self._slots, seen=(0,) * self._slots)

    def decide(
        self, signals: PoolSignals, state: PredictiveState, now_s: float
    ) -> tuple[Recommendation, PredictiveState]:
        state = self.observe(signals.arrivals_total, state, now_s, Tick.of(signals))
        lead_s = self.lead_s(signals)
        settle_s = lead_s + self.spec.surge_s
        watch = guard.update_slow(self.spec, state.watch, now_s, settle_s)
        state = replace(state, watch=guard.update_late(self.spec, watch, now_s, settle_s))
        rec = self._recommend(state, signals, now_s, lead_s)
        if self.spec.standby == "auto":
            rec = replace(rec, standby=self.standby_wish(rec))
        return rec, state

    def standby_wish(self, rec: Recommendation) -> StandbyWish:
        """The reserve for ``standby: auto``: the cheapest tier waking within the budget, while replicas are asked."""
        return choose_standby(self.standby_offers, self.spec.standby_budget_s, self.spec.standby_count,
                              active=bool(rec.desired))

    def lead_s(self, signals: PoolSignals) -> float:
        """The configured lead time if set explicitly, else the driver's measured p90 cold start, else the default."""
        measured = signals.cold_start_p90_s
        if "lead_time_s" in self.spec.model_fields_set or measured is None:
            return self.spec.lead_time_s
        return measured

    # -- learning ------------------------------------------------------------------------------------------

    def observe(
        self, arrivals_total: int, state: PredictiveState, now_s: float, tick: Tick | None = None
    ) -> PredictiveState:
        """Count arrivals (and what ``tick`` shows of the fleet, when known) into the current bucket and rate
        window; when the bucket ends, learn its demand and its forecast error."""
        state = self._count(arrivals_total, state, now_s, tick)
        return replace(state, watch=guard.count_tick(state.watch, tick))

    def _count(
        self, arrivals_total: int, state: PredictiveState, now_s: float, tick: Tick | None
    ) -> PredictiveState:
        spec = self.spec
        if state.bucket_start_s is None or arrivals_total < state.arrivals_at_window:
            # First sight, or the counter restarted (a new process): start counting afresh from here.
            return self._start_counting(arrivals_total, state, now_s)
        ended = now_s >= state.bucket_start_s + spec.bucket_s
        if now_s - state.window_start_s >= spec.rate_window_s or ended:
            span = now_s - state.window_start_s
            g = guard.restart_window(state.watch, tick)
            if span >= 0.5 * spec.rate_window_s:  # a short tail window is not a rate yet
                window_rate = (arrivals_total - state.arrivals_at_window) / span
                g = guard.close_window(spec, state.watch, window_rate, span, tick, self._recent_n)
                state = replace(state, peak_rps=max(state.peak_rps, window_rate))
            state = replace(state, window_start_s=now_s, arrivals_at_window=arrivals_total, watch=g)
        if not ended:
            return state
        return self._close_bucket(arrivals_total, state, now_s)

    def _close_bucket(self, arrivals_total: int, state: PredictiveState, now_s: float) -> PredictiveState:
        spec = self.spec
        assert state.bucket_start_s is not None
        elapsed = now_s - state.counted_from_s
        mean = (arrivals_total - state.arrivals_at_start) / elapsed if elapsed > 0 else 0.0
        peak = max(mean, state.peak_rps)
        rate = peak if spec.burst_quantile is None else mean
        profile, seen, errors = list(state.profile), list(state.seen), list(state.errors)
        bursts = list(state.bursts)
        misses: list[tuple[float, float | None]] = []
        # Ticks may skip whole buckets (a paused loop): each one that ended gets the demand seen over the gap.
        n_closed = min(int((now_s - state.bucket_start_s) // spec.bucket_s), self._slots)
        covered = elapsed >= 0.5 * (now_s - state.bucket_start_s)  # a first bucket joined late is not learned
        # A quiet bucket's peak-to-mean ratio is Poisson noise, not burstiness: only busy buckets teach it.
        if spec.burst_quantile is not None and covered and mean >= 0.5 * spec.capacity_per_replica_rps:
            bursts.append(peak / mean)
        for k in range(n_closed if covered else 0):
            slot, _ = slot_of(state.bucket_start_s + k * spec.bucket_s + 1e-3, self._tz, spec.bucket_s)
            forecast = self._learn(slot, rate, profile, seen, errors)
            misses.append((rate, forecast))
        learned = replace(
            state,
            profile=tuple(profile),
            seen=tuple(seen),
            errors=tuple(errors[-spec.error_buckets :]),
            bursts=tuple(bursts[-spec.error_buckets :]),
            last_rate_rps=peak,
            watch=replace(state.watch, misses=self._misses(state.watch.misses, misses)),
        )
        return self._start_counting(arrivals_total, learned, now_s)

    def _misses(
        self, before: tuple[tuple[float, float], ...], closed: list[tuple[float, float | None]]
    ) -> tuple[tuple[float, float], ...]:
        """The last closed buckets' (actual, forecast); a bucket that had no forecast starts the run afresh."""
        run = list(before)
        for actual, forecast in closed:
            run = [] if forecast is None else [*run, (actual, forecast)]
        return tuple(run[-self._misses_n :])

    def _start_counting(self, arrivals_total: int, state: PredictiveState, now_s: float) -> PredictiveState:
        """Count the bucket ``now_s`` falls in, and its first rate window, from ``now_s`` and ``arrivals_total``."""
        _, into = slot_of(now_s, self._tz, self.spec.bucket_s)
        return replace(
            state,
            bucket_start_s=now_s - into,
            counted_from_s=now_s,
            arrivals_at_start=arrivals_total,
            window_start_s=now_s,
            arrivals_at_window=arrivals_total,
            peak_rps=0.0,
        )

    def _learn(
        self, slot: int, rate: float, profile: list[float], seen: list[int], errors: list[float]
    ) -> float | None:
        """Teach ``slot`` its new demand; returns what had been forecast for it (None: never seen)."""
        spec = self.spec
        forecast = None
        if self._known(seen, slot):
            forecast = self._level(profile, seen, slot)  # the error of what was forecast, smoothing included
            # Relative to at least one replica's capacity: a miss of 0.5 req/s overnight is not 50% headroom.
            errors.append(abs(rate - forecast) / max(forecast, spec.capacity_per_replica_rps))
        if seen[slot]:
            profile[slot] = (1 - spec.week_weight) * profile[slot] + spec.week_weight * rate
        else:
            profile[slot] = rate
        seen[slot] = min(seen[slot] + 1, SEEN_CAP)
        return forecast

    # -- forecasting --------------------------------------------------------------------------------------

    def window_slots(self, now_s: float, lead_s: float | None = None) -> list[int]:
        """Slots of every bucket that overlaps [now, now + lead time]."""
        spec = self.spec
        slots: list[int] = []
        t, end = now_s, now_s + (spec.lead_time_s if lead_s is None else lead_s)
        while True:
            slot, into = slot_of(t, self._tz, spec.bucket_s)
            if slot not in slots:
                slots.append(slot)
            t += spec.bucket_s - into
            if t > end:
                return slots

    def level(self, state: PredictiveState, slot: int) -> float:
        """The demand forecast for ``slot``: its learned level, times the burst factor when slots learn means."""
        return self._level(state.profile, state.seen, slot) * self.burst_factor(state)

    def burst_factor(self, state: PredictiveState) -> float:
        """The ``burst_quantile`` of recent peak-to-mean ratios (1 when slots learn peaks, or none is known)."""
        if self.spec.burst_quantile is None or not state.bursts:
            return 1.0
        return nearest_rank(state.bursts, self.spec.burst_quantile)

    def known(self, state: PredictiveState, slot: int) -> bool:
        return self._known(state.seen, slot)

    def _known(self, seen: Sequence[int], slot: int) -> bool:
        return any(seen[s] for s in self._alike_slots[slot])

    def _demand(self, profile: Sequence[float], seen: Sequence[int], slot: int) -> float:
        """The slot's learned demand: the mean over the days alike that have been seen."""
        values = [profile[s] for s in self._alike_slots[slot] if seen[s]]
        return sum(values) / len(values) if values else profile[slot]

    def _level(self, profile: Sequence[float], seen: Sequence[int], slot: int) -> float:
        """The slot's demand, median-filtered over ``smooth_buckets`` known neighbours either side."""
        k = self.spec.smooth_buckets
        near = [(slot + d) % self._slots for d in range(-k, k + 1)]
        values = sorted(self._demand(profile, seen, s) for s in near if self._known(seen, s))
        if not values:
            return profile[slot]
        # Linear interpolation between order statistics; 0.5 is the median.
        pos = self.spec.smooth_quantile * (len(values) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(values) - 1)
        return values[lo] + (pos - lo) * (values[hi] - values[lo])

    def headroom(self, state: PredictiveState) -> float:
        if not state.errors:
            return 0.0
        return min(nearest_rank(state.errors, self.spec.error_quantile), self.spec.max_headroom)

    def replicas_for(self, rate_rps: float, headroom: float) -> int:
        return math.ceil(rate_rps * (1 + headroom) / self.spec.capacity_per_replica_rps - 1e-9)

    # -- noticing a forecast gone wrong (predictive_guard.py) ----------------------------------------------

    def surge(self, state: PredictiveState, now_s: float, room: float, scale: float, ahead: float) -> float | None:
        """The rate a sustained surge asks to provision for (None: no surge): the quietest recent rate, and the
        coming forecast ``ahead`` scaled by how far the recent past ran above its own (at most ``surge_max``)."""
        spec = self.spec
        slots = self.window_slots(now_s - spec.surge_s, spec.surge_s)
        level = max((self.level(state, s) for s in slots if self.known(state, s)), default=0.0) * scale
        rate = guard.surge_rate(spec, state.watch.rates, level * (1 + room))
        if rate is None:
            return None
        return max(rate, ahead * min(rate / level if level > 0 else math.inf, spec.surge_max))

    def kept(
        self, state: PredictiveState, need: int, capacity: int, now_s: float, lead_s: float, scale: float = 1.0
    ) -> int:
        """Running replicas above ``need`` that the forecast wants again within lead time + ``keep_s`` stay:
        stopping one and starting it again costs a cold start of billing and leaves the pool short while the
        replacement starts (the oracle's rule). Nothing is started for that later demand."""
        if capacity <= need:
            return need
        keep_s = lead_s if self.spec.keep_s is None else self.spec.keep_s
        ahead = [s for s in self.window_slots(now_s, lead_s + keep_s) if self.known(state, s)]
        later = max((self.level(state, s) for s in ahead), default=0.0) * scale
        return max(need, min(capacity, self.replicas_for(later, self.headroom(state))))

    def _recommend(
        self, state: PredictiveState, signals: PoolSignals, now_s: float, lead_s: float
    ) -> Recommendation:
        spec, g = self.spec, state.watch
        window = self.window_slots(now_s, lead_s)
        if not all(self.known(state, s) for s in window):
            return self._fallback(state, signals.arrivals_total, now_s)
        bias, room, slow = guard.bias(spec, g.misses), self.headroom(state), guard.slow_factor(spec, g, now_s)
        rate = max(self.level(state, s) for s in window) * bias
        cap = spec.capacity_per_replica_rps / slow
        reason = f"forecast {rate:.1f} req/s within {lead_s:.0f} s (+{room:.0%} headroom) / {cap:.3g} per replica"
        if bias != 1.0:
            reason += f"; forecast wrong: x{bias:.2f} (actual / forecast of the last buckets)"
        if slow != 1.0:
            reason += f"; requests stay x{slow:.2f} longer: capacity / {slow:.2f}"
        surge = self.surge(state, now_s, room, bias, rate)
        if surge is not None and surge > rate:
            rate, reason = surge, reason + f"; surge: provisions {surge:.1f} req/s"
        need = self.replicas_for(rate * slow, room)
        if g.late_extra:
            need, reason = need + g.late_extra, reason + f"; late: the P95 latency missed, +{g.late_extra}"
        by_load = guard.load_need(spec, g.loads)
        if by_load > need:
            need, reason = by_load, reason + f"; load: {min(guard.recent(spec, g.loads, spec.surge_s)):.0f} in flight"
        kept = self.kept(state, need, signals.capacity, now_s, lead_s, bias * slow)
        keep = max(kept, min(signals.capacity, guard.hold_need(spec, g.rates, cap)))
        if keep > need:
            ahead = lead_s + (spec.keep_s or lead_s)
            reason += f"; keeps {keep}: needed within {ahead:.0f} s or in the last {spec.hold_s:.0f} s"
        return Recommendation(self.name, keep, reason)

    def _fallback(self, state: PredictiveState, arrivals_total: int, now_s: float) -> Recommendation:
        spec, cap = self.spec, self.spec.capacity_per_replica_rps
        rates = [] if state.last_rate_rps is None else [state.last_rate_rps]
        if state.window_start_s > state.counted_from_s:  # a window of this bucket has closed
            rates.append(state.peak_rps)
        span = now_s - state.window_start_s
        if span >= 0.5 * spec.rate_window_s:  # the open window only becomes a rate once it is long enough
            rates.append((arrivals_total - state.arrivals_at_window) / span)
        if spec.fallback == "none" or not rates:
            return Recommendation(self.name, None, "no history for the next buckets yet")
        rate = max(rates)
        need = math.ceil(rate / cap - 1e-9)
        return Recommendation(
            self.name, need, f"no history yet: recent {rate:.1f} req/s / {cap:g} per replica (reactive)"
        )
