import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personalization.identity import pseudonymize, sign_token, verify_token

KEY = b"k" * 32
PSEUDO = pseudonymize(b"pepper", "541312140")
NOW = 1_800_000_000


def test_pseudonyms_are_stable_keyed_and_hide_the_raw_id() -> None:
    assert pseudonymize(b"pepper", "541312140") == PSEUDO
    assert pseudonymize(b"other", "541312140") != PSEUDO
    assert "541312140" not in PSEUDO
    assert len(PSEUDO) == 64


def test_a_valid_token_proves_its_pseudonym() -> None:
    assert verify_token(KEY, sign_token(KEY, PSEUDO, NOW + 60), NOW) == PSEUDO


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "garbage",
        "v1.abc.123.sig",
        sign_token(KEY, PSEUDO, NOW - 1),  # expired
        sign_token(b"wrong" * 8, PSEUDO, NOW + 60),  # signed with another key
        sign_token(KEY, PSEUDO, NOW + 60)[:-2] + "AA",  # tampered signature
        sign_token(KEY, PSEUDO, NOW + 60).replace(PSEUDO, pseudonymize(b"pepper", "someone-else")),  # swapped id
        sign_token(KEY, PSEUDO, NOW + 60).replace(f".{NOW + 60}.", f".{NOW + 10**6}."),  # extended expiry
        "v1." + "x" * 300,
    ],
)
def test_bad_tokens_prove_nothing(token: str | None) -> None:
    assert verify_token(KEY, token, NOW) is None


def test_tokens_refuse_raw_ids() -> None:
    with pytest.raises(ValueError, match="pseudonymous"):
        sign_token(KEY, "541312140", NOW)


def test_a_segment_cookie_names_its_segment_for_its_model_version_only() -> None:
    from personalization.identity import sign_segment, verify_segment

    cookie = sign_segment(KEY, 3, "v1")
    assert verify_segment(KEY, cookie, "v1") == 3
    assert verify_segment(KEY, cookie, "v2") is None  # another model version's segments mean other things
    assert verify_segment(b"other" * 8, cookie, "v1") is None
    assert verify_segment(KEY, cookie.replace("s1.3.", "s1.4."), "v1") is None
    for junk in (None, "", "s1.x.y", "s1.3", "x" * 100):
        assert verify_segment(KEY, junk, "v1") is None


# -- hostile spellings of numbers (issue 21, finding 6) ---------------------------------------------------

SUPERSCRIPT_TWO = "\u00b2"  # "²": str.isdigit() says yes, int() raises


@pytest.mark.parametrize(
    "expiry",
    [
        f"{NOW + 60}{SUPERSCRIPT_TWO}",
        SUPERSCRIPT_TWO * 10,
        "\u0661\u0662\u0663",  # Arabic-Indic digits: int() reads them, but they are not the signed spelling
        "\uff11\uff12\uff13",  # full-width digits
        f"0{NOW + 60}",  # a leading zero: another spelling of the signed number
        f"+{NOW + 60}",
        f" {NOW + 60}",
    ],
)
def test_tokens_with_a_non_canonical_expiry_prove_nothing_and_never_raise(expiry: str) -> None:
    valid = sign_token(KEY, PSEUDO, NOW + 60)
    token = valid.replace(f".{NOW + 60}.", f".{expiry}.")
    assert verify_token(KEY, token, NOW) is None


def test_a_leading_zero_does_not_reuse_the_signature_of_the_number() -> None:
    _, pseudonym, expiry, signature = sign_token(KEY, PSEUDO, NOW + 60).split(".")
    assert verify_token(KEY, f"v1.{pseudonym}.{expiry}.{signature}", NOW) == PSEUDO
    assert verify_token(KEY, f"v1.{pseudonym}.0{expiry}.{signature}", NOW) is None
    assert verify_token(KEY, f"v1.{pseudonym}.00{expiry}.{signature}", NOW) is None


def test_a_pseudonym_with_a_trailing_newline_proves_nothing() -> None:
    valid = sign_token(KEY, PSEUDO, NOW + 60)
    assert verify_token(KEY, valid.replace(PSEUDO, PSEUDO + "\n"), NOW) is None


@pytest.mark.parametrize("segment", [SUPERSCRIPT_TWO, f"3{SUPERSCRIPT_TWO}", "03", "\u0663", "+3", "3 "])
def test_segment_cookies_with_a_non_canonical_number_name_no_segment(segment: str) -> None:
    from personalization.identity import sign_segment, verify_segment

    cookie = sign_segment(KEY, 3, "v1")
    assert verify_segment(KEY, cookie.replace("s1.3.", f"s1.{segment}."), "v1") is None


@given(st.text(max_size=120), st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_token_and_segment_parsing_never_raise_on_any_text(text: str, signature: str) -> None:
    from personalization.identity import verify_segment

    # Whatever a browser sends, parsing answers "nobody" or a pseudonym: never an exception (a 500).
    for token in (text, f"v1.{PSEUDO}.{text}.{signature}", f"v1.{text}.{NOW + 60}.{signature}"):
        assert verify_token(KEY, token, NOW) in (None, PSEUDO)
    for cookie in (text, f"s1.{text}.{signature}", f"s1.3.{text}"):
        assert verify_segment(KEY, cookie, "v1") in (None, 3)
