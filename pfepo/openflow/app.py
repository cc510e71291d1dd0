"""The os-ken application: a thin adapter between switches and the controller state.

It installs the desired flows/groups (desired.py), reconciles groups against GroupDescStats on every
poll (so restarts of either side converge), turns port counters into rate samples, and reacts to port
status at once. All decisions live elsewhere; this module only translates events and messages.
"""

from __future__ import annotations

import logging
import time

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.lib.packet import arp, ethernet, packet
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from pfepo.openflow import ofmsg
from pfepo.openflow.desired import switch_state
from pfepo.openflow.reconcile import group_changes, meter_changes
from pfepo.samples import Sample
from pfepo.telemetry import probes
from pfepo.telemetry.rates import PortCounters, RateTracker

log = logging.getLogger("pfepo.openflow")

RUNTIME = None  # set by pfepo.daemon before os-ken instantiates the app


def probes_sample(ts: float, link: str, metric: str, value: float, region: str) -> Sample:
    return Sample(ts, link, metric, value, (("kind", "uplink"), ("region", region), ("source", "probe")))


class PfepoApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if RUNTIME is None:
            raise RuntimeError("pfepo.openflow.app.RUNTIME must be set before starting the app")
        self.rt = RUNTIME
        self.cfg = self.rt.cfg
        self.state = self.rt.state
        self.datapaths: dict[int, object] = {}
        self.flows_installed: dict[int, list] = {}  # dpid -> the flows last sent (ADD replaces in place)
        self.meters_ready: set[int] = set()  # flows reference meters: install them only after these
        self.rates = RateTracker(max_gap_s=max(30.0, 10 * self.cfg.poll_interval_s))
        self._multipart: dict[tuple[int, int], list] = {}
        self._vips = {s.vip: s for s in self.cfg.services}
        self.probes = probes.ProbeTracker(timeout_s=self.cfg.probes.timeout_s)
        self.echo = probes.EchoRtt()
        # Probed links: (src switch, src port) per direction; the region side's port is learnt from the
        # first probe that arrives there (the config only names the client-side port).
        dpids = {s.name: s.dpid for s in self.cfg.switches}
        self.links: dict[str, tuple[int, int | None, int]] = {}  # direction -> (src dpid, src port, dst dpid)
        self.link_ids: dict[int, str] = {}
        for i, r in enumerate(self.cfg.regions):
            core, edge = dpids[r.uplink.switch], dpids[r.switch]
            self.links[f"uplink:{r.name}>"] = (core, r.uplink.port, edge)
            self.links[f"uplink:{r.name}<"] = (edge, None, core)
            self.link_ids[2 * i], self.link_ids[2 * i + 1] = f"uplink:{r.name}>", f"uplink:{r.name}<"
        self._link_index = {v: k for k, v in self.link_ids.items()}
        self.state.add_listener(self.push_all)
        self.rt.app = self

    def start(self):
        t = super().start()
        self.threads.append(hub.spawn(self._poll_loop))
        return t

    # --- connection lifecycle ------------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev):
        dp = ev.msg.datapath
        sw = self.state.switch_connected(dp.id, True)
        if sw is None:
            log.warning("switch dpid=%#x is not in the config: left alone", dp.id)
            return
        log.info("switch %s (dpid=%#x) connected", sw.name, dp.id)
        self.datapaths[dp.id] = dp
        self.flows_installed.pop(dp.id, None)
        self.meters_ready.discard(dp.id)
        dp.send_msg(parser.OFPPortDescStatsRequest(dp, 0))
        dp.send_msg(parser.OFPMeterConfigStatsRequest(dp, 0, ofp.OFPM_ALL))

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev):
        dp = ev.datapath
        if ev.state == DEAD_DISPATCHER and dp.id is not None and self.datapaths.get(dp.id) is dp:
            del self.datapaths[dp.id]
            self.flows_installed.pop(dp.id, None)
            self.meters_ready.discard(dp.id)
            sw = self.state.switch_connected(dp.id, False)
            if sw:
                log.warning("switch %s disconnected", sw.name)

    def _collect(self, ev) -> list | None:
        """Join multipart replies; None until the last part arrived."""
        msg = ev.msg
        key = (msg.datapath.id, msg.xid)
        parts = self._multipart.setdefault(key, [])
        parts.extend(msg.body)
        if msg.flags & ofp.OFPMPF_REPLY_MORE:
            return None
        return self._multipart.pop(key)

    # --- groups: desired state, reconciled -------------------------------------------------------------
    def _desired(self, dpid: int):
        sw = self.state.switches[dpid]
        return switch_state(self.cfg, sw.name, self.state.bucket_weights(), self.state.bandwidth, self.state.evicted)

    @set_ev_cls(ofp_event.EventOFPMeterConfigStatsReply, MAIN_DISPATCHER)
    def _meter_config(self, ev):
        body = self._collect(ev)
        dp = ev.msg.datapath
        if body is None or dp.id not in self.datapaths:
            return
        want = self._desired(dp.id)
        have = ofmsg.parse_meter_config(body)
        self.state.set_applied_meters(dp.id, {m: have[m] for m in have if m in want.meters})
        changes = meter_changes(want.meters, have)
        for command, meter in changes:
            log.info("meter %d on %s: %s %d kbit/s", meter.meter_id, self.state.switches[dp.id].name, command,
                     meter.rate_kbps)
            dp.send_msg(ofmsg.meter_mod(dp, meter, command))
        if dp.id not in self.meters_ready:
            self.meters_ready.add(dp.id)
            dp.send_msg(parser.OFPGroupDescStatsRequest(dp, 0))  # next: groups, then flows
        elif changes:
            dp.send_msg(parser.OFPMeterConfigStatsRequest(dp, 0, ofp.OFPM_ALL))

    @set_ev_cls(ofp_event.EventOFPGroupDescStatsReply, MAIN_DISPATCHER)
    def _group_desc(self, ev):
        body = self._collect(ev)
        dp = ev.msg.datapath
        if body is None or dp.id not in self.datapaths:
            return
        want = self._desired(dp.id)
        have = ofmsg.parse_group_desc(body, want.groups)
        self.state.set_applied(dp.id, {gid: g.weights() for gid, g in have.items() if gid in want.groups})
        changes = group_changes(want.groups, have)
        for ch in changes:
            log.info("group %d on %s: %s weights %s", ch.group.group_id, self.state.switches[dp.id].name,
                      ch.command, ch.group.weights())
            dp.send_msg(ofmsg.group_mod(dp, ch.group, ch.command))
            self.rt.metrics.group_mods.inc()
        if dp.id in self.meters_ready:
            self._sync_flows(dp, want.flows)
        if changes:
            dp.send_msg(parser.OFPGroupDescStatsRequest(dp, 0))  # read back what now applies

    def _sync_flows(self, dp, flows: list) -> None:
        """Send the flows when they differ from what this connection last got (ADD replaces in place)."""
        if self.flows_installed.get(dp.id) == flows:
            return
        for flow in flows:
            dp.send_msg(ofmsg.flow_mod(dp, flow))
        self.flows_installed[dp.id] = list(flows)
        log.info("installed %d flows on %s", len(flows), self.state.switches[dp.id].name)

    def push_all(self) -> None:
        """Desired state changed: update differing meters, groups, then flows on every switch now.

        Order matters: a flow may reference a meter or group, so those go first on the same connection.
        """
        for dpid, dp in list(self.datapaths.items()):
            if dpid not in self.meters_ready:
                continue  # still in the connect sequence, which reads back and applies the latest state
            want = self._desired(dpid)
            sw = self.state.switches[dpid]
            meters = sw.meters
            stale_meters = [m for mid, m in want.meters.items() if meters.get(mid) != m]
            for m in stale_meters:
                dp.send_msg(ofmsg.meter_mod(dp, m, "modify" if m.meter_id in meters else "add"))
            applied = sw.applied
            stale_groups = [g for gid, g in want.groups.items() if applied.get(gid) != g.weights()]
            for g in stale_groups:
                dp.send_msg(ofmsg.group_mod(dp, g, "modify" if g.group_id in applied else "add"))
                self.rt.metrics.group_mods.inc()
            self._sync_flows(dp, want.flows)
            if stale_meters:
                dp.send_msg(parser.OFPMeterConfigStatsRequest(dp, 0, ofp.OFPM_ALL))
            if stale_groups:
                dp.send_msg(parser.OFPGroupDescStatsRequest(dp, 0))

    # --- ports ---------------------------------------------------------------------------------------
    @staticmethod
    def _port_up(p) -> bool:
        return not (p.state & ofp.OFPPS_LINK_DOWN) and not (p.config & ofp.OFPPC_PORT_DOWN)

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    def _port_desc(self, ev):
        body = self._collect(ev)
        if body is None:
            return
        for p in body:
            if p.port_no <= ofp.OFPP_MAX:
                self.state.set_port_up(ev.msg.datapath.id, p.port_no, self._port_up(p))

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _port_status(self, ev):
        p = ev.msg.desc
        dpid = ev.msg.datapath.id
        up = self._port_up(p) and ev.msg.reason != ofp.OFPPR_DELETE
        sw = self.state.switches.get(dpid)
        if sw is None:
            return
        self.rt.record_event("port_status", switch=sw.name, port=p.port_no, up=up)
        self.state.set_port_up(dpid, p.port_no, up)  # uplink change -> listener pushes weights at once

    def _poll_loop(self):
        while True:
            for dp in list(self.datapaths.values()):
                try:
                    dp.send_msg(parser.OFPPortStatsRequest(dp, 0, ofp.OFPP_ANY))
                    dp.send_msg(parser.OFPGroupDescStatsRequest(dp, 0))
                    dp.send_msg(parser.OFPMeterConfigStatsRequest(dp, 0, ofp.OFPM_ALL))
                    dp.send_msg(parser.OFPEchoRequest(dp, data=probes.struct.pack("!d", time.time())))
                except Exception:
                    log.exception("poll of dpid=%#x failed", dp.id)
            if self.cfg.probes.enabled:
                try:
                    self._probe_round()
                except Exception:
                    log.exception("probe round failed")
            hub.sleep(self.cfg.poll_interval_s)

    # --- link probes ---------------------------------------------------------------------------------
    def _probe_round(self) -> None:
        """Report what the last round measured, then send this round's probes."""
        now = time.time()
        stats = self.probes.collect(now)
        by_link: dict[str, dict[str, float]] = {}
        for direction, st in stats.items():
            link, way = direction[:-1], "out" if direction.endswith(">") else "in"
            m = by_link.setdefault(link, {})
            m[f"loss_{way}_pct"] = st.loss_pct
            if st.latency_ms is not None:
                m[f"latency_{way}_ms"] = st.latency_ms
        samples = []
        for link, m in by_link.items():
            lats = [v for k, v in m.items() if k.startswith("latency_")]
            losses = [v for k, v in m.items() if k.startswith("loss_")]
            if lats:
                m["latency_ms"] = sum(lats) / len(lats)
            m["loss_pct"] = sum(losses) / len(losses)
            region = link.split(":", 1)[1]
            samples.extend(probes_sample(now, link, k, v, region) for k, v in m.items())
        if samples:
            self.rt.ingest(samples)
        for direction, (src, port, dst) in self.links.items():
            dp = self.datapaths.get(src)
            # Both ends must hold the probe flow, or a probe sent during connect would count as lost.
            if dp is None or port is None or src not in self.flows_installed or dst not in self.flows_installed:
                continue
            for _ in range(self.cfg.probes.per_interval):
                t_out = time.time()
                seq = self.probes.next_seq(direction, t_out)
                self._send_probe(dp, port, self._link_index[direction], seq, t_out)

    def _send_probe(self, dp, port: int, link_id: int, seq: int, t_out: float) -> None:
        eth = ethernet.ethernet(dst="02:70:66:65:70:ff", src="02:70:66:65:70:6f", ethertype=probes.ETH_TYPE)
        pkt = packet.Packet()
        pkt.add_protocol(eth)
        pkt.add_protocol(probes.encode(dp.id, port, link_id, seq, t_out))
        pkt.serialize()
        dp.send_msg(parser.OFPPacketOut(dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                                        actions=[parser.OFPActionOutput(port)], data=pkt.data))

    def _probe_in(self, dp, in_port: int, payload: bytes) -> None:
        got = probes.decode(payload)
        if got is None:
            return
        src_dpid, _src_port, link_id, seq, _t_out = got
        direction = self.link_ids.get(link_id)
        if direction is None:
            return
        src, port, dst = self.links[direction]
        if dst != dp.id:
            return
        if direction.endswith(">"):  # learn the region side's port for the reverse direction
            rev = direction[:-1] + "<"
            rsrc, rport, rdst = self.links[rev]
            if rport != in_port:
                self.links[rev] = (rsrc, in_port, rdst)
        self.probes.received(seq, time.time(), self.echo.get(src_dpid), self.echo.get(dp.id))

    @set_ev_cls(ofp_event.EventOFPEchoReply, MAIN_DISPATCHER)
    def _echo_reply(self, ev):
        try:
            (t_sent,) = probes.struct.unpack("!d", ev.msg.data[:8])
        except Exception:
            return
        self.echo.update(ev.msg.datapath.id, time.time() - t_sent)

    @set_ev_cls(ofp_event.EventOFPPortStatsReply, MAIN_DISPATCHER)
    def _port_stats(self, ev):
        body = self._collect(ev)
        dpid = ev.msg.datapath.id
        sw = self.state.switches.get(dpid)
        if body is None or sw is None:
            return
        now = time.time()
        samples = []
        for st in body:
            if st.port_no > ofp.OFPP_MAX:
                continue
            cur = PortCounters(now, st.rx_bytes, st.tx_bytes, st.rx_packets, st.tx_packets,
                               st.rx_dropped, st.tx_dropped, st.rx_errors, st.tx_errors)
            cap = self.cfg.capacity_mbps(sw.name, st.port_no) * 1e6
            r = self.rates.update((dpid, st.port_no), cur, cap)
            if r is None:
                continue
            self.state.set_port_rates(dpid, st.port_no, r)
            subject, tags = self.rt.port_names.name(sw.name, st.port_no)
            samples.extend(Sample(now, subject, m, v, tags) for m, v in r.as_metrics().items())
        if samples:
            self.rt.ingest(samples)

    # --- ARP for service VIPs ------------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        msg = ev.msg
        data = bytes(msg.data)
        if len(data) > 14 and int.from_bytes(data[12:14], "big") == probes.ETH_TYPE:
            self._probe_in(msg.datapath, msg.match["in_port"], data[14:])
            return
        pkt = packet.Packet(msg.data)
        a = pkt.get_protocol(arp.arp)
        if a is None or a.opcode != arp.ARP_REQUEST or a.dst_ip not in self._vips:
            return
        svc = self._vips[a.dst_ip]
        reply = packet.Packet()
        reply.add_protocol(ethernet.ethernet(ethertype=0x0806, dst=a.src_mac, src=svc.vip_mac))
        reply.add_protocol(arp.arp(opcode=arp.ARP_REPLY, src_mac=svc.vip_mac, src_ip=svc.vip,
                                   dst_mac=a.src_mac, dst_ip=a.src_ip))
        reply.serialize()
        dp = msg.datapath
        dp.send_msg(parser.OFPPacketOut(
            dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
            actions=[parser.OFPActionOutput(msg.match["in_port"])], data=reply.data))
