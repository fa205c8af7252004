import pytest

from wayline.kernel.problems import Problem
from wayline.kernel.web import RateLimiter


def test_bucket_refuses_past_the_burst_with_retry_after():
    rl = RateLimiter(rate_per_s=1, burst=5)
    rl.take("a", 5)
    with pytest.raises(Problem) as e:
        rl.take("a", 3)
    assert e.value.status == 429 and int(e.value.headers["Retry-After"]) >= 1
    rl.take("b", 5)  # another sandbox has its own bucket
