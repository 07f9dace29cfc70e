"""Three real network hosts (namespaces on a bridge) behind nginx and behind HAProxy, run from the
shipped configs, under continuous load from 8 clients: a host added, drained (TERM), killed (-9),
brought back, cut off (link down) and reconnected; every request counted."""
import json

import pytest

import hosts

UNAVAILABLE = hosts.namespaces_available()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"several-machines harness skipped: {UNAVAILABLE}")


@pytest.mark.parametrize("retries", [False, True], ids=["retries-off", "retries-on"])
@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_three_hosts_under_load_through_drain_add_kill_and_partition(kind, retries, tmp_path):
    net = hosts.Network(3)
    try:
        rep = hosts.Scenario(kind, tmp_path, retries).run(net)
    finally:
        net.close()
    hosts.print_report(rep)
    (tmp_path / "report.json").write_text(json.dumps(rep, indent=1))
    ev = {e["event"]: e for e in rep["events"]}
    assert ev["steady"]["requests"] > 100 and ev["steady"]["lost"] == 0, rep
    # Planned changes lose nothing, with or without retries.
    assert ev["add"]["lost"] == 0 and ev["drain"]["lost"] == 0, rep
    assert ev["add"]["noticed_s"] is not None and ev["back"]["noticed_s"] is not None, rep
    if retries:
        # Models safe to retry: a crash or a partition loses nothing either.
        assert rep["lost"] == 0, rep
    for e in rep["events"]:
        assert e["requests"] > 0, rep
