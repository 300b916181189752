"""How developers ask a coding agent for its built-in tools: requests, results and follow-ups.

Requests phrased from a tool's schema ("read a text file from the project and return its contents
with path set to src/app.py") are not what a coding agent hears: the demo adapter trained on them made
up tool names and missed calls on the coding-tools suite (docs/TRANSCRIPTS.md). A coding agent hears "open src/app.py", "ls tests", "run `make lint`", "did the tests pass?". This
phrasebook writes such requests for the agent's own tools (``builtin:coding``), with coherent values
(a command and its arguments split the way `run_command` takes them, folders for `list_dir`), tool
results in the form the real tools return them, and follow-ups that use a result ("open the second
one"), so what is trained is what the agent sees when served.

Written by hand by the people who wrote the `coding-tools` eval suite, so it is checked against it:
two templates the leak check found word for word in the suite were reworded, and the leak index (which
includes the built-in suites) drops any generated request too close to one of its cases.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, NamedTuple

from tooltune.coding_tools import CODING_TOOLS_BY_NAME
from tooltune.data.polish import join_requests, polish
from tooltune.toolspec import ToolSpec

Args = dict[str, Any]
Request = tuple[str, Args]

_DIRS = [
    "src", "lib", "app", "pkg/api", "cmd/server", "internal/db", "services/billing", "web/src",
    "web/src/components", "api", "core", "backend", "frontend/src", "tools", "docs", "scripts",
    "config", "migrations", "src/handlers", "src/utils", "lib/net", "packages/ui/src", "server",
]  # fmt: skip
_TEST_DIRS = ["tests", "tests/unit", "tests/integration", "test", "spec", "tests/api"]
_STEMS = [
    "main", "app", "config", "utils", "models", "routes", "handlers", "parser", "cli", "client",
    "server", "db", "auth", "cache", "logger", "schema", "views", "settings", "errors", "helpers",
    "session", "billing", "storage", "worker", "queue", "router", "middleware", "api", "types", "index",
]  # fmt: skip
_EXTS = [".py", ".py", ".py", ".ts", ".js", ".go", ".rs", ".java", ".rb", ".tsx", ".c", ".kt"]
_ROOT_FILES = [
    "README.md", "Makefile", "Dockerfile", "package.json", "Cargo.toml", "go.mod", "requirements.txt",
    ".gitignore", "CHANGELOG.md", "tsconfig.json", "docker-compose.yml", ".env.example", "setup.cfg",
    "CONTRIBUTING.md", "Gemfile", "pom.xml", "tox.ini", ".github/workflows/ci.yml", "justfile",
]  # fmt: skip
_IDENTS = [
    "parse_config", "UserService", "DEFAULT_TIMEOUT", "handle_request", "fetchUser", "API_KEY",
    "retry_with_backoff", "SessionManager", "get_db", "render_template", "validate_email", "BATCH_SIZE",
    "useAuth", "connect_redis", "OrderRepository", "to_json", "LOG_LEVEL", "process_payment",
    "build_query", "CacheEntry", "send_webhook", "normalize_path", "RateLimiter", "MAX_CONNECTIONS",
]  # fmt: skip
_TEXTS = ["TODO", "HACK", "deprecated", "console.log", "print(", "import requests", "os.environ",
          "localhost:8080", "panic(", "unwrap()", "@pytest.mark.skip", "password"]  # fmt: skip
GLOBS = {"Python": "*.py", "TypeScript": "*.ts", "Go": "*.go", "Rust": "*.rs", "JavaScript": "*.js",
         "YAML": "*.yml", "Markdown": "*.md", "Java": "*.java"}  # fmt: skip
_COMMANDS: list[tuple[str, list[str]]] = [
    ("npm", ["install"]), ("npm", ["run", "build"]), ("npm", ["run", "lint"]), ("make", ["build"]),
    ("make", ["lint"]), ("make", []), ("cargo", ["build", "--release"]), ("cargo", ["clippy"]),
    ("go", ["vet", "./..."]), ("go", ["build", "./cmd/server"]), ("python", ["scripts/seed_db.py"]),
    ("python", ["-m", "mypy", "src"]), ("ls", ["-la"]), ("docker", ["compose", "up", "-d"]),
    ("ruff", ["check", "."]), ("node", ["--version"]), ("git", ["branch", "-a"]),
    ("git", ["fetch", "origin"]), ("pip", ["list"]), ("./build.sh", []), ("bundle", ["exec", "rake"]),
    ("yarn", ["typecheck"]), ("python", ["manage.py", "migrate"]), ("du", ["-sh", "node_modules"]),
    ("black", ["--check", "src"]), ("mvn", ["package", "-DskipTests"]), ("terraform", ["plan"]),
    ("git", ["stash", "list"]), ("uv", ["sync"]), ("tsc", ["--noEmit"]),
]  # fmt: skip
# File bodies by extension, with what they do in a sentence (an "explain this file" answer uses it):
# what is written to or read from `x.py` is Python, `.gitignore` holds ignore patterns.
_BODIES: dict[str, list[tuple[str, str]]] = {
    ".py": [
        ("print('hello world')\n", 'prints "hello world" when run'),
        ("def add(a, b):\n    return a + b\n", "defines add(a, b), which returns the sum of its arguments"),
        ("__version__ = '0.4.1'\n", "holds the package version, 0.4.1"),
        (
            "import os\n\nDEBUG = os.environ.get('DEBUG') == '1'\n",
            'sets DEBUG from the DEBUG environment variable (on when it is "1")',
        ),
        (
            "def slugify(title):\n    return title.lower().replace(' ', '-')\n",
            "defines slugify(title), which lower-cases a title and turns spaces into dashes",
        ),
        (
            "class Config:\n    timeout = 30\n    retries = 3\n",
            "defines a Config class with a 30 second timeout and 3 retries",
        ),
    ],
    ".ts": [
        ("export const API_URL = '/api/v2';\n", "exports API_URL, the API's base path ('/api/v2')"),
        (
            "export function sum(xs: number[]): number {\n  return xs.reduce((a, b) => a + b, 0);\n}\n",
            "exports sum(xs), which adds up an array of numbers",
        ),
    ],
    ".js": [
        ("module.exports = { port: 3000 };\n", "exports a config object that sets the port to 3000"),
        ("console.log('ready');\n", 'logs "ready" to the console'),
    ],
    ".go": [
        (
            "package main\n\nfunc main() {}\n",
            "is an empty Go program: package main with a main that does nothing",
        ),
        ("package db\n\nconst MaxConns = 10\n", "declares package db with a MaxConns limit of 10"),
    ],
    ".rs": [('fn main() {\n    println!("hi");\n}\n', 'is a Rust program whose main prints "hi"')],
    ".md": [
        ("# Notes\n\nRemember to rotate the keys.\n", "is a notes page with one reminder: rotate the keys"),
        (
            "# Setup\n\nRun `make install`, then `make test`.\n",
            "explains setup: `make install`, then `make test`",
        ),
    ],
    ".json": [('{\n  "semi": true\n}\n', 'is a small config that turns on semicolons ("semi": true)')],
    ".txt": [("- fix login\n- add tests\n", "is a two-item to-do list: fix login, add tests")],
    ".gitignore": [
        ("node_modules/\ndist/\n.env\n", "makes git ignore node_modules/, dist/ and .env"),
        ("*.log\n__pycache__/\n", "makes git ignore log files and __pycache__ folders"),
    ],
    "Dockerfile": [
        ("FROM python:3.12-slim\n", "builds an image from python:3.12-slim and adds nothing else")
    ],
    ".env.example": [("DEBUG=false\nPORT=8000\n", "lists the environment settings: DEBUG off, PORT 8000")],
    "Makefile": [("test:\n\tpytest -q\n", "has one target, test, which runs pytest -q")],
    ".java": [
        (
            "public class App {\n    public static void main(String[] args) {}\n}\n",
            "declares class App with an empty main method",
        )
    ],
    ".rb": [
        ('def greet(name)\n  "Hello, #{name}"\nend\n', 'defines greet(name), which returns "Hello, <name>"')
    ],
    ".c": [
        ("int add(int a, int b) { return a + b; }\n", "defines add(a, b), which returns the sum of two ints")
    ],
    ".kt": [('fun main() = println("ok")\n', 'is a Kotlin program whose main prints "ok"')],
}
_SAME_KIND = {".tsx": ".ts", ".jsx": ".js"}
# one-line contents, for two writes asked at once ("write `x = 1` to a.py and `# TODO` to NOTES.md")
_LINES: dict[str, list[str]] = {
    ".py": ["print('hi')", "x = 1", "VERSION = '1.2.0'", "import os"],
    ".ts": ["export const PORT = 8080;", "export {};"], ".js": ["module.exports = {};", "console.log('hi');"],
    ".go": ["package main"], ".rs": ["fn main() {}"], ".md": ["# TODO", "# Changelog", "Work in progress."],
    ".json": ['{"debug": true}', "{}", "[]"], ".txt": ["a", "b", "hello", "TODO", "done", "v2"],
    ".gitignore": ["node_modules/", "*.pyc", ".env"], "Dockerfile": ["FROM python:3.12-slim"],
    ".env.example": ["DEBUG=true", "PORT=8080"], "Makefile": ["include common.mk"],
}  # fmt: skip
_WRITABLE_ROOT = [".gitignore", "Dockerfile", ".env.example", "Makefile", "README.md", "NOTES.md", "TODO.txt"]


def _body_kind(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    if name in _BODIES:
        return name
    ext = "." + name.rsplit(".", 1)[-1] if "." in name.lstrip(".") else ""
    ext = _SAME_KIND.get(ext, ext)
    return ext if ext in _BODIES else ".txt"


def _body(rng: random.Random, path: str) -> tuple[str, str]:
    """A file body that fits the file's name, and what it does in a sentence."""
    return rng.choice(_BODIES[_body_kind(path)])


_TEST_NAMES = ["test_login", "test_refund", "test_parse_empty", "test_timeout", "test_cache_expiry",
               "test_signup_flow", "test_invalid_token", "test_retry"]  # fmt: skip
_KEYWORDS = ["auth", "billing", "slow", "api", "parser", "cache", "smoke", "payment"]


def _path(rng: random.Random, *, root_ok: bool = True) -> str:
    r = rng.random()
    if root_ok and r < 0.2:
        return rng.choice(_ROOT_FILES)
    if root_ok and r < 0.4:  # a file at the top of the project, named bare ("open app.py")
        return f"{rng.choice(_STEMS)}{rng.choice(_EXTS)}"
    return f"{rng.choice(_DIRS)}/{rng.choice(_STEMS)}{rng.choice(_EXTS)}"


def _writable_path(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.25:
        return rng.choice(_WRITABLE_ROOT)
    ext = rng.choice([".py", ".py", ".ts", ".js", ".go", ".md", ".json", ".txt", ".rs"])
    stem = rng.choice(_STEMS + ["notes", "hello", "todo", "example", "scratch"])
    return f"{stem}{ext}" if r < 0.55 else f"{rng.choice(_DIRS)}/{stem}{ext}"


def _test_path(rng: random.Random) -> str:
    return f"{rng.choice(_TEST_DIRS)}/test_{rng.choice(_STEMS)}.py"


_SHELL_WORDS = {"ls", "git", "pytest", "grep", "head", "diff", "cat", "dump"}
_VERBS = {
    "open", "show", "read", "print", "display", "pull", "take", "view", "check", "give", "list", "run",
    "execute", "kick", "try", "create", "write", "save", "make", "overwrite", "put", "replace", "search",
    "find", "look", "test", "rerun", "let", "tell", "explain", "summarize",
}  # fmt: skip


def _polish(rng: random.Random, text: str) -> str:
    return polish(rng, text, verbs=_VERBS, shell_words=_SHELL_WORDS)


def _read_file(rng: random.Random) -> Request:
    p = _path(rng)
    r = rng.random()
    if r < 0.7:
        t = rng.choice([
            "open {p}", "show me {p}", "what's in {p}?", "let me see {p}", "read {p}", "print {p}",
            "display {p}", "I need to look at {p}", "pull up {p}", "what does {p} contain?",
            "take a look at {p}", "view {p}", "show {p}", "read through {p}", "dump {p}",
            "what does {p} say?", "check what's inside {p}",
        ])  # fmt: skip
        return t.format(p=p), {"path": p}
    a = rng.randint(1, 400)
    b = a + rng.choice([5, 10, 20, 25, 40, 60, 100])
    if r < 0.85:
        t = rng.choice(["show lines {a} to {b} of {p}", "{p}, lines {a}-{b}", "read {p} from line {a} to {b}",
                        "give me lines {a} through {b} in {p}", "print {p} between lines {a} and {b}"])  # fmt: skip
        return t.format(p=p, a=a, b=b), {"path": p, "start_line": a, "end_line": b}
    if r < 0.93:
        n = rng.choice([10, 20, 30, 50, 80])
        t = rng.choice(["first {n} lines of {p}", "show the top {n} lines of {p}", "head -n {n} {p}"])
        return t.format(p=p, n=n), {"path": p, "start_line": 1, "end_line": n}
    t = rng.choice(
        ["show {p} from line {a} on", "read {p} starting at line {a}", "{p} from line {a} to the end"]
    )
    return t.format(p=p, a=a), {"path": p, "start_line": a}


def _write_file(rng: random.Random) -> Request:
    p = _writable_path(rng)
    c, _ = _body(rng, p)
    shown = c.rstrip("\n")
    r = rng.random()
    if "\n" not in shown and r < 0.5:
        t = rng.choice(["create {p} containing `{c}`", "write `{c}` into {p}", "replace {p} with `{c}`",
                        "put `{c}` in {p}", "make {p} say `{c}`", "write {p} with the line `{c}`"])  # fmt: skip
    elif r < 0.8:  # the file's name first, its content after
        t = rng.choice([
            "create {p} with this content:\n{c}", "write this to {p}:\n{c}", "save the following as {p}:\n{c}",
            "make a new file {p} containing:\n{c}", "overwrite {p} with:\n{c}", "put this in {p}:\n{c}",
            "new file {p}:\n{c}", "write {p}:\n{c}",
        ])  # fmt: skip
    else:  # the content first, the file's name after
        t = rng.choice(["write this:\n{c}\nto {p}", "here's the content:\n{c}\nsave it as {p}",
                        "{c}\n^ put that in {p}"])  # fmt: skip
    return t.format(p=p, c=shown), {"path": p, "content": shown}


def _list_dir(rng: random.Random) -> Request:
    r = rng.random()
    if r < 0.15:
        t = rng.choice(["what's at the top level of the repo?", "list the project root", "ls",
                        "what files are in the root folder?", "show the root directory"])  # fmt: skip
        return t, {"path": "."}
    d = rng.choice(_DIRS + _TEST_DIRS)
    if r < 0.3:
        t = rng.choice(["show the whole tree under {d}", "list everything in {d} recursively",
                        "ls -R {d}", "list {d} including its subfolders"])  # fmt: skip
        return t.format(d=d), {"path": d, "recursive": True}
    t = rng.choice([
        "ls {d}", "list {d}", "what's inside {d}/?", "what files are under {d}?", "which files does {d} have?",
        "show me the {d} folder", "list the contents of {d}", "what do we have in {d}?", "ls {d}/",
    ])  # fmt: skip
    return t.format(d=d), {"path": d}


def _search_code(rng: random.Random) -> Request:
    x = rng.choice(_IDENTS + _TEXTS)
    r = rng.random()
    if r < 0.55:
        t = rng.choice([
            "grep for {x}", "search the code for {x}", "where do we use {x}?", "find all references to {x}",
            "find usages of {x}", "which files mention {x}?", "look for `{x}` in the codebase",
            "find every place that uses {x}", "search for \"{x}\"", "grep {x}",
        ])  # fmt: skip
        return t.format(x=x), {"pattern": x}
    if r < 0.75:
        d = rng.choice(_DIRS)
        t = rng.choice(
            ["look for {x} in {d}", "search {d} for {x}", "grep {x} under {d}/", "find {x} inside {d}"]
        )
        return t.format(x=x, d=d), {"pattern": x, "path": d}
    if r < 0.9:
        lang, glob = rng.choice(list(GLOBS.items()))
        t = rng.choice(["find {x} in the {lang} files", "search only {glob} files for {x}",
                        "grep {x} in {lang} code"])  # fmt: skip
        return t.format(x=x, lang=lang, glob=glob), {"pattern": x, "file_glob": glob}
    n = rng.choice([5, 10, 20, 50])
    t = rng.choice(["search for {x}, at most {n} results", "show me the first {n} matches for {x}",
                    "grep {x} and stop after {n} hits"])  # fmt: skip
    return t.format(x=x, n=n), {"pattern": x, "max_results": n}


def _cmdline(rng: random.Random) -> tuple[str, Args]:
    cmd, argv = rng.choice(_COMMANDS)
    args: Args = {"command": cmd}
    if argv:
        args["args"] = list(argv)
    return " ".join([cmd, *argv]), args


def _run_command(rng: random.Random) -> Request:
    line, args = _cmdline(rng)
    if rng.random() < 0.2:
        s = rng.choice([30, 90, 120, 300, 600, 900])
        t = rng.choice(["run `{line}` with a {s} second timeout", "run {line} and give it {s} seconds",
                        "execute `{line}`, timeout {s}s"])  # fmt: skip
        return t.format(line=line, s=s), {**args, "timeout": s}
    t = rng.choice(["run `{line}`", "execute {line}", "can you run `{line}`", "run {line}", "$ {line}", "please run {line}",
                    "kick off `{line}`", "try `{line}`"])  # fmt: skip
    return t.format(line=line), args


def _run_tests(rng: random.Random) -> Request:
    r = rng.random()
    if r < 0.35:
        t = rng.choice(["run the test suite", "do the tests pass?", "are the tests green?", "run pytest",
                        "run all the tests", "check whether the tests still pass", "test everything"])  # fmt: skip
        return t, {}
    if r < 0.6:
        p = rng.choice([_test_path(rng), rng.choice(_TEST_DIRS)])
        t = rng.choice(["run the tests in {p}", "run {p}", "pytest {p}", "just run {p}"])
        return t.format(p=p), {"path": p}
    if r < 0.8:
        k = rng.choice(_KEYWORDS + _TEST_NAMES)
        t = rng.choice(["run only the {k} tests", "run the tests matching {k}", "pytest -k {k}",
                        "rerun {k}"])  # fmt: skip
        return t.format(k=k), {"keyword": k}
    t = rng.choice(["run the suite and quit on the first failing test", "run the suite, fail fast",
                    "pytest -x", "run the tests but bail out on the first error"])  # fmt: skip
    return t, {"fail_fast": True}


def _git_status(rng: random.Random) -> Request:
    t = rng.choice([
        "git status", "what's the git status?", "which files have I modified?", "is my working tree clean?",
        "what branch am I on?", "any uncommitted changes?", "do I have untracked files?",
        "what's changed in the repo so far?", "show the status of the repo",
    ])  # fmt: skip
    return t, {}


def _git_diff(rng: random.Random) -> Request:
    r = rng.random()
    if r < 0.4:
        t = rng.choice(["show me the diff", "git diff", "what are my unstaged changes?",
                        "show what I've changed so far", "let me see the current diff"])  # fmt: skip
        return t, {}
    if r < 0.8:
        p = _path(rng)
        t = rng.choice(["what did I change in {p}?", "diff {p}", "git diff {p}", "show the changes to {p}"])
        return t.format(p=p), {"path": p}
    t = rng.choice(["show the staged diff", "git diff --staged", "what's in the staged changes?",
                    "diff of what I've staged"])  # fmt: skip
    return t, {"staged": True}


CALLS: dict[str, Callable[[random.Random], Request]] = {
    "read_file": _read_file,
    "write_file": _write_file,
    "list_dir": _list_dir,
    "search_code": _search_code,
    "run_command": _run_command,
    "run_tests": _run_tests,
    "git_status": _git_status,
    "git_diff": _git_diff,
}


def covers(tool: ToolSpec) -> bool:
    """Only the built-in tool itself: a user's own `read_file` with other parameters is not ours."""
    return CODING_TOOLS_BY_NAME.get(tool.name) == tool


def request(rng: random.Random, name: str, *, polish: bool = True) -> Request:
    text, args = CALLS[name](rng)
    return (_polish(rng, text) if polish else text), args


def pair(rng: random.Random, name: str) -> tuple[str, list[Args]] | None:
    """Two (sometimes three) calls of one tool asked for in one breath ("open a.py and b.py")."""
    if name == "read_file":
        r = rng.random()
        if r < 0.25:
            a, b, c = _path(rng), _path(rng), _path(rng)
            t = rng.choice(["open {a}, {b} and {c}", "read {a}, {b} and {c}", "show me {a}, {b} and {c}"])
            if len({a, b, c}) < 3:
                return None
            return _polish(rng, t.format(a=a, b=b, c=c)), [{"path": a}, {"path": b}, {"path": c}]
        a, b = _path(rng), _path(rng)
        if r < 0.4:
            n = rng.choice([10, 20, 30, 50])
            t = rng.choice(["first {n} lines of {a} and of {b}", "show the top {n} lines of {a} and {b}"])
            calls: list[Args] = [{"path": x, "start_line": 1, "end_line": n} for x in (a, b)]
            return (_polish(rng, t.format(a=a, b=b, n=n)), calls) if a != b else None
        t = rng.choice(["open {a} and {b}", "show me {a} and also {b}", "read {a} and {b}",
                        "I need {a} plus {b}", "let me see {a} and {b} side by side", "what's in {a} and {b}?",
                        "read both {a} and {b}", "cat {a} {b}"])  # fmt: skip
        calls = [{"path": a}, {"path": b}]
    elif name == "list_dir":
        if rng.random() < 0.25:
            return _three(rng, rng.sample(_DIRS + _TEST_DIRS, 3), "path",
                          ["ls {a}, {b} and {c}", "list {a}, {b} and {c}", "what's in {a}, {b} and {c}?"])  # fmt: skip
        a, b = rng.sample(_DIRS + _TEST_DIRS, 2)
        t = rng.choice(["ls {a} and {b}", "list {a} and {b}", "what's inside {a} and inside {b}?",
                        "show me the {a} and {b} folders", "what files are in {a} and {b}?"])  # fmt: skip
        calls = [{"path": a}, {"path": b}]
    elif name == "search_code":
        if rng.random() < 0.25:
            return _three(rng, rng.sample(_IDENTS + _TEXTS, 3), "pattern",
                          ["grep for {a}, {b} and {c}", "find usages of {a}, {b} and {c}",
                           "search the code for {a}, {b} and {c}, separately"])  # fmt: skip
        a, b = rng.sample(_IDENTS + _TEXTS, 2)
        t = rng.choice(["grep for {a} and for {b}", "find usages of {a} and of {b}",
                        "search the code for {a}, and separately for {b}", "where are {a} and {b} used?",
                        "look for both {a} and {b}"])  # fmt: skip
        calls = [{"pattern": a}, {"pattern": b}]
    elif name == "run_command":
        (la, ca), (lb, cb) = _cmdline(rng), _cmdline(rng)
        t = rng.choice(["run `{a}` and `{b}`", "execute `{a}` as well as `{b}`", "run {a}, then {b}"])
        a, b, calls = la, lb, [ca, cb]
    elif name == "write_file":
        a, b = _writable_path(rng), _writable_path(rng)
        ca, cb = (rng.choice(_LINES.get(_body_kind(p), _LINES[".txt"])) for p in (a, b))
        t = rng.choice(["write `{ca}` to {a} and `{cb}` to {b}", "create {a} containing `{ca}` and {b} containing `{cb}`",
                        "put '{ca}' in {a} and '{cb}' in {b}", 'write "{ca}" into {a}, and "{cb}" into {b}',
                        "save `{ca}` as {a} and `{cb}` as {b}"])  # fmt: skip
        return (
            (
                _polish(rng, t.format(a=a, b=b, ca=ca, cb=cb)),
                [{"path": a, "content": ca}, {"path": b, "content": cb}],
            )
            if a != b
            else None
        )
    elif name == "run_tests":
        if rng.random() < 0.25:
            paths = [_test_path(rng) for _ in range(3)]  # _three drops repeats
            return _three(
                rng, paths, "path", ["run {a}, {b} and {c}", "pytest {a}, {b} and {c}, one run each"]
            )
        a, b = _test_path(rng), _test_path(rng)
        t = rng.choice(
            ["run {a} and {b}", "run the tests in {a} and in {b}, separately", "pytest {a}, then pytest {b}"]
        )
        calls = [{"path": a}, {"path": b}]
    elif name == "git_diff":
        t = rng.choice(["show both the staged and the unstaged diff", "what have I staged, and what's still unstaged?",
                        "git diff and git diff --staged"])  # fmt: skip
        return _polish(rng, t), [{}, {"staged": True}]
    else:
        return None
    if calls[0] == calls[1]:
        return None
    return _polish(rng, t.format(a=a, b=b)), calls


def _three(
    rng: random.Random, values: list[str], param: str, templates: list[str]
) -> tuple[str, list[Args]] | None:
    """One tool three times in one message ("ls src, docs and tests"): a call per value."""
    if len(set(values)) < 3:
        return None
    a, b, c = values
    return _polish(rng, rng.choice(templates).format(a=a, b=b, c=c)), [{param: v} for v in values]


def explain(rng: random.Random) -> tuple[str, str, str, str]:
    """ "What does this file do?": the agent reads it, then answers from what it read.

    Returns the request, the file's path, its body (the tool result) and the answer."""
    p = _path(rng)
    while _body_kind(p) == ".txt" and not p.endswith(".txt"):  # a to-do list is no Cargo.toml
        p = _path(rng)
    body, does = _body(rng, p)
    t = rng.choice([
        "what does {p} do?", "explain {p} to me", "summarize {p}", "what is {p} for?", "read {p} and explain it",
        "give me a one-line summary of {p}", "what's the point of {p}?", "look at {p} and tell me what it does",
        "briefly, what does {p} contain?", "can you explain what {p} does?",
    ])  # fmt: skip
    answer = rng.choice(["{p} {does}.", "It {does}.", "In short: {p} {does}."])
    return _polish(rng, t.format(p=p)), p, body, answer.format(p=p, does=does)


def join(rng: random.Random, texts: list[str]) -> str | None:
    """Several unpolished requests in one message (see :func:`tooltune.data.polish.join`)."""
    return join_requests(rng, texts, verbs=_VERBS, shell_words=_SHELL_WORDS)


def result(rng: random.Random, name: str, args: Args) -> tuple[str, str]:
    """A tool result in the text form the real tool returns, and a short answer that uses it."""
    if name == "read_file":
        body, _ = _body(rng, args["path"])
        return body, f"Here is {args['path']}:\n\n```\n{body}```"
    if name == "write_file":
        c = args["content"]
        return (
            f"created {args['path']} ({len(c.encode())} bytes, {len(c.splitlines())} lines)",
            f"Done — I wrote {args['path']}.",
        )
    if name == "list_dir":
        entries = _entries(rng, args["path"])
        return "\n".join(entries), f"{args['path']} has {len(entries)} entries: {', '.join(entries)}."
    if name == "search_code":
        hits = [
            f"{_path(rng, root_ok=False)}:{rng.randint(1, 300)}: {args['pattern']}"
            for _ in range(rng.randint(0, 3))
        ]
        if not hits:
            return f"no matches for {args['pattern']!r}", f"Nothing in the project matches {args['pattern']}."
        files = sorted({h.split(":")[0] for h in hits})
        return "\n".join(hits), f"{args['pattern']} appears in {', '.join(files)}."
    if name == "run_command":
        argv = " ".join([args["command"], *args.get("args", [])])
        return f"$ {argv}\nexit code 0\n(no output)", f"`{argv}` finished with exit code 0 and no output."
    if name == "run_tests":
        return _pytest_tail(rng, failing=None)
    if name == "git_status":
        files = rng.sample([_path(rng) for _ in range(4)], 2)
        out = f"## main...origin/main\n M {files[0]}\n?? {files[1]}"
        return out, f"On main: {files[0]} is modified and {files[1]} is untracked."
    diff_path = args.get("path") or _path(rng, root_ok=False)
    out = f"diff --git a/{diff_path} b/{diff_path}\n@@ -3,1 +3,1 @@\n-DEBUG = True\n+DEBUG = False"
    return out, f"One change in {diff_path}: DEBUG goes from True to False."


def _entries(rng: random.Random, d: str) -> list[str]:
    names = rng.sample(_STEMS, 3)
    ext = rng.choice(_EXTS)
    prefix = "" if d in (".", "") else d.rstrip("/") + "/"
    return [f"{prefix}{n}{ext}" for n in names]


def _pytest_tail(rng: random.Random, failing: str | None) -> tuple[str, str]:
    """What `run_tests` returns: the command, its exit code, pytest's quiet summary."""
    passed = rng.randint(5, 80)
    head = "$ python -m pytest -q --color=no -p no:cacheprovider\n"
    if failing is None and rng.random() < 0.5:
        return f"{head}exit code 0\n{'.' * min(passed, 40)}\n{passed} passed in 1.{rng.randint(10, 99)}s", (
            f"All {passed} tests passed."
        )
    failing = failing or f"{_test_path(rng)}::{rng.choice(_TEST_NAMES)}"
    out = f"{head}exit code 1\nFAILED {failing} - AssertionError\n1 failed, {passed} passed in 2.{rng.randint(10, 99)}s"
    return out, f"One test fails: {failing}; {passed} pass."


class FollowUp(NamedTuple):
    """Calls in order (tool name, args), the tool results after each call but the last, and the user
    messages before each call (the first is the opening request)."""

    calls: list[tuple[str, Args]]
    results: list[str]
    asks: list[str]


def follow_up(rng: random.Random) -> FollowUp:
    """A turn whose request points into the previous tool result ("open the second one")."""
    kind = rng.choice(["ls_open", "grep_open", "test_open", "test_rerun", "status_diff"])
    if kind == "ls_open":
        d = rng.choice(_DIRS)
        first, args = rng.choice([("ls {d}", {"path": d}), ("what's in {d}?", {"path": d})])
        entries = _entries(rng, d)
        i = rng.randrange(len(entries))
        name = entries[i].rsplit("/", 1)[-1]
        stem = name.rsplit(".", 1)[0]
        ordinal = ["first", "second", "third"][i]
        ask = rng.choice(
            [f"open {name}", f"show me the {stem} one", f"read the {ordinal} file", f"what's in {name}?"]
        )
        return FollowUp([("list_dir", {"path": d}), ("read_file", {"path": entries[i]})],
                        ["\n".join(entries)], [_polish(rng, first.format(d=d)), ask])  # fmt: skip
    if kind == "grep_open":
        x = rng.choice(_IDENTS)
        p, line = _path(rng, root_ok=False), rng.randint(2, 400)
        hit = f"{p}:{line}: {x}"
        ask = rng.choice(["open that file", "show me that file", "read the file it's in", "open it"])
        return FollowUp([("search_code", {"pattern": x}), ("read_file", {"path": p})], [hit],
                        [_polish(rng, f"find usages of {x}"), ask])  # fmt: skip
    if kind in ("test_open", "test_rerun"):
        tp, tn = _test_path(rng), rng.choice(_TEST_NAMES)
        out, _ = _pytest_tail(rng, failing=f"{tp}::{tn}")
        opening = rng.choice(["run the tests", "do the tests pass?", "run pytest"])
        if kind == "test_open":
            ask = rng.choice(
                [
                    "open the failing test's file",
                    "open the test that failed",
                    "read the file with the failure",
                ]
            )
            return FollowUp(
                [("run_tests", {}), ("read_file", {"path": tp})], [out], [_polish(rng, opening), ask]
            )
        ask = rng.choice(["rerun just that one test", "run only the failing test again"])
        return FollowUp(
            [("run_tests", {}), ("run_tests", {"keyword": tn})], [out], [_polish(rng, opening), ask]
        )
    p = _path(rng, root_ok=False)
    out = f"## main...origin/main\n M {p}"
    ask = rng.choice(["what did I change there?", "show me the diff of that file", "diff the modified file"])
    return FollowUp([("git_status", {}), ("git_diff", {"path": p})], [out],
                    [_polish(rng, rng.choice(["git status", "what have I modified?"])), ask])  # fmt: skip
