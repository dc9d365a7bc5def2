"""Query parameters: odd input is refused with a message (a 400), never a 500."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpuhub.hub.gpu_usage.params import WINDOW_HELP, WINDOW_MAX, InvalidParameter, parse_window


def test_a_missing_window_means_all_of_the_history():
    assert parse_window(None) == WINDOW_MAX


@pytest.mark.parametrize("raw, seconds", [("60", 60), ("3600", 3600), ("0900", 900)])
def test_whole_seconds_in_range(raw, seconds):
    assert parse_window(raw) == seconds


@pytest.mark.parametrize("raw", [
    "²", "60²", "٣٠٠", "６０", "𝟔𝟎",  # Unicode digits: str.isdigit() says yes, int() says no or reads them
    "9" * 5000, "9" * 7, "99999",  # huge: past Python's digit limit, or just out of range
    "", " ", "-5", "+300", " 300", "300 ", "300.0", "1e3", "0x100", "abc", "59", "3601", "\x00",
])
def test_odd_input_is_refused_with_what_is_allowed(raw):
    with pytest.raises(InvalidParameter) as refused:
        parse_window(raw)
    message = str(refused.value)
    assert message.startswith(WINDOW_HELP)
    assert len(message) < len(WINDOW_HELP) + 60  # the input is quoted, cut short


@given(st.text(max_size=20))
def test_any_text_is_a_number_in_range_or_a_clear_refusal(raw):
    try:
        seconds = parse_window(raw)
    except InvalidParameter as refused:
        assert WINDOW_HELP in str(refused)
    else:
        assert raw.isascii() and 60 <= seconds <= 3600
