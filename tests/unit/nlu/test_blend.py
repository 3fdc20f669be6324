"""The blend of two intent rankings: a softened DIET ranking averaged with the regression's probabilities."""

import math

import pytest

from nlu.blend import blend


def r(**conf: float) -> list[dict[str, object]]:
    return [{"name": n, "confidence": c} for n, c in sorted(conf.items(), key=lambda kv: -kv[1])]


def as_dict(ranking: list[dict[str, object]]) -> dict[str, float]:
    return {str(x["name"]): float(x["confidence"]) for x in ranking}  # type: ignore[arg-type]


def test_an_overconfident_second_ranking_is_tempered_by_a_doubtful_first() -> None:
    lr = r(eid_info=0.45, procedure_info=0.40, greet=0.15)
    diet = r(eid_info=0.99, procedure_info=0.009, greet=0.001)
    out = blend(lr, diet, weight=0.5, temperature=3.0)
    got = as_dict(out)
    assert [x["name"] for x in out] == ["eid_info", "procedure_info", "greet"]
    assert math.isclose(sum(got.values()), 1.0)
    assert got["eid_info"] < 0.75  # no longer 0.99: the regression's doubt shows
    # the softened DIET part by hand: softmax(log p / 3)
    w = [0.99 ** (1 / 3), 0.009 ** (1 / 3), 0.001 ** (1 / 3)]
    assert math.isclose(got["eid_info"], 0.5 * w[0] / sum(w) + 0.5 * 0.45)


def test_weight_one_at_temperature_one_is_the_second_ranking_and_weight_zero_the_first() -> None:
    lr = r(a=0.7, b=0.3)
    diet = r(a=0.2, b=0.8)
    assert [round(x, 9) for x in as_dict(blend(lr, diet, 1.0, 1.0)).values()] == [0.8, 0.2]
    assert as_dict(blend(lr, diet, 0.0, 1.0)) == pytest.approx({"a": 0.7, "b": 0.3})


def test_an_intent_missing_from_a_truncated_ranking_gets_almost_nothing_from_it() -> None:
    out = as_dict(blend(r(a=0.6, b=0.4), r(a=0.5, c=0.5), 0.5, 1.0))
    assert out["c"] == pytest.approx(0.25, abs=1e-5)
    assert out["b"] == pytest.approx(0.2, abs=1e-5)
    assert out["a"] == pytest.approx(0.55, abs=1e-5)


def test_truncated_first_ranking_is_renormalised() -> None:
    out = as_dict(blend(r(a=0.3, b=0.2), r(a=0.5, b=0.5), 0.0, 1.0))  # the rest of the regression's mass cut off
    assert out == pytest.approx({"a": 0.6, "b": 0.4})


def test_ties_are_ordered_by_name_and_empty_rankings_give_nothing() -> None:
    assert [x["name"] for x in blend(r(b=0.5, a=0.5), [], 0.0, 1.0)] == ["a", "b"]
    assert blend([], [], 0.5, 2.0) == []
    assert [x["name"] for x in blend([], r(a=0.9, b=0.1), 0.5, 2.0)] == ["a", "b"]


@pytest.mark.parametrize(("weight", "temperature"), [(-0.1, 1.0), (1.5, 1.0), (0.5, 0.0)])
def test_out_of_range_parameters_are_refused(weight: float, temperature: float) -> None:
    with pytest.raises(ValueError, match="weight must be in"):
        blend(r(a=1.0), r(a=1.0), weight, temperature)
