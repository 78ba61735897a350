"""Every shipped example config validates against the pydantic config it is for, loaded the way its command loads it;
a new example file fails here until it is mapped to its config."""

from pathlib import Path

import pytest

from klong.config import load_config
from klong.exceptions import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _sft(path):
    from klong.train.config import SFTConfig

    return load_config(SFTConfig, [str(path)])


def _rl(path):
    from klong.train.rl_config import RLConfig

    return load_config(RLConfig, [str(path)])


def _factory(path):
    """Each section with its stage's config (`klong factory STAGE -c factory.yaml`); no section for no stage."""
    from klong.config import merge_sources
    from klong.factory.blacklist import BlacklistConfig
    from klong.factory.check import CheckConfig
    from klong.factory.collect import CollectConfig
    from klong.factory.config import stage_config
    from klong.factory.convert import ConvertConfig
    from klong.factory.decontam import DecontamConfig
    from klong.factory.draft.stage import DraftConfig
    from klong.factory.enrich import EnrichConfig
    from klong.factory.fetch import FetchConfig
    from klong.factory.layout import STAGES
    from klong.factory.package import PackageConfig
    from klong.factory.select import SelectConfig

    classes = {"collect": CollectConfig, "enrich": EnrichConfig, "select": SelectConfig, "decontam": DecontamConfig,
               "fetch": FetchConfig, "convert": ConvertConfig, "blacklist": BlacklistConfig, "draft": DraftConfig,
               "check": CheckConfig, "package": PackageConfig}  # fmt: skip
    assert set(classes) == set(STAGES)
    sections = merge_sources([str(path)])
    assert set(sections) <= set(STAGES), f"{path}: sections for no stage: {set(sections) - set(STAGES)}"
    return {stage: stage_config(classes[stage], stage, [str(path)]) for stage in sections}


def _paper_meta(path):
    from klong.factory.sources.local import LocalMeta
    from klong.io import read_yaml

    return LocalMeta.model_validate(read_yaml(path))


def _task(path):
    """A task dir's config.yaml, with its `klong.agent` section as `klong run` reads it (over the defaults)."""
    from klong.agent.config import AgentConfig
    from klong.config import deep_merge
    from klong.task import read_task

    task = read_task(path.parent)
    overrides = task.config.get("klong", {}).get("agent", {})
    return task, load_config(AgentConfig, [], base=deep_merge(AgentConfig().model_dump(), overrides))


def _scripted(path):
    from klong.models.scripted import ScriptedModel

    return ScriptedModel.from_file(path)


def _accelerate(path):
    """What `accelerate launch --config_file` reads (accelerate refuses unknown keys)."""
    config_args = pytest.importorskip("accelerate.commands.config.config_args")
    return config_args.ClusterConfig.from_yaml_file(str(path))


CONFIGS = {
    "configs/examples/sft.yaml": _sft,
    "configs/examples/rl.yaml": _rl,
    "configs/accelerate/deepspeed_zero3.yaml": _accelerate,
    "configs/accelerate/fsdp.yaml": _accelerate,
    "examples/factory/factory.yaml": _factory,
    "examples/factory/tiny-paper/meta.yaml": _paper_meta,
    "examples/tasks/median-note/config.yaml": _task,
    "examples/data/agent.yaml": _scripted,
}
NOT_KLONG = {"examples/factory/tiny-paper/code/configs/cifar10.yaml": "the example paper's own code's config"}


def _shipped():
    found = [*ROOT.glob("configs/**/*.y*ml"), *ROOT.glob("examples/**/*.y*ml")]
    return sorted(str(p.relative_to(ROOT)) for p in found)


def test_every_shipped_yaml_is_mapped():
    assert _shipped() == sorted([*CONFIGS, *NOT_KLONG])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_example_validates(name):
    assert CONFIGS[name](ROOT / name)


def test_durations_are_read_the_same_everywhere():
    """`eval_timeout: 12h` (the shipped rl.yaml) is read like `stages[].timeout: 2h`: text or seconds, anywhere."""
    from klong.train.rl_config import RLConfig

    rl = _rl(ROOT / "configs/examples/rl.yaml")
    assert rl.eval_timeout == 12 * 3600 and [s.timeout for s in rl.stages] == [7200, 14400, 21600]
    base = [str(ROOT / "configs/examples/rl.yaml")]
    cfg = load_config(RLConfig, [*base, "eval_timeout=1h30m", "stages.0.timeout=5400", "stages.1.timeout=90m"])
    assert cfg.eval_timeout == cfg.stages[0].timeout == cfg.stages[1].timeout == 5400
    assert load_config(RLConfig, [*base, "eval_timeout=null"]).eval_timeout is None
    with pytest.raises(ConfigError, match=r"configs/examples/rl.yaml, eval_timeout=12 hours.*eval_timeout.*12 hours"):
        load_config(RLConfig, [*base, "eval_timeout=12 hours"])
    with pytest.raises(ConfigError, match=r"stages\.0\.timeout.*cannot read 'soon' as a duration"):
        load_config(RLConfig, [*base, "stages.0.timeout=soon"])
    with pytest.raises(ConfigError, match="negative"):
        load_config(RLConfig, [*base, "eval_timeout=-5"])
