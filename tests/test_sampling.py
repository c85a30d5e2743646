import pytest

from hrkd_cli.errors import HrkdError
from hrkd_cli.sampling import StepSchedule, check_shardable, shard


def test_every_step_holds_one_sub_batch_per_stream_and_is_deterministic():
    a = StepSchedule([10, 7, 13], batch=4, seed=3, epochs=2)
    b = StepSchedule([10, 7, 13], batch=4, seed=3, epochs=2)
    assert a.steps_per_epoch == 4 and a.total_steps == 8
    for step in range(a.total_steps):
        rows = a.global_indices(step)
        assert [len(r) for r in rows] == [4, 4, 4]
        assert rows == b.global_indices(step)
    assert StepSchedule([10, 7, 13], 4, seed=4, epochs=2).global_indices(0) != a.global_indices(0)


def test_an_epoch_covers_the_largest_stream_and_smaller_streams_cycle():
    s = StepSchedule([12, 5], batch=4, seed=0, epochs=1)
    seen = [set(), set()]
    for step in range(s.steps_per_epoch):
        for i, rows in enumerate(s.global_indices(step)):
            seen[i] |= set(rows)
    assert seen[0] == set(range(12)) and seen[1] == set(range(5))


def test_out_of_order_access_gives_the_same_rows():
    s = StepSchedule([9], batch=3, seed=1, epochs=5)
    forward = [s.global_indices(k) for k in range(12)]
    fresh = StepSchedule([9], batch=3, seed=1, epochs=5)
    assert fresh.global_indices(11) == forward[11]  # a resumed run jumps straight to its step


def test_shards_partition_the_global_batch():
    rows = list(range(8))
    parts = [shard(rows, r, 2) for r in range(2)]
    assert sorted(parts[0] + parts[1]) == rows and len(parts[0]) == len(parts[1])


def test_unshardable_batches_are_refused():
    with pytest.raises(HrkdError, match="not divisible by --nproc 3"):
        check_shardable(8, 3, [100], "distill.batch_per_domain")
    with pytest.raises(HrkdError, match="larger than the smallest domain"):
        check_shardable(8, 4, [100, 2], "distill.batch_per_domain")
