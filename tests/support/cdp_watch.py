#!/usr/bin/env python3
"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe: no
websocket library needed). Loads URL once and watches it: every 200 ms evaluates SAMPLE (a
JavaScript expression; its value must be JSON) and prints each value that differs from the last as
one JSON line on stderr, until UNTIL (a JavaScript expression) is true or TIMEOUT seconds passed;
then writes a screenshot of the page as it is.

    cdp_watch.py URL --sample JS --until JS [--timeout S] [--screenshot PATH]

Exit 0 when UNTIL became true, 1 on timeout, 2 when the browser failed. The page is never
reloaded: what changes in it is the page's own doing (its refresh script).
Browser: $MAILSYNC_TEST_CHROMIUM, else `chromium` on PATH (Debian's package).
"""
import argparse, base64, json, os, select, shutil, subprocess, sys, tempfile, time


class Browser:
    def __init__(self, binary):
        self.profile = tempfile.mkdtemp(prefix="mailsync-chromium-")
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        def child_fds():  # the protocol's pipe: the browser reads fd 3 and writes fd 4
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.process = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--user-data-dir=" + self.profile, "--window-size=1280,1000", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=child_fds)
        os.close(to_child_r)
        os.close(from_child_w)
        self.buffer, self.last_id = b"", 0

    def read(self, deadline):
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.from_child], [], [], left)[0]:
                raise RuntimeError("the browser did not answer in time")
            chunk = os.read(self.from_child, 1 << 16)
            if not chunk:
                raise RuntimeError("the browser closed the protocol pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method, params=None, session=None, seconds=30):
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + seconds
        while True:
            answer = self.read(deadline)
            if answer.get("id") == self.last_id:  # events and other answers are passed over
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def close(self):
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--sample", required=True)
    parser.add_argument("--until", required=True)
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--screenshot")
    args = parser.parse_args()
    try:
        browser = Browser(os.environ.get("MAILSYNC_TEST_CHROMIUM") or shutil.which("chromium") or "chromium")
    except OSError as e:
        print(f"cdp_watch: cannot start the browser: {e}", file=sys.stderr)
        return 2
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

        def evaluate(expression):
            result = browser.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                  session)
            if "exceptionDetails" in result:
                raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')}")
            return result["result"].get("value")

        browser.call("Page.navigate", {"url": args.url}, session)
        deadline = time.monotonic() + args.timeout
        while evaluate("document.readyState") != "complete":
            if time.monotonic() > deadline:
                raise RuntimeError("the page did not load")
            time.sleep(0.05)
        last, done = object(), False
        while time.monotonic() < deadline:
            value = evaluate(args.sample)
            if value != last:
                print(json.dumps(value), file=sys.stderr, flush=True)
                last = value
            if evaluate(args.until):
                done = True
                break
            time.sleep(0.2)
        if args.screenshot:
            shot = browser.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                                session)
            with open(args.screenshot, "wb") as out:
                out.write(base64.b64decode(shot["data"]))
        return 0 if done else 1
    except RuntimeError as e:
        print(f"cdp_watch: {e}", file=sys.stderr)
        return 2
    finally:
        browser.close()


if __name__ == "__main__":
    sys.exit(main())
