import json

from tooltune.json_spans import json_spans


def test_finds_objects_and_arrays_with_their_positions() -> None:
    text = 'Call this: {"name": "f", "arguments": {"x": 1}} then [1, 2] done'
    spans = json_spans(text)
    assert [v for _, _, v in spans] == [{"name": "f", "arguments": {"x": 1}}, [1, 2]]
    for start, end, value in spans:
        assert json.loads(text[start:end]) == value
    assert text[spans[1][0] : spans[1][1]] == "[1, 2]"


def test_skips_brace_text_that_is_not_json_and_keeps_scanning() -> None:
    # "{not json}" starts like JSON; the object inside it after the failed parse is still found
    assert [v for _, _, v in json_spans('{not json} {"a": [1]}')] == [{"a": [1]}]
    assert json_spans("no json here") == []
    assert json_spans("") == []


def test_nested_values_count_once_as_the_outer_value() -> None:
    assert [v for _, _, v in json_spans('[{"a": 1}, {"b": 2}]')] == [[{"a": 1}, {"b": 2}]]
