"""Voucher codes: 65 bits from `secrets`, no 0/O/1/I, typed in any case,
with or without dashes."""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest

from rewards import codes
from rewards.codes import ALPHABET, code_format, code_new, code_normalize
from rewards.models import Voucher
from rewards.services import voucher_issue
from tests.helpers import make_reward


def test_the_alphabet_has_no_lookalikes():
    assert len(ALPHABET) == len(set(ALPHABET)) == 32
    assert not set("01OI") & set(ALPHABET)
    assert set(ALPHABET) <= set("23456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def test_a_code_carries_at_least_64_bits():
    assert codes.LENGTH * math.log2(len(ALPHABET)) >= 64
    assert codes.BITS >= 64
    code = code_new()
    assert len(code) == codes.LENGTH == 13
    assert set(code) <= set(ALPHABET)


def test_codes_use_the_whole_alphabet_evenly():
    # 2,000 codes, 26,000 symbols: each of the 32 expected ~812 times. A
    # generator that skipped symbols or favoured some would fall far outside.
    counts = Counter("".join(code_new() for _ in range(2000)))
    assert set(counts) == set(ALPHABET)
    assert all(600 < n < 1050 for n in counts.values()), counts
    assert len({code_new() for _ in range(5000)}) == 5000


def test_codes_come_from_secrets(monkeypatch):
    calls = []
    real = codes.secrets.choice
    monkeypatch.setattr(codes.secrets, "choice", lambda seq: calls.append(seq) or real(seq))
    code_new()
    assert len(calls) == 13 and all(seq == ALPHABET for seq in calls)


def test_codes_are_shown_in_groups():
    assert code_format("ABCDEFGHJKLMN") == "ABCD-EFGH-JKLMN"
    assert re.fullmatch(r"\w{4}-\w{4}-\w{5}", code_format(code_new()))


@pytest.mark.parametrize(
    "typed",
    [
        "ABCD-EFGH-JKLMN",
        "abcd-efgh-jklmn",
        "ABCDEFGHJKLMN",
        "abcdefghjklmn",
        " ABCD EFGH JKLMN ",
        "AbCd-EfGhJkLmN",
    ],
)
def test_typed_codes_are_read_in_any_case_with_or_without_dashes(typed):
    assert code_normalize(typed) == "ABCDEFGHJKLMN"


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "ABCD-EFGH-JKLM",
        "ABCD-EFGH-JKLMNP",
        "ABCD-EFGH-JKLM0",
        "ABCD-EFGH-JKLMO",
        "ABCD-EFGH-JKLM1",
        "ABCD-EFGH-JKLMI",
        "ABCD_EFGH_JKLMN",
        "ÅBCD-EFGH-JKLMN",
        "A" * 41,
    ],
)
def test_what_cannot_be_a_code_is_refused(typed):
    assert code_normalize(typed) is None


@pytest.mark.django_db
def test_vouchers_get_distinct_stored_codes(make_member):
    member = make_member()
    reward = make_reward()
    vouchers = [voucher_issue(member=member, reward=reward, source="gift") for _ in range(50)]
    stored = set(Voucher.objects.filter(member=member).values_list("code", flat=True))
    assert len(stored) == 50
    assert all(code_normalize(code) == code for code in stored)
    assert {v.code for v in vouchers} == stored
