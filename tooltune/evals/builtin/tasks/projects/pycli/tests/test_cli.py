from pingr.cli import build_parser, main, read_urls


def test_parser_dry_run():
    args = build_parser().parse_args(["urls.txt", "--dry-run"])
    assert args.dry_run is True
    assert args.urls_file == "urls.txt"


def test_read_urls_skips_comments(tmp_path):
    f = tmp_path / "urls.txt"
    f.write_text("# staging\nhttps://a.example\n\nhttps://b.example\n")
    assert read_urls(f) == ["https://a.example", "https://b.example"]


def test_dry_run_prints_urls(tmp_path, capsys):
    f = tmp_path / "urls.txt"
    f.write_text("https://a.example\n")
    assert main([str(f), "--dry-run", "--timeout", "3"]) == 0
    assert "would check https://a.example (timeout 3.0s)" in capsys.readouterr().out


def test_missing_file_argument():
    assert main([]) == 2
