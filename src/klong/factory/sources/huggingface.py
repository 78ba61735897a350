"""Hugging Face paper pages: `GET {base_url}/api/papers/{arxiv_id}` -> `githubRepo`, the authors' repository.

Papers with Code is gone (July 2025); the paper page's `githubRepo` is the best remaining source of official code links.
A paper unknown to Hugging Face (404) or without a repository simply has no link.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from klong.factory.records import CodeLink
from klong.factory.sources.http import HttpClient, HttpConfig


class HuggingFaceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = "https://huggingface.co"
    token_env: str = "HF_TOKEN"
    """Environment variable holding an optional access token (sent as a Bearer token when set)."""
    http: HttpConfig = Field(default_factory=HttpConfig)


def huggingface_client(config: HuggingFaceConfig) -> HttpClient:
    import os

    token = os.environ.get(config.token_env)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return HttpClient(config.base_url, config.http, headers=headers)


def paper_code_link(client: HttpClient, arxiv_id: str) -> CodeLink | None:
    """The official code link of the paper page for `arxiv_id`, or None (unknown paper, no repository)."""
    page = client.get_json(f"/api/papers/{arxiv_id}", missing_ok=True)
    if not isinstance(page, dict):
        return None
    repo = page.get("githubRepo")
    if not isinstance(repo, str) or not repo.strip():
        return None
    return CodeLink(url=repo.strip(), source="huggingface", official=True)
