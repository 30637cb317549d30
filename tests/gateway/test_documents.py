"""Canonical JSON, digests and signed URLs of documents."""

from __future__ import annotations

from gateway import documents


def test_canonical_form_sorts_keys_and_strips_spaces():
    payload = documents.canonical_bytes({"b": "1", "a": {"d": "x", "c": ["é"]}})
    assert payload == '{"a":{"c":["é"],"d":"x"},"b":"1"}'.encode()
    assert documents.digest(payload) == __import__("hashlib").sha256(payload).hexdigest()


def test_signed_url_verifies_until_it_expires():
    url = documents.signed_url(
        base_url="https://gw.example/", path="/statements/7.json?x=1", secret_key="k", ttl_seconds=3600, now=1000
    )
    assert url.startswith("https://gw.example/statements/7.json?x=1&expires=4600&sig=")
    sig = url.rsplit("sig=", 1)[1]
    signed, expires, got = documents.strip_signature("/statements/7.json", {"x": "1", "expires": "4600", "sig": sig})
    assert documents.verify_url(path_with_query=signed, expires=expires, sig=got, secret_key="k", now=2000)
    assert not documents.verify_url(path_with_query=signed, expires=expires, sig=got, secret_key="k", now=4601)


def test_a_changed_url_is_refused():
    url = documents.signed_url(
        base_url="https://gw.example", path="/statements/7.json", secret_key="k", ttl_seconds=60, now=0
    )
    sig = url.rsplit("sig=", 1)[1]
    assert not documents.verify_url(path_with_query="/statements/8.json", expires="60", sig=sig, secret_key="k", now=1)
    assert not documents.verify_url(path_with_query="/statements/7.json", expires="61", sig=sig, secret_key="k", now=1)
    assert not documents.verify_url(
        path_with_query="/statements/7.json", expires="60", sig=sig, secret_key="other", now=1
    )
