"""studies.ablations: the table and the verdicts from evaluation reports on disk."""

from __future__ import annotations

import json

from studies.ablations import SUBSETS, collect, main, report_path, verdict


def _write(reports, task, sub, acc):
    p = report_path(reports, task, sub)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"patch": {"accuracy": acc, "roc_auc": acc + 0.01},
                             "sample": {"correct": 3, "unidentifiable": 1, "wrong": 0,
                                        "n_samples": 4}}))


def test_verdicts_follow_the_numbers(tmp_path, capsys):
    accs = dict(zip(SUBSETS, (0.7, 0.6, 0.8, 0.75, 0.85, 0.9, 0.95)))
    for sub, a in accs.items():
        _write(tmp_path, "normal-vs-noa", sub, a)
    rows, missing = collect(tmp_path, "normal-vs-noa")
    assert not missing and set(rows) == set(SUBSETS)
    v = verdict(rows)
    assert v == {"rgb_beats_every_subset": True, "weakest_single_channel": "G"}
    rows["GB"]["accuracy"] = 0.96
    assert verdict(rows)["rgb_beats_every_subset"] is False
    # with a single channel missing there is no "weakest", and the comparison names its subsets
    partial = {s: r for s, r in rows.items() if s not in ("R", "RG")}
    v = verdict(partial)
    assert "weakest_single_channel" not in v
    assert v["subsets_compared"] == ["G", "B", "RB", "GB"]
    # the other task has no reports: listed as missing, not invented
    assert main(["--reports", str(tmp_path), "--json", "--out", str(tmp_path / "png")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["spt-vs-spg"]["missing"]) == len(SUBSETS)
    assert (tmp_path / "png" / "ablations_normal-vs-noa.png").read_bytes()[:4] == b"\x89PNG"


def test_rgb_of_the_same_recipe_is_preferred_to_the_shipped_report(tmp_path):
    shipped = tmp_path / "normal-vs-noa" / "evaluation.json"
    shipped.parent.mkdir(parents=True)
    shipped.write_text("{}")
    assert report_path(tmp_path, "normal-vs-noa", "RGB") == shipped
    _write(tmp_path, "normal-vs-noa", "RGB", 0.9)  # writes where report_path points ...
    same = tmp_path / "ablations" / "normal-vs-noa" / "RGB" / "evaluation.json"
    assert not same.exists()
    same.parent.mkdir(parents=True)
    same.write_text(shipped.read_text())           # ... so place the same-recipe one by hand
    assert report_path(tmp_path, "normal-vs-noa", "RGB") == same
    assert report_path(tmp_path, "normal-vs-noa", "GB").parent.name == "GB"
