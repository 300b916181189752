"""One fixed ``read_file`` tool call, phrased four ways: a dataset the tiny model learns in a few dozen
steps. Shared by the training tests (``tests/`` is on ``sys.path`` under pytest's default import mode)."""

from __future__ import annotations

READ_FILE = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a file from the repository.",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string", "description": "File path"}},
            "required": ["path"],
        },
    },
}
PROMPTS = ["Read src/main.py", "Show me src/main.py please", "open the file src/main.py", "src/main.py?"]


def example(i: int) -> dict:
    """Example ``i``: prompt ``i mod 4`` answered with the same call."""
    call = {"type": "function", "function": {"name": "read_file", "arguments": {"path": "src/main.py"}}}
    return {
        "messages": [
            {"role": "user", "content": PROMPTS[i % len(PROMPTS)]},
            {"role": "assistant", "content": "", "tool_calls": [call]},
        ],
        "tools": [READ_FILE],
    }
