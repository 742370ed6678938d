import math
from datetime import UTC, datetime

import pytest

from shared.ejson import UNDEFINED, dumps, loads
from shared.protocol_error import ProtocolError


def test_binary_round_trip():
    text = dumps({"body": b'{"image":"x"}'})
    assert text == '{"body":{"$binary":"eyJpbWFnZSI6IngifQ=="}}'
    assert loads(text) == {"body": b'{"image":"x"}'}


def test_date_round_trip_in_milliseconds():
    when = datetime(2026, 11, 25, 1, 2, 3, 456000, tzinfo=UTC)
    text = dumps([when])
    assert text == '[{"$date":1795568523456}]'
    assert loads(text) == [when]


def test_escape_for_user_keys_starting_with_dollar():
    obj = {"$binary": "not really binary", "x": 1}
    text = dumps(obj)
    assert text == '{"$escape":{"$binary":"not really binary","x":1}}'
    assert loads(text) == obj
    # a single-key user object that would otherwise look like a marker
    assert loads(dumps({"$date": 5})) == {"$date": 5}


def test_escape_values_are_still_decoded():
    assert loads('{"$escape":{"$a":{"$binary":"AA=="}}}') == {"$a": b"\x00"}


def test_undefined_is_dropped_from_objects_and_null_in_arrays():
    assert dumps({"a": UNDEFINED, "b": 1}) == '{"b":1}'
    assert dumps([UNDEFINED]) == "[null]"


def test_inf_nan():
    assert dumps([math.inf, -math.inf]) == '[{"$InfNaN":1},{"$InfNaN":-1}]'
    assert math.isnan(loads('{"$InfNaN":0}'))


def test_non_ascii_text_kept():
    assert loads(dumps("grüße")) == "grüße"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"$binary":"***"}', r"\$binary is not valid base64"),
        ('{"$binary":5}', r"\$binary value is not a base64 string"),
        ('{"$date":"yesterday"}', r"\$date value is not a number"),
        ('{"$escape":[1]}', r"\$escape value is not an object"),
        ('{"$InfNaN":7}', r"\$InfNaN"),
    ],
)
def test_malformed_input_names_the_problem(text, message):
    with pytest.raises(ProtocolError, match=message):
        loads(text)


def test_unencodable_value():
    with pytest.raises(ProtocolError, match="cannot encode a value of type object"):
        dumps(object())


def test_str_subclass_keys_and_values_encode():
    class Key(str):
        pass

    assert dumps({Key("Content-Type"): Key("text/plain")}) == '{"Content-Type":"text/plain"}'


def test_non_string_key_is_refused():
    with pytest.raises(ProtocolError, match="keys must be strings"):
        dumps({1: "x"})
