import json

from klong.data.stats import totals, trajectory_stats
from klong.importers import import_trajectory_file
from tests.shared import shared_path


def test_tokens_match_chat_template_of_source(qwen_tokenizer):
    path = shared_path("trajectories", "mini-swe-agent", "github_issue.traj.json")
    raw = json.loads(path.read_text())
    stats = trajectory_stats(import_trajectory_file(path, "mini-swe-agent"), qwen_tokenizer)
    direct = qwen_tokenizer.apply_chat_template(raw, tokenize=True, return_dict=True)["input_ids"]
    assert stats.tokens == len(direct)
    assert stats.characters == sum(len(m["content"]) for m in raw)


def test_function_calling_tokens_render_tool_calls(qwen_tokenizer):
    path = next(shared_path("trajectories", "swe-agent").glob("replay__*function_calling__install*"))
    traj = import_trajectory_file(path, "swe-agent")
    stats = trajectory_stats(traj, qwen_tokenizer)
    text = qwen_tokenizer.decode(
        qwen_tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=True, return_dict=True)[
            "input_ids"
        ]
    )
    assert "<|im_start|>" in text
    # the rendered conversation holds every tool call as a <tool_call> block
    from klong.chat.render import render_ids

    rendered = qwen_tokenizer.decode(render_ids(qwen_tokenizer, traj.messages))
    assert rendered.count("<tool_call>") == traj.tool_call_count() == stats.tool_calls
    assert totals([stats, stats])["tokens"] == 2 * stats.tokens
