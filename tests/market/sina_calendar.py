"""Sina's trade-date file (``klc_td_sh.txt``) built from a list of dates, for akshare's real decoder.

Sina publishes the calendar as ``var datelist="<code>";`` where ``<code>`` is its kline encoding:
characters of the base64 alphabet carrying 6 bits each, read least significant bit first. akshare's
``tool_trade_date_hist_sina`` evaluates Sina's own decoder (``akshare.stock.cons.hk_js_decode``) in
py_mini_racer, so a fixture has to be a stream that decoder accepts. This module writes one, following
what the decoder reads (its branch ``_139``), so akshare's own parsing runs in the tests:

* a header: 12 bits ``139`` (the trade-date format) and 6 bits ``63`` (format version 0);
* 18 bits: the first date, as days after 1990-12-19 (day 0, 7657 days after 1970-01-01);
* 18 bits: the last date, the same way; the decoder stops once it reaches it;
* then, walking the weekdays from the first date (the decoder skips Saturdays and Sundays itself),
  one run length per closed weekday: how many trading weekdays follow it. The first run counts the
  first date itself. Each run length is ``3 * width`` bits, ``width`` starting at 0 and changed
  before a run by a flag bit and a signed unary delta (sign bit, then ``|delta| - 1`` ones, a zero).

Weekend dates cannot be expressed at all: the format has no way to name one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_DAY_ZERO = date(1970, 1, 1) + timedelta(days=7657)
_TRADE_DATES_FORMAT = 139


class _Bits:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def number(self, value: int, width: int) -> None:
        if not 0 <= value < 2**width:
            raise ValueError(f"{value} does not fit in {width} bits")
        self.bits.extend((value >> position) & 1 for position in range(width))

    def flag(self, on: bool) -> None:
        self.bits.append(int(on))

    def unary(self, delta: int) -> None:
        if delta == 0:
            raise ValueError("the format has no zero delta: leave the flag off instead")
        self.flag(delta > 0)
        self.bits.extend([1] * (abs(delta) - 1) + [0])

    def text(self) -> str:
        padded = self.bits + [0] * (-len(self.bits) % 6)
        return "".join(
            _ALPHABET[sum(bit << position for position, bit in enumerate(padded[start : start + 6]))]
            for start in range(0, len(padded), 6)
        )


def _weekdays(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        if day.weekday() < 5:
            yield day
        day += timedelta(days=1)


def _runs(dates: list[date]) -> list[int]:
    """The first run of trading weekdays, then per closed weekday the trading weekdays after it."""
    trading = set(dates)
    runs = [0]
    for day in _weekdays(dates[0], dates[-1]):
        if day in trading:
            runs[-1] += 1
        else:
            runs.append(0)
    return runs


def encode_trade_dates(trade_dates: Iterable[date]) -> str:
    dates = sorted(set(trade_dates))
    if not dates or any(day.weekday() >= 5 for day in dates):
        raise ValueError("Sina's format carries weekdays only, and at least one")
    stream = _Bits()
    stream.number(_TRADE_DATES_FORMAT, 12)
    stream.number(63, 6)
    stream.number((dates[0] - _DAY_ZERO).days, 18)
    stream.number((dates[-1] - _DAY_ZERO).days, 18)
    width = 0
    for length in _runs(dates):
        needed = max(width, -(-length.bit_length() // 3))
        stream.flag(needed != width)
        if needed != width:
            stream.unary(needed - width)
            width = needed
        stream.number(length, 3 * width)
    return stream.text()


def sina_trade_dates_body(trade_dates: Iterable[date]) -> str:
    """The file as Sina serves it: a JavaScript assignment akshare splits on ``=`` and ``;``."""
    return f'var datelist="{encode_trade_dates(trade_dates)}";\n'
