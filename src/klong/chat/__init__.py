"""The one context view: turns, rendering (messages -> ids + loss mask), approximate counting, tool-call parsing and
the `ContextPolicy`. Depends only on the records (`klong.schema`, `klong.exceptions`); the runtime (`klong.agent`), the
splitter (`klong.data`), the model backends (`klong.models`) and the trainers (`klong.train`) import it."""
