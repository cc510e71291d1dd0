"""Ethernet frames the controller answers or sends itself: ARP replies for VIPs and link probes.

Plain bytes with ``struct`` (no os-ken), so the pure sync can build and parse them and tests can
forge them.
"""

from __future__ import annotations

import ipaddress
import struct

ETH_ARP = 0x0806
ARP_REQUEST, ARP_REPLY = 1, 2
PROBE_DST_MAC = "02:70:66:65:70:ff"
PROBE_SRC_MAC = "02:70:66:65:70:6f"
_ARP = "!HHBBH6s4s6s4s"  # htype, ptype, hlen, plen, op, sha, spa, tha, tpa


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def ethernet(dst: str, src: str, ethertype: int, payload: bytes) -> bytes:
    return mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", ethertype) + payload


def ethertype(frame: bytes) -> int | None:
    return int.from_bytes(frame[12:14], "big") if len(frame) >= 14 else None


def parse_arp(frame: bytes) -> tuple[int, str, str, str, str] | None:
    """(opcode, sender mac, sender ip, target mac, target ip) of an Ethernet/IPv4 ARP frame, else None."""
    if ethertype(frame) != ETH_ARP or len(frame) < 14 + struct.calcsize(_ARP):
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = struct.unpack_from(_ARP, frame, 14)
    if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
        return None
    return op, mac_str(sha), str(ipaddress.IPv4Address(spa)), mac_str(tha), str(ipaddress.IPv4Address(tpa))


def arp_frame(op: int, src_mac: str, src_ip: str, dst_mac: str, dst_ip: str) -> bytes:
    body = struct.pack(_ARP, 1, 0x0800, 6, 4, op, mac_bytes(src_mac), ipaddress.IPv4Address(src_ip).packed,
                       mac_bytes(dst_mac), ipaddress.IPv4Address(dst_ip).packed)
    return ethernet(dst_mac, src_mac, ETH_ARP, body)


def arp_reply(request: tuple[int, str, str, str, str], vip: str, vip_mac: str) -> bytes:
    """The reply to an ARP request for ``vip``: ``vip`` is at ``vip_mac``."""
    _op, src_mac, src_ip, _tha, _tpa = request
    return arp_frame(ARP_REPLY, vip_mac, vip, src_mac, src_ip)


def probe_frame(payload: bytes, ethertype_: int) -> bytes:
    return ethernet(PROBE_DST_MAC, PROBE_SRC_MAC, ethertype_, payload)
