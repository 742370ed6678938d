from shared.primus import SERVER_CLOSE, PrimusControl, id_text, parse_control, ping_text, pong_text


def test_ping_and_pong_texts():
    assert ping_text(1795565400866) == "primus::ping::1795565400866"
    assert pong_text("1795565400866") == "primus::pong::1795565400866"


def test_parse_control_kinds():
    assert parse_control("primus::ping::17") == PrimusControl("ping", "17")
    assert parse_control("primus::pong::17") == PrimusControl("pong", "17")
    assert parse_control(SERVER_CLOSE) == PrimusControl("server_close")
    assert parse_control(id_text()) == PrimusControl("id", "")


def test_ordinary_strings_are_not_control():
    assert parse_control("hello") is None
    assert parse_control("primus::unknown::x") is None
    assert parse_control("xprimus::ping::1") is None
