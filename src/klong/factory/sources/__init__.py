"""Where papers come from: OpenReview, arXiv, Hugging Face paper pages, Semantic Scholar / OpenAlex, a local folder.

Every network source goes through `klong.factory.sources.http.HttpClient` (or its own library's client) with a
configurable base URL, so each can be pointed at a local fixture server in tests or at a mirror in production.
"""
