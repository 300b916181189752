"""Settings: built-in defaults, then config/default.ini, then PINGR_* environment variables."""

import configparser
import os
from pathlib import Path

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config" / "default.ini"
ENV_PREFIX = "PINGR_"

DEFAULTS = {
    "timeout": 30,
    "retries": 4,
    "backoff": 1.5,
    "max_latency_ms": 800,
    "user_agent": "pingr",
}


def _coerce(key, raw):
    """Turn a string from a file or the environment into the type of the default."""
    kind = type(DEFAULTS[key])
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    return raw


def load_config(path=None, env=None):
    """Return the merged settings as a dict.

    Later sources win: DEFAULTS < the [pingr] section of the ini file < PINGR_<KEY> variables.
    Unknown keys in the file are ignored.
    """
    env = os.environ if env is None else env
    settings = dict(DEFAULTS)
    path = Path(path) if path else DEFAULT_CONFIG_PATH
    if path.exists():
        parser = configparser.ConfigParser()
        parser.read(path)
        if parser.has_section("pingr"):
            for key, raw in parser.items("pingr"):
                if key in DEFAULTS:
                    settings[key] = _coerce(key, raw)
    for key in DEFAULTS:
        name = ENV_PREFIX + key.upper()
        if name in env:
            settings[key] = _coerce(key, env[name])
    return settings
