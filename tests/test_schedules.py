import pytest

from qgait_lab.errors import ConfigError
from qgait_lab.quant.schedules import KSchedule


def test_fixed_schedule_is_constant():
    s = KSchedule("fixed", start=3.0)
    assert [s.k_at(i) for i in (0, 10, 10_000)] == [3.0, 3.0, 3.0]


def test_grow2_schedule_of_table_3a():
    s = KSchedule("grow", start=1.0, step=0.2, every=100, max=5.0)
    assert s.k_at(0) == 1.0 and s.k_at(99) == 1.0
    assert s.k_at(100) == pytest.approx(1.2)
    assert s.k_at(1050) == pytest.approx(3.0)
    assert s.k_at(2000) == pytest.approx(5.0)
    assert s.k_at(50_000) == 5.0       # capped at T


@pytest.mark.parametrize("kwargs", [dict(kind="cosine"), dict(start=0.5), dict(every=0),
                                    dict(max=0.9), dict(start=3.0, max=2.0), dict(step=-1)])
def test_bad_schedules_are_refused(kwargs):
    with pytest.raises(ConfigError):
        KSchedule(**kwargs)
