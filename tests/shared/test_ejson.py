import json
import math
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


# --- cross-checks against npm ejson 2.2.x, the parser snyk-broker's Primus uses ----------------

NODE_MODULES = Path(__file__).resolve().parents[2] / ".cache" / "snyk-broker" / "node_modules"


def node(script: str) -> Any:
    if shutil.which("node") is None or not (NODE_MODULES / "ejson").is_dir():
        pytest.skip("node or the snyk-broker npm install (ejson) is not available")
    result = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, timeout=30, cwd=NODE_MODULES
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.interop
def test_node_ejson_reads_what_we_write():
    when = datetime(2026, 11, 25, 1, 2, 3, 456000, tzinfo=UTC)
    ours = dumps(
        {
            "body": b"\x00\xff\x10",
            "when": when,
            "user": {"$date": 5},
            "dollar": {"$foo": 1, "bar": 2},
            "list": [1, "a", None],
        }
    )
    seen = node(
        "const EJSON = require('./ejson');"
        f"const v = EJSON.parse({json.dumps(ours)});"
        "console.log(JSON.stringify({binary: v.body instanceof Uint8Array, body: Array.from(v.body),"
        " when: v.when.getTime(), user: v.user, dollar: v.dollar, list: v.list}));"
    )
    assert seen == {
        "binary": True,
        "body": [0, 255, 16],
        "when": 1795568523456,
        "user": {"$date": 5},
        "dollar": {"$foo": 1, "bar": 2},
        "list": [1, "a", None],
    }


@pytest.mark.interop
def test_we_read_what_node_ejson_writes():
    text = node(
        "const EJSON = require('./ejson');"
        "console.log(JSON.stringify(EJSON.stringify({body: Buffer.from([0, 255, 1]),"
        " when: new Date(1795568523456), user: {$date: 5}, gone: undefined, inf: Infinity,"
        " nested: [{$binary: 'not binary'}]})));"
    )
    value = loads(text)
    assert value["body"] == b"\x00\xff\x01"
    assert value["when"] == datetime(2026, 11, 25, 1, 2, 3, 456000, tzinfo=UTC)
    assert value["user"] == {"$date": 5}
    assert "gone" not in value
    assert value["inf"] == math.inf
    assert value["nested"] == [{"$binary": "not binary"}]
