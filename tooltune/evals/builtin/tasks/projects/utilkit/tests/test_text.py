from utilkit.text import slugify, title_case, truncate


def test_slugify_simple():
    assert slugify("Release Notes") == "release-notes"


def test_slugify_strips_edge_punctuation():
    assert slugify("  Hello, World!  ") == "hello-world"


def test_truncate():
    assert truncate("short") == "short"
    assert truncate("abcdefghij", width=8) == "abcde..."


def test_title_case():
    assert title_case("the lord OF the rings") == "The Lord of the Rings"


def test_title_case_capitalises_a_leading_small_word():
    assert title_case("a tale of two cities") == "A Tale of Two Cities"
