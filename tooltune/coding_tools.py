"""Schemas of the coding agent's built-in tools, defined once.

Data generation trains on these, the `coding-tools` eval suite tests them, and the agent executes
them — the same names and parameters everywhere, so what is trained is what is served.
"""

from __future__ import annotations

from tooltune.toolspec import ToolSpec


def _obj(properties: dict, required: list[str]) -> dict:
    return {"type": "object", "properties": properties, "required": required}


CODING_TOOLS: list[ToolSpec] = [
    ToolSpec(
        name="read_file",
        description="Read a text file from the project and return its contents.",
        parameters=_obj(
            {
                "path": {"type": "string", "description": "Path of the file, relative to the project root."},
                "start_line": {"type": "integer", "description": "First line to return (1-based). Optional."},
                "end_line": {"type": "integer", "description": "Last line to return (inclusive). Optional."},
            },
            ["path"],
        ),
    ),
    ToolSpec(
        name="write_file",
        description="Create or overwrite a text file in the project with the given content.",
        parameters=_obj(
            {
                "path": {"type": "string", "description": "Path of the file, relative to the project root."},
                "content": {"type": "string", "description": "The full new content of the file."},
            },
            ["path", "content"],
        ),
    ),
    ToolSpec(
        name="list_dir",
        description="List the files and folders in a project directory.",
        parameters=_obj(
            {
                "path": {
                    "type": "string",
                    "description": "Directory relative to the project root ('.' = root).",
                },
                "recursive": {"type": "boolean", "description": "Also list subdirectories. Default false."},
            },
            ["path"],
        ),
    ),
    ToolSpec(
        name="search_code",
        description="Search the project's files for a text or regular-expression pattern.",
        parameters=_obj(
            {
                "pattern": {"type": "string", "description": "Text or regular expression to look for."},
                "path": {
                    "type": "string",
                    "description": "Directory or file to search in. Default: whole project.",
                },
                "file_glob": {
                    "type": "string",
                    "description": "Only search files matching this glob, e.g. '*.py'.",
                },
                "max_results": {"type": "integer", "description": "Maximum number of matches to return."},
            },
            ["pattern"],
        ),
    ),
    ToolSpec(
        name="run_command",
        description="Run a program in the project root (no shell) and return its exit code and output.",
        parameters=_obj(
            {
                "command": {"type": "string", "description": "The program to run, e.g. 'python'."},
                "args": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Arguments for the program.",
                },
                "timeout": {
                    "type": "number",
                    "description": "Seconds before the command is stopped. Default 60.",
                },
            },
            ["command"],
        ),
    ),
    ToolSpec(
        name="run_tests",
        description="Run the project's test suite (pytest) or a subset of it and report the results.",
        parameters=_obj(
            {
                "path": {
                    "type": "string",
                    "description": "Test file or directory to run. Default: all tests.",
                },
                "keyword": {
                    "type": "string",
                    "description": "Only run tests whose names match this expression.",
                },
                "fail_fast": {"type": "boolean", "description": "Stop at the first failure."},
            },
            [],
        ),
    ),
    ToolSpec(
        name="git_status",
        description="Show the working tree status of the project's git repository.",
        parameters=_obj({}, []),
    ),
    ToolSpec(
        name="git_diff",
        description="Show uncommitted changes in the project's git repository.",
        parameters=_obj(
            {
                "path": {"type": "string", "description": "Limit the diff to this file or directory."},
                "staged": {"type": "boolean", "description": "Show staged changes instead of unstaged ones."},
            },
            [],
        ),
    ),
]

CODING_TOOLS_BY_NAME: dict[str, ToolSpec] = {t.name: t for t in CODING_TOOLS}

DEFAULT_INSTRUCTIONS = (
    "You are a coding assistant working inside a software project. Use the tools to read, search, "
    "change and test the project; paths are relative to the project root. Call a tool when you need "
    "information you do not have, then answer briefly."
)
"""The system prompt the agent runs with. Data generation should train with the same text so the
adapter sees at serve time what it saw in training."""
