"""The walk plan against an adversarial in-memory model of the server.

The model shares none of the plan's reasoning: it keeps the space as a list of task ids
ordered by insertion (newest first), serves each request at a moment it chooses (requests in
flight together are served in any order), delivers answers in any order, and creates and
deletes tasks between any two of those steps. The oracle is the definition of exactness:
every task present from the first step to the last is handed out exactly once, and nothing
is handed out that never existed.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spacetasks_async._errors import ProtocolError, WalkIncompleteError
from spacetasks_async._plan import Checkpoint, WalkPlan, covering_page


@attrs.define
class ModelSpace:
    """Tasks newest first; ids are insertion numbers, so order never depends on time."""

    tasks: list[int]
    next_id: int
    ever: set[int] = attrs.Factory(set)

    @classmethod
    def of(cls, n: int) -> ModelSpace:
        return cls(list(range(n, 0, -1)), n + 1, set(range(1, n + 1)))

    def create(self, k: int) -> None:
        for _ in range(k):
            self.tasks.insert(0, self.next_id)
            self.ever.add(self.next_id)
            self.next_id += 1

    def delete_at(self, position: int) -> int:
        return self.tasks.pop(position)

    def answer(self, page: int, size: int) -> tuple[int, list[str]]:
        start = (page - 1) * size
        return len(self.tasks), [f"t{i}" for i in self.tasks[start : start + size]]


Drift = Callable[[ModelSpace, random.Random], None]

#: ``SPACETASKS_PLAN_SCALE=20`` runs twenty times as many cases (the stress session).
SCALE = int(os.environ.get("SPACETASKS_PLAN_SCALE", "1"))


def no_drift(space: ModelSpace, rng: random.Random) -> None:
    return None


def run(
    plan: WalkPlan,
    space: ModelSpace,
    rng: random.Random,
    *,
    drift: Drift = no_drift,
    stop_after: int | None = None,
) -> tuple[list[str], bool]:
    """Drive ``plan`` to the end (or until ``stop_after`` tasks were consumed).

    Returns the ids handed out and whether the walk completed. Between any two steps
    ``drift`` may change the space; which request is served next, and which served answer
    is delivered next, is chosen by ``rng``.
    """
    inflight: dict[int, tuple[int, int]] = {}
    served: dict[int, tuple[int, list[str]]] = {}
    handed: list[str] = []
    for _ in range(100_000):
        while (out := plan.next_handout()) is not None:
            handed.extend(out.ids)
            plan.consumed(out)
            if stop_after is not None and len(handed) >= stop_after:
                return handed, False
        for request in plan.requests():
            inflight[request.key] = (request.page, request.size)
        for key in plan.cancelled():
            inflight.pop(key, None)
            served.pop(key, None)
        if plan.complete:
            return handed, True
        drift(space, rng)
        choices = [("serve", k) for k in inflight] + [("deliver", k) for k in served]
        assert choices, "the plan waits for nothing and is not complete"
        what, key = rng.choice(choices)
        if what == "serve":
            page, size = inflight.pop(key)
            served[key] = space.answer(page, size)
        else:
            count, ids = served.pop(key)
            plan.answered(key, count, ids)
    raise AssertionError("the walk did not end")


def check_exact(handed: list[str], before: set[int], space: ModelSpace) -> None:
    persistent = {f"t{i}" for i in before & set(space.tasks)}
    assert len(handed) == len(set(handed)), "a task was handed out twice"
    assert persistent <= set(handed), f"lost: {sorted(persistent - set(handed))[:10]}"
    assert set(handed) <= {f"t{i}" for i in space.ever}


def churn(rate: float, most: int = 3, creations: bool = True, deletions: bool = True) -> Drift:
    def drift(space: ModelSpace, rng: random.Random) -> None:
        if rng.random() >= rate:
            return
        if creations and rng.random() < 0.5:
            space.create(rng.randint(1, most))
        if deletions and space.tasks and rng.random() < 0.5:
            for _ in range(rng.randint(1, most)):
                if space.tasks:
                    space.delete_at(rng.randrange(len(space.tasks)))

    return drift


# -- exactness under drift and any service order ---------------------------------------------


@settings(max_examples=600 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    n=st.integers(0, 400),
    page_size=st.integers(1, 60),
    window=st.integers(1, 16),
    rate=st.sampled_from([0.0, 0.05, 0.15, 0.33]),
    creations=st.booleans(),
    deletions=st.booleans(),
)
def test_every_task_present_throughout_is_handed_out_exactly_once(
    seed: int,
    n: int,
    page_size: int,
    window: int,
    rate: float,
    creations: bool,
    deletions: bool,
) -> None:
    rng = random.Random(seed)
    space = ModelSpace.of(n)
    before = set(space.tasks)
    plan = WalkPlan("S", page_size, window)
    try:
        handed, done = run(
            plan, space, rng, drift=churn(rate, creations=creations, deletions=deletions)
        )
    except WalkIncompleteError:
        # Allowed only when the space kept changing: a quiet space must always finish.
        assert rate > 0
        return
    assert done
    check_exact(handed, before, space)


@settings(max_examples=300 * SCALE, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(0, 300), page_size=st.integers(1, 40))
def test_a_quiet_space_costs_one_request_per_page_in_any_service_order(
    seed: int, n: int, page_size: int
) -> None:
    rng = random.Random(seed)
    window = rng.randint(1, 16)
    space = ModelSpace.of(n)
    plan = WalkPlan("S", page_size, window)
    handed, done = run(plan, space, rng)
    assert done
    assert handed == [f"t{i}" for i in space.tasks]
    pages = max(1, -(-n // page_size))
    # Pages served in either order are proven by one small read of the front at the end;
    # one at a time, the order is known and no read is needed.
    assert pages <= plan.requests_made <= pages + (1 if window > 1 else 0)
    assert plan.verifications == 0


def test_pages_answered_in_reverse_cost_exactly_one_read_of_the_front_more() -> None:
    space = ModelSpace.of(5000)
    plan = WalkPlan("S", 100, 8)
    handed: list[str] = []
    while not plan.complete:
        requests = plan.requests()
        # every request in flight is served and answered newest-sent first
        for request in reversed(requests):
            count, ids = space.answer(request.page, request.size)
            plan.answered(request.key, count, ids)
        while (out := plan.next_handout()) is not None:
            handed.extend(out.ids)
            plan.consumed(out)
    assert handed == [f"t{i}" for i in space.tasks]
    assert plan.requests_made == 50 + 1
    assert plan.verifications == 0


@settings(max_examples=300 * SCALE, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(50, 400), page_size=st.integers(5, 40))
def test_creations_alone_cost_rereads_only_where_answers_came_out_of_order(
    seed: int, n: int, page_size: int
) -> None:
    rng = random.Random(seed)
    space = ModelSpace.of(n)
    before = set(space.tasks)
    plan = WalkPlan("S", page_size, 1)  # one at a time: answers are served in order
    handed, done = run(plan, space, rng, drift=churn(0.3, deletions=False))
    assert done
    check_exact(handed, before, space)
    assert plan.rereads == 0
    assert plan.verifications == 0


def test_one_deletion_behind_the_walk_costs_a_constant_number_of_requests() -> None:
    for seed in range(40):
        rng = random.Random(seed)
        space = ModelSpace.of(5000)
        before = set(space.tasks)
        plan = WalkPlan("S", 100, 8)
        state: dict[str, object] = {"done": False}

        def drift(
            space: ModelSpace,
            rng: random.Random,
            state: dict[str, object] = state,
            plan: WalkPlan = plan,
        ) -> None:
            if not state["done"] and plan.requests_made >= 20:
                state["done"] = True
                space.delete_at(300)  # behind the walk: pages 4 and ...
                space.delete_at(300)

        handed, done = run(plan, space, rng, drift=drift)
        assert done
        check_exact(handed, before, space)
        assert plan.requests_made <= 50 + 6, (seed, plan.requests_made)


def test_a_page_holding_one_id_twice_hands_it_out_once() -> None:
    plan = WalkPlan("S", 3, 1)
    [request] = plan.requests()
    plan.answered(request.key, 3, ["a", "a", "b"][:3])
    out = plan.next_handout()
    assert out is not None
    assert out.ids == ("a", "b")


def test_more_tasks_than_asked_for_is_a_protocol_error() -> None:
    plan = WalkPlan("S", 2, 1)
    [request] = plan.requests()
    with pytest.raises(ProtocolError, match="3 tasks although 2"):
        plan.answered(request.key, 30, ["a", "b", "c"])


def test_a_page_that_stays_short_of_its_count_is_a_protocol_error() -> None:
    plan = WalkPlan("S", 100, 1)
    [request] = plan.requests()
    plan.answered(request.key, 250, [f"t{i}" for i in range(50)])
    [again] = plan.requests()
    assert (again.page, again.size) == (1, 100)
    with pytest.raises(ProtocolError, match="fewer than its count"):
        plan.answered(again.key, 250, [f"t{i}" for i in range(50)])


def test_a_server_that_ignores_page_stops_the_walk_with_a_typed_error() -> None:
    plan = WalkPlan("S", 10, 4)
    same = [f"t{i}" for i in range(10)]
    with pytest.raises(WalkIncompleteError):
        for _ in range(1000):
            for request in plan.requests():
                plan.answered(request.key, 10_000, same)
            while (out := plan.next_handout()) is not None:
                plan.consumed(out)


@pytest.mark.parametrize(("first", "last"), [(0, 0), (5, 9), (99, 100), (123, 377), (10, 10)])
def test_covering_page_covers(first: int, last: int) -> None:
    page, size = covering_page(first, last)
    assert (page - 1) * size <= first and last < page * size


# -- checkpoints ----------------------------------------------------------------------------


@settings(max_examples=400 * SCALE, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    n=st.integers(1, 300),
    page_size=st.integers(1, 40),
    window=st.integers(1, 8),
    created=st.integers(0, 120),
    deleted=st.integers(0, 20),
)
def test_resume_after_changes_between_runs_hands_out_no_duplicate_and_loses_nothing(
    seed: int, n: int, page_size: int, window: int, created: int, deleted: int
) -> None:
    rng = random.Random(seed)
    space = ModelSpace.of(n)
    before = set(space.tasks)
    plan = WalkPlan("S", page_size, window)
    first, _ = run(plan, space, rng, stop_after=rng.randint(0, n))
    point = Checkpoint.from_json(plan.checkpoint().to_json())
    # Between the runs: tasks created, and some deleted (never an anchor, so that the
    # guarantee "no duplicate unless the anchors were deleted" applies).
    space.create(created)
    anchors = {int(a[1:]) for a in point.anchors}
    for _ in range(deleted):
        candidates = [i for i, t in enumerate(space.tasks) if t not in anchors]
        if candidates:
            space.delete_at(rng.choice(candidates))
    resumed = WalkPlan("S", page_size, window, checkpoint=point)
    second, done = run(resumed, space, rng)
    assert done
    check_exact(first + second, before, space)


def test_resuming_an_unchanged_space_costs_the_remaining_pages_plus_at_most_one() -> None:
    for stop in (0, 1, 99, 100, 101, 250, 999, 1000):
        rng = random.Random(stop)
        space = ModelSpace.of(1000)
        plan = WalkPlan("S", 100, 4)
        first, _ = run(plan, space, rng, stop_after=stop)
        point = plan.checkpoint()
        resumed = WalkPlan("S", 100, 4, checkpoint=point)
        second, done = run(resumed, space, rng)
        assert done
        assert first + second == [f"t{i}" for i in space.tasks]
        remaining_pages = -(-(1000 - len(first)) // 100)
        assert resumed.requests_made <= remaining_pages + 1, (stop, resumed.requests_made)


def test_a_checkpoint_taken_after_the_end_says_done_and_resumes_with_no_request() -> None:
    space = ModelSpace.of(30)
    plan = WalkPlan("S", 10, 2)
    handed, done = run(plan, space, random.Random(1))
    assert done and len(handed) == 30
    point = plan.checkpoint()
    assert point.done and point.remaining == 0
    assert Checkpoint.from_json(point.to_json()) == point
    resumed = WalkPlan("S", 10, 2, checkpoint=point)
    assert resumed.requests() == []
    assert resumed.complete


def test_resume_after_creations_skips_every_task_handed_out_before() -> None:
    space = ModelSpace.of(1000)
    plan = WalkPlan("S", 100, 4)
    first, _ = run(plan, space, random.Random(3), stop_after=420)
    point = plan.checkpoint()
    space.create(300)
    resumed = WalkPlan("S", 100, 4, checkpoint=point)
    second, done = run(resumed, space, random.Random(4))
    assert done
    assert len(set(first) & set(second)) == 0
    assert sorted(first + second) == sorted(f"t{i}" for i in range(1, 1001))


def test_a_checkpoint_taken_before_any_task_was_taken_starts_from_the_front() -> None:
    space = ModelSpace.of(120)
    plan = WalkPlan("S", 50, 4)
    for request in plan.requests():  # asked, never answered: nothing was taken
        assert request.page == 1
    point = Checkpoint.from_json(plan.checkpoint().to_json())
    assert point.anchors == () and not point.done
    resumed = WalkPlan("S", 50, 4, checkpoint=point)
    handed, done = run(resumed, space, random.Random(1))
    assert done
    assert handed == [f"t{i}" for i in space.tasks]
