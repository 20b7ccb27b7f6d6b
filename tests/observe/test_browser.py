"""The dashboard in headless Chromium: every page loads without console errors, shows what the
coordinator says, and a running job's log tail grows on its page. Screenshots: build/artifacts/.

Marked `browser` (deselected by default; `.ci/run` installs Chromium and runs them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from weft.actors.client import Client
from weft.localcluster.cluster import LocalCluster

from .browser import Browser, find_chromium
from .conftest import http_get
from .flows import submit_flow
from helpers import wait_for

pytestmark = pytest.mark.browser
EXE = find_chromium()
if EXE is None:
    pytest.skip("no Chromium installed (apt-get install chromium): the dashboard's browser tests need one",
                allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    b = Browser(EXE)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def flow(observed: LocalCluster, client: Client) -> dict[str, str]:
    ids = submit_flow(client, "web")
    wait_for(lambda: client.status([ids["after_bad"]])[0]["state"] == "failed", 30, "after_bad failed")
    wait_for(lambda: client.status([ids["slow"]])[0]["state"] == "running", 30, "slow running")
    return ids


def api(c: LocalCluster, path: str) -> dict:
    status, text = http_get(c.http + path)
    assert status == 200, text
    return json.loads(text)


def no_errors(b: Browser) -> None:
    assert b.errors() == [], b.errors()
    assert b.eval("document.getElementById('console-errors').hidden") is True, \
        b.eval("document.getElementById('console-errors').textContent")


def test_a_running_jobs_log_tail_grows_on_its_page(observed: LocalCluster, flow: dict[str, str], browser: Browser,
                                                   artifacts: Path) -> None:
    browser.open(f"{observed.http}/#/job/{flow['slow']}", "job")
    first = browser.wait("(document.getElementById('log').textContent.match(/line \\d+/g) || []).length",
                         "log lines shown")
    later = browser.wait(f"(() => {{ const n = (document.getElementById('log').textContent.match(/line \\d+/g)"
                         f" || []).length; return n > {first} ? n : 0; }})()", "more log lines", timeout=15)
    assert later > first
    assert browser.eval("document.querySelector('#job-head .state').dataset.state") == "running"
    spec = browser.eval("document.getElementById('spec').textContent")
    assert "seq 40" in spec and "object" not in spec, spec  # its command, as text
    # Its dependency graph: `text` before it, drawn in SVG.
    assert browser.eval(f"!!document.querySelector('#deps-svg a[data-job=\"{flow['text']}\"]')")
    browser.screenshot(artifacts / "dashboard-job.png")
    no_errors(browser)


def test_the_cluster_page_shows_the_nodes_and_counts(observed: LocalCluster, flow: dict[str, str],
                                                     browser: Browser, artifacts: Path) -> None:
    browser.open(f"{observed.http}/#/", "cluster")
    nodes = browser.eval("[...document.querySelectorAll('#nodes tr[data-node]')].map(r => r.dataset.node)")
    assert sorted(nodes) == sorted(p.node_id for p in (*observed.computes, *observed.storages))
    failed = api(observed, "/api/stats")["jobs"]["failed"]
    assert browser.eval("document.querySelector('[data-count=failed] b').textContent") == str(failed)
    browser.screenshot(artifacts / "dashboard-cluster.png")
    no_errors(browser)


def test_the_jobs_page_lists_and_filters(observed: LocalCluster, flow: dict[str, str], browser: Browser,
                                         artifacts: Path) -> None:
    browser.open(f"{observed.http}/#/jobs?flow=web", "jobs")
    assert browser.eval("document.getElementById('total').dataset.total") == "4"
    states = browser.eval("Object.fromEntries([...document.querySelectorAll('#jobs-table tr[data-job]')]"
                          ".map(r => [r.dataset.job, r.dataset.state]))")
    assert states[flow["bad"]] == states[flow["after_bad"]] == "failed"
    assert states[flow["text"]] == "succeeded"
    browser.wait("document.querySelectorAll('#chart path').length >= 6", "the counts chart drawn")
    browser.screenshot(artifacts / "dashboard-jobs.png")
    # The filter form: failed jobs of the flow only.
    browser.eval("(() => { const f = document.getElementById('filters'); f.state.value = 'failed';"
                 " f.requestSubmit(); })()")
    browser.wait("location.hash.includes('state=failed') && document.body.dataset.ready === '1'"
                 " && document.getElementById('total').dataset.total === '2'", "filtered to 2 failed jobs")
    browser.screenshot(artifacts / "dashboard-jobs-failed.png")
    no_errors(browser)


def test_the_flow_page_is_its_dag_coloured_by_state(observed: LocalCluster, flow: dict[str, str],
                                                    browser: Browser, artifacts: Path) -> None:
    browser.open(f"{observed.http}/#/flow/web", "dag")
    boxes = browser.eval("Object.fromEntries([...document.querySelectorAll('#dag-svg a[data-job]')]"
                         ".map(a => [a.dataset.job, [a.dataset.state, a.querySelector('rect').getAttribute('fill')]]))")
    assert set(boxes) == set(flow.values())
    assert boxes[flow["bad"]][0] == "failed" and boxes[flow["text"]][0] == "succeeded"
    assert boxes[flow["bad"]][1] != boxes[flow["text"]][1]  # coloured by state
    assert browser.eval("document.querySelector('#dag-counts [data-count=failed] b').textContent") == "2"
    assert browser.eval("document.querySelectorAll('#dag-svg > path').length") == 3  # its three edges
    browser.screenshot(artifacts / "dashboard-flow.png")
    no_errors(browser)
    browser.open(f"{observed.http}/#/group/web-all", "dag")  # a group: the same jobs, drawn the same way
    assert browser.eval("document.querySelectorAll('#dag-svg a[data-job]').length") == 4
    no_errors(browser)


def test_the_failures_page_groups_them_by_code(observed: LocalCluster, flow: dict[str, str], browser: Browser,
                                               artifacts: Path) -> None:
    browser.open(f"{observed.http}/#/failures", "failures")
    codes = browser.eval("[...document.querySelectorAll('section[data-code]')].map(s => s.dataset.code)")
    assert {"exit-status", "input-failed"} <= set(codes)
    listed = browser.eval("[...document.querySelectorAll('section[data-code=\"exit-status\"] tr[data-job]')]"
                          ".map(r => r.dataset.job)")
    assert flow["bad"] in listed
    browser.screenshot(artifacts / "dashboard-failures.png")
    no_errors(browser)
