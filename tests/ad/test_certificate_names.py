"""The DC's certificate must name the DC exactly as configured (no Samba needed)."""

from __future__ import annotations

from clampdown.connectors.ad.pool import certificate_names

CERT = {
    "subject": ((("commonName", "dc1.lab.example.test"),),),
    "subjectAltName": (("DNS", "dc1.lab.example.test"), ("DNS", "*.dcs.example.test"),
                       ("IP Address", "127.0.0.1"), ("IP Address", "0:0:0:0:0:0:0:1")),
}


def test_names_and_addresses() -> None:
    assert certificate_names(CERT, "dc1.lab.example.test")
    assert certificate_names(CERT, "DC1.lab.example.test.")
    assert certificate_names(CERT, "127.0.0.1") and certificate_names(CERT, "::1")
    assert certificate_names(CERT, "dc7.dcs.example.test")
    assert not certificate_names(CERT, "a.b.dcs.example.test")  # a wildcard covers one label
    assert not certificate_names(CERT, "dcs.example.test")
    assert not certificate_names(CERT, "127.0.0.2")
    assert not certificate_names(CERT, "evil.example.com")


def test_common_name_only_when_no_dns_names() -> None:
    legacy = {"subject": ((("commonName", "dc1.lab.example.test"),),)}
    assert certificate_names(legacy, "dc1.lab.example.test")
    assert not certificate_names(legacy, "127.0.0.1")
    assert not certificate_names({**legacy, "subjectAltName": (("DNS", "other"),)}, "dc1.lab.example.test")
