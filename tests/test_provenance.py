from klong import __version__
from klong.provenance import collect_run_meta
from klong.schema import read_run_meta, write_run_meta


def test_run_meta_roundtrip(tmp_path):
    meta = collect_run_meta(["klong", "split"])
    assert meta.klong_version == __version__
    assert "torch" in meta.packages and "transformers" in meta.packages
    write_run_meta(tmp_path / "meta.json", meta)
    assert read_run_meta(tmp_path / "meta.json") == meta


def test_git_revision_of_a_repo(tmp_path):
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("x")
    subprocess.run(["git", "-C", str(tmp_path), "add", "f"], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "m"], check=True
    )
    meta = collect_run_meta([], cwd=tmp_path)
    assert meta.git_revision and len(meta.git_revision) == 40
    assert meta.git_dirty is False
    (tmp_path / "f").write_text("y")
    assert collect_run_meta([], cwd=tmp_path).git_dirty is True
