"""Non-dominated sorting and crowding distance (NSGA-II, Deb et al. 2002): the survivor
order of multi-objective successive halving (UniADS).

Points are tuples of objectives to *minimise* (negate the ones to maximise). With
constraints, Deb's constrained domination: a feasible point (violation <= 0) beats every
infeasible one, and infeasible points are ordered by their violation.
"""
from typing import List, Optional, Sequence

Point = Sequence[float]


def dominates(a: Point, b: Point) -> bool:
    """``a`` is no worse than ``b`` in every objective and better in one."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def non_dominated_fronts(points: Sequence[Point]) -> List[List[int]]:
    """Indices of ``points`` by front: front 0 is the non-dominated set, front 1 is
    non-dominated once front 0 is removed, and so on (NSGA-II's fast sort)."""
    dominated_by = [[] for _ in points]  # i -> the points i dominates
    count = [0] * len(points)            # i -> how many points dominate i
    for i, a in enumerate(points):
        for j, b in enumerate(points):
            if i != j and dominates(a, b):
                dominated_by[i].append(j)
            elif i != j and dominates(b, a):
                count[i] += 1
    fronts = [[i for i, c in enumerate(count) if c == 0]]
    while fronts[-1]:
        nxt = []
        for i in fronts[-1]:
            for j in dominated_by[i]:
                count[j] -= 1
                if count[j] == 0:
                    nxt.append(j)
        fronts.append(sorted(nxt))
    return [f for f in fronts if f]


def crowding_distance(points: Sequence[Point]) -> List[float]:
    """NSGA-II's crowding distance of each point within its front: the sum over objectives
    of the normalised gap between its neighbours; the extremes get infinity."""
    n = len(points)
    if n <= 2:
        return [float('inf')] * n
    distance = [0.0] * n
    for m in range(len(points[0])):
        order = sorted(range(n), key=lambda i: (points[i][m], i))
        low, high = points[order[0]][m], points[order[-1]][m]
        distance[order[0]] = distance[order[-1]] = float('inf')
        if high == low:
            continue
        for k in range(1, n - 1):
            distance[order[k]] += (points[order[k + 1]][m] - points[order[k - 1]][m]) / \
                (high - low)
    return distance


def pareto_order(points: Sequence[Point],
                 violations: Optional[Sequence[float]] = None) -> List[int]:
    """Indices from best to worst: by front, then by crowding distance (larger first), then
    by index; infeasible points (``violation > 0``) last, by violation."""
    violations = list(violations) if violations is not None else [0.0] * len(points)
    feasible = [i for i, v in enumerate(violations) if v <= 0]
    order = []
    for front in non_dominated_fronts([points[i] for i in feasible]):
        members = [feasible[i] for i in front]
        crowd = crowding_distance([points[i] for i in members])
        order += [i for _, i in sorted(zip(crowd, members), key=lambda c: (-c[0], c[1]))]
    infeasible = [i for i, v in enumerate(violations) if v > 0]
    return order + sorted(infeasible, key=lambda i: (violations[i], i))


__all__ = ['dominates', 'non_dominated_fronts', 'crowding_distance', 'pareto_order']
