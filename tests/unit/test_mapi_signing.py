"""Signing: the canonical string, MD5 against a by-hand computation, RSA, verify, key loading."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import given
from hypothesis import strategies as st

from worker.domain.errors import SigningError
from worker.mapi import sign, signing_string, verify
from worker.mapi.keys import (
    KeyFormatError,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
)

# One throwaway key pair per test module, generated in memory (never a file).
_PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=1024)
PRIVATE_PEM = _PRIVATE.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
)
PUBLIC_PEM = _PRIVATE.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
MD5_KEY = "8q0yqbv0vfwm0qajf4mq2k3aq5c2v7ze"  # test key, not a real merchant's

# Seed 000's request parameters (refund_fastpay_by_platform_nopwd).
SEED_000 = {
    "service": "refund_fastpay_by_platform_nopwd",
    "partner": "2222221624104006",
    "_input_charset": "UTF-8",
    "sign_type": "MD5",
    "notify_url": "http://www.test.com/admin/api/refund/alipay/notify_url.php",
    "dback_notify_url": "http://www.test.com/admin/api/refund/alipay/notify_url.php",
    "batch_no": "2016081818103",
    "refund_date": "2016-08-18 18:49:51",
    "batch_num": "1",
    "detail_data": "2016081821001004270231872174^0.01^协商退款",
    "use_freeze_amount": "N",
    "return_type": "xml",
}
# The same set written out by hand: keys sorted, raw values, no sign/sign_type.
SEED_000_STRING = (
    "_input_charset=UTF-8"
    "&batch_no=2016081818103"
    "&batch_num=1"
    "&dback_notify_url=http://www.test.com/admin/api/refund/alipay/notify_url.php"
    "&detail_data=2016081821001004270231872174^0.01^协商退款"
    "&notify_url=http://www.test.com/admin/api/refund/alipay/notify_url.php"
    "&partner=2222221624104006"
    "&refund_date=2016-08-18 18:49:51"
    "&return_type=xml"
    "&service=refund_fastpay_by_platform_nopwd"
    "&use_freeze_amount=N"
)
# Seed 001's password-refund example (a GBK merchant).
SEED_001 = {
    "service": "refund_fastpay_by_platform_pwd",
    "partner": "2088101008267254",
    "seller_email": "Jier1105@alitest.com",
    "notify_url": "http://api.test.alipay.net/atinterface/receive_notify.htm",
    "refund_date": "2011-01-12 11:21:00",
    "batch_no": "201101120001",
    "batch_num": "1",
    "detail_data": "2014040311001004370000361525^5.00^协商退款",
    "sign_type": "MD5",
    "sign": "9b3426cac65d36f64bffbfbc6ce50549",
}
SEED_001_STRING = (
    "batch_no=201101120001&batch_num=1"
    "&detail_data=2014040311001004370000361525^5.00^协商退款"
    "&notify_url=http://api.test.alipay.net/atinterface/receive_notify.htm"
    "&partner=2088101008267254&refund_date=2011-01-12 11:21:00"
    "&seller_email=Jier1105@alitest.com&service=refund_fastpay_by_platform_pwd"
)

keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(
    lambda k: k not in ("sign", "sign_type")
)
utf8_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)
gbk_text = st.text(alphabet=st.characters(codec="gbk"), max_size=30)
CHARSET_TEXT = {"utf-8": utf8_text, "gbk": gbk_text}


def param_sets(text: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(keys, text, min_size=1, max_size=8)


def test_signing_string_matches_the_seed_written_by_hand() -> None:
    assert signing_string(SEED_000) == SEED_000_STRING
    assert signing_string(SEED_001) == SEED_001_STRING


def test_signing_string_drops_empty_values_and_sign_fields() -> None:
    params = {"b": "2", "a": "1", "empty": "", "sign": "x", "sign_type": "MD5", "A": "0"}
    assert signing_string(params) == "A=0&a=1&b=2"


def test_signing_string_keeps_values_raw() -> None:
    assert signing_string({"u": "http://x/y?a=b&c=d e+f%20"}) == "u=http://x/y?a=b&c=d e+f%20"


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "gbk", "GBK"])
def test_md5_matches_hashlib_by_hand_on_seed_000(charset: str) -> None:
    params = dict(SEED_000, _input_charset=charset)
    by_hand = SEED_000_STRING.replace("_input_charset=UTF-8", f"_input_charset={charset}")
    codec = "gbk" if charset.lower() == "gbk" else "utf-8"
    expected = hashlib.md5((by_hand + MD5_KEY).encode(codec)).hexdigest()
    assert sign(params, sign_type="MD5", charset=charset, md5_key=MD5_KEY) == expected


def test_md5_hashes_gbk_bytes_for_a_gbk_merchant() -> None:
    utf8 = sign(SEED_001, sign_type="MD5", charset="utf-8", md5_key=MD5_KEY)
    gbk = sign(SEED_001, sign_type="MD5", charset="gbk", md5_key=MD5_KEY)
    assert utf8 != gbk
    # Seed 001's URL carries detail_data's reason as %D0%AD%C9%CC%CD%CB%BF%EE.
    assert "协商退款".encode("gbk") == bytes.fromhex("D0ADC9CCCDCBBFEE")
    expected = hashlib.md5(SEED_001_STRING.encode("gbk") + MD5_KEY.encode()).hexdigest()
    assert gbk == expected
    assert len(gbk) == 32 and gbk == gbk.lower()


def test_rsa_signature_is_sha1_pkcs1v15_over_the_signing_string() -> None:
    signature = sign(SEED_000, sign_type="RSA", charset="utf-8", private_key_pem=PRIVATE_PEM)
    _PRIVATE.public_key().verify(
        base64.b64decode(signature),
        SEED_000_STRING.encode("utf-8"),
        padding.PKCS1v15(),
        hashes.SHA1(),
    )


def test_rsa_accepts_pkcs1_pem_and_bare_base64_keys() -> None:
    pkcs1 = _PRIVATE.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    bare_private = base64.b64encode(
        _PRIVATE.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    ).decode()
    bare_public = base64.b64encode(
        _PRIVATE.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    for private in (pkcs1, bare_private):
        signed = dict(SEED_000, sign_type="RSA")
        signed["sign"] = sign(signed, sign_type="RSA", charset="utf-8", private_key_pem=private)
        assert verify(signed, charset="utf-8", public_key_pem=bare_public)
        assert verify(signed, charset="utf-8", public_key_pem=PUBLIC_PEM.decode())


@given(st.sampled_from(["utf-8", "gbk"]), st.sampled_from(["MD5", "RSA"]), st.data())
def test_sign_verify_round_trip_and_tampering(
    charset: str, sign_type: str, data: st.DataObject
) -> None:
    params = data.draw(param_sets(CHARSET_TEXT[charset]))
    signed = dict(params, sign_type=sign_type)
    signed["sign"] = sign(
        signed, sign_type=sign_type, charset=charset, md5_key=MD5_KEY, private_key_pem=PRIVATE_PEM
    )
    assert verify(signed, charset=charset, md5_key=MD5_KEY, public_key_pem=PUBLIC_PEM)

    key = data.draw(st.sampled_from(sorted(params)))
    new_value = data.draw(CHARSET_TEXT[charset].filter(lambda v: v != params[key]))
    tampered = dict(signed, **{key: new_value})
    assert not verify(tampered, charset=charset, md5_key=MD5_KEY, public_key_pem=PUBLIC_PEM)


@given(param_sets(utf8_text))
def test_verify_with_the_wrong_key_fails(params: dict[str, str]) -> None:
    signed = dict(params, sign_type="MD5")
    signed["sign"] = sign(signed, sign_type="MD5", charset="utf-8", md5_key=MD5_KEY)
    assert not verify(signed, charset="utf-8", md5_key=MD5_KEY + "x")


def test_md5_verify_ignores_hex_case_but_not_content() -> None:
    signed = dict(SEED_000)
    signed["sign"] = sign(signed, sign_type="MD5", charset="utf-8", md5_key=MD5_KEY).upper()
    assert verify(signed, charset="utf-8", md5_key=MD5_KEY)


def test_verify_answers_false_to_garbage_and_never_raises() -> None:
    good = dict(SEED_000)
    good["sign"] = sign(good, sign_type="MD5", charset="utf-8", md5_key=MD5_KEY)
    rsa_signed = dict(SEED_000, sign_type="RSA")
    rsa_signed["sign"] = sign(
        rsa_signed, sign_type="RSA", charset="utf-8", private_key_pem=PRIVATE_PEM
    )
    cases: list[tuple[dict[str, str], dict[str, object]]] = [
        ({k: v for k, v in good.items() if k != "sign"}, {"md5_key": MD5_KEY}),
        ({k: v for k, v in good.items() if k != "sign_type"}, {"md5_key": MD5_KEY}),
        (dict(good, sign=""), {"md5_key": MD5_KEY}),
        (dict(good, sign="签名"), {"md5_key": MD5_KEY}),
        (dict(good, sign_type="DSA"), {"md5_key": MD5_KEY}),
        (dict(good, sign_type="md5x"), {"md5_key": MD5_KEY}),
        (good, {}),  # no key
        (good, {"public_key_pem": PUBLIC_PEM}),  # MD5 notification, only an RSA key
        (rsa_signed, {"md5_key": MD5_KEY}),  # RSA notification, only an MD5 key
        (dict(rsa_signed, sign="!!!not base64!!!"), {"public_key_pem": PUBLIC_PEM}),
        (dict(rsa_signed, sign="QUJD"), {"public_key_pem": PUBLIC_PEM}),
        (rsa_signed, {"public_key_pem": "-----BEGIN PUBLIC KEY-----\ngarbage\n-----END"}),
        (rsa_signed, {"public_key_pem": "not a key at all"}),
        (rsa_signed, {"public_key_pem": "密钥"}),
        (rsa_signed, {"public_key_pem": PRIVATE_PEM}),
        (dict(good, detail_data="退款😀"), {"md5_key": MD5_KEY, "charset": "gbk"}),
        (good, {"md5_key": MD5_KEY, "charset": "latin-1"}),
        ({"sign": None, "sign_type": "MD5"}, {"md5_key": MD5_KEY}),  # type: ignore[dict-item]
    ]
    for params, options in cases:
        charset = str(options.pop("charset", "utf-8"))
        assert verify(params, charset=charset, **options) is False  # type: ignore[arg-type]
    assert verify(good, charset="utf-8", md5_key=MD5_KEY) is True
    assert verify(rsa_signed, charset="utf-8", public_key_pem=PUBLIC_PEM) is True


def test_rsa_signature_with_plus_turned_into_space_still_verifies() -> None:
    for n in range(40):
        params = dict(SEED_000, batch_num=str(n + 1), sign_type="RSA")
        params["sign"] = sign(params, sign_type="RSA", charset="utf-8", private_key_pem=PRIVATE_PEM)
        if "+" in params["sign"]:
            params["sign"] = params["sign"].replace("+", " ")
            assert verify(params, charset="utf-8", public_key_pem=PUBLIC_PEM)
            return
    pytest.fail("no signature with '+' among 40 tries")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sign_type": "MD5", "charset": "utf-8"}, "MD5 key"),
        ({"sign_type": "MD5", "charset": "utf-8", "md5_key": ""}, "MD5 key"),
        ({"sign_type": "RSA", "charset": "utf-8", "md5_key": MD5_KEY}, "private key"),
        ({"sign_type": "RSA", "charset": "utf-8", "private_key_pem": "garbage"}, "key"),
        ({"sign_type": "RSA", "charset": "utf-8", "private_key_pem": PUBLIC_PEM}, "key"),
        ({"sign_type": "DSA", "charset": "utf-8", "md5_key": MD5_KEY}, "unknown sign_type"),
        ({"sign_type": "md5", "charset": "utf-8", "md5_key": MD5_KEY}, "unknown sign_type"),
        ({"sign_type": "MD5", "charset": "latin-1", "md5_key": MD5_KEY}, "charset"),
    ],
)
def test_sign_raises_signing_error_without_leaking_the_key(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(SigningError, match=message) as info:
        sign(SEED_000, **options)  # type: ignore[arg-type]
    assert MD5_KEY not in str(info.value)
    assert "PRIVATE KEY" not in str(info.value)


def test_sign_names_the_parameter_the_charset_cannot_encode() -> None:
    params = dict(SEED_000, detail_data="2016081821001004270231872174^0.01^退款😀")
    with pytest.raises(SigningError, match="detail_data"):
        sign(params, sign_type="MD5", charset="gbk", md5_key=MD5_KEY)


# --------------------------------------------------------------------------
# The key loader every caller shares (worker/mapi/keys.py)
# --------------------------------------------------------------------------


def _der_base64(data: bytes, wrap: int = 64) -> str:
    text = base64.b64encode(data).decode()
    return "\n".join(text[i : i + wrap] for i in range(0, len(text), wrap)) + "\n"


def test_loader_reads_every_shape_alipay_and_merchants_hand_out() -> None:
    public = _PRIVATE.public_key()
    private_shapes = [
        PRIVATE_PEM,
        PRIVATE_PEM.decode(),
        _PRIVATE.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
        _der_base64(
            _PRIVATE.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        ),
    ]
    for shape in private_shapes:
        assert load_private_key(shape).private_numbers() == _PRIVATE.private_numbers()
    public_shapes = [
        PUBLIC_PEM,
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        _der_base64(
            public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ),
    ]
    for shape in public_shapes:
        assert load_public_key(shape).public_numbers() == public.public_numbers()
    assert private_key_pem(_PRIVATE).encode() == PRIVATE_PEM
    assert public_key_pem(public).encode() == PUBLIC_PEM


def test_loader_errors_say_what_is_wrong_and_show_no_key() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_private = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    ec_public = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encrypted = _PRIVATE.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    cases: list[tuple[Callable[[str | bytes], object], str | bytes, str, bool]] = [
        (load_private_key, ec_private, "the private key is not an RSA key", True),
        (load_public_key, ec_public, "the public key is not an RSA key", True),
        (load_private_key, encrypted, "the RSA private key cannot be loaded", False),
        (load_private_key, PUBLIC_PEM, "the RSA private key cannot be loaded", False),
        (load_public_key, PRIVATE_PEM, "the RSA public key cannot be loaded", False),
        (load_private_key, "not a key!", "the key is neither PEM nor base64 DER", False),
        (load_public_key, "QUJD", "the RSA public key cannot be loaded", False),
        (load_public_key, "密钥", "the key is not ASCII text", False),
    ]
    for load, data, message, not_rsa in cases:
        with pytest.raises(KeyFormatError) as info:
            load(data)
        assert (str(info.value), info.value.not_rsa) == (message, not_rsa)
