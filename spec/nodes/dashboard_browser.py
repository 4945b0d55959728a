#!/usr/bin/env python3
"""Drives the dashboard in a real browser for spec/nodes/dashboard_spec.lua: headless Chromium
(Debian's chromium + chromium-driver) through selenium. Opens URL, waits until the page shows
every member in ALIVE alive and the node's threads, kills PID with SIGKILL, then polls the DOM
until the row of VICTIM says "dead", saves a screenshot to SHOT and prints one JSON line:
{"ready": bool, "dead_after": seconds or null, "states": {...}, "threads": n, "placements": text,
"page1_first", "page2_first", "page_at": the placements' first name before and after clicking
"next", and the page's "after NAME" note}.

usage: dashboard_browser.py URL PID VICTIM ALIVE SHOT
Every wait is bounded; the browser is closed in all cases."""
import json
import os
import signal
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

url, pid, victim, alive, shot = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]

STATES = """return Array.from(document.querySelectorAll('#members tr[data-member]')).map(
  tr => [tr.dataset.member, tr.querySelector('.state').textContent])"""


def states(driver):
    return dict(driver.execute_script(STATES))


def wait(fn, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return None


out = {"ready": False, "dead_after": None}
opts = Options()
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
          "--window-size=1200,780", "--no-first-run", "--user-data-dir=" + tempfile.mkdtemp()):
    opts.add_argument(a)
opts.binary_location = "/usr/bin/chromium"
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
try:
    driver.get(url)
    ready = wait(lambda: len(states(driver)) == alive and all(s == "alive" for s in states(driver).values())
                 and driver.find_element("id", "conn").text == "live"
                 and len(driver.find_elements("css selector", "#threads tbody tr")) > 0, 30)
    out["ready"] = bool(ready)
    out["before"] = states(driver)
    if ready:
        # the placements' pages: "next" shows the names after the first page's last one
        FIRST = "const td = document.querySelector('#placements tbody tr td'); return td ? td.textContent : null"
        out["page1_first"] = wait(lambda: driver.execute_script(FIRST), 5)
        driver.find_element("id", "page-next").click()
        out["page2_first"] = wait(lambda: (lambda f: f if f and f != out["page1_first"] else None)(
            driver.execute_script(FIRST)), 5)
        out["page_at"] = driver.find_element("id", "page-at").text
        driver.find_element("id", "page-first").click()
        wait(lambda: driver.execute_script(FIRST) == out["page1_first"], 5)
        time.sleep(1.5)  # (a few polls: the rates in the screenshot are real)
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        # polled until 10 s so that a slow page says how slow; the spec asserts the bound
        if wait(lambda: states(driver).get(victim) == "dead", 10, 0.02):
            out["dead_after"] = time.monotonic() - t0
        time.sleep(0.6)  # (the next poll: the events list shows the death too)
    out["states"] = states(driver)
    out["threads"] = len(driver.find_elements("css selector", "#threads tbody tr"))
    out["placements"] = driver.find_element("id", "placement-summary").text
    out["events"] = driver.find_element("id", "events").text
    driver.save_screenshot(shot)
finally:
    driver.quit()
print(json.dumps(out))
