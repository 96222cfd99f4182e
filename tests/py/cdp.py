"""Headless Chromium driven over the DevTools protocol, for the dashboard's browser tests:
real clicks (Input.dispatchMouseEvent at the element's place on the page), page state read
with Runtime.evaluate, screenshots with Page.captureScreenshot.

Chromium is started with --remote-debugging-port=0: it picks a free port and writes it to
DevToolsActivePort in its user-data-dir, so parallel runs never collide. The websocket
client is Debian's python3-websocket (websocket-client); it is told not to send an Origin
header, which Chromium would otherwise refuse without --remote-allow-origins.
"""

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import websocket


class BrowserError(Exception):
    pass


class Browser:
    def __init__(self, exe, width=1280, height=900, start_timeout=60.0):
        self.dir = Path(tempfile.mkdtemp(prefix="cwdash-cdp-"))
        self._log = open(self.dir / "chromium.log", "wb")
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             "--user-data-dir=%s" % (self.dir / "profile"),
             "--window-size=%d,%d" % (width, height), "about:blank"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._ids = itertools.count(1)
        self.dialogs = []  # javascriptDialogOpening events: an alert() would land here
        self.exceptions = []  # Runtime.exceptionThrown events
        try:
            self.ws = websocket.create_connection(self._page_socket(start_timeout), timeout=30,
                                                  suppress_origin=True)
            self.call("Page.enable")
            self.call("Runtime.enable")
        except Exception:
            self.close()
            raise

    def _page_socket(self, timeout):
        """The websocket URL of the first page target, once Chromium listens."""
        port_file = self.dir / "profile" / "DevToolsActivePort"
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise BrowserError("chromium exited %s: %s" % (self.proc.returncode, self.log()))
            lines = port_file.read_text().split("\n") if port_file.exists() else []
            if len(lines) >= 2 and lines[0].strip():
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%s/json/list" % lines[0],
                                                timeout=5) as r:
                        pages = [t for t in json.loads(r.read()) if t["type"] == "page"]
                    if pages:
                        return pages[0]["webSocketDebuggerUrl"]
                except OSError:
                    pass
            time.sleep(0.2)
        raise BrowserError("chromium did not open its DevTools port in %ss: %s"
                           % (timeout, self.log()))

    def log(self):
        try:
            return (self.dir / "chromium.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    # ------------------------------------------------------------------ protocol

    def _note(self, event):
        if event.get("method") == "Page.javascriptDialogOpening":
            self.dialogs.append(event["params"])
            self.ws.send(json.dumps({"id": next(self._ids), "method": "Page.handleJavaScriptDialog",
                                     "params": {"accept": False}}))
        elif event.get("method") == "Runtime.exceptionThrown":
            self.exceptions.append(event["params"]["exceptionDetails"])

    def call(self, method, **params):
        """Sends one command and returns its result (events read meanwhile are noted)."""
        mid = next(self._ids)
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise BrowserError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self._note(msg)

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (promises awaited)."""
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                      awaitPromise=True)
        if "exceptionDetails" in r:
            raise BrowserError("%s: %s" % (expression, r["exceptionDetails"]))
        return r["result"].get("value")

    def wait(self, expression, timeout=30.0, what=None):
        """Until the expression is truthy in the page; returns its value."""
        deadline = time.time() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.time() > deadline:
                raise BrowserError("not true after %ss: %s" % (timeout, what or expression))
            time.sleep(0.2)

    # ------------------------------------------------------------------ actions

    def goto(self, url, timeout=30.0):
        self.call("Page.navigate", url=url)
        self.wait("document.readyState === 'complete' && location.href === %s" % json.dumps(url),
                  timeout, "loading " + url)

    def click(self, selector):
        """A left click with the mouse at the middle of the element (scrolled into view), as
        a user clicks: the page sees mousedown/mouseup/click from the browser itself."""
        box = self.evaluate(
            "(() => { const e = document.querySelector(%s); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
            % json.dumps(selector))
        if not box:
            raise BrowserError("nothing to click at %s" % selector)
        for kind, buttons in (("mouseMoved", 0), ("mousePressed", 1), ("mouseReleased", 0)):
            self.call("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"],
                      button="left" if kind != "mouseMoved" else "none", buttons=buttons,
                      clickCount=1 if kind != "mouseMoved" else 0)

    def table(self, table_id):
        """The text of each body row's cells of table#table_id."""
        return self.evaluate(
            "Array.from(document.querySelectorAll('#%s tbody tr'), tr =>"
            " Array.from(tr.cells, c => c.textContent.trim()))" % table_id)

    def screenshot(self, path, full_page=True):
        params = {"format": "png"}
        if full_page:
            m = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": m["width"], "height": m["height"],
                                "scale": 1})
        data = base64.b64decode(self.call("Page.captureScreenshot", **params)["data"])
        Path(path).write_bytes(data)

    def close(self):
        try:
            if getattr(self, "ws", None):
                self.ws.close()
        finally:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self._log.close()
            shutil.rmtree(self.dir, ignore_errors=True)
