"""Issue 24: per-key rate limits across a fleet. Each instance takes its share of a key's rate and burst (the live
instances as its last lease renewal counted them), so a client spread over every instance gets the configured rate
in all, and one instance alone keeps the whole rate."""

from app.security.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def admitted(limiter: RateLimiter, key: str, tries: int) -> int:
    return sum(limiter.take(key) is None for _ in range(tries))


def test_alone_an_instance_keeps_the_whole_burst_and_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=10, burst=20, monotonic=clock)
    assert admitted(limiter, "k", 50) == 20
    clock.t += 1.0
    assert admitted(limiter, "k", 50) == 10


def test_three_instances_together_admit_what_one_alone_would() -> None:
    clock = Clock()
    fleet = [RateLimiter(rate_per_s=10, burst=21, monotonic=clock) for _ in range(3)]
    for limiter in fleet:
        limiter.instances = lambda: 3
    assert sum(admitted(limiter, "k", 50) for limiter in fleet) == 21  # 7 each
    clock.t += 3.0
    assert sum(admitted(limiter, "k", 50) for limiter in fleet) == 21  # the burst refilled: 10/3 a second each
    assert fleet[0].take("k") == 1  # and a refused request says when to retry


def test_the_share_follows_the_live_count() -> None:
    clock = Clock()
    live = [2]
    limiter = RateLimiter(rate_per_s=10, burst=20, monotonic=clock)
    limiter.instances = lambda: live[0]
    assert admitted(limiter, "a", 50) == 10
    live[0] = 0  # a view not yet renewed counts as alone, never as a division by zero
    assert admitted(limiter, "b", 50) == 20
