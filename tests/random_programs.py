"""Random programs from the rewrite space, not just the optimal ones.

Every program the search could choose must compute the right thing, so the numerical
tests also run programs drawn at random: at each Spec, a uniformly random rewrite among
those that lead to a complete program (moves weighted up, since they are few). This
reaches layouts and kernels the cost model rarely picks for the canonical cases.
"""

from __future__ import annotations

import random

from morello.core.cost import action_cost
from morello.core.program import Program
from morello.core.rewrites import Action, Move, Refused, actions, expand
from morello.core.search import Search
from morello.core.spec import Spec

MOVE_WEIGHT = 8


def random_program(spec: Spec, search: Search, rng: random.Random) -> Program:
    options, weights = [], []
    for action in actions(spec, search.threads):
        children = expand(spec, action)
        if isinstance(children, Refused) or any(search.solve(c).action is None for c in children):
            continue
        options.append((action, children))
        weights.append(MOVE_WEIGHT if isinstance(action, Move) else 1)
    assert options, f"no complete program for {spec}"
    action, children = rng.choices(options, weights)[0]
    kids = tuple(random_program(c, search, rng) for c in children)
    cost = action_cost(spec, action, children, [k.cost for k in kids], search.threads)
    return Program(spec, action, kids, cost)


def forced_program(spec: Spec, action: Action, search: Search) -> Program:
    """``action`` at the root, even where the space would not offer it there, and the
    optimum below it: reaches code paths no optimum of a small case takes."""
    children = expand(spec, action)
    assert not isinstance(children, Refused), f"{action} does not apply to {spec}: {children}"
    kids = tuple(search.program(c) for c in children)
    cost = action_cost(spec, action, children, [k.cost for k in kids], search.threads)
    return Program(spec, action, kids, cost)
