import json

from typer.testing import CliRunner

from klong.cli import app
from klong.factory.check import CheckConfig, run_check
from klong.factory.draft.stage import run_draft
from klong.factory.layout import papers_path, read_papers, write_papers
from tests.factory.tiny_factory import TINY, TINY_GATES, draft_config, make_factory, tiny_record

runner = CliRunner()


def _drafted(tmp_path, records=None):
    make_factory(tmp_path, records)
    return run_draft(tmp_path, draft_config(model="fake"))


def test_check_passes_the_tiny_paper_and_writes_the_quality_report(tmp_path):
    _drafted(tmp_path)
    records = run_check(tmp_path, CheckConfig(gates=TINY_GATES))
    assert records[0].active and records[0].files["check"] == "check/gatenorm"
    out = tmp_path / "check" / "gatenorm"
    q = json.loads((out / "quality.json").read_text())
    assert q["passed"] and q["hard_gates"] == [] and q["leaks"] == [] and q["grounding"]["share"] == 1.0
    assert q["contrast"]["scores"]["scaffold"] == 0.0 and q["contrast"]["official_dev_share"] >= 0.75
    final = json.loads((out / "rubric.json").read_text())
    drafted = json.loads((tmp_path / "draft" / "gatenorm" / "rubric.json").read_text())
    dropped = {f["id"] for f in q["contrast"]["failing_leaves"]}
    assert q.get("dropped_leaves", []) == q["contrast"]["failing_leaves"]
    assert q["soft"]["leaves"] == len(json.dumps(drafted).split('"sub_tasks": []')) - 1 - len(dropped)
    assert not any(i in json.dumps(final) for i in dropped)
    assert (tmp_path / "check" / "config.yaml").exists() and (out / "contrast" / "per_leaf.json").exists()


def test_failing_papers_are_dropped_with_reasons(tmp_path):
    _drafted(
        tmp_path, [tiny_record(tmp_path, "gatenorm"), tiny_record(tmp_path, "leaky"), tiny_record(tmp_path, "small")]
    )
    # leaky: the official repository's URL slipped into its addendum
    addendum = tmp_path / "draft" / "leaky" / "addendum.md"
    addendum.write_text(addendum.read_text() + "- The reference code is at github.com/tinylab-ml/gatenorm.\n")
    records = {r.slug: r for r in run_check(tmp_path, CheckConfig(gates=TINY_GATES))}
    assert records["gatenorm"].active and records["small"].active
    leaky = records["leaky"].drop
    assert leaky.stage == "check" and "leak: repository" in leaky.reason and "addendum.md" in leaky.reason
    assert not (tmp_path / "check" / "leaky" / "contrast").exists()  # no judge calls for a paper already failing
    strict = run_check(tmp_path, CheckConfig(gates=TINY_GATES.model_copy(update={"min_leaves": 500})), resume=False)
    assert all("leaf-count" in r.drop.reason for r in strict)


def test_contrast_failures_can_fail_the_paper(tmp_path):
    _drafted(tmp_path)
    cfg = CheckConfig(gates=TINY_GATES, contrast={"min_official_share": 1.0})
    (rec,) = run_check(tmp_path, cfg)
    assert rec.drop is not None and "contrast: the official code passes only" in rec.drop.reason


def test_check_cli_skips_dropped_papers_and_reports(tmp_path):
    recs = _drafted(tmp_path, [tiny_record(tmp_path, "a"), tiny_record(tmp_path, "b")])
    write_papers(papers_path(tmp_path, "draft"), [recs[0], recs[1].dropped("decontam", "decontam: matches 'fre'")])
    result = runner.invoke(app, ["factory", "check", "--dir", str(tmp_path), "-c", "check.gates.min_leaves=20",
                                 "--no-contrast", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["active"] == 1 and info["dropped@decontam"] == 1
    kept = read_papers(papers_path(tmp_path, "check"))
    assert kept[1].drop.reason == "decontam: matches 'fre'"
    assert "contrast" not in json.loads((tmp_path / "check" / "a" / "quality.json").read_text())
    assert TINY.exists()
