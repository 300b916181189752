from pingr.config import DEFAULTS, load_config


def test_defaults_without_file(tmp_path):
    settings = load_config(tmp_path / "missing.ini", env={})
    assert settings == DEFAULTS


def test_default_timeout():
    assert DEFAULTS["timeout"] == 30


def test_file_overrides_defaults(tmp_path):
    ini = tmp_path / "p.ini"
    ini.write_text("[pingr]\nretries = 9\nunknown = 1\n")
    settings = load_config(ini, env={})
    assert settings["retries"] == 9
    assert "unknown" not in settings


def test_env_overrides_file(tmp_path):
    ini = tmp_path / "p.ini"
    ini.write_text("[pingr]\ntimeout = 12\n")
    settings = load_config(ini, env={"PINGR_TIMEOUT": "5"})
    assert settings["timeout"] == 5
