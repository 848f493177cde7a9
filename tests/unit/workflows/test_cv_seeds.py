"""cv.seeds: seed arms fold back into their arm, every row and record tagged with its seed, under the arm's name."""

from medtl.arms import base_of_seed_arm, seed_arm_name
from medtl.results import ArmResult, FoldResult
from medtl.workflows.cv_seeds import merge_seeds


def _arm(name, value):
    folds = tuple(FoldResult({"fold": k, "auc": value}, rows=[{"case_id": f"c{k}", "arm": name, "prob_1": value}])
                  for k in range(2))
    return ArmResult(name, {"config": name}, folds)


def test_seed_arms_are_merged_into_their_arm_with_seed_tags():
    results = {"a": _arm("a", 0.1), "b": _arm("b", 0.2), seed_arm_name("a", 1): _arm("a.seed1", 0.3),
               seed_arm_name("b", 1): _arm("b.seed1", 0.4)}
    merged, per_seed = merge_seeds(results)
    assert list(merged) == ["a", "b"] and set(per_seed["a"]) == {0, 1}
    rows = merged["a"].rows
    assert [r["seed"] for r in rows] == [0, 0, 1, 1] and {r["arm"] for r in rows} == {"a"}
    assert [r["prob_1"] for r in rows] == [0.1, 0.1, 0.3, 0.3]
    assert [f["seed"] for f in merged["a"].records] == [0, 0, 1, 1]
    assert merged["a"].config == {"config": "a"}  # the arm's own config, not a seed arm's


def test_without_seed_arms_the_results_are_untouched():
    results = {"a": _arm("a", 0.1)}
    merged, _ = merge_seeds(results)
    assert merged is results and "seed" not in merged["a"].rows[0]


def test_seed_arm_names_round_trip_and_other_names_are_their_own_arm():
    assert base_of_seed_arm(seed_arm_name("scratch.frac0.25", 2)) == ("scratch.frac0.25", 2)
    assert base_of_seed_arm("seed-study") == ("seed-study", 0) and base_of_seed_arm("x.seedy") == ("x.seedy", 0)
